/**
 * The floor of long polling on `Deno.listen`: nchan's bench contract (`GET /sub/{channel}` waits
 * for the next `POST /pub/{channel}`, whose body it answers; `/nchan_status`; `/healthz`) with as
 * little JavaScript as will do it: a 1 KiB read buffer and one pending read per connection, heads
 * split on CRLF with no validation, one answer encoded per publish and written to every waiting
 * poll. No sessions, rooms, history or limits: what Deno's sockets cost, for the fan-out and
 * memory tables. Benchmark only; it trusts its client.
 *
 *   deno run -A scripts/bench/peer_deno_floor.ts --port 8083
 */
import { parseArgs } from "node:util";

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");
const HEAD_END = /\r\n\r\n/;

/** Waiting polls by channel. */
const waiting = new Map<string, Set<Deno.Conn>>();
let subscribers = 0;

function answer(status: string, body: string): Uint8Array {
  return encoder.encode(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${
      encoder.encode(body).byteLength
    }\r\n\r\n${body}`,
  );
}

function publish(channel: string, body: string): void {
  const polls = waiting.get(channel);
  if (!polls) return;
  waiting.delete(channel);
  subscribers -= polls.size;
  const bytes = answer("200 OK", body);
  for (const conn of polls) conn.write(bytes).catch(() => conn.close());
}

/** Handles one request; answers at once unless it is a poll, which waits for the next publish. */
function handle(conn: Deno.Conn, head: string, body: string): void {
  const [method, target] = head.slice(0, head.indexOf("\r\n")).split(" ");
  if (method === "GET" && target!.startsWith("/sub/")) {
    const channel = target!.slice(5);
    let polls = waiting.get(channel);
    if (!polls) waiting.set(channel, polls = new Set());
    polls.add(conn);
    subscribers++;
  } else if (method === "POST" && target!.startsWith("/pub/")) {
    publish(target!.slice(5), body);
    conn.write(answer("201 Created", "")).catch(() => conn.close());
  } else if (target === "/nchan_status") {
    conn.write(answer("200 OK", `subscribers: ${subscribers}\n`)).catch(() => conn.close());
  } else {
    conn.write(answer(target === "/healthz" ? "200 OK" : "404 Not Found", "ok\n"))
      .catch(() => conn.close());
  }
}

async function serve(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(1024);
  let text = "";
  try {
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      text += latin1.decode(buf.subarray(0, n));
      for (let end = text.search(HEAD_END); end >= 0; end = text.search(HEAD_END)) {
        const head = text.slice(0, end);
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (text.length < end + 4 + length) break;
        handle(conn, head, text.slice(end + 4, end + 4 + length));
        text = text.slice(end + 4 + length);
      }
    }
  } catch {
    // The client went away.
  }
  for (const [channel, polls] of waiting) {
    if (polls.delete(conn)) subscribers--;
    if (polls.size === 0) waiting.delete(channel);
  }
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { port: { type: "string" } } });
  for await (const conn of Deno.listen({ hostname: "127.0.0.1", port: Number(values.port) })) {
    conn.setNoDelay(true);
    void serve(conn);
  }
}
