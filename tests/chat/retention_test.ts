/** Retention (`--history`): old events are dropped, and a poller that missed some is told so. */
import assert from "node:assert/strict";
import { withServer } from "../_server.ts";

interface Event {
  id: number;
  type: string;
  text?: string;
}

Deno.test("a poller whose cursor fell out of retention gets gap: true and the retained events", () =>
  withServer({ flags: ["--history", "5"] }, async (_app, client) => {
    const { alice, bob, cursor: old } = await client.aliceAndBob();
    const sent: Event[] = [];
    for (let i = 1; i <= 10; i++) {
      sent.push((await client.send(bob.token, "lobby", `m${i}`)).body.event);
    }

    const behind = await client.poll(alice.token, old, 30);
    assert.equal(behind.status, 200);
    assert.equal(behind.body.gap, true);
    assert.deepEqual(behind.body.events, sent.slice(5), "the last 5 events are what is kept");
    assert.equal(behind.body.cursor, String(sent[9]!.id));

    // Continuing from the returned cursor: no gap any more.
    const next = client.poll(alice.token, behind.body.cursor, 30);
    await client.untilMetric("parley_waiting_polls", 1);
    const m11 = (await client.send(bob.token, "lobby", "m11")).body.event;
    const caughtUp = await next;
    assert.deepEqual(caughtUp.body, { events: [m11], cursor: String(m11.id) });

    // A cursor still inside the retained window has no gap either.
    const recent = await client.poll(alice.token, String(sent[6]!.id), 0);
    assert.equal(recent.body.gap, undefined);
    assert.deepEqual(recent.body.events.map((e: Event) => e.text), ["m8", "m9", "m10", "m11"]);

    // History and join answers hold only what is retained.
    const history = await client.call("GET", "/api/rooms/lobby/history", { token: alice.token });
    assert.deepEqual(history.body.events.map((e: Event) => e.text), [
      "m7",
      "m8",
      "m9",
      "m10",
      "m11",
    ]);
    const carol = await client.session("carol");
    const joined = await client.join(carol.token, "lobby");
    // Carol's own join is the newest of the five kept, so m7 made room for it.
    assert.deepEqual(joined.body.history.map((e: Event) => e.text), ["m8", "m9", "m10", "m11"]);
  }));

Deno.test("retention is per room: a busy room does not push out a quiet one", () =>
  withServer({ flags: ["--history", "5"] }, async (_app, client) => {
    const alice = await client.session("alice");
    await client.join(alice.token, "quiet");
    await client.join(alice.token, "busy");
    const start: string = (await client.poll(alice.token, null, 0)).body.cursor;
    const quiet = (await client.send(alice.token, "quiet", "hello")).body.event;
    for (let i = 1; i <= 10; i++) await client.send(alice.token, "busy", `b${i}`);
    const history = await client.call("GET", "/api/rooms/quiet/history", { token: alice.token });
    assert.deepEqual(history.body.events.map((e: Event) => e.text ?? e.type), ["join", "hello"]);
    // The busy room dropped events after `start`, so the poll reports a gap; the quiet room's
    // message is still delivered with the busy room's retained ones, in id order.
    const answer = await client.poll(alice.token, start, 0);
    assert.equal(answer.body.gap, true);
    assert.deepEqual(
      answer.body.events.map((e: Event) => e.text),
      ["hello", "b6", "b7", "b8", "b9", "b10"],
    );
    assert.equal(answer.body.events[0].id, quiet.id);
  }));
