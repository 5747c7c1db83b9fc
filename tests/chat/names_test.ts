/**
 * Nicks and room names are Unicode as people type them: letters with their combining marks are
 * accepted, NFC and NFD spellings are one name, uniqueness uses full case folding, and invisible
 * or direction-changing characters never make up a name or a whole message.
 */
import assert from "node:assert/strict";
import { withServer } from "../_server.ts";

const NFD_JOSE = "Jose\u0301";
const NFC_JOSE = "Jos\u00e9";

Deno.test("nicks with combining marks are accepted and answered in NFC", async () => {
  await withServer({}, async (_app, client) => {
    for (const nick of ["नमस्ते", "สวัสดี", NFD_JOSE, "Zoë"]) {
      const answer = await client.call("POST", "/api/session", { body: { nick } });
      assert.equal(answer.status, 201, `${nick}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.nick, nick.normalize("NFC"));
    }
  });
});

Deno.test("the NFC and NFD spellings of a nick are one nick", async () => {
  await withServer({}, async (_app, client) => {
    assert.equal(
      (await client.call("POST", "/api/session", { body: { nick: NFC_JOSE } })).status,
      201,
    );
    const again = await client.call("POST", "/api/session", { body: { nick: NFD_JOSE } });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, "nick_taken");
  });
});

Deno.test("nick uniqueness uses full case folding: final sigma, sharp s", async () => {
  await withServer({}, async (_app, client) => {
    assert.equal(
      (await client.call("POST", "/api/session", { body: { nick: "ΟΔΟΣ" } })).status,
      201,
    );
    for (const nick of ["οδοσ", "οδος", "Οδος"]) {
      const answer = await client.call("POST", "/api/session", { body: { nick } });
      assert.equal(answer.status, 409, `${nick} is ΟΔΟΣ`);
    }
    assert.equal(
      (await client.call("POST", "/api/session", { body: { nick: "Straße" } })).status,
      201,
    );
    const folded = await client.call("POST", "/api/session", { body: { nick: "STRASSE" } });
    assert.equal(folded.status, 409, "STRASSE is Straße");
  });
});

Deno.test("nick uniqueness uses full case folding: capital sharp s is ss, dotless i is not i", async () => {
  await withServer({}, async (_app, client) => {
    assert.equal(
      (await client.call("POST", "/api/session", { body: { nick: "straße" } })).status,
      201,
    );
    const capital = await client.call("POST", "/api/session", { body: { nick: "STRAẞE" } });
    assert.equal(capital.status, 409, "STRAẞE folds to strasse, as straße does");
    assert.equal(
      (await client.call("POST", "/api/session", { body: { nick: "ı" } })).status,
      201,
    );
    const dotted = await client.call("POST", "/api/session", { body: { nick: "i" } });
    assert.equal(dotted.status, 201, `i is not ı: ${JSON.stringify(dotted.body)}`);
    for (const nick of ["I", "ı"]) {
      const again = await client.call("POST", "/api/session", { body: { nick } });
      assert.equal(again.status, 409, `${nick} is taken`);
    }
  });
});

Deno.test("format and direction characters are refused in nicks and room names", async () => {
  await withServer({}, async (_app, client) => {
    for (const nick of ["al\u200bice", "al\u202eice", "\u200b", "bob\u2066", "a\u00ad"]) {
      const answer = await client.call("POST", "/api/session", { body: { nick } });
      assert.equal(answer.status, 422, JSON.stringify(nick));
      assert.equal(answer.body.error.code, "invalid_nick");
    }
    const alice = await client.session("alice");
    for (const room of ["lo\u200bbby", "lob\u202eby"]) {
      const answer = await client.join(alice.token, room);
      assert.equal(answer.status, 422, JSON.stringify(room));
      assert.equal(answer.body.error.code, "invalid_room");
    }
  });
});

Deno.test("rooms with combining marks are accepted, and NFC and NFD spellings are one room", async () => {
  await withServer({}, async (_app, client) => {
    const alice = await client.session("alice");
    const first = await client.join(alice.token, "café\u0301x".normalize("NFD"));
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const bob = await client.session("bob");
    const second = await client.join(bob.token, "café\u0301x".normalize("NFC"));
    assert.equal(second.status, 200);
    assert.equal(second.body.room, first.body.room);
    assert.equal(second.body.room, "café\u0301x".normalize("NFC"));
    assert.deepEqual(second.body.members, ["alice", "bob"]);
    const hindi = await client.join(alice.token, "नमस्ते");
    assert.equal(hindi.status, 200);
  });
});

Deno.test("a message of only invisible or direction characters is 422 invalid_message", async () => {
  await withServer({}, async (_app, client) => {
    const alice = await client.session("alice");
    await client.join(alice.token, "lobby");
    for (const text of ["\u200b", "\u202e", "\u200b\u200c\u200d\ufeff", " \u2060 ", "\u3164"]) {
      const answer = await client.send(alice.token, "lobby", text);
      assert.equal(answer.status, 422, JSON.stringify(text));
      assert.equal(answer.body.error.code, "invalid_message");
    }
    const mixed = await client.send(alice.token, "lobby", "hi\u200bthere");
    assert.equal(mixed.status, 201, "invisible characters inside text are the author's business");
  });
});

Deno.test("room names are told apart as written: Lobby and lobby are two rooms", async () => {
  await withServer({}, async (_app, client) => {
    const alice = await client.session("alice");
    const bob = await client.session("bob");
    assert.equal((await client.join(alice.token, "Lobby")).status, 200);
    const lower = await client.join(bob.token, "lobby");
    assert.equal(lower.status, 200);
    assert.equal(lower.body.room, "lobby");
    assert.deepEqual(lower.body.members, ["bob"]);
  });
});
