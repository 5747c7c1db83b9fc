import assert from "node:assert/strict";
import type { Connection } from "../../lib/net/connection.ts";
import { Listener, type ListenerLimits } from "../../lib/net/listener.ts";
import { Selector } from "../../lib/net/selector.ts";
import { closeQuietly, readToEnd, runLoop, until, within } from "./_pair.ts";

const REFUSAL = new TextEncoder().encode(
  "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
);
const decoder = new TextDecoder();

/** A listener on 127.0.0.1 with its own selector loop; `done()` closes everything. */
function setup(limits: ListenerLimits) {
  const selector = new Selector();
  const accepted: Connection[] = [];
  const refused: string[] = [];
  const listener = new Listener(
    Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    selector,
    limits,
    {
      onConnection(conn) {
        conn.handler = { onData() {}, onEnd: () => conn.close(), onClose() {} };
        accepted.push(conn);
      },
      onRefused: (reason, addr) => refused.push(`${reason} ${addr}`),
    },
    REFUSAL,
  );
  listener.start();
  const loop = runLoop(selector);
  const clients: Deno.Conn[] = [];
  const connect = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    clients.push(conn);
    return conn;
  };
  const done = async () => {
    listener.close();
    for (const conn of accepted) conn.close();
    for (const conn of clients) closeQuietly(conn);
    // Refused connections linger until their peer closes; let them see it.
    await until(() => selector.size === 0, 2000, "refused connections to close");
    selector.close();
    await loop;
  };
  return { selector, listener, accepted, refused, connect, done };
}

/** True if `conn` gets neither bytes nor EOF within `ms`. */
async function staysSilent(conn: Deno.Conn, ms: number): Promise<boolean> {
  const read = conn.read(new Uint8Array(16)).catch(() => null);
  const result = await within(read, ms);
  if (result !== "timeout") return false;
  // Leave no read pending on a socket the test is about to close.
  closeQuietly(conn);
  await read;
  return true;
}

Deno.test("listener refuses the connection over maxConns with its 503 and closes it", async () => {
  const t = setup({ maxConns: 2, maxConnsPerIp: 0 });
  try {
    await t.connect();
    await t.connect();
    await until(() => t.accepted.length === 2, 2000, "two accepted connections");
    assert.equal(t.listener.openConnections, 2);
    const third = await t.connect();
    const answer = await within(readToEnd(third), 2000);
    assert.notEqual(answer, "timeout");
    assert.equal(decoder.decode(answer as Uint8Array), decoder.decode(REFUSAL));
    assert.deepEqual(t.refused, ["max_conns 127.0.0.1"]);
    assert.equal(t.accepted.length, 2);
    assert.equal(t.listener.openConnections, 2);
  } finally {
    await t.done();
  }
});

Deno.test("listener refuses a second connection from the same address over maxConnsPerIp", async () => {
  const t = setup({ maxConns: 100, maxConnsPerIp: 1 });
  try {
    const first = await t.connect();
    await until(() => t.accepted.length === 1, 2000, "the first connection");
    const second = await t.connect();
    const answer = await within(readToEnd(second), 2000);
    assert.equal(decoder.decode(answer as Uint8Array), decoder.decode(REFUSAL));
    assert.deepEqual(t.refused, ["max_conns_per_ip 127.0.0.1"]);
    assert.equal(t.listener.openConnections, 1);
    assert.equal(await staysSilent(first, 50), true, "the admitted connection is left alone");
  } finally {
    await t.done();
  }
});

Deno.test("listener frees a slot when an admitted connection closes", async () => {
  const t = setup({ maxConns: 1, maxConnsPerIp: 1 });
  try {
    await t.connect();
    await until(() => t.accepted.length === 1, 2000, "the first connection");
    const refused = await t.connect();
    await readToEnd(refused);
    assert.equal(t.refused.length, 1);
    // The refused connection never took a slot; closing the admitted one frees the only one.
    t.accepted[0]!.close();
    assert.equal(t.listener.openConnections, 0);
    const next = await t.connect();
    await until(() => t.accepted.length === 2, 2000, "the next connection");
    assert.equal(t.refused.length, 1);
    assert.equal(t.listener.openConnections, 1);
    assert.equal(await staysSilent(next, 50), true, "the next connection is not refused");
    // A peer closing its side frees the slot too (the handler closes on EOF).
    const last = t.accepted[1]!;
    closeQuietly(next);
    await until(() => last.closed, 2000, "the server side to close");
    assert.equal(t.listener.openConnections, 0);
    await t.connect();
    await until(() => t.accepted.length === 3, 2000, "a third admitted connection");
  } finally {
    await t.done();
  }
});

Deno.test("listener close() stops accepting, leaves open connections, and is idempotent", async () => {
  const t = setup({ maxConns: 10, maxConnsPerIp: 0 });
  try {
    const client = await t.connect();
    await until(() => t.accepted.length === 1, 2000, "the connection");
    const port = t.listener.addr.port;
    t.listener.close();
    t.listener.close();
    // Refused, or reset if it raced into the backlog of the closing socket.
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }));
    assert.equal(t.accepted[0]!.closed, false);
    assert.equal(t.selector.size, 1);
    assert.equal(await staysSilent(client, 30), true);
  } finally {
    await t.done();
  }
});

Deno.test("listener keeps accepting after a connection callback throws", async () => {
  const selector = new Selector();
  const accepted: Connection[] = [];
  const listener = new Listener(
    Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    selector,
    { maxConns: 10, maxConnsPerIp: 0 },
    {
      onConnection(conn) {
        conn.handler = { onData() {}, onEnd: () => conn.close(), onClose() {} };
        accepted.push(conn);
        if (accepted.length === 1) throw new Error("callback bug");
      },
    },
    REFUSAL,
  );
  listener.start();
  const errors: unknown[] = [];
  // The server's loop: a member that throws is reported and the loop goes on.
  const loop = (async () => {
    while (!selector.closed && selector.size > 0) {
      for (const member of await selector.select()) {
        try {
          member.onReadable();
        } catch (error) {
          errors.push(error);
        }
      }
    }
  })();
  const clients: Deno.Conn[] = [];
  try {
    clients.push(await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }));
    await until(() => errors.length === 1, 2000, "the callback error");
    // The connection whose callback failed is closed and gives its slot back.
    assert.equal(accepted[0]!.closed, true);
    assert.equal(listener.openConnections, 0);
    assert.equal((await readToEnd(clients[0]!)).byteLength, 0);
    clients.push(await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }));
    await until(() => accepted.length === 2, 2000, "a second connection after the error");
  } finally {
    listener.close();
    for (const conn of accepted) conn.close();
    for (const conn of clients) closeQuietly(conn);
    selector.close();
    await loop;
  }
});

/** A real listener whose first accepts fail with `errors`, in order, before accepting. */
function failingFirst(listener: Deno.Listener, errors: Error[]): Deno.Listener {
  return new Proxy(listener, {
    get(target, prop) {
      if (prop === "accept") {
        return () => {
          const error = errors.shift();
          return error ? Promise.reject(error) : target.accept();
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("listener reports every accept error and keeps accepting, BadResource and Interrupted included", async () => {
  const selector = new Selector();
  const accepted: Connection[] = [];
  const reported: Error[] = [];
  const errors = [
    new Deno.errors.BadResource("Bad resource ID"),
    new Deno.errors.Interrupted("operation interrupted"),
    new Error("Too many open files (os error 24)"),
  ];
  const listener = new Listener(
    failingFirst(Deno.listen({ hostname: "127.0.0.1", port: 0 }), [...errors]),
    selector,
    { maxConns: 10, maxConnsPerIp: 0 },
    {
      onConnection(conn) {
        conn.handler = { onData() {}, onEnd: () => conn.close(), onClose() {} };
        accepted.push(conn);
      },
      onAcceptError: (error) => reported.push(error),
    },
    REFUSAL,
  );
  listener.start();
  const loop = runLoop(selector);
  let client: Deno.Conn | null = null;
  try {
    await until(() => reported.length === 3, 2000, "three reported accept errors");
    assert.deepEqual(reported, errors);
    client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await until(() => accepted.length === 1, 2000, "a connection accepted after the errors");
  } finally {
    listener.close();
    for (const conn of accepted) conn.close();
    if (client) closeQuietly(client);
    selector.close();
    await loop;
  }
});

Deno.test("listener reports no accept error once it is closed", async () => {
  const selector = new Selector();
  const reported: Error[] = [];
  const listener = new Listener(
    Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    selector,
    { maxConns: 10, maxConnsPerIp: 0 },
    { onConnection() {}, onAcceptError: (error) => reported.push(error) },
    REFUSAL,
  );
  listener.start();
  const loop = runLoop(selector);
  // The pending accept fails with BadResource when the socket closes under it.
  listener.close();
  await loop;
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(reported, []);
  selector.close();
});

Deno.test("listener replace() accepts from the new socket and leaves the connections of the old one open", async () => {
  const selector = new Selector();
  const accepted: Connection[] = [];
  const errors: Error[] = [];
  const first = Deno.listen({ hostname: "127.0.0.1", port: 0, reusePort: true });
  const port = first.addr.port;
  const listener = new Listener(first, selector, { maxConns: 100, maxConnsPerIp: 0 }, {
    onConnection(conn) {
      conn.handler = {
        onData: (bytes) => conn.write(bytes.slice()),
        onEnd: () => conn.close(),
        onClose() {},
      };
      accepted.push(conn);
    },
    onAcceptError: (error) => errors.push(error),
  }, REFUSAL);
  listener.start();
  const loop = runLoop(selector);
  const clients: Deno.Conn[] = [];
  const echo = async (conn: Deno.Conn, text: string) => {
    await conn.write(new TextEncoder().encode(text));
    const buf = new Uint8Array(64);
    const n = await within(conn.read(buf), 2000);
    return n === "timeout" || n === null ? String(n) : decoder.decode(buf.subarray(0, n));
  };
  try {
    clients.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    await until(() => accepted.length === 1, 2000, "the first accept");

    listener.replace(Deno.listen({ hostname: "127.0.0.1", port, reusePort: true }));
    assert.equal(listener.addr.port, port);
    assert.equal(await echo(clients[0]!, "old"), "old", "the old socket's connection stays");
    let resets = 0;
    for (let i = 1; clients.length < 6; i++) {
      const client = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => null);
      const answer = client ? await echo(client, `#${i}`).catch(() => "reset") : "reset";
      // What the kernel queued on the old socket as it closed is reset (README, "HTTPS").
      if (answer === "reset" || answer === "null") {
        if (client) closeQuietly(client);
        assert.ok(++resets <= 2, `${resets} connections reset`);
        continue;
      }
      assert.equal(answer, `#${i}`);
      clients.push(client!);
    }
    await until(() => listener.openConnections === 6, 2000, "six open connections");
    // The old socket's pending accept ended with its close: that is no accept error.
    assert.deepEqual(errors, []);
  } finally {
    listener.close();
    for (const conn of accepted) conn.close();
    for (const conn of clients) closeQuietly(conn);
    selector.close();
    await loop;
  }
  using spare = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  assert.throws(() => listener.replace(spare), /closed listener/);
});
