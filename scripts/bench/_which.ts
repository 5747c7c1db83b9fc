/** The path of an executable on PATH (or in /usr/sbin and /sbin, which a non-root PATH may lack). */
export function which(command: string): string | null {
  for (const dir of [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/sbin"]) {
    if (dir === "") continue;
    try {
      if (Deno.statSync(`${dir}/${command}`).isFile) return `${dir}/${command}`;
    } catch {
      // Not here.
    }
  }
  return null;
}
