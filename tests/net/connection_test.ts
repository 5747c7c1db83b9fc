import assert from "node:assert/strict";
import {
  Connection,
  type ConnectionHandler,
  type ConnectionOptions,
} from "../../lib/net/connection.ts";
import { Selector } from "../../lib/net/selector.ts";
import {
  closeQuietly,
  concat,
  readExactly,
  readToEnd,
  runLoop,
  tcpPair,
  until,
  within,
} from "./_pair.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A handler that records what the connection reports. */
class Recorder implements ConnectionHandler {
  chunks: Uint8Array[] = [];
  ends = 0;
  closes = 0;
  onData(bytes: Uint8Array): void {
    this.chunks.push(bytes.slice());
  }
  onEnd(): void {
    this.ends++;
  }
  onClose(): void {
    this.closes++;
  }
  get text(): string {
    return decoder.decode(concat(this.chunks));
  }
}

/** Wraps a socket so the test sees every write the connection makes on it. */
function countingWrites(conn: Deno.TcpConn): { conn: Deno.TcpConn; writes: number[] } {
  const writes: number[] = [];
  const proxy = new Proxy(conn, {
    get(target, prop) {
      if (prop === "write") {
        return (p: Uint8Array) => {
          writes.push(p.byteLength);
          return target.write(p);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { conn: proxy, writes };
}

/** A started Connection over a fresh loopback pair; `done()` closes everything. */
async function setup(options: ConnectionOptions = {}, wrap?: (c: Deno.TcpConn) => Deno.TcpConn) {
  const pair = await tcpPair();
  const selector = new Selector();
  const conn = new Connection(wrap ? wrap(pair.server) : pair.server, selector, options);
  const handler = new Recorder();
  conn.handler = handler;
  conn.start();
  const done = async () => {
    conn.close();
    closeQuietly(pair.client);
    selector.close();
    // Let the reads the close cancelled settle before the op sanitizer looks.
    await new Promise((resolve) => setTimeout(resolve, 0));
  };
  return { selector, conn, handler, client: pair.client, done };
}

Deno.test("connection delivers reads only through the selector", async () => {
  const { selector, conn, handler, client, done } = await setup();
  try {
    assert.equal(selector.size, 1);
    await client.write(encoder.encode("hello"));
    const ready = await selector.select();
    assert.deepEqual(ready, [conn]);
    // The bytes wait in the connection's buffer until the loop hands over the readiness.
    assert.equal(handler.chunks.length, 0);
    conn.onReadable();
    assert.equal(handler.text, "hello");
    assert.equal(conn.remoteAddr, "127.0.0.1");
  } finally {
    await done();
  }
});

Deno.test("connection grows its read buffer while reads fill it, up to maxBuffer", async () => {
  const { selector, conn, handler, client, done } = await setup({
    initialBuffer: 16,
    maxBuffer: 64,
  });
  try {
    const payload = new Uint8Array(300).map((_, i) => 65 + (i % 26));
    await client.write(payload);
    let received = 0;
    while (received < payload.byteLength) {
      for (const m of await selector.select()) m.onReadable();
      received = handler.chunks.reduce((n, c) => n + c.byteLength, 0);
    }
    const sizes = handler.chunks.map((c) => c.byteLength);
    assert.deepEqual(sizes.slice(0, 3), [16, 32, 64], `read sizes ${sizes}`);
    assert.ok(sizes.every((n) => n <= 64), `read sizes ${sizes}`);
    assert.deepEqual(concat(handler.chunks), payload);
    assert.equal(conn.closed, false);
  } finally {
    await done();
  }
});

Deno.test("connection keeps a completed read until the loop handles it, even if a write ends meanwhile", async () => {
  const { selector, conn, handler, client, done } = await setup();
  try {
    await client.write(encoder.encode("first"));
    assert.deepEqual(await selector.select(), [conn]);
    // A write finishing before the loop gets to onReadable must not start another read into
    // the buffer that still holds "first".
    conn.write(encoder.encode("ack"));
    await conn.drained();
    assert.equal(decoder.decode(await readExactly(client, 3)), "ack");
    await client.write(encoder.encode("second"));
    await new Promise((resolve) => setTimeout(resolve, 20));
    conn.onReadable();
    assert.equal(handler.text, "first");
    for (const m of await selector.select()) m.onReadable();
    assert.equal(handler.text, "firstsecond");
  } finally {
    await done();
  }
});

Deno.test("connection coalesces writes queued in one tick into one socket write", async () => {
  let writes: number[] = [];
  const { conn, client, done } = await setup({}, (c) => {
    const counted = countingWrites(c);
    writes = counted.writes;
    return counted.conn;
  });
  try {
    conn.write(encoder.encode("HTTP/1.1 200 OK\r\n"));
    conn.write(encoder.encode("Content-Length: 2\r\n\r\n"));
    conn.write(encoder.encode("ok"));
    assert.equal(conn.writableLength, 17 + 21 + 2);
    await conn.drained();
    assert.equal(conn.writableLength, 0);
    assert.deepEqual(writes, [40]);
    assert.equal(
      decoder.decode(await readExactly(client, 40)),
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
  } finally {
    await done();
  }
});

Deno.test("connection stops reading while its write queue is above the high-water mark", async () => {
  const { selector, conn, handler, client, done } = await setup({ highWaterMark: 1024 });
  try {
    // More than loopback socket buffers hold, so the writer blocks on the unread peer.
    const big = new Uint8Array(32 << 20).fill(120);
    conn.write(big);
    await new Promise((resolve) => setTimeout(resolve, 10));
    conn.write(new Uint8Array(4096).fill(121));
    assert.equal(conn.writableLength, 4096);
    // The read armed before the queue grew still completes once.
    await client.write(encoder.encode("one"));
    for (const m of await selector.select()) m.onReadable();
    assert.equal(handler.text, "one");
    // Then no read is pending: new input waits until the peer takes what we wrote.
    await client.write(encoder.encode("two"));
    const waiting = selector.select();
    assert.equal(await within(waiting, 100), "timeout");
    assert.equal(handler.text, "one");
    const drained = conn.drained();
    const all = await readExactly(client, big.byteLength + 4096);
    assert.equal(all[all.byteLength - 1], 121);
    await drained;
    for (const m of await waiting) m.onReadable();
    assert.equal(handler.text, "onetwo");
  } finally {
    await done();
  }
});

Deno.test("connection pause() holds input back until resume()", async () => {
  const { selector, conn, handler, client, done } = await setup();
  try {
    await client.write(encoder.encode("a"));
    for (const m of await selector.select()) m.onReadable();
    conn.pause();
    await client.write(encoder.encode("b"));
    // The read re-armed before pause() completes, but no further read starts.
    for (const m of await selector.select()) m.onReadable();
    await client.write(encoder.encode("c"));
    const waiting = selector.select();
    assert.equal(await within(waiting, 50), "timeout");
    assert.equal(handler.text, "ab");
    conn.resume();
    for (const m of await waiting) m.onReadable();
    assert.equal(handler.text, "abc");
  } finally {
    await done();
  }
});

Deno.test("connection reports the peer's EOF with onEnd and stays open", async () => {
  const { selector, conn, handler, client, done } = await setup();
  try {
    await client.write(encoder.encode("bye"));
    await client.closeWrite();
    while (handler.ends === 0) {
      for (const m of await selector.select()) m.onReadable();
    }
    assert.equal(handler.text, "bye");
    assert.equal(handler.ends, 1);
    assert.equal(handler.closes, 0);
    assert.equal(conn.closed, false);
    // Half-closed peers still read: a last answer goes through.
    conn.write(encoder.encode("later"));
    await conn.drained();
    assert.equal(decoder.decode(await readExactly(client, 5)), "later");
  } finally {
    await done();
  }
});

Deno.test("connection close() is idempotent and notifies handler and listeners once", async () => {
  const { selector, conn, handler, client, done } = await setup();
  try {
    let listened = 0;
    conn.onClosed(() => listened++);
    conn.write(encoder.encode("x"));
    conn.close();
    conn.close();
    assert.equal(conn.closed, true);
    assert.equal(handler.closes, 1);
    assert.equal(listened, 1);
    assert.equal(selector.size, 0);
    assert.equal(conn.writableLength, 0);
    // A listener added after the close runs at once, and only once.
    let late = 0;
    conn.onClosed(() => late++);
    assert.equal(late, 1);
    conn.write(encoder.encode("ignored"));
    assert.equal(conn.writableLength, 0);
    await conn.drained();
    conn.end();
    assert.equal(handler.closes, 1);
    // The peer sees the close.
    const rest = await within(readToEnd(client).catch(() => new Uint8Array()), 1000);
    assert.notEqual(rest, "timeout");
  } finally {
    await done();
  }
});

Deno.test("connection end() lingers so the peer gets the last bytes although it sent unread data", async () => {
  const pair = await tcpPair();
  const selector = new Selector();
  const conn = new Connection(pair.server, selector, { lingerMs: 5000 });
  let closes = 0;
  conn.handler = {
    onData() {
      // Answer at once and leave the rest of the input unread.
      conn.write(encoder.encode("413 too large"));
      conn.end();
    },
    onEnd: () => conn.close(),
    onClose: () => closes++,
  };
  conn.start();
  const loop = runLoop(selector);
  try {
    // A body far larger than what the server reads before answering.
    const upload = pair.client.write(new Uint8Array(4 << 20).fill(97)).catch((e) => e);
    const answer = await within(readToEnd(pair.client), 3000);
    assert.notEqual(answer, "timeout");
    assert.equal(decoder.decode(answer as Uint8Array), "413 too large");
    const uploaded = await upload;
    assert.ok(typeof uploaded === "number", `upload failed: ${uploaded}`);
    assert.equal(conn.closed, false, "still lingering while the peer is open");
    pair.client.close();
    await until(() => conn.closed, 2000, "the server side to close after the peer did");
    assert.equal(closes, 1);
  } finally {
    conn.close();
    closeQuietly(pair.client);
    selector.close();
    await loop;
  }
});

Deno.test("connection end() closes after lingerMs when the peer stays open", async () => {
  const pair = await tcpPair();
  const selector = new Selector();
  const conn = new Connection(pair.server, selector, { lingerMs: 30 });
  conn.handler = { onData() {}, onEnd: () => conn.close(), onClose() {} };
  conn.start();
  const loop = runLoop(selector);
  try {
    conn.write(encoder.encode("bye"));
    conn.end();
    conn.end();
    assert.equal(decoder.decode(await readToEnd(pair.client)), "bye");
    await until(() => conn.closed, 1000, "the linger timer");
  } finally {
    conn.close();
    closeQuietly(pair.client);
    selector.close();
    await loop;
  }
});
