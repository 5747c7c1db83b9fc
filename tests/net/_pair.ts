/** Helpers of the net tests: loopback socket pairs, a selector loop, polling for a condition. */
import type { Selectable, Selector } from "../../lib/net/selector.ts";

/** A connected client/server pair of TCP sockets over 127.0.0.1. */
export async function tcpPair(): Promise<{ client: Deno.TcpConn; server: Deno.TcpConn }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const [client, server] = await Promise.all([
      Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
      listener.accept(),
    ]);
    return { client, server };
  } finally {
    listener.close();
  }
}

/** The server's main loop: hands every ready member its readiness until the selector empties. */
export async function runLoop<T extends Selectable>(selector: Selector<T>): Promise<void> {
  while (!selector.closed && selector.size > 0) {
    for (const member of await selector.select()) member.onReadable();
  }
}

/** Resolves once `condition()` holds; rejects after `timeoutMs`. */
export async function until(
  condition: () => boolean,
  timeoutMs = 2000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Resolves with `promise`'s value, or with "timeout" after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads from `conn` until EOF; rejects if the read fails (e.g. a reset). */
export async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    parts.push(buf.slice(0, n));
  }
  return concat(parts);
}

/** Reads exactly `length` bytes from `conn`. */
export async function readExactly(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let off = 0;
  while (off < length) {
    const n = await conn.read(out.subarray(off));
    if (n === null) throw new Error(`EOF after ${off} of ${length} bytes`);
    off += n;
  }
  return out;
}

/** Joins byte arrays. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/** Closes a Deno resource, ignoring "already closed". */
export function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // closed already
  }
}
