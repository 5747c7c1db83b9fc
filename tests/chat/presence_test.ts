/**
 * Presence: a session is present while it has a poll open or made an authenticated request within
 * `--presence-grace` seconds; then it leaves its rooms and its token expires. The clock is fake and
 * sweeps run by hand, so nothing here sleeps.
 */
import assert from "node:assert/strict";
import type { App } from "../../lib/app.ts";
import { type ApiClient, FakeClock, withServer } from "../_server.ts";

const GRACE_S = 5;

/** Runs `fn` against a server on a fake clock with a 5 s grace (and HTTP timeouts out of the way). */
function presenceTest(
  name: string,
  fn: (app: App, client: ApiClient, clock: FakeClock) => Promise<void>,
): void {
  Deno.test(name, () => {
    const clock = new FakeClock();
    return withServer({
      clock,
      flags: [
        "--presence-grace",
        String(GRACE_S),
        "--header-timeout",
        "3600",
        "--body-timeout",
        "3600",
        "--idle-timeout",
        "3600",
      ],
    }, (app, client) => fn(app, client, clock));
  });
}

/** Member counts by room, as anyone may see them (without a token: no presence side effects). */
async function members(client: ApiClient): Promise<Record<string, number>> {
  const res = await client.call("GET", "/api/rooms");
  return Object.fromEntries(
    res.body.rooms.map((r: { name: string; members: number }) => [r.name, r.members]),
  );
}

presenceTest(
  "a session that neither polls nor calls for the grace period leaves its rooms and its token expires",
  async (app, client, clock) => {
    const { alice, bob, cursor } = await client.aliceAndBob(["lobby", "dev"]);

    clock.advance(GRACE_S * 1000 - 1000);
    await app.sweep();
    assert.deepEqual(await members(client), { dev: 2, lobby: 2 }, "gone before the grace ran out");
    // Bob calls; alice stays silent.
    assert.deepEqual((await client.poll(bob.token, cursor, 0)).body.events, []);

    clock.advance(1000);
    await app.sweep();
    const seen = await client.poll(bob.token, cursor, 0);
    assert.deepEqual(
      seen.body.events.map((e: { type: string; room: string; nick: string }) =>
        `${e.type} ${e.room} ${e.nick}`
      ).sort(),
      ["leave dev alice", "leave lobby alice"],
    );
    assert.deepEqual(await members(client), { dev: 1, lobby: 1 });
    assert.equal(await client.metric("parley_sessions"), 1);
    const expired = await client.call("GET", "/api/events?wait=0", { token: alice.token });
    assert.equal(expired.status, 401);
    assert.equal(expired.body.error.code, "unauthorized");
    // The nick is free again.
    assert.equal(
      (await client.call("POST", "/api/session", { body: { nick: "alice" } })).status,
      201,
    );
  },
);

presenceTest("an authenticated request resets the grace", async (app, client, clock) => {
  const alice = await client.session("alice");
  await client.join(alice.token, "lobby");

  clock.advance(4000);
  const history = await client.call("GET", "/api/rooms/lobby/history", { token: alice.token });
  assert.equal(history.status, 200);
  clock.advance(4000);
  await app.sweep();
  assert.deepEqual(await members(client), { lobby: 1 }, "8 s after joining, 4 s after a call");

  clock.advance(1000);
  await app.sweep();
  assert.deepEqual(await members(client), { lobby: 0 });
  assert.equal((await client.join(alice.token, "lobby")).status, 401);
});

presenceTest(
  "a session with an open poll stays present past the grace",
  async (app, client, clock) => {
    const alice = await client.session("alice");
    const bob = await client.session("bob");
    await client.join(alice.token, "lobby");
    await client.join(bob.token, "lobby");
    const cursor: string = (await client.poll(alice.token, null, 0)).body.cursor;
    const bobCursor: string = (await client.poll(bob.token, null, 0)).body.cursor;

    const poll = client.poll(alice.token, cursor, 30);
    await client.untilMetric("parley_waiting_polls", 1);
    clock.advance(GRACE_S * 1000 * 12);
    bob.cursor = (await client.poll(bob.token, bobCursor, 0)).body.cursor; // bob stays too
    await app.sweep();
    assert.deepEqual(await members(client), { lobby: 2 });
    assert.equal(await client.metric("parley_waiting_polls"), 1, "the poll is still open");

    const sent = await client.send(bob.token, "lobby", "still there?");
    assert.deepEqual((await poll).body.events, [sent.body.event]);
    // The poll's end counts as being seen: the grace starts again from there.
    clock.advance(GRACE_S * 1000 - 1000);
    await client.poll(bob.token, bob.cursor, 0);
    await app.sweep();
    assert.deepEqual(await members(client), { lobby: 2 });

    clock.advance(1000);
    await app.sweep();
    assert.deepEqual(await members(client), { lobby: 1 });
    const seen = await client.poll(bob.token, sent.body.event.id.toString(), 0);
    assert.deepEqual(
      seen.body.events.map((e: { type: string; nick: string }) => [e.type, e.nick]),
      [["leave", "alice"]],
    );
  },
);
