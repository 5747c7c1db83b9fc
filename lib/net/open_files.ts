/**
 * The process's open-file limit, for `--sockets node`: Deno's `node:net` stops accepting for good,
 * without an error, once an accept fails for want of descriptors, so the server warns at start
 * when `--max-conns` leaves too little room below the limit.
 */

/**
 * Connections over `--max-conns` that node:net hands on, to be refused with a 503 (each holds its
 * descriptor while the 503 is written and it lingers, up to half a second); it closes the rest at
 * once.
 */
export const REFUSED_ROOM = 512;

/** Descriptors held beyond `--max-conns`: REFUSED_ROOM, the listener, the store, stdio. */
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
