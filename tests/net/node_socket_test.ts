import assert from "node:assert/strict";
import {
  type ByteSocket,
  NodeListener,
  NodeSocket,
  READ_AHEAD,
} from "../../lib/net/node_socket.ts";
import { closeQuietly, concat, readToEnd, until, within } from "./_pair.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Runs `fn` with a NodeListener on 127.0.0.1, a client connected to it and the accepted socket;
 * always closes all three.
 */
async function withPair(
  fn: (pair: { listener: NodeListener; client: Deno.TcpConn; server: NodeSocket }) => Promise<void>,
): Promise<void> {
  const listener = await NodeListener.listen("127.0.0.1", 0);
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  try {
    await fn({ listener, client, server: server as NodeSocket });
  } finally {
    closeQuietly(client);
    closeQuietly(server);
    listener.close();
  }
}

async function readAll(socket: NodeSocket): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  for (let n = await socket.read(buf); n !== null; n = await socket.read(buf)) {
    parts.push(buf.slice(0, n));
  }
  return concat(parts);
}

Deno.test("node socket reads and writes like a Deno.Conn, with the peer's address", () =>
  withPair(async ({ listener, client, server }) => {
    assert.notEqual(listener.addr.port, 0);
    assert.equal(server.remoteAddr.hostname, "127.0.0.1");
    await client.write(encoder.encode("ping"));
    const buf = new Uint8Array(2);
    // A read takes no more than its buffer; the rest waits for the next read.
    assert.equal(await server.read(buf), 2);
    assert.equal(decoder.decode(buf), "pi");
    assert.equal(await server.read(buf), 2);
    assert.equal(decoder.decode(buf), "ng");
    assert.equal(await server.write(encoder.encode("pong")), 4);
    const answer = new Uint8Array(4);
    assert.equal(await client.read(answer), 4);
    assert.equal(decoder.decode(answer), "pong");
  }));

Deno.test("node socket reports the peer's EOF after its bytes, and still writes (half-close)", () =>
  withPair(async ({ client, server }) => {
    await client.write(encoder.encode("last words"));
    await client.closeWrite();
    assert.equal(decoder.decode(await readAll(server)), "last words");
    // The peer only shut down its sending side: it still reads our answer, then our EOF.
    await server.write(encoder.encode("answer"));
    await server.closeWrite();
    assert.equal(decoder.decode(await readToEnd(client)), "answer");
  }));

Deno.test("node socket stops reading ahead of its reader, and loses nothing when it goes on", () =>
  withPair(async ({ client, server }) => {
    const total = 4 << 20;
    const sent = new Uint8Array(total).map((_, i) => i % 251);
    const writing = (async () => {
      let off = 0;
      while (off < total) off += await client.write(sent.subarray(off));
      await client.closeWrite();
    })();
    await until(() => server.bufferedBytes >= READ_AHEAD, 5000, "bytes read ahead");
    // The client keeps writing, but the socket takes at most the read-ahead and one more read.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(server.bufferedBytes < READ_AHEAD + (256 << 10), `${server.bufferedBytes} B held`);
    assert.equal(await within(writing, 50), "timeout", "the client's 4 MiB all went in unread");
    const received = await readAll(server);
    await writing;
    assert.equal(received.byteLength, total);
    assert.deepEqual(received, sent);
  }));

Deno.test("node socket: close() ends a pending read with BadResource, and a second close throws", () =>
  withPair(async ({ client, server }) => {
    const reading = server.read(new Uint8Array(16));
    server.close();
    await assert.rejects(reading, Deno.errors.BadResource);
    assert.throws(() => server.close(), Deno.errors.BadResource);
    await assert.rejects(server.write(encoder.encode("x")), Deno.errors.BadResource);
    // The peer sees the connection end.
    assert.equal((await readToEnd(client)).byteLength, 0);
  }));

Deno.test("node listener refuses a taken port with AddrInUse, and close() ends a pending accept", async () => {
  const listener = await NodeListener.listen("127.0.0.1", 0);
  try {
    await assert.rejects(
      NodeListener.listen("127.0.0.1", listener.addr.port),
      Deno.errors.AddrInUse,
    );
    const accepting = listener.accept();
    listener.close();
    await assert.rejects(accepting, Deno.errors.BadResource);
    await assert.rejects(listener.accept(), Deno.errors.BadResource);
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }));
  } finally {
    // Closed above unless an assertion failed first.
    closeQuietly(listener);
  }
});

Deno.test("node listener closes connections past maxConnections at once, without handing them on", async () => {
  const listener = await NodeListener.listen("127.0.0.1", 0, { maxConnections: 2 });
  const clients: Deno.TcpConn[] = [];
  const accepted: ByteSocket[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      clients.push(await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }));
      accepted.push(await listener.accept());
    }
    // The third is over the limit: closed by node:net, the client sees the end of its stream.
    const over = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    clients.push(over);
    assert.equal(await within(over.read(new Uint8Array(16)), 2000), null);
    // Once one of the two closes, a new one is handed on again.
    accepted.shift()!.close();
    clients.shift()!.close();
    const next = listener.accept();
    let again: Deno.TcpConn | null = null;
    // The close reaches node:net's count a moment later: connect until one is handed on.
    for (let tries = 0; again === null && tries < 50; tries++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
      clients.push(c);
      const closed = c.read(new Uint8Array(1)).then(() => false, () => false);
      if (await Promise.race([next.then(() => true), closed])) again = c;
    }
    assert.ok(again, "no connection was handed on after one of the two closed");
    accepted.push(await next);
  } finally {
    for (const c of clients) c.close();
    for (const a of accepted) a.close();
    listener.close();
  }
});
