/**
 * What the chat features keep across a restart with the SQLite store, on a real server process
 * stopped with SIGTERM and started again on the same file: deletes erase text from the file,
 * bans, topics, edits and direct-message rooms last.
 */
import assert from "node:assert/strict";
import { ApiClient, assertApiError, withSecretFile } from "../_server.ts";
import { runUntilSigterm as run, ServerProcess } from "../storage/_process.ts";

const SECRET = "moderators-secret-1";

/** Runs `fn` with a fresh temp dir and a moderators' secret file, removed afterwards. */
async function withFiles(fn: (dir: string, secretFile: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "parley-features-restart-" });
  try {
    await withSecretFile(SECRET, (secretFile) => fn(dir, secretFile));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Whether `text` (as UTF-8) is anywhere in the database file or the files beside it (-wal). */
async function onDisk(dir: string, text: string): Promise<boolean> {
  const needle = new TextEncoder().encode(text);
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.startsWith("parley.db")) continue;
    const bytes = await Deno.readFile(`${dir}/${entry.name}`);
    if (indexOf(bytes, needle) >= 0) return true;
  }
  return false;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

Deno.test("after a delete and a restart the text is in neither the database file nor its WAL", async () => {
  await withFiles(async (dir) => {
    const store = `sqlite:${dir}/parley.db`;
    const secret = `SECRET-${crypto.randomUUID()}`;
    const edited = `EDITED-${crypto.randomUUID()}`;
    const kept = `KEPT-${crypto.randomUUID()}`;
    let alice = { token: "", cursor: "" };
    let bob = { token: "", cursor: "" };
    let id = 0;
    await run(store, [], async (client) => {
      ({ alice, bob } = await client.aliceAndBob());
      assert.equal((await client.send(alice.token, "lobby", kept, "c-kept")).status, 201);
      const sent = await client.send(alice.token, "lobby", secret, "c-secret");
      id = sent.body.event.id;
      const patched = await client.call("PATCH", `/api/rooms/lobby/messages/${id}`, {
        token: alice.token,
        body: { text: edited },
      });
      assert.equal(patched.status, 200);
      // The check below can see text: it is on disk now.
      assert.ok(await onDisk(dir, secret), "the sent text is not on disk before the delete");
      assert.ok(await onDisk(dir, edited), "the edited text is not on disk before the delete");
      const deleted = await client.call("DELETE", `/api/rooms/lobby/messages/${id}`, {
        token: alice.token,
      });
      assert.equal(deleted.status, 204);
      // Gone at once, not only after a checkpoint at the next stop.
      assert.equal(await onDisk(dir, secret), false, "the deleted text is still on disk");
      assert.equal(await onDisk(dir, edited), false, "the deleted edit's text is still on disk");
    });
    const check = async () => {
      assert.equal(await onDisk(dir, secret), false, "the deleted text is still on disk");
      assert.equal(await onDisk(dir, edited), false, "the deleted edit's text is still on disk");
      assert.ok(await onDisk(dir, kept), "a message nobody deleted is on disk");
    };
    await check();
    await run(store, [], async (client) => {
      await check();
      const history = await client.call("GET", "/api/rooms/lobby/history", { token: bob.token });
      const message = history.body.events.find((e: { id: number }) => e.id === id);
      assert.equal(message.deleted, true);
      assert.equal(message.text, undefined);
      assert.deepEqual(history.body.events.slice(-2).map((e: { type: string }) => e.type), [
        "edit",
        "delete",
      ]);
      const again = await client.send(alice.token, "lobby", "?", "c-secret");
      assert.equal(again.status, 200);
      assert.equal(again.body.event.text, undefined);
      assert.ok(!JSON.stringify(history.body).includes("SECRET"));
    });
    await check();
  });
});

Deno.test("after a delete, a crash and a restart the text is not on disk either", async () => {
  await withFiles(async (dir) => {
    const store = `sqlite:${dir}/parley.db`;
    const secret = `SECRET-${crypto.randomUUID()}`;
    const server = await ServerProcess.start(store);
    let alice = { token: "", cursor: "" };
    try {
      const client = new ApiClient(await server.url());
      ({ alice } = await client.aliceAndBob());
      const sent = await client.send(alice.token, "lobby", secret);
      assert.ok(await onDisk(dir, secret), "the sent text is not on disk before the delete");
      const deleted = await client.call(
        "DELETE",
        `/api/rooms/lobby/messages/${sent.body.event.id}`,
        { token: alice.token },
      );
      assert.equal(deleted.status, 204);
    } finally {
      await server.stop("SIGKILL");
    }
    assert.equal(await onDisk(dir, secret), false, "the deleted text is on disk after the crash");
    await run(store, [], async (client) => {
      assert.equal(await onDisk(dir, secret), false, "the deleted text is on disk after restart");
      const history = await client.call("GET", "/api/rooms/lobby/history", { token: alice.token });
      assert.equal(history.body.events.at(-1).type, "delete");
    });
  });
});

Deno.test("bans, topics, edits and direct-message rooms survive a restart", async () => {
  await withFiles(async (dir, secretFile) => {
    const store = `sqlite:${dir}/parley.db`;
    const flags = ["--admin-token-file", secretFile, "--trust-proxy"];
    const tokens: Record<string, string> = {};
    let dm = "";
    let nickBan = { id: "", until: 0 };
    let addressBan = { id: "", until: 0 };
    let edited = 0;
    await run(store, flags, async (client) => {
      tokens.mod = (await client.session("mod", { admin: SECRET })).token;
      for (const nick of ["alice", "bob", "spammer"]) {
        tokens[nick] = (await client.session(nick)).token;
      }
      await client.join(tokens.alice!, "lobby");
      const ban = (body: Record<string, unknown>) =>
        client.call("POST", "/api/bans", { token: tokens.mod!, body });
      nickBan = (await ban({ nick: "Spammer", minutes: 60, reason: "spam" })).body.ban;
      addressBan = (await ban({ address: "10.9.9.9", minutes: 120 })).body.ban;
      assert.equal(
        (await client.call("PUT", "/api/rooms/lobby/topic", {
          token: tokens.mod!,
          body: { topic: "Be kind" },
        })).status,
        200,
      );
      const sent = await client.send(tokens.alice!, "lobby", "tpyo");
      edited = sent.body.event.id;
      await client.call("PATCH", `/api/rooms/lobby/messages/${edited}`, {
        token: tokens.alice!,
        body: { text: "typo" },
      });
      const opened = await client.call("POST", "/api/dm", {
        token: tokens.alice!,
        body: { nick: "bob" },
      });
      dm = opened.body.room;
      await client.send(tokens.bob!, dm, "psst");
    });

    await run(store, flags, async (client) => {
      const banned = await client.call("POST", "/api/session", { body: { nick: "SPAMMER" } });
      const error = assertApiError(banned, 403, "banned");
      assert.deepEqual([error.reason, error.until], ["spam", nickBan.until]);
      const byAddress = await client.call("POST", "/api/session", {
        body: { nick: "newcomer" },
        headers: { "x-forwarded-for": "10.9.9.9" },
      });
      assert.equal(assertApiError(byAddress, 403, "banned").until, addressBan.until);
      const list = await client.call("GET", "/api/bans", { token: tokens.mod! });
      assert.deepEqual(list.body.bans.map((b: { id: string }) => b.id), [
        nickBan.id,
        addressBan.id,
      ]);
      const carol = await client.session("carol");
      const joined = await client.join(carol.token, "lobby");
      assert.equal(joined.body.topic, "Be kind");
      const message = joined.body.history.find((e: { id: number }) => e.id === edited);
      assert.deepEqual([message.text, message.edited], ["typo", true]);
      assertApiError(await client.join(carol.token, dm), 403, "private_room");
      assert.deepEqual((await client.call("GET", "/api/rooms")).body.rooms, [
        { name: "lobby", members: 2 },
      ]);
      const again = await client.call("POST", "/api/dm", {
        token: tokens.bob!,
        body: { nick: "alice" },
      });
      assert.equal(again.body.room, dm);
      assert.equal(again.body.history.at(-1).text, "psst");
      const lifted = await client.call("DELETE", `/api/bans/${nickBan.id}`, {
        token: tokens.mod!,
      });
      assert.equal(lifted.status, 204);
    });

    await run(store, flags, async (client) => {
      const back = await client.call("POST", "/api/session", { body: { nick: "spammer" } });
      assert.equal(back.status, 201, "the lifted ban stays lifted");
      const byAddress = await client.call("POST", "/api/session", {
        body: { nick: "newcomer" },
        headers: { "x-forwarded-for": "10.9.9.9" },
      });
      assertApiError(byAddress, 403, "banned");
    });
  });
});
