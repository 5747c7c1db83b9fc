import assert from "node:assert/strict";
import { HttpConnection, type HttpConnectionContext } from "../../lib/http/http_connection.ts";
import { DEFAULT_LIMITS } from "../../lib/http/parser.ts";
import { Connection } from "../../lib/net/connection.ts";
import { Selector } from "../../lib/net/selector.ts";
import { closeQuietly, readToEnd, runLoop, tcpPair, within } from "../net/_pair.ts";

/** A socket whose writes are slow and partial, like one to a client on a slow link. */
function slowWrites(conn: Deno.TcpConn, chunk: number, delayMs: number): Deno.TcpConn {
  return new Proxy(conn, {
    get(target, prop) {
      if (prop === "write") {
        return async (p: Uint8Array) => {
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          return await target.write(p.subarray(0, chunk));
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function context(body: Uint8Array): HttpConnectionContext {
  return {
    limits: DEFAULT_LIMITS,
    timeouts: { header: 10_000, body: 30_000, idle: 75_000 },
    maxPipeline: 16,
    trustProxy: false,
    now: Date.now,
    respond: () => ({ status: 200, body }),
    count() {},
    draining: () => false,
  };
}

Deno.test("http connection finishes a slow response to a client that half-closed after its request", async () => {
  const pair = await tcpPair();
  const selector = new Selector();
  const conn = new Connection(slowWrites(pair.server, 16_384, 2), selector);
  const body = new Uint8Array(200_000).fill(98);
  conn.handler = new HttpConnection(conn, context(body));
  conn.start();
  const loop = runLoop(selector);
  try {
    await pair.client.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    await pair.client.closeWrite();
    const received = await within(readToEnd(pair.client), 5000);
    assert.notEqual(received, "timeout");
    const text = new TextDecoder().decode(received as Uint8Array);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal(text.length - text.indexOf("\r\n\r\n") - 4, body.length);
  } finally {
    conn.close();
    closeQuietly(pair.client);
    selector.close();
    await loop;
  }
});
