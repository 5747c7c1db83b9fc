/**
 * Several instances on one Redis (DESIGN.md, "Several instances (Redis)"): any request may reach
 * any instance, and the guarantees of the API hold across them — one total order, exactly once,
 * one session per nick, one `leave` per expiry — through a Redis restart and a dropped
 * subscription too. Each test starts its own `redis-server` (ignored without one, failing in CI).
 */
import assert from "node:assert/strict";
import { type App, startApp } from "../../lib/app.ts";
import { Logger } from "../../lib/log.ts";
import { ApiClient, eventually, FakeClock, testConfig } from "../_server.ts";
import { type RedisServer, redisTest } from "../_redis.ts";
import { ServerProcess } from "../storage/_process.ts";

interface Event {
  id: number;
  type: string;
  nick: string;
  text?: string;
  room: string;
}

/** Starts `n` instances on `redis`, runs `fn` with them and their clients, always shuts down. */
async function withInstances(
  redis: RedisServer,
  n: number,
  options: { flags?: string[]; clock?: FakeClock; lines?: string[] },
  fn: (apps: App[], clients: ApiClient[]) => Promise<void>,
): Promise<void> {
  const apps: App[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const lines = options.lines;
      apps.push(
        await startApp(
          testConfig(["--store", `redis://127.0.0.1:${redis.port}`, ...(options.flags ?? [])]),
          {
            ...(options.clock ? { now: options.clock.now, sweepInterval: 0 } : {}),
            logger: lines
              ? new Logger("warn", "text", (line) => lines.push(`[${i}] ${line}`))
              : new Logger("error", "text", () => {}),
          },
        ),
      );
    }
    await fn(apps, apps.map((app) => new ApiClient(app.url)));
  } finally {
    await Promise.all(apps.map((app) => app.shutdown(2000)));
  }
}

function pick<T>(list: T[]): T {
  return list[Math.floor(Math.random() * list.length)]!;
}

redisTest(
  "two instances: 20 senders and 5 pollers on random instances get every acknowledged message once, in one order",
  async (redis) => {
    await withInstances(redis, 2, {}, async (_apps, clients) => {
      const SENDERS = 20;
      const PER_SENDER = 25;
      const pollers = [];
      for (let i = 0; i < 5; i++) {
        const s = await pick(clients).session(`poller${i}`);
        assert.equal((await pick(clients).join(s.token, "lobby")).status, 200);
        pollers.push({ ...s, cursor: (await pick(clients).poll(s.token, null, 0)).body.cursor });
      }
      const senders = [];
      for (let i = 0; i < SENDERS; i++) {
        const s = await pick(clients).session(`sender${i}`);
        assert.equal((await pick(clients).join(s.token, "lobby")).status, 200);
        senders.push(s);
      }
      const acknowledged = new Set<number>();
      const sending = senders.map(async (s, i) => {
        for (let m = 0; m < PER_SENDER; m++) {
          const answer = await pick(clients).send(s.token, "lobby", `${i}:${m}`, `c-${i}-${m}`);
          assert.equal(answer.status, 201, JSON.stringify(answer.body));
          acknowledged.add(answer.body.event.id);
        }
      });
      const total = SENDERS * PER_SENDER;
      const deadline = Date.now() + 60_000;
      const polling = pollers.map(async (p) => {
        const got: Event[] = [];
        let cursor = p.cursor;
        while (got.length < total) {
          assert.ok(Date.now() < deadline, `poller got ${got.length} of ${total}`);
          const answer = await pick(clients).poll(p.token, cursor, 5);
          assert.equal(answer.status, 200, JSON.stringify(answer.body));
          for (const e of answer.body.events as Event[]) if (e.type === "message") got.push(e);
          cursor = answer.body.cursor;
        }
        return got;
      });
      await Promise.all(sending);
      const results = await Promise.all(polling);
      for (const got of results) {
        assert.deepEqual(got.map((e) => e.id), results[0]!.map((e) => e.id), "one order for all");
        assert.equal(new Set(got.map((e) => e.id)).size, total, "exactly once");
        for (let i = 1; i < got.length; i++) assert.ok(got[i]!.id > got[i - 1]!.id, "in order");
      }
      assert.deepEqual(new Set(results[0]!.map((e) => e.id)), acknowledged);
    });
  },
);

redisTest(
  "twenty concurrent sessions with one nick over two instances: exactly one 201",
  async (redis) => {
    await withInstances(redis, 2, {}, async (_apps, clients) => {
      const answers = await Promise.all(
        Array.from(
          { length: 20 },
          (_, i) =>
            clients[i % 2]!.call("POST", "/api/session", { body: { nick: i % 3 ? "Zoë" : "ZOË" } }),
        ),
      );
      assert.deepEqual(
        answers.map((a) => a.status).sort(),
        [201, ...Array(19).fill(409)],
      );
    });
  },
);

redisTest(
  "a clientId repeated on the other instance answers 200 with the first event",
  async (redis) => {
    await withInstances(redis, 2, {}, async (_apps, [a, b]) => {
      const alice = await a!.session("alice");
      await b!.join(alice.token, "lobby");
      const first = await a!.send(alice.token, "lobby", "once", "cid-7");
      assert.equal(first.status, 201);
      const again = await b!.send(alice.token, "lobby", "once", "cid-7");
      assert.equal(again.status, 200);
      assert.deepEqual(again.body.event, first.body.event);
      const history = await a!.call("GET", "/api/rooms/lobby/history", { token: alice.token });
      assert.deepEqual(
        history.body.events.map((e: Event) => e.type),
        ["join", "message"],
      );
    });
  },
);

redisTest(
  "presence is cluster-wide: a poll on one instance keeps the session, and its expiry writes one leave",
  async (redis) => {
    const clock = new FakeClock();
    await withInstances(
      redis,
      2,
      { clock, flags: ["--presence-grace", "10"] },
      async (apps, [a, b]) => {
        const alice = await a!.session("alice");
        const bob = await b!.session("bob");
        await a!.join(alice.token, "lobby");
        await b!.join(bob.token, "lobby");
        const cursor = (await a!.poll(bob.token, null, 0)).body.cursor;
        // Alice waits on instance A; both sweep past her grace: A keeps her present.
        const waiting = a!.poll(alice.token, cursor, 30);
        await a!.untilMetric("parley_waiting_polls", 1);
        clock.advance(15_000);
        await b!.poll(bob.token, cursor, 0);
        await apps[0]!.sweep();
        await apps[1]!.sweep();
        assert.equal((await b!.call("GET", "/api/rooms")).body.rooms[0].members, 2);
        // Her poll ends; then the grace lapses and both instances sweep: one leave.
        await a!.send(bob.token, "lobby", "wake up");
        await waiting;
        clock.advance(11_000);
        await b!.poll(bob.token, cursor, 0);
        await Promise.all([apps[0]!.sweep(), apps[1]!.sweep()]);
        await Promise.all([apps[0]!.sweep(), apps[1]!.sweep()]);
        for (const client of [a!, b!]) {
          const seen = await client.poll(bob.token, cursor, 0);
          assert.deepEqual(
            (seen.body.events as Event[]).map((e) => `${e.type}:${e.nick}`),
            ["message:bob", "leave:alice"],
            "one leave, seen on both instances",
          );
        }
        assert.equal((await a!.poll(alice.token, null, 0)).status, 401);
      },
    );
  },
);

redisTest("a waiting poll on one instance is answered by a send on the other", async (redis) => {
  await withInstances(redis, 2, {}, async (_apps, [a, b]) => {
    const alice = await a!.session("alice");
    const bob = await b!.session("bob");
    await a!.join(alice.token, "lobby");
    await b!.join(bob.token, "lobby");
    const cursor = (await a!.poll(bob.token, null, 0)).body.cursor;
    const waiting = b!.poll(bob.token, cursor, 20);
    await b!.untilMetric("parley_waiting_polls", 1);
    const started = performance.now();
    const sent = await a!.send(alice.token, "lobby", "across");
    const answer = await waiting;
    assert.ok(performance.now() - started < 3000);
    assert.deepEqual(answer.body.events, [sent.body.event]);
  });
});

redisTest(
  "pub/sub killed while messages are sent: waiting polls still get every one",
  async (redis) => {
    await withInstances(redis, 2, {}, async (_apps, [a, b]) => {
      const alice = await a!.session("alice");
      const bob = await b!.session("bob");
      await a!.join(alice.token, "lobby");
      await b!.join(bob.token, "lobby");
      let cursor = (await b!.poll(bob.token, null, 0)).body.cursor;
      const got: Event[] = [];
      let done = false;
      const polling = (async () => {
        while (!done || got.length < 40) {
          const answer = await b!.poll(bob.token, cursor, 2);
          assert.equal(answer.status, 200);
          got.push(...answer.body.events);
          cursor = answer.body.cursor;
          if (got.length >= 40) break;
        }
      })();
      for (let i = 0; i < 40; i++) {
        if (i % 10 === 5) await redis.killPubsubClients();
        assert.equal((await a!.send(alice.token, "lobby", `m${i}`)).status, 201);
      }
      done = true;
      await polling;
      assert.deepEqual(got.map((e) => e.text), Array.from({ length: 40 }, (_, i) => `m${i}`));
    });
  },
);

redisTest(
  "Redis restarted under traffic: 503 while it is down, then everything acknowledged is delivered, no instance restart",
  async (redis) => {
    const lines: string[] = [];
    await withInstances(redis, 2, { lines }, async (_apps, [a, b]) => {
      const alice = await a!.session("alice");
      const bob = await b!.session("bob");
      await a!.join(alice.token, "lobby");
      await b!.join(bob.token, "lobby");
      const start = (await b!.poll(bob.token, null, 0)).body.cursor;
      const acknowledged: number[] = [];
      let refused = 0;
      let stop = false;
      const traffic = (async () => {
        for (let i = 0; !stop; i++) {
          const answer = await (i % 2 ? a! : b!).send(alice.token, "lobby", `m${i}`, `c${i}`);
          if (answer.status === 201 || answer.status === 200) {
            acknowledged.push(answer.body.event.id);
          } else {
            assert.equal(answer.status, 503, JSON.stringify(answer.body));
            assert.equal(answer.body.error.code, "store_unavailable");
            refused++;
          }
        }
      })();
      await eventually(() => acknowledged.length >= 20, { timeoutMs: 10_000 });
      await redis.stop();
      await eventually(() => refused >= 3, { timeoutMs: 10_000, what: () => "503s while down" });
      assert.equal((await a!.raw("/healthz")).status, 503);
      const before = acknowledged.length;
      await redis.restart();
      await eventually(() => acknowledged.length >= before + 20, {
        timeoutMs: 15_000,
        what: () => "sends to succeed again",
      });
      stop = true;
      await traffic;
      // Each instance reconnects on its own back-off: wait until both say they are healthy.
      for (const client of [a!, b!]) {
        await eventually(async () => (await client.raw("/healthz")).status === 200, {
          timeoutMs: 10_000,
        });
      }
      let cursor = start;
      const got: number[] = [];
      for (;;) {
        const answer = await pick([a!, b!]).poll(bob.token, cursor, 0);
        assert.equal(answer.status, 200);
        if (answer.body.events.length === 0) break;
        got.push(...answer.body.events.map((e: Event) => e.id));
        cursor = answer.body.cursor;
      }
      for (const id of acknowledged) assert.ok(got.includes(id), `acknowledged ${id} was lost`);
      assert.equal(new Set(got).size, got.length, "nothing twice");
      assert.ok(lines.some((l) => l.includes("store unavailable")), lines.join("\n"));
    });
  },
);

redisTest(
  "an instance killed with SIGKILL: its clients go on at the other from their cursors, nothing lost or repeated",
  async (redis) => {
    const store = `redis://127.0.0.1:${redis.port}`;
    const doomed = await ServerProcess.start(store, []);
    const survivor = await ServerProcess.start(store, []);
    try {
      const [x, y] = [new ApiClient(await doomed.url()), new ApiClient(await survivor.url())];
      const alice = await x.session("alice");
      const bob = await x.session("bob");
      await x.join(alice.token, "lobby");
      await x.join(bob.token, "lobby");
      let cursor = (await x.poll(bob.token, null, 0)).body.cursor;
      const acknowledged: number[] = [];
      const got: number[] = [];
      for (let i = 0; i < 10; i++) {
        acknowledged.push(
          (await x.send(alice.token, "lobby", `before ${i}`, `b${i}`)).body.event.id,
        );
      }
      const first = await x.poll(bob.token, cursor, 0);
      got.push(...first.body.events.map((e: Event) => e.id));
      cursor = first.body.cursor;
      // Bob waits on the doomed instance when it dies.
      const waiting = x.poll(bob.token, cursor, 30).catch(() => null);
      await doomed.stop("SIGKILL");
      assert.equal(await waiting, null, "the poll on the killed instance fails");
      // Everything goes on at the other instance, with the same tokens and cursors.
      for (let i = 0; i < 10; i++) {
        const sent = await y.send(alice.token, "lobby", `after ${i}`, `a${i}`);
        assert.equal(sent.status, 201);
        acknowledged.push(sent.body.event.id);
      }
      // A retry of a send acknowledged by the dead instance is recognised.
      const retry = await y.send(alice.token, "lobby", "before 9", "b9");
      assert.equal(retry.status, 200);
      for (;;) {
        const answer = await y.poll(bob.token, cursor, 0);
        assert.equal(answer.status, 200);
        if (answer.body.events.length === 0) break;
        got.push(...answer.body.events.map((e: Event) => e.id));
        cursor = answer.body.cursor;
      }
      assert.deepEqual(got, acknowledged, "every acknowledged message once, in order");
    } finally {
      await doomed.stop("SIGKILL");
      await survivor.stop("SIGKILL");
    }
  },
);
