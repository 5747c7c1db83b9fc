import { which } from "./_which.ts";

/** Why wrk cannot run here, or null when it can. */
export function wrkMissing(): string | null {
  return which("wrk") ? null : "wrk is not installed (apt-get install wrk)";
}

/** Runs wrk against a loopback URL and returns its requests per second (null when wrk is missing). */
export async function wrk(
  url: string,
  options: { connections?: number; seconds?: number; threads?: number; script?: string } = {},
): Promise<{ rps: number; latencyP50: string; output: string } | null> {
  const host = new URL(url).hostname;
  if (host !== "127.0.0.1" && host !== "localhost" && host !== "[::1]") {
    throw new Error(`wrk: refusing to load ${url}: benchmarks only target loopback`);
  }
  const args = [
    `-t${options.threads ?? 1}`,
    `-c${options.connections ?? 50}`,
    `-d${options.seconds ?? 5}s`,
    "--latency",
  ];
  if (options.script) args.push("-s", options.script);
  args.push(url);
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("wrk", { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const text = new TextDecoder().decode(out.stdout);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
  // The latency distribution's own line: "90.50%" in the stdev column must not match.
  const latencyP50 = /^\s*50%\s+(\S+)/m.exec(text)?.[1] ?? "?";
  return { rps, latencyP50, output: text };
}
