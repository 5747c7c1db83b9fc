import assert from "node:assert/strict";
import {
  Connection,
  type ConnectionHandler,
  type ConnectionOptions,
  HELD_READ,
} from "../../lib/net/connection.ts";
import { OutputArena } from "../../lib/net/output_arena.ts";
import { Selector } from "../../lib/net/selector.ts";
import { makePki, type TestPki, tlsTest } from "../_tls.ts";
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
  onDrain?: () => void;
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

/** A socket whose writes wait until `open()`, like one to a client that does not read. */
function gatedWrites(conn: Deno.TcpConn): { conn: Deno.TcpConn; open(): void; writes: number } {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => release = resolve);
  const state = {
    writes: 0,
    open: () => release(),
    conn: new Proxy(conn, {
      get(target, prop) {
        if (prop === "write") {
          return async (p: Uint8Array) => {
            state.writes++;
            await gate;
            return await target.write(p);
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }),
  };
  return state;
}

Deno.test("connection counts the chunk stuck in an unfinished write as unsent", async () => {
  let gated: ReturnType<typeof gatedWrites> | null = null;
  const { conn, client, done } = await setup({}, (c) => (gated = gatedWrites(c)).conn);
  try {
    conn.write(new Uint8Array(100).fill(97));
    await until(() => gated!.writes === 1, 2000, "the write to start");
    // Taken off the queue, but not written: still ours, still memory.
    assert.equal(conn.writableLength, 100);
    assert.equal(conn.bytesWritten, 0);
    gated!.open();
    await conn.drained();
    assert.equal(conn.writableLength, 0);
    assert.equal(conn.bytesWritten, 100);
    assert.equal((await readExactly(client, 100)).byteLength, 100);
  } finally {
    gated!.open();
    await done();
  }
});

Deno.test("connection holds input back while its unsent output, the stuck chunk included, is above the high-water mark", async () => {
  let gated: ReturnType<typeof gatedWrites> | null = null;
  const { selector, conn, handler, client, done } = await setup(
    { highWaterMark: 1024 },
    (c) => (gated = gatedWrites(c)).conn,
  );
  let drains = 0;
  handler.onDrain = () => drains++;
  try {
    conn.write(new Uint8Array(4096).fill(120));
    await until(() => gated!.writes === 1, 2000, "the write to start");
    assert.equal(conn.needsDrain, true);
    await client.write(encoder.encode("one"));
    // The read is taken, but its bytes wait: nothing reaches the handler, nothing is ready.
    const waiting = selector.select();
    assert.equal(await within(waiting, 100), "timeout");
    assert.equal(handler.text, "");
    assert.equal(drains, 0);
    gated!.open();
    await readExactly(client, 4096);
    await conn.drained();
    assert.equal(drains, 1, "onDrain once the output fell to the mark");
    assert.equal(conn.needsDrain, false);
    for (const m of await waiting) m.onReadable();
    assert.equal(handler.text, "one");
  } finally {
    gated!.open();
    await done();
  }
});

Deno.test("connection calls onDrain only after its output went above the high-water mark", async () => {
  const { conn, handler, client, done } = await setup({ highWaterMark: 1024 });
  let drains = 0;
  handler.onDrain = () => drains++;
  try {
    conn.write(new Uint8Array(1024));
    await conn.drained();
    await readExactly(client, 1024);
    assert.equal(drains, 0);
    conn.write(new Uint8Array(1025));
    await conn.drained();
    assert.equal(drains, 1);
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
    // The read armed before pause() completes, but its bytes wait for resume().
    const waiting = selector.select();
    assert.equal(await within(waiting, 50), "timeout");
    assert.equal(handler.text, "a");
    conn.resume();
    for (const m of await waiting) m.onReadable();
    assert.equal(handler.text, "ab");
  } finally {
    await done();
  }
});

/** A recorder that pauses its connection on every read, as HttpConnection does when full. */
async function setupPausing(options: ConnectionOptions = {}) {
  const t = await setup(options);
  const onData = t.handler.onData.bind(t.handler);
  t.handler.onData = (bytes) => {
    onData(bytes);
    t.conn.pause();
  };
  return t;
}

Deno.test("connection reports the peer's EOF while paused", async () => {
  const { selector, handler, client, done } = await setupPausing();
  try {
    await client.write(encoder.encode("a"));
    for (const m of await selector.select()) m.onReadable();
    assert.equal(handler.text, "a");
    // Paused from inside onData: a waiting client's close must still be seen (issue 11).
    await client.closeWrite();
    const ready = await within(selector.select(), 2000);
    assert.notEqual(ready, "timeout");
    for (const m of ready as Connection[]) m.onReadable();
    assert.equal(handler.ends, 1);
    assert.equal(handler.text, "a");
  } finally {
    await done();
  }
});

Deno.test("connection sees the peer's EOF while paused behind bytes it holds, and hands those over first", async () => {
  const { selector, handler, client, done } = await setupPausing();
  try {
    await client.write(encoder.encode("a"));
    for (const m of await selector.select()) m.onReadable();
    // Paused with more input on its way and then the close: the held read takes the input, and
    // the EOF behind it must still be seen while a request ahead waits (a long poll).
    await client.write(encoder.encode("b".repeat(300)));
    await client.closeWrite();
    const ready = await within(selector.select(), 2000);
    assert.notEqual(ready, "timeout", "the EOF is seen while paused");
    for (const m of ready as Connection[]) m.onReadable();
    assert.equal(handler.text, "a" + "b".repeat(300));
    assert.equal(handler.ends, 1);
  } finally {
    await done();
  }
});

Deno.test("connection reads at most HELD_READ bytes while paused and the rest after resume()", async () => {
  const { selector, conn, handler, client, done } = await setupPausing({ initialBuffer: 8192 });
  try {
    await client.write(encoder.encode("a"));
    for (const m of await selector.select()) m.onReadable();
    const payload = new Uint8Array(64 << 10).map((_, i) => 65 + (i % 26));
    await client.write(payload);
    const waiting = selector.select();
    assert.equal(await within(waiting, 50), "timeout", "nothing delivered while paused");
    handler.onData = (bytes) => handler.chunks.push(bytes.slice());
    conn.resume();
    for (const m of await waiting) m.onReadable();
    while (handler.chunks.reduce((n, c) => n + c.byteLength, 0) < payload.byteLength + 1) {
      for (const m of await selector.select()) m.onReadable();
    }
    const sizes = handler.chunks.map((c) => c.byteLength);
    assert.ok(sizes[1]! <= HELD_READ, `the reads held while paused took ${sizes[1]} bytes`);
    assert.ok(sizes[2]! > HELD_READ, `the reads after resume() use the whole buffer: ${sizes}`);
    assert.deepEqual(concat(handler.chunks.slice(1)), payload);
  } finally {
    await done();
  }
});

Deno.test("connection hands over bytes that arrive while held bytes are delivered, not the held ones again", async () => {
  const { selector, conn, handler, client, done } = await setupPausing();
  try {
    await client.write(encoder.encode("a"));
    for (const m of await selector.select()) m.onReadable();
    // Paused: "bc" is held, and a read stays pending behind it to notice an EOF.
    await client.write(encoder.encode("bc"));
    const waiting = selector.select();
    assert.equal(await within(waiting, 50), "timeout", "nothing delivered while paused");
    handler.onData = (bytes) => handler.chunks.push(bytes.slice());
    conn.resume();
    for (const m of await waiting) m.onReadable();
    // The read pending behind the held bytes now takes "de": it must arrive as "de".
    await client.write(encoder.encode("de"));
    while (handler.chunks.reduce((n, c) => n + c.byteLength, 0) < 5) {
      for (const m of await selector.select()) m.onReadable();
    }
    assert.equal(new TextDecoder().decode(concat(handler.chunks)), "abcde");
  } finally {
    await done();
  }
});

Deno.test("connection does not read again after the peer's EOF", async () => {
  const { selector, conn, handler, client, done } = await setup();
  try {
    await client.closeWrite();
    for (const m of await selector.select()) m.onReadable();
    assert.equal(handler.ends, 1);
    conn.pause();
    conn.resume();
    assert.equal(await within(selector.select(), 50), "timeout");
    assert.equal(handler.ends, 1);
  } finally {
    await done();
  }
});

Deno.test("connection shrinks its read buffer back when asked, from the next read on", async () => {
  const { selector, conn, handler, client, done } = await setup({
    initialBuffer: 16,
    maxBuffer: 64,
  });
  try {
    await client.write(new Uint8Array(300).fill(66));
    while (handler.chunks.reduce((n, c) => n + c.byteLength, 0) < 300) {
      for (const m of await selector.select()) m.onReadable();
    }
    assert.equal(conn.readBufferSize, 64);
    // Asked from onData, as HttpConnection does once a request is parsed.
    handler.onData = (bytes) => {
      handler.chunks.push(bytes.slice());
      conn.shrinkBuffer();
    };
    await client.write(encoder.encode("x"));
    for (const m of await selector.select()) m.onReadable();
    assert.equal(conn.readBufferSize, 16);
    await client.write(encoder.encode("y"));
    for (const m of await selector.select()) m.onReadable();
    assert.equal(handler.chunks.at(-1)?.[0], 121);
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

Deno.test("connection end() sends everything queued although the peer half-closes meanwhile", async () => {
  const pair = await tcpPair();
  const selector = new Selector();
  const conn = new Connection(pair.server, selector);
  conn.handler = { onData() {}, onEnd() {}, onClose() {} };
  conn.start();
  const loop = runLoop(selector);
  try {
    const big = new Uint8Array(8 << 20).fill(122);
    conn.write(big);
    conn.end();
    // The EOF arrives while the answer is still being written: it must not cut it short.
    await pair.client.closeWrite();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const received = await within(readToEnd(pair.client), 5000);
    assert.notEqual(received, "timeout");
    assert.equal((received as Uint8Array).byteLength, big.byteLength);
    await until(() => conn.closed, 2000, "the close after the drain");
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

/**
 * A started Connection over the server side of a TLS listener, and the raw client of `connect`;
 * `done()` closes everything.
 */
async function tlsSetup(
  connect: (port: number, pki: TestPki) => Promise<Deno.Conn>,
  options: ConnectionOptions,
) {
  const dir = await Deno.makeTempDir({ prefix: "parley_conn_tls_" });
  const pki = await makePki(dir, "a");
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: pki.cert, key: pki.key });
  const [client, server] = await Promise.all([connect(listener.addr.port, pki), listener.accept()]);
  listener.close();
  const selector = new Selector();
  const failures: Error[] = [];
  const conn = new Connection(server, selector, {
    ...options,
    onHandshakeError: (error) => failures.push(error),
  });
  const handler = new Recorder();
  conn.handler = handler;
  conn.start();
  const loop = runLoop(selector);
  const done = async () => {
    conn.close();
    closeQuietly(client);
    selector.close();
    await loop;
    await Deno.remove(dir, { recursive: true });
  };
  return { conn, handler, client, failures, done };
}

tlsTest("connection over TLS reads and writes once its handshake is done", async () => {
  const t = await tlsSetup(
    (port, pki) => Deno.connectTls({ hostname: "localhost", port, caCerts: [pki.ca] }),
    { handshakeTimeout: 5000 },
  );
  try {
    await t.client.write(encoder.encode("ping"));
    await until(() => t.handler.text === "ping", 2000, "the bytes through TLS");
    t.conn.write(encoder.encode("pong"));
    assert.equal(decoder.decode(await readExactly(t.client, 4)), "pong");
    assert.deepEqual(t.failures, []);
  } finally {
    await t.done();
  }
});

tlsTest(
  "connection closes a TLS peer that does not finish its handshake within handshakeTimeout, and reports it once",
  async () => {
    // Plain TCP to the TLS socket, saying nothing.
    const t = await tlsSetup((port) => Deno.connect({ hostname: "127.0.0.1", port }), {
      handshakeTimeout: 50,
    });
    try {
      await until(() => t.conn.closed, 2000, "the handshake deadline");
      assert.equal(t.failures.length, 1);
      assert.ok(t.failures[0] instanceof Deno.errors.TimedOut, String(t.failures[0]));
      assert.equal(t.handler.closes, 1);
      assert.equal(t.handler.chunks.length, 0);
    } finally {
      await t.done();
    }
  },
);

tlsTest(
  "connection reports a failed TLS handshake once, with output queued and end() asked",
  async () => {
    // What a refused connection does: write its 503 and end at once. Plain HTTP fails the handshake.
    const t = await tlsSetup((port) => Deno.connect({ hostname: "127.0.0.1", port }), {
      handshakeTimeout: 5000,
    });
    try {
      t.conn.write(encoder.encode("HTTP/1.1 503 Service Unavailable\r\n\r\n"));
      t.conn.end();
      await t.client.write(encoder.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
      await until(() => t.conn.closed, 2000, "the failed handshake to close the connection");
      assert.equal(t.failures.length, 1);
      assert.match(t.failures[0]!.message, /corrupt message|InvalidContentType/i);
      // Whatever the client got, it is no HTTP answer in the clear.
      const got = await within(readToEnd(t.client).catch(() => new Uint8Array()), 2000);
      assert.notEqual(got, "timeout");
      assert.doesNotMatch(decoder.decode(got as Uint8Array), /HTTP\/1\.1/);
    } finally {
      await t.done();
    }
  },
);

Deno.test("connections of one options object share pooled read buffers and give them back on close", async () => {
  const options: ConnectionOptions = { initialBuffer: 256 };
  const a = await setup(options);
  const b = await setup(options);
  try {
    await a.client.write(encoder.encode("one"));
    await b.client.write(encoder.encode("two"));
    const seen = new Map<Connection, Uint8Array>();
    for (const [t, text] of [[a, "one"], [b, "two"]] as const) {
      t.handler.onData = (bytes) => {
        seen.set(t.conn, bytes);
        t.handler.chunks.push(bytes.slice());
      };
      while (t.handler.text !== text) {
        for (const m of await t.selector.select()) m.onReadable();
      }
    }
    // Both read into slots of one slab, each its own bytes.
    assert.equal(seen.get(a.conn)!.buffer, seen.get(b.conn)!.buffer);
    assert.equal(a.handler.text, "one");
    assert.equal(b.handler.text, "two");
    // Closed with a read pending: the slot goes back once that read has ended, and is reused.
    a.conn.close();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const c = await setup(options);
    try {
      await c.client.write(encoder.encode("three"));
      c.handler.onData = (bytes) => {
        seen.set(c.conn, bytes);
        c.handler.chunks.push(bytes.slice());
      };
      while (c.handler.text !== "three") {
        for (const m of await c.selector.select()) m.onReadable();
      }
      assert.equal(seen.get(c.conn)!.byteOffset, seen.get(a.conn)!.byteOffset);
    } finally {
      await c.done();
    }
  } finally {
    await a.done();
    await b.done();
  }
});

Deno.test("connection releases arena output once the socket took it, and queued output when closed", async () => {
  const arena = new OutputArena();
  const { conn, client, done } = await setup();
  try {
    const views = Array.from({ length: 8 }, (_, i) => arena.alloc(8192).fill(65 + i));
    for (const view of views) conn.write(view);
    // The next answer starts another chunk; the first is reused once all eight are written.
    arena.alloc(8192);
    assert.equal(arena.freeChunks, 0);
    const received = readExactly(client, 8 * 8192);
    await conn.drained();
    assert.equal(arena.freeChunks, 1);
    const bytes = await received;
    assert.equal(bytes[0], 65);
    assert.equal(bytes[8 * 8192 - 1], 72);
    // Queued and never written: released by close().
    const later = new OutputArena();
    const queued = Array.from({ length: 8 }, () => later.alloc(8192));
    for (const view of queued) conn.write(view);
    later.alloc(8192);
    conn.close();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(later.freeChunks, 1);
  } finally {
    await done();
  }
});
