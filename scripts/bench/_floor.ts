/**
 * What the two long-poll floors (`peer_deno_floor.ts`, `peer_node_floor.ts`) share: nchan's bench
 * contract (`GET /sub/{channel}` waits for the next `POST /pub/{channel}`, whose body it answers;
 * `/nchan_status`; `/healthz`) over any kind of socket, with next to no JavaScript. Benchmark only;
 * it trusts its client.
 */

const encoder = new TextEncoder();
const HEAD_END = /\r\n\r\n/;

/** A whole answer with `body`. */
export function answer(status: string, body: string): Uint8Array {
  return encoder.encode(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${
      encoder.encode(body).byteLength
    }\r\n\r\n${body}`,
  );
}

/** Cuts the complete requests off the front of `text` (latin-1), handing each on; returns the rest. */
export function takeRequests(
  text: string,
  onRequest: (head: string, body: string) => void,
): string {
  for (let end = text.search(HEAD_END); end >= 0; end = text.search(HEAD_END)) {
    const head = text.slice(0, end);
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (text.length < end + 4 + length) break;
    onRequest(head, text.slice(end + 4, end + 4 + length));
    text = text.slice(end + 4 + length);
  }
  return text;
}

/** The channels and their waiting polls, over connections of type `C`. */
export class FloorChannels<C> {
  /** Waiting polls by channel. */
  #waiting = new Map<string, Set<C>>();
  #subscribers = 0;
  #write: (conn: C, bytes: Uint8Array) => void;

  constructor(write: (conn: C, bytes: Uint8Array) => void) {
    this.#write = write;
  }

  /** Handles one request; answers at once unless it is a poll, which waits for the next publish. */
  handle(conn: C, head: string, body: string): void {
    const [method, target] = head.slice(0, head.indexOf("\r\n")).split(" ");
    if (method === "GET" && target!.startsWith("/sub/")) {
      const channel = target!.slice(5);
      let polls = this.#waiting.get(channel);
      if (!polls) this.#waiting.set(channel, polls = new Set());
      polls.add(conn);
      this.#subscribers++;
    } else if (method === "POST" && target!.startsWith("/pub/")) {
      this.#publish(target!.slice(5), body);
      this.#write(conn, answer("201 Created", ""));
    } else if (target === "/nchan_status") {
      this.#write(conn, answer("200 OK", `subscribers: ${this.#subscribers}\n`));
    } else {
      this.#write(conn, answer(target === "/healthz" ? "200 OK" : "404 Not Found", "ok\n"));
    }
  }

  /** Forgets a connection that went away. */
  drop(conn: C): void {
    for (const [channel, polls] of this.#waiting) {
      if (polls.delete(conn)) this.#subscribers--;
      if (polls.size === 0) this.#waiting.delete(channel);
    }
  }

  /** One answer encoded per publish and written to every waiting poll. */
  #publish(channel: string, body: string): void {
    const polls = this.#waiting.get(channel);
    if (!polls) return;
    this.#waiting.delete(channel);
    this.#subscribers -= polls.size;
    const bytes = answer("200 OK", body);
    for (const conn of polls) this.#write(conn, bytes);
  }
}
