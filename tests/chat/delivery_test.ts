/** The delivery guarantee under load: every accepted message reaches every poller once, in order. */
import assert from "node:assert/strict";
import { type ApiClient, withServer } from "../_server.ts";

const SENDERS = 20;
const MESSAGES_PER_SENDER = 50;
const POLLERS = 5;
const TOTAL = SENDERS * MESSAGES_PER_SENDER;

interface Event {
  id: number;
  type: string;
  nick: string;
  text?: string;
}

/** Polls in a loop from `cursor`, continuing from each answer's cursor, until `count` messages. */
async function collect(
  client: ApiClient,
  token: string,
  cursor: string,
  count: number,
  deadline: number,
): Promise<Event[]> {
  const messages: Event[] = [];
  while (messages.length < count) {
    if (Date.now() > deadline) {
      throw new Error(`poller got ${messages.length} of ${count} messages before the deadline`);
    }
    const answer = await client.poll(token, cursor, 5);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.gap, undefined, "no gap with the default retention");
    for (const event of answer.body.events as Event[]) {
      if (event.type === "message") messages.push(event);
    }
    cursor = answer.body.cursor;
  }
  return messages;
}

Deno.test(
  "20 concurrent senders reach 5 long-polling sessions with every message exactly once, in one order",
  () =>
    withServer({}, async (_app, client) => {
      const pollers = await Promise.all(
        Array.from({ length: POLLERS }, (_, i) => client.session(`poller${i}`)),
      );
      const senders = await Promise.all(
        Array.from({ length: SENDERS }, (_, i) => client.session(`sender${i}`)),
      );
      for (const s of [...pollers, ...senders]) {
        assert.equal((await client.join(s.token, "lobby")).status, 200);
      }
      const start: string = (await client.poll(pollers[0]!.token, null, 0)).body.cursor;

      const deadline = Date.now() + 30_000;
      const receiving = pollers.map((p) => collect(client, p.token, start, TOTAL, deadline));
      const sending = senders.map(async (s, i) => {
        const ids: number[] = [];
        for (let n = 0; n < MESSAGES_PER_SENDER; n++) {
          const res = await client.send(s.token, "lobby", `sender${i}:${n}`);
          assert.equal(res.status, 201, JSON.stringify(res.body));
          ids.push(res.body.event.id);
        }
        return ids;
      });
      const sentIds = (await Promise.all(sending)).flat();
      const received = await Promise.all(receiving);

      const expected = new Set<string>();
      for (let i = 0; i < SENDERS; i++) {
        for (let n = 0; n < MESSAGES_PER_SENDER; n++) expected.add(`sender${i}:${n}`);
      }
      const reference = received[0]!.map((e) => e.id);
      assert.deepEqual([...reference].sort((a, b) => a - b), [...sentIds].sort((a, b) => a - b));
      for (const messages of received) {
        assert.equal(messages.length, TOTAL);
        const texts = messages.map((e) => e.text!);
        assert.equal(new Set(texts).size, TOTAL, "a message arrived twice");
        assert.deepEqual(new Set(texts), expected);
        const ids = messages.map((e) => e.id);
        for (let k = 1; k < ids.length; k++) {
          assert.ok(ids[k]! > ids[k - 1]!, `ids not strictly increasing at ${k}`);
        }
        assert.deepEqual(ids, reference, "pollers saw different orders");
        // Each sender's messages keep the order it sent them in.
        const next = new Map<string, number>();
        for (const event of messages) {
          const n = Number(event.text!.split(":")[1]);
          assert.equal(n, next.get(event.nick) ?? 0, `${event.nick} out of order`);
          next.set(event.nick, n + 1);
        }
      }
      assert.equal(await client.metric("parley_events_total"), POLLERS + SENDERS + TOTAL);
    }),
);

Deno.test("a poller far behind gets its events in answers of at most 500, in order, without a gap", () =>
  withServer({}, async (_app, client) => {
    const { alice, bob, cursor: start } = await client.aliceAndBob(["lobby", "dev"]);
    const sent: number[] = [];
    for (let i = 0; i < 600; i++) {
      const room = i % 3 === 0 ? "dev" : "lobby";
      sent.push((await client.send(alice.token, room, `m${i}`)).body.event.id);
    }
    const first = await client.poll(bob.token, start, 0);
    assert.equal(first.body.events.length, 500);
    assert.equal(first.body.gap, undefined);
    assert.equal(first.body.cursor, String(sent[499]));
    const second = await client.poll(bob.token, first.body.cursor, 0);
    assert.equal(second.body.events.length, 100);
    assert.equal(second.body.cursor, String(sent[599]));
    const ids = [...first.body.events, ...second.body.events].map((e: Event) => e.id);
    assert.deepEqual(ids, sent);
  }));

Deno.test("a session that left still gets what came before its leave when it polls from an earlier cursor", () =>
  withServer({}, async (_app, client) => {
    const { alice, bob, cursor } = await client.aliceAndBob(["lobby"]);
    assert.equal((await client.send(alice.token, "lobby", "one")).status, 201);
    assert.equal((await client.send(alice.token, "lobby", "two")).status, 201);
    assert.equal(
      (await client.call("POST", "/api/rooms/lobby/leave", { token: bob.token })).status,
      204,
    );
    assert.equal((await client.send(alice.token, "lobby", "after bob left")).status, 201);
    // Bob polls only now, from before the messages: they and his own leave, nothing after it.
    const answer = await client.poll(bob.token, cursor, 0);
    assert.equal(answer.status, 200);
    assert.deepEqual(
      (answer.body.events as Event[]).map((e) => `${e.type}:${e.nick}:${e.text ?? ""}`),
      ["message:alice:one", "message:alice:two", "leave:bob:"],
    );
    // From the returned cursor on there is nothing more for him.
    const next = await client.poll(bob.token, answer.body.cursor, 0);
    assert.deepEqual(next.body.events, []);
  }));
