/**
 * Crash safety of the SQLite store, end to end: a real server process under a flood of sends is
 * killed with SIGKILL, restarted on the same file, and what clients were told before the crash is
 * checked against what the restarted server has. Several rounds, so the kill lands at different
 * points of the group commit.
 */
import assert from "node:assert/strict";
import { ApiClient } from "../_server.ts";
import { ServerProcess } from "./_process.ts";

interface WireEvent {
  id: number;
  type: string;
  room: string;
  nick: string;
  text?: string;
  ts: number;
  clientId?: string;
}

interface Sender {
  nick: string;
  room: string;
  token: string;
  /** Per round: sends answered 2xx (text and the id the answer gave), in send order. */
  answered: { text: string; id: number }[][];
  /** Per round: the send in flight when the server died (no answer); it may or may not be stored. */
  unanswered: (string | null)[];
}

/** Answered sends (all senders together) after which a round kills the server. */
const KILL_AFTER = 300;
const ROUNDS = 3;
const ROOMS = ["alpha", "beta"];
/** Two senders per room. */
const SENDERS = [
  { nick: "s0", room: "alpha" },
  { nick: "s1", room: "alpha" },
  { nick: "s2", room: "beta" },
  { nick: "s3", room: "beta" },
];
/** Retention far above what the test writes, so the full log can be read back. */
const FLAGS = ["--history", "100000"];

/** Polls from `cursor` until an answer has no events; returns them all and the last cursor. */
async function drain(
  client: ApiClient,
  token: string,
  cursor: string,
): Promise<{ events: WireEvent[]; cursor: string; gap: boolean }> {
  const events: WireEvent[] = [];
  let gap = false;
  for (let i = 0; i < 1000; i++) {
    const res = await client.poll(token, cursor, 0);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    gap ||= res.body.gap === true;
    cursor = res.body.cursor;
    if (res.body.events.length === 0) return { events, cursor, gap };
    // One answer holds at most 500 events; the loop continues from its cursor.
    assert.ok(res.body.events.length <= 500);
    events.push(...res.body.events);
  }
  throw new Error("drain: too many polls");
}

function assertIncreasing(events: WireEvent[], what: string): void {
  for (let i = 1; i < events.length; i++) {
    assert.ok(
      events[i]!.id > events[i - 1]!.id,
      `${what}: id ${events[i]!.id} follows ${events[i - 1]!.id}`,
    );
  }
}

/**
 * One round: every sender sends sequentially (unique texts) while the watcher long-polls; after
 * KILL_AFTER answered sends the server gets SIGKILL. Updates `senders` and `watcher` with what
 * the clients were told.
 */
async function floodAndKill(
  server: ServerProcess,
  round: number,
  senders: Sender[],
  watcher: { token: string; cursor: string; seen: WireEvent[] },
): Promise<void> {
  const client = new ApiClient(await server.url());
  let answeredTotal = 0;
  const enough = Promise.withResolvers<void>();
  const unexpected: string[] = [];
  let polls = 0;
  let stopWatching = false;
  const watching = (async () => {
    while (!stopWatching) {
      let res;
      try {
        res = await client.poll(watcher.token, watcher.cursor, 5);
      } catch {
        return; // The server died mid-poll: nothing of this answer counts.
      }
      if (res.status !== 200) {
        unexpected.push(`poll: ${res.status} ${JSON.stringify(res.body)}`);
        return;
      }
      watcher.seen.push(...res.body.events);
      watcher.cursor = res.body.cursor;
      polls++;
    }
  })();
  const flooding = senders.map(async (sender) => {
    const answered: { text: string; id: number }[] = [];
    sender.answered.push(answered);
    sender.unanswered.push(null);
    for (let i = 0;; i++) {
      const text = `${sender.nick}.r${round}.${i}`;
      let res;
      try {
        // The text doubles as the client id, so a retry after the crash can be idempotent.
        res = await client.send(sender.token, sender.room, text, text);
      } catch {
        sender.unanswered[round] = text;
        enough.resolve(); // The server died: do not wait for sends that cannot come.
        return;
      }
      if (res.status !== 201 || res.body.event.text !== text) {
        unexpected.push(`${text}: ${res.status} ${JSON.stringify(res.body)}`);
        enough.resolve();
        return;
      }
      answered.push({ text, id: res.body.event.id });
      if (++answeredTotal >= KILL_AFTER) enough.resolve();
    }
  });
  await enough.promise;
  server.kill("SIGKILL");
  const { status } = await server.exit();
  stopWatching = true;
  await Promise.all([...flooding, watching]);
  assert.equal(status.signal, "SIGKILL", `the server died before the kill:\n${server.stderr}`);
  assert.deepEqual(unexpected, []);
  assert.ok(answeredTotal >= KILL_AFTER);
  for (const sender of senders) {
    assert.ok(sender.answered[round]!.length > 0, `${sender.nick} was sending when killed`);
  }
  assert.ok(polls > 0, "the watcher got answers before the kill");
}

/** Checks the restarted server's log against what every client was told before each crash. */
function checkLog(log: WireEvent[], senders: Sender[], rounds: number): void {
  assertIncreasing(log, "full log");
  assert.deepEqual(
    log.filter((e) => e.nick === "watcher").map((e) => `${e.type}:${e.room}`),
    ["join:alpha", "join:beta"],
  );
  let count = 2;
  for (const sender of senders) {
    const mine = log.filter((e) => e.nick === sender.nick);
    assert.deepEqual([mine[0]?.type, mine[0]?.room], ["join", sender.room], sender.nick);
    const messages = mine.slice(1);
    assert.ok(messages.every((e) => e.type === "message" && e.room === sender.room));
    count += mine.length;
    // Round by round: every answered send exactly once with the id it was answered with, in
    // send order; then at most the one unanswered send, at most once.
    let at = 0;
    for (let round = 0; round < rounds; round++) {
      const answered = sender.answered[round]!;
      const stored = messages.slice(at, at + answered.length);
      assert.deepEqual(
        stored.map((e) => [e.text, e.id]),
        answered.map((a) => [a.text, a.id]),
        `${sender.nick}, round ${round}: answered sends`,
      );
      at += answered.length;
      if (messages[at] !== undefined && messages[at]!.text === sender.unanswered[round]) at++;
    }
    assert.equal(
      at,
      messages.length,
      `${sender.nick}: unexpected events ${JSON.stringify(messages.slice(at).map((e) => e.text))}`,
    );
  }
  assert.equal(log.length, count, "only the watcher's and senders' events are in the log");
}

Deno.test("SIGKILL mid-flood: every answered send survives once, in order; tokens and cursors resume", async () => {
  const dir = await Deno.makeTempDir({ prefix: "parley-crash-" });
  const store = `sqlite:${dir}/parley.db`;
  let server: ServerProcess | undefined;
  try {
    server = await ServerProcess.start(store, FLAGS);
    const setup = new ApiClient(await server.url());
    // The watcher joins both rooms first, so its polls cover every later event of both.
    const session = await setup.session("watcher");
    for (const room of ROOMS) assert.equal((await setup.join(session.token, room)).status, 200);
    const watcher = { token: session.token, cursor: session.cursor, seen: [] as WireEvent[] };
    const senders: Sender[] = [];
    for (const { nick, room } of SENDERS) {
      const { token } = await setup.session(nick);
      assert.equal((await setup.join(token, room)).status, 200);
      senders.push({ nick, room, token, answered: [], unanswered: [] });
    }

    let lastId = 0;
    /** Retries of the last round that were stored anew (their send was lost in the crash). */
    let created = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Old tokens keep working after each restart: the senders and the watcher use them.
      await floodAndKill(server, round, senders, watcher);
      const firstIds = senders.map((s) => s.answered[round]![0]!.id);
      assert.ok(firstIds.every((id) => id > lastId), `round ${round} ids continue after ${lastId}`);

      server = await ServerProcess.start(store, FLAGS);
      const client = new ApiClient(await server.url());

      // The whole log, as the watcher's (old) token sees it from the beginning.
      const full = await drain(client, watcher.token, "0");
      assert.equal(full.gap, false);
      checkLog(full.events, senders, round + 1);
      lastId = full.events[full.events.length - 1]!.id;

      // The watcher's cursor from before the crash resumes: exactly the rest, no gap, no repeats.
      const seenIds = new Set(watcher.seen.map((e) => e.id));
      assert.equal(seenIds.size, watcher.seen.length, "the watcher saw no event twice");
      const resumed = await drain(client, watcher.token, watcher.cursor);
      assert.equal(resumed.gap, false);
      assert.ok(resumed.events.every((e) => !seenIds.has(e.id)), "no repeats after the crash");
      assert.ok(resumed.events.every((e) => e.id > Number(watcher.cursor)));
      assert.deepEqual([...watcher.seen, ...resumed.events], full.events, "seen + rest = the log");
      assert.equal(resumed.cursor, full.cursor);
      watcher.seen.push(...resumed.events);
      watcher.cursor = resumed.cursor;

      // Each sender retries its unanswered send with the same client id, as a client would: it
      // is stored exactly once either way (200 with the event the crash kept, or 201 now).
      created = 0;
      for (const sender of senders) {
        const text = sender.unanswered[round]!;
        const kept = full.events.find((e) => e.text === text);
        const res = await client.send(sender.token, sender.room, text, text);
        if (kept) {
          assert.equal(res.status, 200, `${text} was kept, so the retry answers it`);
          assert.deepEqual(res.body.event, kept);
        } else {
          assert.equal(res.status, 201, `${text} was lost, so the retry stores it`);
          assert.ok(res.body.event.id > lastId);
          created++;
        }
        sender.answered[round]!.push({ text, id: res.body.event.id });
        sender.unanswered[round] = null;
      }
      // A second retry is a repeat too: 200, same event, nothing stored.
      const repeat = senders[0]!.answered[round]!.at(-1)!;
      const again = await client.send(
        senders[0]!.token,
        senders[0]!.room,
        repeat.text,
        repeat.text,
      );
      assert.deepEqual([again.status, again.body.event.id], [200, repeat.id]);
      assert.equal(await client.metric("parley_events_total"), created, "only lost sends stored");
    }

    // A send after the last restart gets an id after every earlier one.
    const client = new ApiClient(await server.url());
    const res = await client.send(senders[0]!.token, senders[0]!.room, "after the last crash");
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.ok(res.body.event.id > lastId, `new id ${res.body.event.id} > ${lastId}`);
    const next = await drain(client, watcher.token, watcher.cursor);
    assert.equal(next.events.length, created + 1, "the retries stored anew, then the new send");
    assert.ok(next.events.every((e) => e.id > lastId));
    assert.deepEqual(next.events.at(-1), res.body.event);

    const stopped = await server.stop("SIGTERM");
    assert.equal(stopped.status.code, 0, stopped.stderr);
  } finally {
    await server?.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});
