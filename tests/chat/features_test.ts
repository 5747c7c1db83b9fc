/**
 * DESIGN.md "Chat features beyond the basics", rows for edits, deletes, typing and direct messages,
 * each success and each error, against a real server on a loopback port. Moderation (topics,
 * kicks, bans, moderators) is in `moderation_test.ts`, restarts in `features_restart_test.ts`.
 */
import assert from "node:assert/strict";
import type { ChatEvent } from "../../lib/storage/event_log.ts";
import { type ApiAnswer, assertApiError, FakeClock, waitingPoll, withServer } from "../_server.ts";

const SECRET = "moderators-secret-1";
const MINUTE = 60_000;

/** A success with `status`. */
function assertStatus(res: ApiAnswer, status: number): void {
  assert.equal(
    res.status,
    status,
    `expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`,
  );
}

function messagePath(room: string, id: number | string): string {
  return `/api/rooms/${encodeURIComponent(room)}/messages/${id}`;
}

function summary(events: ChatEvent[]): string[] {
  return events.map((e) =>
    `${e.type} ${e.room} ${e.nick}${e.text === undefined ? "" : ` ${e.text}`}`
  );
}

// ---- PATCH /api/rooms/{room}/messages/{id} ----

Deno.test("an author's edit answers 200 with an edit event that polls deliver", async () => {
  await withServer({}, async (_app, client) => {
    const { alice, bob, cursor } = await client.aliceAndBob();
    const sent = (await client.send(alice.token, "lobby", "tpyo", "c-1")).body.event;
    const res = await client.call("PATCH", messagePath("lobby", sent.id), {
      token: alice.token,
      body: { text: "typo" },
    });
    assertStatus(res, 200);
    assert.deepEqual(res.body, {
      event: {
        id: sent.id + 1,
        type: "edit",
        room: "lobby",
        nick: "alice",
        text: "typo",
        ts: res.body.event.ts,
        ref: sent.id,
      },
    });
    // Polls return events as stored now: the message with its new text, then the edit.
    const polled = await client.poll(bob.token, cursor, 0);
    assert.deepEqual(polled.body.events, [
      { ...sent, text: "typo", edited: true },
      res.body.event,
    ]);
    // History and a join show the current text.
    const history = await client.call("GET", "/api/rooms/lobby/history", { token: bob.token });
    assert.deepEqual(history.body.events.find((e: ChatEvent) => e.id === sent.id), {
      ...sent,
      text: "typo",
      edited: true,
    });
    const carol = await client.session("carol");
    const joined = await client.join(carol.token, "lobby");
    assert.deepEqual(summary(joined.body.history).slice(-2), [
      "message lobby alice typo",
      "edit lobby alice typo",
    ]);
    // A repeated clientId answers the message as it is now.
    const again = await client.send(alice.token, "lobby", "tpyo", "c-1");
    assertStatus(again, 200);
    assert.equal(again.body.event.text, "typo");
    assert.equal(again.body.event.edited, true);
  });
});

Deno.test("an edit after --edit-window is 403 edit_window_passed", async () => {
  const clock = new FakeClock();
  await withServer({ clock }, async (_app, client) => {
    const { alice } = await client.aliceAndBob();
    const sent = (await client.send(alice.token, "lobby", "first")).body.event;
    const edit = (text: string) =>
      client.call("PATCH", messagePath("lobby", sent.id), { token: alice.token, body: { text } });
    clock.advance(15 * MINUTE);
    assertStatus(await edit("at the end of the window"), 200);
    clock.advance(1);
    assertApiError(await edit("too late"), 403, "edit_window_passed");
    const history = await client.call("GET", "/api/rooms/lobby/history", { token: alice.token });
    assert.equal(history.body.events.at(-1).text, "at the end of the window");
  });
  await withServer({ clock, flags: ["--edit-window", "5"] }, async (_app, client) => {
    const { alice } = await client.aliceAndBob();
    const sent = (await client.send(alice.token, "lobby", "first")).body.event;
    clock.advance(5 * MINUTE + 1);
    const res = await client.call("PATCH", messagePath("lobby", sent.id), {
      token: alice.token,
      body: { text: "late" },
    });
    assertApiError(res, 403, "edit_window_passed");
  });
});

Deno.test("with --edit-window 0 no message can be edited", async () => {
  await withServer({ flags: ["--edit-window", "0"] }, async (_app, client) => {
    const { alice } = await client.aliceAndBob();
    const sent = (await client.send(alice.token, "lobby", "first")).body.event;
    const res = await client.call("PATCH", messagePath("lobby", sent.id), {
      token: alice.token,
      body: { text: "at once" },
    });
    assertApiError(res, 403, "edit_window_passed");
  });
});

Deno.test("editing someone else's message is 403 not_author", async () => {
  await withServer({ adminSecret: SECRET }, async (_app, client) => {
    const { alice, bob } = await client.aliceAndBob();
    const mod = await client.session("mod", { admin: SECRET });
    await client.join(mod.token, "lobby");
    const sent = (await client.send(alice.token, "lobby", "mine")).body.event;
    for (const token of [bob.token, mod.token]) {
      const res = await client.call("PATCH", messagePath("lobby", sent.id), {
        token,
        body: { text: "yours" },
      });
      assertApiError(res, 403, "not_author");
    }
  });
});

Deno.test("editing no message of that room is 404 not_found", async () => {
  await withServer({}, async (_app, client) => {
    const { alice } = await client.aliceAndBob(["lobby", "dev"]);
    const sent = (await client.send(alice.token, "lobby", "mine")).body.event;
    const edit = (room: string, id: number | string) =>
      client.call("PATCH", messagePath(room, id), { token: alice.token, body: { text: "new" } });
    assertApiError(await edit("lobby", 999_999), 404, "not_found");
    assertApiError(await edit("lobby", 1), 404, "not_found"); // a join, no message
    assertApiError(await edit("dev", sent.id), 404, "not_found"); // another room's message
    for (const id of ["abc", "0", "-1", "1.5", "9".repeat(20)]) {
      assertApiError(await edit("lobby", id), 404, "not_found");
    }
  });
});

Deno.test("edit text that is not a message is 422 invalid_message; a non-object body 400", async () => {
  await withServer({ flags: ["--max-message", "10"] }, async (_app, client) => {
    const { alice } = await client.aliceAndBob();
    const sent = (await client.send(alice.token, "lobby", "mine")).body.event;
    const path = messagePath("lobby", sent.id);
    for (
      const body of [{}, { text: "" }, { text: " \u200b " }, { text: 42 }, { text: "x".repeat(11) }]
    ) {
      assertApiError(
        await client.call("PATCH", path, { token: alice.token, body }),
        422,
        "invalid_message",
      );
    }
    assertApiError(
      await client.call("PATCH", path, { token: alice.token, body: "[1]" }),
      400,
      "bad_json",
    );
    assertApiError(await client.call("PATCH", path, { body: { text: "x" } }), 401, "unauthorized");
  });
});

Deno.test("an author edits and deletes their own messages after leaving the room", async () => {
  await withServer({}, async (_app, client) => {
    const { alice, bob, cursor } = await client.aliceAndBob();
    const kept = (await client.send(alice.token, "lobby", "mine")).body.event;
    const gone = (await client.send(alice.token, "lobby", "oops")).body.event;
    assertStatus(await client.call("POST", "/api/rooms/lobby/leave", { token: alice.token }), 204);
    const edited = await client.call("PATCH", messagePath("lobby", kept.id), {
      token: alice.token,
      body: { text: "new" },
    });
    assertStatus(edited, 200);
    assert.equal(edited.body.event.ref, kept.id);
    const deleted = await client.call("DELETE", messagePath("lobby", gone.id), {
      token: alice.token,
    });
    assertStatus(deleted, 204);
    const polled = await client.poll(bob.token, cursor, 0);
    assert.deepEqual(summary(polled.body.events), [
      "message lobby alice new",
      "message lobby alice",
      "leave lobby alice",
      "edit lobby alice new",
      "delete lobby alice",
    ]);
  });
});

Deno.test("a non-author outside the room gets 403 not_author, or 404 for no message", async () => {
  await withServer({}, async (_app, client) => {
    const { alice } = await client.aliceAndBob();
    const carol = await client.session("carol");
    const sent = (await client.send(alice.token, "lobby", "mine")).body.event;
    const edit = (id: number) =>
      client.call("PATCH", messagePath("lobby", id), { token: carol.token, body: { text: "x" } });
    const remove = (id: number) =>
      client.call("DELETE", messagePath("lobby", id), { token: carol.token });
    assertApiError(await edit(sent.id), 403, "not_author");
    assertApiError(await remove(sent.id), 403, "not_author");
    assertApiError(await edit(999_999), 404, "not_found");
    assertApiError(await remove(999_999), 404, "not_found");
    const history = await client.call("GET", "/api/rooms/lobby/history", { token: alice.token });
    assert.equal(history.body.events.at(-1).text, "mine");
  });
});

// ---- DELETE /api/rooms/{room}/messages/{id} ----

Deno.test("an author's delete answers 204; a delete event reaches polls and the text is gone", async () => {
  await withServer({}, async (_app, client) => {
    const { alice, bob, cursor } = await client.aliceAndBob();
    const sent = (await client.send(alice.token, "lobby", "oops, a secret", "c-1")).body.event;
    await client.call("PATCH", messagePath("lobby", sent.id), {
      token: alice.token,
      body: { text: "still a secret" },
    });
    const res = await client.call("DELETE", messagePath("lobby", sent.id), { token: alice.token });
    assertStatus(res, 204);
    const polled = await client.poll(bob.token, cursor, 0);
    const { text: _, ...erased } = sent;
    assert.deepEqual(polled.body.events[0], { ...erased, deleted: true });
    assert.deepEqual(polled.body.events[1].text, undefined, "the edit's text is gone too");
    const deletion = polled.body.events[2];
    assert.deepEqual(deletion, {
      id: sent.id + 2,
      type: "delete",
      room: "lobby",
      nick: "alice",
      ts: deletion.ts,
      ref: sent.id,
    });
    const history = await client.call("GET", "/api/rooms/lobby/history", { token: bob.token });
    assert.ok(!JSON.stringify(history.body).includes("secret"));
    const again = await client.send(alice.token, "lobby", "oops, a secret", "c-1");
    assertStatus(again, 200);
    assert.deepEqual(again.body.event, { ...erased, deleted: true });
    // Gone: a second delete and an edit find no message.
    assertApiError(
      await client.call("DELETE", messagePath("lobby", sent.id), { token: alice.token }),
      404,
      "not_found",
    );
    assertApiError(
      await client.call("PATCH", messagePath("lobby", sent.id), {
        token: alice.token,
        body: { text: "back" },
      }),
      404,
      "not_found",
    );
  });
});

Deno.test("a non-author's delete is 403 not_author and deletes nothing", async () => {
  await withServer({}, async (_app, client) => {
    const { alice, bob } = await client.aliceAndBob();
    const sent = (await client.send(alice.token, "lobby", "mine")).body.event;
    const res = await client.call("DELETE", messagePath("lobby", sent.id), { token: bob.token });
    assertApiError(res, 403, "not_author");
    const history = await client.call("GET", "/api/rooms/lobby/history", { token: bob.token });
    assert.equal(history.body.events.at(-1).text, "mine");
  });
});

Deno.test("a moderator deletes any message, even outside the room; the delete carries by", async () => {
  await withServer({ adminSecret: SECRET }, async (_app, client) => {
    const { alice, bob, cursor } = await client.aliceAndBob();
    const mod = await client.session("Mod", { admin: SECRET });
    const sent = (await client.send(bob.token, "lobby", "spam")).body.event;
    const res = await client.call("DELETE", messagePath("lobby", sent.id), { token: mod.token });
    assertStatus(res, 204);
    const polled = await client.poll(alice.token, cursor, 0);
    const deletion = polled.body.events.at(-1);
    assert.equal(deletion.type, "delete");
    assert.equal(deletion.ref, sent.id);
    assert.equal(deletion.nick, "bob", "the delete names the author");
    assert.equal(deletion.by, "Mod");
    assert.equal(polled.body.events[0].text, undefined);
  });
});

Deno.test("deleting no message is 404 not_found; without a token 401", async () => {
  await withServer({}, async (_app, client) => {
    const { alice } = await client.aliceAndBob();
    for (const id of ["999999", "1", "abc", "0"]) {
      assertApiError(
        await client.call("DELETE", messagePath("lobby", id), { token: alice.token }),
        404,
        "not_found",
      );
    }
    assertApiError(await client.call("DELETE", messagePath("lobby", 1)), 401, "unauthorized");
  });
});

// ---- POST /api/rooms/{room}/typing ----

Deno.test("a typing notice reaches a waiting member as ephemeral, never in history or later polls", async () => {
  await withServer({}, async (app, client) => {
    const { alice, bob, cursor } = await client.aliceAndBob();
    const bobs = await waitingPoll(app, client, bob.token, cursor);
    const alices = await waitingPoll(app, client, alice.token, cursor);
    const res = await client.call("POST", "/api/rooms/lobby/typing", { token: alice.token });
    assertStatus(res, 204);
    const answer = await bobs.answer;
    assertStatus(answer, 200);
    const ts = answer.body.ephemeral?.[0]?.ts;
    assert.equal(typeof ts, "number");
    assert.deepEqual(answer.body, {
      events: [],
      cursor,
      ephemeral: [{ type: "typing", room: "lobby", nick: "alice", ts }],
    });
    // Never replayed: a poll from the same cursor has nothing.
    assert.deepEqual((await client.poll(bob.token, cursor, 0)).body, { events: [], cursor });
    // Alice's own poll did not get her notice: the next event is what answers it.
    const sent = await client.send(bob.token, "lobby", "hi");
    const own = await alices.answer;
    assert.deepEqual(own.body, { events: [sent.body.event], cursor: String(sent.body.event.id) });
    const history = await client.call("GET", "/api/rooms/lobby/history", { token: bob.token });
    assert.deepEqual(history.body.events.map((e: ChatEvent) => e.type), [
      "join",
      "join",
      "message",
    ]);
  });
});

Deno.test("typing notices are passed on at most once per session and room each 3 s", async () => {
  const clock = new FakeClock();
  await withServer({ clock }, async (app, client) => {
    const { alice, bob, cursor } = await client.aliceAndBob(["lobby", "dev"]);
    const type = (room: string) =>
      client.call("POST", `/api/rooms/${room}/typing`, { token: alice.token });
    let poll = await waitingPoll(app, client, bob.token, cursor);
    assertStatus(await type("lobby"), 204);
    assert.equal((await poll.answer).body.ephemeral[0].room, "lobby");

    // 2.999 s later: accepted and dropped. The next event answers the waiting poll instead.
    poll = await waitingPoll(app, client, bob.token, cursor);
    clock.advance(2999);
    assertStatus(await type("lobby"), 204);
    const sent = await client.send(alice.token, "lobby", "marker");
    const answer = await poll.answer;
    assert.equal(answer.body.ephemeral, undefined, "a second notice within 3 s was passed on");
    assert.deepEqual(answer.body.events, [sent.body.event]);

    // Another room counts apart; 3 s after the first, the room passes notices again.
    const next = answer.body.cursor;
    poll = await waitingPoll(app, client, bob.token, next);
    assertStatus(await type("dev"), 204);
    assert.equal((await poll.answer).body.ephemeral[0].room, "dev");
    poll = await waitingPoll(app, client, bob.token, next);
    clock.advance(1);
    assertStatus(await type("lobby"), 204);
    assert.equal((await poll.answer).body.ephemeral[0].room, "lobby");
  });
});

Deno.test("typing in a room one is not in is 403 not_member; too fast is 429", async () => {
  await withServer({ flags: ["--send-rate", "2/min"] }, async (_app, client) => {
    const { alice } = await client.aliceAndBob();
    const carol = await client.session("carol");
    const type = (token: string) => client.call("POST", "/api/rooms/lobby/typing", { token });
    assertApiError(await type(carol.token), 403, "not_member");
    assertStatus(await type(alice.token), 204);
    assertStatus(await type(alice.token), 204);
    const limited = await type(alice.token);
    assertApiError(limited, 429, "rate_limited");
    assert.match(limited.headers.get("retry-after") ?? "", /^\d+$/);
    // Typing and sending count apart.
    assertStatus(await client.send(alice.token, "lobby", "still may send"), 201);
    assertApiError(await client.call("POST", "/api/rooms/lobby/typing"), 401, "unauthorized");
  });
});

// ---- POST /api/dm ----

Deno.test("POST /api/dm opens the private room of two sessions, both members at once", async () => {
  await withServer({}, async (app, client) => {
    const alice = await client.session("alice");
    const bob = await client.session("Bob");
    const bobs = await waitingPoll(app, client, bob.token, bob.cursor);
    const res = await client.call("POST", "/api/dm", { token: alice.token, body: { nick: "BOB" } });
    assertStatus(res, 200);
    const room: string = res.body.room;
    assert.match(room, /^@[0-9a-f]{16}$/);
    assert.equal(res.body.with, "Bob");
    assert.deepEqual(summary(res.body.history), [`join ${room} Bob`, `join ${room} alice`]);
    // Bob's one poll wakes for the room he was put in; alice's join after his tells him who.
    const woken = await bobs.answer;
    assert.deepEqual(summary(woken.body.events), [`join ${room} Bob`, `join ${room} alice`]);
    // They talk through their polls.
    const hi = await client.send(alice.token, room, "hi bob");
    assertStatus(hi, 201);
    const reply = await client.send(bob.token, room, "hi alice");
    assertStatus(reply, 201);
    assert.deepEqual(summary((await client.poll(bob.token, woken.body.cursor, 0)).body.events), [
      `message ${room} alice hi bob`,
      `message ${room} Bob hi alice`,
    ]);
    // Opened again, from either side: the same room with its history, nothing new stored.
    const back = await client.call("POST", "/api/dm", {
      token: bob.token,
      body: { nick: "alice" },
    });
    assertStatus(back, 200);
    assert.equal(back.body.room, room);
    assert.equal(back.body.with, "alice");
    assert.deepEqual(summary(back.body.history).slice(-2), [
      `message ${room} alice hi bob`,
      `message ${room} Bob hi alice`,
    ]);
    assert.equal(
      (await client.poll(alice.token, String(reply.body.event.id), 0)).body.events.length,
      0,
    );
  });
});

Deno.test("a third session cannot join, read or list a DM room", async () => {
  await withServer({}, async (_app, client) => {
    const alice = await client.session("alice");
    await client.session("bob");
    const carol = await client.session("carol");
    await client.join(carol.token, "lobby");
    const { room } = (await client.call("POST", "/api/dm", {
      token: alice.token,
      body: { nick: "bob" },
    })).body;
    await client.send(alice.token, room, "between us");
    assertApiError(await client.join(carol.token, room), 403, "private_room");
    // A private name nobody opened is as closed.
    assertApiError(await client.join(carol.token, "@0123456789abcdef"), 403, "private_room");
    const path = `/api/rooms/${encodeURIComponent(room)}`;
    assertApiError(
      await client.call("GET", `${path}/history`, { token: carol.token }),
      403,
      "not_member",
    );
    assertApiError(
      await client.call("GET", `${path}/members`, { token: carol.token }),
      403,
      "not_member",
    );
    assertApiError(await client.send(carol.token, room, "let me in"), 403, "not_member");
    const rooms = await client.call("GET", "/api/rooms");
    assert.deepEqual(rooms.body.rooms, [{ name: "lobby", members: 1 }]);
    const polled = await client.poll(carol.token, carol.cursor, 0);
    assert.deepEqual(summary(polled.body.events), ["join lobby carol"]);
    assert.equal(await client.metric("parley_rooms"), 1, "the DM room is no public room");
  });
});

Deno.test("a DM room is gone, with its history, once either session ends", async () => {
  for (const ender of ["alice", "bob"] as const) {
    await withServer({}, async (_app, client) => {
      const tokens = {
        alice: (await client.session("alice")).token,
        bob: (await client.session("bob")).token,
      };
      const { room } = (await client.call("POST", "/api/dm", {
        token: tokens.alice,
        body: { nick: "bob" },
      })).body;
      await client.send(tokens.bob, room, "secret");
      const stayer = ender === "alice" ? tokens.bob : tokens.alice;
      assertStatus(await client.call("DELETE", "/api/session", { token: tokens[ender] }), 204);
      assertApiError(await client.join(stayer, room), 403, "private_room");
      const history = await client.call("GET", `/api/rooms/${encodeURIComponent(room)}/history`, {
        token: stayer,
      });
      assertApiError(history, 403, "not_member");
      assertApiError(await client.send(stayer, room, "hello?"), 403, "not_member");
      // The same nick again is another session: a new room, with no trace of the old one.
      await client.session(ender);
      const other = ender === "alice" ? "alice" : "bob";
      const again = await client.call("POST", "/api/dm", { token: stayer, body: { nick: other } });
      assertStatus(again, 200);
      assert.notEqual(again.body.room, room);
      assert.ok(!JSON.stringify(again.body.history).includes("secret"));
    });
  }
});

Deno.test("a DM room is gone once a session's presence lapses", async () => {
  const clock = new FakeClock();
  await withServer({ clock, flags: ["--presence-grace", "10"] }, async (app, client) => {
    const alice = await client.session("alice");
    await client.session("bob");
    const { room } = (await client.call("POST", "/api/dm", {
      token: alice.token,
      body: { nick: "bob" },
    })).body;
    clock.advance(9_000);
    await client.poll(alice.token, null, 0); // alice is seen; bob is not
    clock.advance(1_000);
    await app.sweep();
    assertApiError(await client.join(alice.token, room), 403, "private_room");
    assertApiError(
      await client.call("POST", "/api/dm", { token: alice.token, body: { nick: "bob" } }),
      404,
      "no_such_nick",
    );
  });
});

Deno.test("POST /api/dm errors: 404 no_such_nick, 422 invalid_nick (own or malformed), 400, 401", async () => {
  await withServer({}, async (_app, client) => {
    const alice = await client.session("alice");
    const dm = (body: unknown, token: string | null = alice.token) =>
      client.call("POST", "/api/dm", { ...(token !== null ? { token } : {}), body });
    assertApiError(await dm({ nick: "nobody" }), 404, "no_such_nick");
    assertApiError(await dm({ nick: "ALICE" }), 422, "invalid_nick");
    for (const nick of [undefined, "", 42, "no spaces", "a".repeat(33)]) {
      assertApiError(await dm({ nick }), 422, "invalid_nick");
    }
    assertApiError(await dm("not json"), 400, "bad_json");
    assertApiError(await dm({ nick: "alice" }, null), 401, "unauthorized");
    assert.deepEqual((await client.call("GET", "/api/rooms")).body.rooms, []);
  });
});
