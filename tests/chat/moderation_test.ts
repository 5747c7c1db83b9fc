/**
 * DESIGN.md "Chat features beyond the basics", moderation rows: moderator sessions
 * (`--admin-token-file`), topics, kicks and bans, each success and each error, against a real
 * server on a loopback port.
 */
import assert from "node:assert/strict";
import type { ChatEvent } from "../../lib/storage/event_log.ts";
import {
  type ApiAnswer,
  type ApiClient,
  assertApiError,
  FakeClock,
  waitingPoll,
  withServer,
} from "../_server.ts";

const SECRET = "moderators-secret-1";
const MINUTE = 60_000;

function assertStatus(res: ApiAnswer, status: number): void {
  assert.equal(
    res.status,
    status,
    `expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`,
  );
}

/** Headers that make a request come from `address` (the server runs with `--trust-proxy`). */
function from(address: string): Record<string, string> {
  return { "x-forwarded-for": address };
}

/** A session request from `address`. */
function sessionFrom(client: ApiClient, nick: string, address: string): Promise<ApiAnswer> {
  return client.call("POST", "/api/session", { body: { nick }, headers: from(address) });
}

// ---- moderators ----

Deno.test("the moderators' secret makes a moderator session; a wrong one is 403 forbidden", async () => {
  await withServer({ adminSecret: SECRET }, async (_app, client) => {
    const mod = await client.call("POST", "/api/session", {
      body: { nick: "mod", admin: SECRET },
    });
    assertStatus(mod, 201);
    assert.equal(mod.body.moderator, true);
    assert.equal(mod.body.nick, "mod");
    const plain = await client.call("POST", "/api/session", { body: { nick: "plain" } });
    assertStatus(plain, 201);
    assert.equal("moderator" in plain.body, false);
    for (const admin of ["wrong-secret", SECRET.slice(0, -1), `${SECRET}x`, "", 42, null]) {
      const res = await client.call("POST", "/api/session", { body: { nick: "eve", admin } });
      assertApiError(res, 403, "forbidden");
    }
    // The refused attempts created nothing: the nick is free.
    assertStatus(await client.call("POST", "/api/session", { body: { nick: "eve" } }), 201);
  });
});

Deno.test("without --admin-token-file nobody is a moderator", async () => {
  await withServer({}, async (_app, client) => {
    const res = await client.call("POST", "/api/session", { body: { nick: "mod", admin: "x" } });
    assertApiError(res, 403, "forbidden");
    const alice = await client.session("alice");
    await client.join(alice.token, "lobby");
    const topic = await client.call("PUT", "/api/rooms/lobby/topic", {
      token: alice.token,
      body: { topic: "mine" },
    });
    assertApiError(topic, 403, "forbidden");
  });
});

Deno.test("a wrong moderators' secret counts against --session-rate", async () => {
  await withServer(
    { adminSecret: SECRET, flags: ["--session-rate", "2/min"] },
    async (_app, client) => {
      for (const nick of ["eve1", "eve2"]) {
        const res = await client.call("POST", "/api/session", {
          body: { nick, admin: "guess" },
        });
        assertApiError(res, 403, "forbidden");
      }
      const right = await client.call("POST", "/api/session", {
        body: { nick: "mod", admin: SECRET },
      });
      assertApiError(right, 429, "rate_limited");
      assert.match(right.headers.get("retry-after") ?? "", /^\d+$/);
    },
  );
});

// ---- PUT /api/rooms/{room}/topic ----

Deno.test("a moderator's topic answers 200 with a topic event; joins show it; empty clears", async () => {
  await withServer({ adminSecret: SECRET }, async (_app, client) => {
    const { alice, bob, cursor } = await client.aliceAndBob();
    const mod = await client.session("mod", { admin: SECRET });
    const set = await client.call("PUT", "/api/rooms/lobby/topic", {
      token: mod.token,
      body: { topic: "  Be kind  " },
    });
    assertStatus(set, 200);
    assert.deepEqual(set.body, {
      event: {
        id: set.body.event.id,
        type: "topic",
        room: "lobby",
        nick: "mod",
        text: "Be kind",
        ts: set.body.event.ts,
      },
    });
    const polled = await client.poll(bob.token, cursor, 0);
    assert.deepEqual(polled.body.events, [set.body.event]);
    const carol = await client.session("carol");
    assert.equal((await client.join(carol.token, "lobby")).body.topic, "Be kind");
    assert.equal((await client.join(alice.token, "lobby")).body.topic, "Be kind", "join again");
    // A topic for a room nobody is in yet is kept for its first join.
    assertStatus(
      await client.call("PUT", "/api/rooms/later/topic", {
        token: mod.token,
        body: { topic: "Soon" },
      }),
      200,
    );
    assert.equal((await client.join(carol.token, "later")).body.topic, "Soon");
    for (const topic of ["", "   "]) {
      const cleared = await client.call("PUT", "/api/rooms/lobby/topic", {
        token: mod.token,
        body: { topic },
      });
      assertStatus(cleared, 200);
      assert.equal(cleared.body.event.type, "topic");
      assert.equal("topic" in (await client.join(alice.token, "lobby")).body, false);
    }
  });
});

Deno.test("topic errors: 403 forbidden for members, 422 for a bad topic or room, 401", async () => {
  await withServer({ adminSecret: SECRET }, async (_app, client) => {
    const { alice } = await client.aliceAndBob();
    const mod = await client.session("mod", { admin: SECRET });
    const put = (room: string, body: unknown, token: string | null = mod.token) =>
      client.call("PUT", `/api/rooms/${encodeURIComponent(room)}/topic`, {
        ...(token !== null ? { token } : {}),
        body,
      });
    assertApiError(await put("lobby", { topic: "mine" }, alice.token), 403, "forbidden");
    for (const body of [{}, { topic: 42 }, { topic: "x".repeat(301) }, { topic: "a\u0000b" }]) {
      assertApiError(await put("lobby", body), 422, "invalid_topic");
    }
    assertApiError(await put("bad room", { topic: "x" }), 422, "invalid_topic");
    assertApiError(await put("@0123456789abcdef", { topic: "x" }), 422, "invalid_topic");
    assertApiError(await put("lobby", "[]"), 400, "bad_json");
    assertApiError(await put("lobby", { topic: "x" }, null), 401, "unauthorized");
    assertStatus(await put("lobby", { topic: "x".repeat(300) }), 200);
  });
});

// ---- POST /api/rooms/{room}/kick ----

Deno.test("a moderator's kick answers 204 and a leave with by and reason reaches polls", async () => {
  await withServer({ adminSecret: SECRET }, async (app, client) => {
    const { alice, bob, cursor } = await client.aliceAndBob();
    const mod = await client.session("Mod", { admin: SECRET });
    const bobs = await waitingPoll(app, client, bob.token, cursor);
    const res = await client.call("POST", "/api/rooms/lobby/kick", {
      token: mod.token,
      body: { nick: "BOB", reason: "too loud" },
    });
    assertStatus(res, 204);
    const leave = {
      id: Number(cursor) + 1,
      type: "leave",
      room: "lobby",
      nick: "bob",
      ts: (await client.poll(alice.token, cursor, 0)).body.events[0].ts,
      by: "Mod",
      reason: "too loud",
    };
    assert.deepEqual((await client.poll(alice.token, cursor, 0)).body.events, [leave]);
    // The kicked session's own poll gets its leave too.
    assert.deepEqual((await bobs.answer).body.events, [leave]);
    assertApiError(await client.send(bob.token, "lobby", "still here?"), 403, "not_member");
    // Without a reason the leave has none; a kicked member may come back (a kick is no ban).
    assertStatus(await client.join(bob.token, "lobby"), 200);
    assertStatus(
      await client.call("POST", "/api/rooms/lobby/kick", {
        token: mod.token,
        body: { nick: "bob" },
      }),
      204,
    );
    const last = (await client.poll(alice.token, cursor, 0)).body.events.at(-1) as ChatEvent;
    assert.equal(last.by, "Mod");
    assert.equal("reason" in last, false);
  });
});

Deno.test("kick errors: 403 forbidden, 404 not_member, 422 for a bad nick or reason, 401", async () => {
  await withServer({ adminSecret: SECRET }, async (_app, client) => {
    const { alice } = await client.aliceAndBob();
    await client.session("carol");
    const mod = await client.session("mod", { admin: SECRET });
    const kick = (body: unknown, token: string | null = mod.token, room = "lobby") =>
      client.call("POST", `/api/rooms/${room}/kick`, {
        ...(token !== null ? { token } : {}),
        body,
      });
    assertApiError(await kick({ nick: "bob" }, alice.token), 403, "forbidden");
    assertApiError(await kick({ nick: "carol" }), 404, "not_member");
    assertApiError(await kick({ nick: "nobody" }), 404, "not_member");
    assertApiError(await kick({ nick: "bob" }, mod.token, "dev"), 404, "not_member");
    for (const body of [{}, { nick: "" }, { nick: 42 }, { nick: "bob", reason: 42 }]) {
      assertApiError(await kick(body), 422, "invalid_kick");
    }
    assertApiError(await kick({ nick: "bob", reason: "x".repeat(201) }), 422, "invalid_kick");
    assertApiError(await kick({ nick: "bob" }, null), 401, "unauthorized");
    const members = await client.call("GET", "/api/rooms/lobby/members", { token: alice.token });
    assert.deepEqual(members.body.members, ["alice", "bob"], "nobody was kicked");
  });
});

// ---- POST /api/bans, GET /api/bans, DELETE /api/bans/{id} ----

Deno.test("a nick ban answers 201, ends the session at once and refuses it until it expires", async () => {
  const clock = new FakeClock();
  await withServer({ clock, adminSecret: SECRET }, async (_app, client) => {
    const { alice, cursor } = await client.aliceAndBob();
    const spammer = await client.session("Spammer");
    await client.join(spammer.token, "lobby");
    await client.join(spammer.token, "dev");
    const mod = await client.session("mod", { admin: SECRET });
    const res = await client.call("POST", "/api/bans", {
      token: mod.token,
      body: { nick: "SPAMMER", minutes: 10, reason: "spam" },
    });
    assertStatus(res, 201);
    const until = clock.now() + 10 * MINUTE;
    assert.deepEqual(res.body, {
      ban: { id: res.body.ban.id, nick: "SPAMMER", until, reason: "spam" },
    });
    assert.equal(typeof res.body.ban.id, "string");
    // Ended at once: a leave with by and reason, and the token is dead.
    const polled = await client.poll(alice.token, cursor, 0);
    const leave = polled.body.events.at(-1);
    assert.deepEqual([leave.type, leave.nick, leave.by, leave.reason], [
      "leave",
      "Spammer",
      "mod",
      "spam",
    ]);
    assertApiError(await client.poll(spammer.token, null, 0), 401, "unauthorized");
    // Refused by nick, ignoring case, with the reason and until in the error.
    for (const nick of ["spammer", "SPAMMER", "Spammer"]) {
      const refused = await client.call("POST", "/api/session", { body: { nick } });
      const error = assertApiError(refused, 403, "banned");
      assert.equal(error.reason, "spam");
      assert.equal(error.until, until);
    }
    clock.advance(10 * MINUTE - 1);
    assertApiError(
      await client.call("POST", "/api/session", { body: { nick: "spammer" } }),
      403,
      "banned",
    );
    clock.advance(1);
    assertStatus(await client.call("POST", "/api/session", { body: { nick: "spammer" } }), 201);
  });
});

Deno.test("an address ban ends every session from it and refuses new ones until lifted", async () => {
  await withServer({ adminSecret: SECRET, flags: ["--trust-proxy"] }, async (_app, client) => {
    const mod = await client.call("POST", "/api/session", {
      body: { nick: "mod", admin: SECRET },
      headers: from("10.0.0.1"),
    });
    const a = await sessionFrom(client, "a", "10.6.6.6");
    const b = await sessionFrom(client, "b", "10.6.6.6");
    const c = await sessionFrom(client, "c", "10.6.6.7");
    const res = await client.call("POST", "/api/bans", {
      token: mod.body.token,
      body: { address: "10.6.6.6", minutes: 60 },
    });
    assertStatus(res, 201);
    assert.deepEqual(Object.keys(res.body.ban).sort(), ["address", "id", "until"]);
    assertApiError(await client.poll(a.body.token, null, 0), 401, "unauthorized");
    assertApiError(await client.poll(b.body.token, null, 0), 401, "unauthorized");
    assertStatus(await client.poll(c.body.token, null, 0), 200);
    const refused = await sessionFrom(client, "fresh", "10.6.6.6");
    const error = assertApiError(refused, 403, "banned");
    assert.equal(error.until, res.body.ban.until);
    assert.equal("reason" in error, false);
    assertStatus(await sessionFrom(client, "fresh", "10.6.6.8"), 201);
    // Lifted: the address may come back.
    const lifted = await client.call("DELETE", `/api/bans/${res.body.ban.id}`, {
      token: mod.body.token,
    });
    assertStatus(lifted, 204);
    assertStatus(await sessionFrom(client, "back", "10.6.6.6"), 201);
    assertApiError(
      await client.call("DELETE", `/api/bans/${res.body.ban.id}`, { token: mod.body.token }),
      404,
      "not_found",
    );
  });
});

Deno.test("an address ban expires, and a nick ban can be lifted", async () => {
  const clock = new FakeClock();
  await withServer(
    { clock, adminSecret: SECRET, flags: ["--trust-proxy"] },
    async (_app, client) => {
      const mod = await client.session("mod", { admin: SECRET, headers: from("10.0.0.1") });
      const ban = async (body: Record<string, unknown>) =>
        (await client.call("POST", "/api/bans", { token: mod.token, body })).body.ban;
      const byAddress = await ban({ address: "10.6.6.6", minutes: 5, reason: "flood" });
      const byNick = await ban({ nick: "eve", minutes: 60 });
      clock.advance(5 * MINUTE - 1);
      const error = assertApiError(await sessionFrom(client, "a", "10.6.6.6"), 403, "banned");
      assert.deepEqual([error.reason, error.until], ["flood", byAddress.until]);
      clock.advance(1);
      assertStatus(await sessionFrom(client, "a", "10.6.6.6"), 201);
      assertApiError(await sessionFrom(client, "Eve", "10.0.0.2"), 403, "banned");
      assertStatus(
        await client.call("DELETE", `/api/bans/${byNick.id}`, { token: mod.token }),
        204,
      );
      assertStatus(await sessionFrom(client, "Eve", "10.0.0.2"), 201);
      assert.deepEqual((await client.call("GET", "/api/bans", { token: mod.token })).body, {
        bans: [],
      });
    },
  );
});

Deno.test("GET /api/bans lists the bans in force to moderators", async () => {
  const clock = new FakeClock();
  await withServer({ clock, adminSecret: SECRET }, async (_app, client) => {
    const mod = await client.session("mod", { admin: SECRET });
    const ban = async (body: Record<string, unknown>) =>
      (await client.call("POST", "/api/bans", { token: mod.token, body })).body.ban;
    const short = await ban({ nick: "a", minutes: 1 });
    const long = await ban({ address: "10.1.1.1", minutes: 60, reason: "flood" });
    const list = await client.call("GET", "/api/bans", { token: mod.token });
    assertStatus(list, 200);
    assert.deepEqual(list.body, { bans: [short, long] });
    clock.advance(MINUTE);
    assert.deepEqual((await client.call("GET", "/api/bans", { token: mod.token })).body, {
      bans: [long],
    });
  });
});

Deno.test("ban errors: 403 forbidden for members, 422 for a bad ban, 404 for no ban, 401", async () => {
  await withServer({ adminSecret: SECRET }, async (_app, client) => {
    const alice = await client.session("alice");
    const mod = await client.session("mod", { admin: SECRET });
    const post = (body: unknown, token: string = mod.token) =>
      client.call("POST", "/api/bans", { token, body });
    assertApiError(await post({ nick: "x", minutes: 5 }, alice.token), 403, "forbidden");
    assertApiError(await client.call("GET", "/api/bans", { token: alice.token }), 403, "forbidden");
    const made = (await post({ nick: "x", minutes: 5 })).body.ban;
    assertApiError(
      await client.call("DELETE", `/api/bans/${made.id}`, { token: alice.token }),
      403,
      "forbidden",
    );
    const bad: unknown[] = [
      {},
      { minutes: 5 },
      { nick: "x" },
      { nick: "x", minutes: 0 },
      { nick: "x", minutes: 1.5 },
      { nick: "x", minutes: "5" },
      { nick: "x", minutes: 10 * 365 * 24 * 60 + 1 },
      { nick: "bad nick", minutes: 5 },
      { address: "", minutes: 5 },
      { address: "not an address", minutes: 5 },
      { address: 42, minutes: 5 },
      { nick: "x", minutes: 5, reason: 42 },
      { nick: "x", minutes: 5, reason: "x".repeat(201) },
    ];
    for (const body of bad) assertApiError(await post(body), 422, "invalid_ban");
    assertApiError(await post("[]"), 400, "bad_json");
    assertApiError(
      await client.call("DELETE", "/api/bans/no-such-ban", { token: mod.token }),
      404,
      "not_found",
    );
    for (
      const [method, path] of [["POST", "/api/bans"], ["GET", "/api/bans"], [
        "DELETE",
        `/api/bans/${made.id}`,
      ]]
    ) {
      assertApiError(await client.call(method!, path!), 401, "unauthorized");
    }
    // Nothing above changed the one ban.
    assert.deepEqual((await client.call("GET", "/api/bans", { token: mod.token })).body.bans, [
      made,
    ]);
  });
});
