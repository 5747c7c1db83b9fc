/**
 * The process's open-file limit, for `--sockets node`: Deno's `node:net` stops accepting for good,
 * without an error, once an accept fails for want of descriptors, so the server warns at start
 * when `--max-conns` leaves too little room below the limit.
 */

/**
 * Descriptors held beyond `--max-conns`: refused connections while their 503 is written and they
 * linger (half a second each), the listener, the store, standard streams.
 */
export const FD_HEADROOM = 1024;

/** The soft "Max open files" of a `/proc/PID/limits` text; Infinity for unlimited, else null. */
export function parseOpenFileLimit(text: string): number | null {
  const match = /^Max open files\s+(\S+)/m.exec(text);
  if (!match) return null;
  if (match[1] === "unlimited") return Infinity;
  const n = Number(match[1]);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** This process's soft open-file limit (Linux), or null where it cannot be read. */
export function openFileLimit(): number | null {
  try {
    return parseOpenFileLimit(Deno.readTextFileSync("/proc/self/limits"));
  } catch {
    return null;
  }
}

/** Whether `maxConns` connections plus the headroom could run into `limit`. */
export function tooCloseToLimit(maxConns: number, limit: number | null): boolean {
  return limit !== null && maxConns + FD_HEADROOM > limit;
}
