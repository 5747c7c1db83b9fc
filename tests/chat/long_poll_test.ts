/** `GET /api/events`, the long poll: waiting, waking, timing out, going away, shutting down. */
import assert from "node:assert/strict";
import type { App } from "../../lib/app.ts";
import { type ApiClient, delay, RawHttp, withServer } from "../_server.ts";

interface Event {
  id: number;
  type: string;
  room: string;
  nick: string;
  text?: string;
}

/** Registers a test that runs against a fresh server. */
function serverTest(name: string, fn: (app: App, client: ApiClient) => Promise<void>): void {
  Deno.test(name, () => withServer({}, fn));
}

serverTest("a poll waits while nothing happens", async (_app, client) => {
  const { alice, cursor } = await client.aliceAndBob();
  const abort = new AbortController();
  let settled = false;
  const poll = client.poll(alice.token, cursor, 30, abort.signal).finally(() => settled = true);
  await client.untilMetric("parley_waiting_polls", 1);
  await delay(300);
  assert.equal(settled, false, "the poll answered with nothing to say");
  assert.equal(await client.metric("parley_waiting_polls"), 1);
  abort.abort();
  await assert.rejects(poll, (error: Error) => error.name === "AbortError");
  await client.untilMetric("parley_waiting_polls", 0);
});

serverTest("a message wakes a waiting poll within milliseconds", async (_app, client) => {
  const { alice, bob, cursor } = await client.aliceAndBob();
  const poll = client.poll(alice.token, cursor, 30);
  await client.untilMetric("parley_waiting_polls", 1);
  const started = performance.now();
  const sent = await client.send(bob.token, "lobby", "wake up");
  const answer = await poll;
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 1000, `the poll took ${elapsed.toFixed(0)} ms to wake`);
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get("content-type"), "application/json; charset=utf-8");
  assert.equal(answer.headers.get("cache-control"), "no-store");
  assert.deepEqual(answer.body, { events: [sent.body.event], cursor: String(sent.body.event.id) });
  assert.equal(await client.metric("parley_waiting_polls"), 0);
});

serverTest("every open poll of a session wakes with the same events", async (_app, client) => {
  const { alice, bob, cursor } = await client.aliceAndBob();
  const polls = [client.poll(alice.token, cursor, 30), client.poll(alice.token, cursor, 30)];
  await client.untilMetric("parley_waiting_polls", 2);
  const sent = await client.send(bob.token, "lobby", "both of you");
  const [a, b] = await Promise.all(polls);
  assert.deepEqual(a!.body.events, [sent.body.event]);
  assert.deepEqual(b!.body, a!.body);
});

serverTest(
  "a poll that times out answers 200 with no events and the same cursor",
  async (_app, client) => {
    const { alice, cursor } = await client.aliceAndBob();
    const started = performance.now();
    const answer = await client.poll(alice.token, cursor, 0.3);
    const elapsed = performance.now() - started;
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { events: [], cursor });
    assert.ok(elapsed >= 250, `answered after ${elapsed.toFixed(0)} ms, before wait=0.3 passed`);
    assert.ok(elapsed < 3000, `answered after ${elapsed.toFixed(0)} ms`);
    // wait=0 answers at once.
    assert.deepEqual((await client.poll(alice.token, cursor, 0)).body, { events: [], cursor });
    assert.equal(await client.metric("parley_waiting_polls"), 0);
  },
);

serverTest("a poll whose client goes away leaves no waiter", async (_app, client) => {
  const { alice, bob, cursor } = await client.aliceAndBob();
  // fetch aborted by the client.
  const abort = new AbortController();
  const poll = client.poll(alice.token, cursor, 30, abort.signal);
  await client.untilMetric("parley_waiting_polls", 1);
  abort.abort();
  await assert.rejects(poll, (error: Error) => error.name === "AbortError");
  await client.untilMetric("parley_waiting_polls", 0);

  // A socket closed under a waiting request.
  const raw = await RawHttp.connect(client.url);
  await raw.send(
    `GET /api/events?cursor=${cursor}&wait=30 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\n\r\n`,
  );
  await client.untilMetric("parley_waiting_polls", 1);
  raw.close();
  await client.untilMetric("parley_waiting_polls", 0);

  // Nothing was lost to the abandoned polls: the next poll from the same cursor gets the message.
  const sent = await client.send(bob.token, "lobby", "are you there?");
  assert.deepEqual((await client.poll(alice.token, cursor, 5)).body.events, [sent.body.event]);
});

serverTest("a poll without a cursor starts at the present", async (_app, client) => {
  const { alice, bob } = await client.aliceAndBob();
  await client.send(bob.token, "lobby", "before");
  const now = await client.poll(alice.token, null, 0);
  assert.deepEqual(now.body.events, []);
  const last =
    (await client.call("GET", "/api/rooms/lobby/history?limit=1", { token: alice.token }))
      .body.events[0];
  assert.equal(now.body.cursor, String(last.id));

  const poll = client.poll(alice.token, null, 30);
  await client.untilMetric("parley_waiting_polls", 1);
  const sent = await client.send(bob.token, "lobby", "after");
  assert.deepEqual((await poll).body, {
    events: [sent.body.event],
    cursor: String(sent.body.event.id),
  });
});

serverTest("one poll covers every joined room, in one order", async (_app, client) => {
  const alice = await client.session("alice");
  const bob = await client.session("bob");
  for (const room of ["lobby", "dev", "random"]) await client.join(bob.token, room);
  for (const room of ["lobby", "dev", "random", "secret"]) await client.join(alice.token, room);
  const cursor: string = (await client.poll(bob.token, null, 0)).body.cursor;

  // A waiting poll wakes for any of its rooms.
  const poll = client.poll(bob.token, cursor, 30);
  await client.untilMetric("parley_waiting_polls", 1);
  const first = await client.send(alice.token, "random", "r1");
  assert.deepEqual((await poll).body.events, [first.body.event]);

  const texts = ["d1", "l1", "s1", "r2", "d2", "l2"];
  const rooms: Record<string, string> = { d: "dev", l: "lobby", s: "secret", r: "random" };
  for (const text of texts) await client.send(alice.token, rooms[text[0]!]!, text);
  const all = await client.poll(bob.token, cursor, 0);
  const events: Event[] = all.body.events;
  assert.deepEqual(events.map((e) => e.text), ["r1", "d1", "l1", "r2", "d2", "l2"], "not secret");
  assert.deepEqual(events.map((e) => e.id), events.map((e) => e.id).sort((a, b) => a - b));
  assert.equal(all.body.cursor, String(events.at(-1)!.id));
  assert.deepEqual((await client.poll(bob.token, all.body.cursor, 0)).body.events, []);
});

serverTest(
  "a session sees a room's events from its own join on, and its join answer has the history",
  async (_app, client) => {
    const alice = await client.session("alice");
    const bob = await client.session("bob");
    const bobStart = bob.cursor;
    await client.join(alice.token, "lobby");
    const m1 = await client.send(alice.token, "lobby", "m1");
    const m2 = await client.send(alice.token, "lobby", "m2");

    const joined = await client.join(bob.token, "lobby");
    assert.deepEqual(
      joined.body.history.map((e: Event) => e.text ?? e.type),
      ["join", "m1", "m2"],
    );
    assert.deepEqual(joined.body.history.slice(1), [m1.body.event, m2.body.event]);
    const m3 = await client.send(alice.token, "lobby", "m3");
    // From a cursor older than his join, bob gets his join and what followed, nothing before.
    const seen = await client.poll(bob.token, bobStart, 0);
    assert.deepEqual(
      seen.body.events.map((e: Event) => [e.type, e.nick, e.text]),
      [["join", "bob", undefined], ["message", "alice", "m3"]],
    );
    assert.deepEqual(seen.body.events[1], m3.body.event);
    // Left and joined again: what happened in between stays unseen by polls, while a poll from
    // before the leave still gets it (DESIGN.md: "up to and including its own leave").
    await client.call("POST", "/api/rooms/lobby/leave", { token: bob.token });
    await client.send(alice.token, "lobby", "while away");
    await client.join(bob.token, "lobby");
    const again = await client.poll(bob.token, seen.body.cursor, 0);
    assert.deepEqual(again.body.events.map((e: Event) => [e.type, e.nick]), [
      ["leave", "bob"],
      ["join", "bob"],
    ]);
  },
);

serverTest(
  "shutdown answers a waiting poll 200 with no events and Connection: close",
  async (app, client) => {
    const { alice, cursor } = await client.aliceAndBob();
    using raw = await RawHttp.connect(client.url);
    await raw.send(
      `GET /api/events?cursor=${cursor}&wait=30 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\n\r\n`,
    );
    await client.untilMetric("parley_waiting_polls", 1);
    const started = performance.now();
    const stopping = app.shutdown(2000);
    const res = await raw.readResponse();
    assert.ok(performance.now() - started < 1000, "the poll was not answered at once");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("connection"), "close");
    assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
    assert.deepEqual(JSON.parse(res.text), { events: [], cursor });
    assert.ok(await raw.closedByServer(), "the server closes the connection after the answer");
    raw.close();
    await stopping;
  },
);

serverTest("a poll covers a room joined while it waits", async (_app, client) => {
  const { alice, bob, cursor } = await client.aliceAndBob();
  await client.join(bob.token, "dev");
  const poll = client.poll(alice.token, cursor, 30);
  await client.untilMetric("parley_waiting_polls", 1);
  await client.join(alice.token, "dev");
  const woken = await poll;
  assert.deepEqual(
    woken.body.events.map((e: Event) => [e.type, e.room, e.nick]),
    [["join", "dev", "alice"]],
    "her own join wakes her poll",
  );
  const next = client.poll(alice.token, woken.body.cursor, 30);
  await client.untilMetric("parley_waiting_polls", 1);
  const sent = await client.send(bob.token, "dev", "welcome");
  assert.deepEqual((await next).body.events, [sent.body.event]);
});

serverTest(
  "ending a session answers its open poll at once, with its own leave",
  async (_app, client) => {
    const { alice, cursor } = await client.aliceAndBob();
    const poll = client.poll(alice.token, cursor, 30);
    await client.untilMetric("parley_waiting_polls", 1);
    const started = performance.now();
    assert.equal((await client.call("DELETE", "/api/session", { token: alice.token })).status, 204);
    const answer = await poll;
    assert.ok(performance.now() - started < 1000);
    assert.equal(answer.status, 200);
    assert.deepEqual(
      answer.body.events.map((e: { type: string; nick: string }) => `${e.type}:${e.nick}`),
      ["leave:alice"],
    );
    assert.equal((await client.poll(alice.token, answer.body.cursor, 0)).status, 401);
  },
);
