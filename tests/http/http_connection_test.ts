import assert from "node:assert/strict";
import { HttpConnection, type HttpConnectionContext } from "../../lib/http/http_connection.ts";
import { DEFAULT_LIMITS, MAX_QUEUED_STEPS, type RequestParser } from "../../lib/http/parser.ts";
import { fixedHeaderBlock, serializeResponse } from "../../lib/http/response.ts";
import { Connection, type ConnectionOptions } from "../../lib/net/connection.ts";
import { Selector } from "../../lib/net/selector.ts";
import type { HttpResponse } from "../../lib/http/types.ts";
import { FakeClock } from "../_clock.ts";
import {
  closeQuietly,
  readExactly,
  readToEnd,
  runLoop,
  tcpPair,
  until,
  within,
} from "../net/_pair.ts";

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
    timeouts: { header: 10_000, body: 30_000, idle: 75_000, write: 30_000 },
    maxPipeline: 16,
    trustProxy: false,
    fixedHeaders: fixedHeaderBlock(false),
    now: Date.now,
    respond: () => ({ status: 200, body }),
    settled: (value) => value as HttpResponse,
    failed: () => ({ status: 500 }),
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

/** A socket whose writes wait until `open()`, like one to a client that does not read. */
function gatedWrites(conn: Deno.TcpConn): { conn: Deno.TcpConn; open(): void } {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => release = resolve);
  return {
    open: () => release(),
    conn: new Proxy(conn, {
      get(target, prop) {
        if (prop === "write") {
          return async (p: Uint8Array) => {
            await gate;
            return await target.write(p);
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }),
  };
}

/** A socket whose writes take at most 1 KiB, each only when `step()` is called. */
function steppedWrites(conn: Deno.TcpConn): { conn: Deno.TcpConn; step(): void; close(): void } {
  const waiting: (() => void)[] = [];
  let closed = false;
  return {
    step: () => waiting.shift()?.(),
    close: () => {
      closed = true;
      for (const go of waiting.splice(0)) go();
    },
    conn: new Proxy(conn, {
      get(target, prop) {
        if (prop === "write") {
          return async (p: Uint8Array) => {
            if (!closed) await new Promise<void>((resolve) => waiting.push(resolve));
            return await target.write(p.subarray(0, 1024));
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }),
  };
}

/** An HttpConnection over a loopback pair with its selector loop; `done()` closes everything. */
async function serve(
  respond: HttpConnectionContext["respond"],
  options: {
    wrap?: (c: Deno.TcpConn) => Deno.TcpConn;
    conn?: ConnectionOptions;
    ctx?: Partial<HttpConnectionContext>;
  } = {},
) {
  const pair = await tcpPair();
  const selector = new Selector();
  const conn = new Connection(
    options.wrap ? options.wrap(pair.server) : pair.server,
    selector,
    { maxBuffer: 16384, ...options.conn },
  );
  const http = new HttpConnection(conn, { ...context(new Uint8Array()), respond, ...options.ctx });
  conn.handler = http;
  conn.start();
  const loop = runLoop(selector);
  const done = async () => {
    conn.close();
    closeQuietly(pair.client);
    selector.close();
    await loop;
  };
  return { conn, http, client: pair.client, selector, done };
}

const GET = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";

/** Reads until `count` responses of `size` bytes each arrived; returns their bytes. */
async function readResponses(client: Deno.Conn, count: number, size: number): Promise<Uint8Array> {
  return await readExactly(client, count * size);
}

Deno.test("http connection reads nothing more while maxPipeline requests wait, however fast a client pipelines", async () => {
  const body = new TextEncoder().encode('{"status":"ok"}');
  let most = { parsed: 0, unparsed: 0, readsWhileFull: 0 };
  let http: HttpConnection | null = null;
  const t = await serve(() => {
    most = {
      ...most,
      parsed: Math.max(most.parsed, http!.parsedAhead),
      unparsed: Math.max(most.unparsed, http!.unparsedBytes),
    };
    // Answered a moment later, as a handler that awaits something: the pipeline fills up.
    return Promise.resolve({ status: 200, body });
  });
  http = t.http;
  const onData = t.http.onData.bind(t.http);
  t.conn.handler = {
    onData: (bytes) => {
      if (t.http.inFlight >= 16) most.readsWhileFull++;
      onData(bytes);
    },
    onEnd: () => t.http.onEnd(),
    onClose: () => t.http.onClose(),
    onDrain: () => t.http.onDrain(),
  };
  try {
    const count = 4000;
    const size = serializeResponse({ status: 200, body }, {
      version: "HTTP/1.1",
      keepAlive: true,
      head: false,
      now: Date.now(),
      fixedHeaders: fixedHeaderBlock(false),
    }).byteLength;
    // The runaway pipeline of issue 11: requests as fast as the socket takes them, while reading.
    const sent = (async () => {
      for (let i = 0; i < count; i += 500) {
        await t.client.write(new TextEncoder().encode(GET.repeat(500)));
      }
    })();
    const received = await within(readResponses(t.client, count, size), 10_000);
    await sent;
    assert.notEqual(received, "timeout");
    assert.equal(most.readsWhileFull, 0, "no read while 16 requests wait");
    assert.ok(most.parsed <= MAX_QUEUED_STEPS + 1, `${most.parsed} requests parsed ahead`);
    assert.ok(most.unparsed <= 16384 + 512, `${most.unparsed} bytes held unparsed`);
  } finally {
    await t.done();
  }
});

Deno.test("http connection answers nothing more while its unsent output is above the high-water mark", async () => {
  const body = new Uint8Array(32 * 1024).fill(97);
  let calls = 0;
  const gated = { open() {} };
  const t = await serve(() => {
    calls++;
    return { status: 200, body };
  }, {
    wrap: (c) => {
      const g = gatedWrites(c);
      gated.open = g.open;
      return g.conn;
    },
    conn: { highWaterMark: 64 * 1024 },
  });
  try {
    // 200 pipelined requests from a client that does not read (yet): 6.4 MB of answers.
    await t.client.write(new TextEncoder().encode(GET.repeat(200)));
    await until(() => calls > 0 && t.http.parsedAhead + t.http.unparsedBytes > 0, 2000, "reads");
    assert.ok(calls <= 3, `${calls} requests answered into a stuck connection`);
    assert.ok(t.conn.writableLength <= 64 * 1024 + 33 * 1024, `${t.conn.writableLength} unsent`);
    gated.open();
    const size = serializeResponse({ status: 200, body }, {
      version: "HTTP/1.1",
      keepAlive: true,
      head: false,
      now: Date.now(),
      fixedHeaders: fixedHeaderBlock(false),
    }).byteLength;
    const all = await within(readResponses(t.client, 200, size), 10_000);
    assert.notEqual(all, "timeout");
    assert.equal(calls, 200);
  } finally {
    gated.open();
    await t.done();
  }
});

Deno.test("http connection closes a keep-alive connection whose output makes no progress within the write timeout", async () => {
  const clock = new FakeClock();
  const gated = { open() {} };
  const t = await serve(() => ({ status: 200, body: "x" }), {
    wrap: (c) => {
      const g = gatedWrites(c);
      gated.open = g.open;
      return g.conn;
    },
    ctx: { now: clock.now },
  });
  try {
    await t.client.write(new TextEncoder().encode(GET));
    await until(() => t.conn.writableLength > 0, 2000, "the answer");
    const write = context(new Uint8Array()).timeouts.write;
    t.http.sweep(clock.now());
    clock.advance(write - 1);
    t.http.sweep(clock.now());
    assert.equal(t.conn.closed, false);
    clock.advance(1);
    t.http.sweep(clock.now());
    assert.equal(t.conn.closed, true);
  } finally {
    gated.open();
    await t.done();
  }
});

Deno.test("http connection applies the write timeout to a closing connection whose last answer never drains", async () => {
  const clock = new FakeClock();
  const gated = { open() {} };
  const t = await serve(() => ({ status: 200, body: "x" }), {
    wrap: (c) => {
      const g = gatedWrites(c);
      gated.open = g.open;
      return g.conn;
    },
    ctx: { now: clock.now },
  });
  try {
    await t.client.write(
      new TextEncoder().encode("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
    );
    await until(() => t.conn.writableLength > 0, 2000, "the answer");
    const write = context(new Uint8Array()).timeouts.write;
    t.http.sweep(clock.now());
    clock.advance(write);
    t.http.sweep(clock.now());
    assert.equal(t.conn.closed, true);
  } finally {
    gated.open();
    await t.done();
  }
});

Deno.test("http connection keeps a connection whose output moves, however slowly", async () => {
  const clock = new FakeClock();
  const stepped = { step() {}, close() {} };
  const t = await serve(() => ({ status: 200, body: new Uint8Array(8192) }), {
    wrap: (c) => {
      const s = steppedWrites(c);
      stepped.step = s.step;
      stepped.close = s.close;
      return s.conn;
    },
    ctx: { now: clock.now },
  });
  try {
    await t.client.write(new TextEncoder().encode(GET));
    await until(() => t.conn.writableLength > 0, 2000, "the answer");
    const write = context(new Uint8Array()).timeouts.write;
    t.http.sweep(clock.now());
    for (let i = 0; i < 3; i++) {
      const before = t.conn.bytesWritten;
      stepped.step();
      await until(() => t.conn.bytesWritten > before, 2000, "a write to finish");
      clock.advance(write);
      t.http.sweep(clock.now());
      assert.equal(t.conn.closed, false, `closed after ${i + 1} slow writes`);
    }
    clock.advance(write);
    t.http.sweep(clock.now());
    assert.equal(t.conn.closed, true, "closed once the output stopped");
  } finally {
    stepped.close();
    await t.done();
  }
});

Deno.test("http connection goes back to small buffers once a request with a large head is parsed", async () => {
  const t = await serve(() => ({ status: 204 }));
  try {
    const head = `GET /x HTTP/1.1\r\nHost: a\r\nX-Big: ${"b".repeat(15_000)}\r\n\r\n`;
    await t.client.write(new TextEncoder().encode(head));
    const answer = new TextDecoder().decode(await readExactly(t.client, 12));
    assert.equal(answer, "HTTP/1.1 204");
    await until(() => t.http.inFlight === 0, 2000, "the answer to be written");
    // An idle keep-alive connection: what grew for the 15 KB head is given back.
    assert.equal(t.conn.readBufferSize, 1024);
    assert.ok(t.http.parserCapacity <= 1024, `parser keeps ${t.http.parserCapacity} bytes`);
  } finally {
    await t.done();
  }
});

Deno.test("http connection holds no parser while its request waits or between requests", async () => {
  const parsers: RequestParser[] = [];
  let release: (res: HttpResponse) => void = () => {};
  let calls = 0;
  const t = await serve(() => {
    calls++;
    if (calls > 1) return { status: 204 };
    return new Promise<HttpResponse>((resolve) => release = resolve);
  }, { ctx: { parsers } });
  try {
    await t.client.write(new TextEncoder().encode(GET));
    await until(() => calls === 1, 2000, "the request to reach the handler");
    // Waiting like a long poll: the parser went back to the shared list.
    assert.equal(parsers.length, 1);
    assert.equal(t.http.parserCapacity, 0);
    release({ status: 204 });
    await until(() => t.http.inFlight === 0, 2000, "the answer to be written");
    // The next request takes it again, and gives it back once parsed.
    const parser = parsers[0];
    await t.client.write(new TextEncoder().encode(GET));
    await until(() => calls === 2 && t.http.inFlight === 0, 2000, "the second answer");
    assert.equal(parsers.length, 1);
    assert.equal(parsers[0], parser);
  } finally {
    await t.done();
  }
});

Deno.test("http connection keeps its parser while a request is only partly received", async () => {
  const parsers: RequestParser[] = [];
  const t = await serve(() => ({ status: 204 }), { ctx: { parsers } });
  try {
    await t.client.write(new TextEncoder().encode("GET /x HTTP/1.1\r\nHo"));
    await until(() => t.http.unparsedBytes > 0, 2000, "the partial head to arrive");
    assert.equal(parsers.length, 0);
    await t.client.write(new TextEncoder().encode("st: a\r\n\r\n"));
    assert.equal(new TextDecoder().decode(await readExactly(t.client, 12)), "HTTP/1.1 204");
    await until(() => parsers.length === 1, 2000, "the parser to come back");
    assert.equal(t.http.parserCapacity, 0);
  } finally {
    await t.done();
  }
});
