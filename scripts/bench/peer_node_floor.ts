/**
 * The floor of long polling on `node:net` (where Parley's plain TCP comes from): the contract and
 * the next-to-no JavaScript of `peer_deno_floor.ts`, with sockets from `node:net` instead of
 * `Deno.listen`, for the fan-out and memory tables. Benchmark only; it trusts its client.
 *
 *   deno run -A scripts/bench/peer_node_floor.ts --port 8084
 */
import net from "node:net";
import { parseArgs } from "node:util";

const HEAD_END = /\r\n\r\n/;

/** Waiting polls by channel. */
const waiting = new Map<string, Set<net.Socket>>();
let subscribers = 0;

function answer(status: string, body: string): Buffer {
  return Buffer.from(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${
      Buffer.byteLength(body)
    }\r\n\r\n${body}`,
  );
}

function publish(channel: string, body: string): void {
  const polls = waiting.get(channel);
  if (!polls) return;
  waiting.delete(channel);
  subscribers -= polls.size;
  const bytes = answer("200 OK", body);
  for (const conn of polls) conn.write(bytes);
}

/** Handles one request; answers at once unless it is a poll, which waits for the next publish. */
function handle(conn: net.Socket, head: string, body: string): void {
  const [method, target] = head.slice(0, head.indexOf("\r\n")).split(" ");
  if (method === "GET" && target!.startsWith("/sub/")) {
    const channel = target!.slice(5);
    let polls = waiting.get(channel);
    if (!polls) waiting.set(channel, polls = new Set());
    polls.add(conn);
    subscribers++;
  } else if (method === "POST" && target!.startsWith("/pub/")) {
    publish(target!.slice(5), body);
    conn.write(answer("201 Created", ""));
  } else if (target === "/nchan_status") {
    conn.write(answer("200 OK", `subscribers: ${subscribers}\n`));
  } else {
    conn.write(answer(target === "/healthz" ? "200 OK" : "404 Not Found", "ok\n"));
  }
}

function serve(conn: net.Socket): void {
  conn.setNoDelay(true);
  let text = "";
  conn.on("data", (chunk: Buffer) => {
    text += chunk.toString("latin1");
    for (let end = text.search(HEAD_END); end >= 0; end = text.search(HEAD_END)) {
      const head = text.slice(0, end);
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (text.length < end + 4 + length) break;
      handle(conn, head, text.slice(end + 4, end + 4 + length));
      text = text.slice(end + 4 + length);
    }
  });
  conn.on("close", () => {
    for (const [channel, polls] of waiting) {
      if (polls.delete(conn)) subscribers--;
      if (polls.size === 0) waiting.delete(channel);
    }
  });
  // The client went away: "close" follows.
  conn.on("error", () => {});
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { port: { type: "string" } } });
  net.createServer(serve).listen(Number(values.port), "127.0.0.1");
}
