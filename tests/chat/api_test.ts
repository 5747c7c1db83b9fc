/**
 * The HTTP API contract of DESIGN.md, row by row, against a real server on a loopback port:
 * every endpoint, every status and error code, and the headers every API response carries.
 */
import assert from "node:assert/strict";
import type { App } from "../../lib/app.ts";
import {
  type ApiAnswer,
  type ApiClient,
  delay,
  parseMetrics,
  RawHttp,
  withServer,
} from "../_server.ts";

const JSON_TYPE = "application/json; charset=utf-8";
const UNKNOWN_TOKEN = "0123456789abcdef0123456789abcdef";

/** Registers a test that runs against a fresh server started with `flags`. */
function serverTest(
  name: string,
  flags: string[],
  fn: (app: App, client: ApiClient) => Promise<void>,
): void {
  Deno.test(name, () => withServer({ flags }, fn));
}

/** The headers every API response has (DESIGN.md, "HTTP API"). */
function assertApiHeaders(res: ApiAnswer): void {
  assert.equal(res.headers.get("content-type"), JSON_TYPE);
  assert.equal(res.headers.get("cache-control"), "no-store");
}

/** A success with `status` and the API headers. */
function assertOk(res: ApiAnswer, status: number): void {
  assert.equal(
    res.status,
    status,
    `expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`,
  );
  assertApiHeaders(res);
}

/** An error with `status`, the API headers and the body `{"error": {"code", "message"}}`. */
function assertError(res: ApiAnswer, status: number, code: string): void {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${JSON.stringify(res.body)}`);
  assertApiHeaders(res);
  assert.deepEqual(Object.keys(res.body), ["error"]);
  assert.deepEqual(Object.keys(res.body.error).sort(), ["code", "message"]);
  assert.equal(res.body.error.code, code);
  assert.equal(typeof res.body.error.message, "string");
  assert.ok(res.body.error.message.length > 0, "the error message is empty");
}

/** A JSON message body with `text` spliced in as raw JSON (for escapes JSON.stringify fixes). */
function rawTextBody(jsonString: string): string {
  return `{"text":${jsonString}}`;
}

function encode(...parts: (string | number[])[]): Uint8Array {
  const chunks = parts.map((p) =>
    typeof p === "string" ? new TextEncoder().encode(p) : new Uint8Array(p)
  );
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let off = 0;
  for (const chunk of chunks) {
    out.set(chunk, off);
    off += chunk.byteLength;
  }
  return out;
}

// ---- POST /api/session, DELETE /api/session ----

serverTest(
  "creating a session answers 201 with token, nick and a cursor at the present",
  [],
  async (_app, client) => {
    const first = await client.call("POST", "/api/session", { body: { nick: "alice" } });
    assertOk(first, 201);
    assert.deepEqual(Object.keys(first.body).sort(), ["cursor", "nick", "token"]);
    assert.match(first.body.token, /^[0-9a-f]{32}$/);
    assert.equal(first.body.nick, "alice");
    assert.equal(first.body.cursor, "0");

    await client.join(first.body.token, "lobby");
    const sent = await client.send(first.body.token, "lobby", "hello");
    const second = await client.call("POST", "/api/session", { body: { nick: "Bob.2-x_y" } });
    assertOk(second, 201);
    assert.equal(second.body.nick, "Bob.2-x_y");
    assert.equal(second.body.cursor, String(sent.body.event.id));
    assert.notEqual(second.body.token, first.body.token);
  },
);

serverTest("a session body that is not a JSON object is 400 bad_json", [], async (_app, client) => {
  const bodies: (string | Uint8Array)[] = [
    "",
    "{",
    "{nick: 'alice'}",
    "[]",
    '["alice"]',
    "42",
    "null",
    '"alice"',
    encode('{"nick":"al', [0xff, 0xfe], 'ice"}'),
  ];
  for (const body of bodies) {
    assertError(await client.call("POST", "/api/session", { body }), 400, "bad_json");
  }
  // Nothing was created: the nick is still free.
  assertOk(await client.call("POST", "/api/session", { body: { nick: "alice" } }), 201);
});

serverTest("an invalid nick is 422 invalid_nick", [], async (_app, client) => {
  const nicks: unknown[] = [
    undefined,
    "",
    42,
    null,
    ["alice"],
    "_alice",
    "-alice",
    ".alice",
    "al ice",
    "alice\u0000",
    "al/ice",
    "a".repeat(33),
  ];
  for (const nick of nicks) {
    assertError(await client.call("POST", "/api/session", { body: { nick } }), 422, "invalid_nick");
  }
  assertOk(await client.call("POST", "/api/session", { body: { nick: "a".repeat(32) } }), 201);
  assertOk(await client.call("POST", "/api/session", { body: { nick: "Zoë" } }), 201);
  assertOk(await client.call("POST", "/api/session", { body: { nick: "7" } }), 201);
});

serverTest(
  "a taken nick is 409 nick_taken, compared case-insensitively",
  [],
  async (_app, client) => {
    const alice = await client.session("alice");
    for (const nick of ["alice", "Alice", "ALICE"]) {
      assertError(await client.call("POST", "/api/session", { body: { nick } }), 409, "nick_taken");
    }
    // Concurrent requests for one nick: exactly one gets it.
    const racing = await Promise.all(
      ["Carol", "carol", "CAROL", "cArOl"].map((nick) =>
        client.call("POST", "/api/session", { body: { nick } })
      ),
    );
    assert.deepEqual(racing.map((r) => r.status).sort(), [201, 409, 409, 409]);
    // Ending the session frees the nick.
    assertOk(await client.call("DELETE", "/api/session", { token: alice.token }), 204);
    assertOk(await client.call("POST", "/api/session", { body: { nick: "ALICE" } }), 201);
  },
);

serverTest(
  "too many new sessions from one address are 429 rate_limited with Retry-After",
  ["--session-rate", "2/min"],
  async (_app, client) => {
    assertOk(await client.call("POST", "/api/session", { body: { nick: "a1" } }), 201);
    assertOk(await client.call("POST", "/api/session", { body: { nick: "a2" } }), 201);
    const limited = await client.call("POST", "/api/session", { body: { nick: "a3" } });
    assertError(limited, 429, "rate_limited");
    const retryAfter = limited.headers.get("retry-after");
    assert.match(retryAfter ?? "", /^\d+$/);
    // 2 per minute: the next token comes 30 s after the first was taken.
    assert.ok(Number(retryAfter) >= 29 && Number(retryAfter) <= 30, `Retry-After ${retryAfter}`);
    // A fresh connection is the same address: still limited.
    using raw = await RawHttp.connect(client.url);
    const body = '{"nick":"a4"}';
    await raw.send(
      `POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    const again = await raw.readResponse();
    assert.equal(again.status, 429);
    assert.match(again.headers.get("retry-after") ?? "", /^\d+$/);
  },
);

serverTest(
  "deleting a session answers 204, leaves every joined room and expires the token",
  [],
  async (_app, client) => {
    const alice = await client.session("alice");
    const bob = await client.session("bob");
    for (const room of ["lobby", "dev"]) {
      await client.join(alice.token, room);
      await client.join(bob.token, room);
    }
    const before = await client.poll(bob.token, null, 0);
    const deleted = await client.call("DELETE", "/api/session", { token: alice.token });
    assertOk(deleted, 204);
    assert.equal(deleted.body, null);

    const seen = await client.poll(bob.token, before.body.cursor, 5);
    const leaves = seen.body.events.map((e: { type: string; room: string; nick: string }) =>
      `${e.type} ${e.room} ${e.nick}`
    ).sort();
    assert.deepEqual(leaves, ["leave dev alice", "leave lobby alice"]);

    assertError(await client.join(alice.token, "lobby"), 401, "unauthorized");
    assertError(
      await client.call("DELETE", "/api/session", { token: alice.token }),
      401,
      "unauthorized",
    );
    const rooms = await client.call("GET", "/api/rooms");
    assert.deepEqual(rooms.body.rooms, [{ name: "dev", members: 1 }, {
      name: "lobby",
      members: 1,
    }]);
  },
);

serverTest(
  "calls without a token or with a bad one are 401 unauthorized",
  [],
  async (_app, client) => {
    const alice = await client.session("alice");
    await client.join(alice.token, "lobby");
    const calls: [string, string, unknown][] = [
      ["DELETE", "/api/session", undefined],
      ["POST", "/api/rooms/lobby/join", undefined],
      ["POST", "/api/rooms/lobby/leave", undefined],
      ["POST", "/api/rooms/lobby/messages", { text: "hi" }],
      ["GET", "/api/rooms/lobby/history", undefined],
      ["GET", "/api/events?wait=0", undefined],
    ];
    const authorizations = [
      undefined,
      `Bearer ${UNKNOWN_TOKEN}`,
      "Bearer not-a-token",
      "Bearer",
      `Basic ${btoa("alice:secret")}`,
      alice.token,
    ];
    for (const [method, path, body] of calls) {
      for (const authorization of authorizations) {
        const res = await client.call(method, path, {
          body,
          headers: authorization === undefined ? {} : { authorization },
        });
        assertError(res, 401, "unauthorized");
      }
    }
    // The real token still works, and nothing above changed anything.
    const history = await client.call("GET", "/api/rooms/lobby/history", { token: alice.token });
    assertOk(history, 200);
    assert.deepEqual(history.body.events.map((e: { type: string }) => e.type), ["join"]);
  },
);

serverTest(
  "the Bearer scheme is matched in any case, and the token in either case of its hex",
  [],
  async (_app, client) => {
    const alice = await client.session("alice");
    await client.join(alice.token, "lobby");
    for (const scheme of ["bearer", "BEARER", "bEaReR"]) {
      for (const token of [alice.token, alice.token.toUpperCase()]) {
        const res = await client.call("GET", "/api/rooms/lobby/history", {
          headers: { authorization: `${scheme} ${token}` },
        });
        assertOk(res, 200);
      }
    }
  },
);

// ---- rooms ----

serverTest(
  "listing rooms answers every room by name with its member count",
  [],
  async (_app, client) => {
    const empty = await client.call("GET", "/api/rooms");
    assertOk(empty, 200);
    assert.deepEqual(empty.body, { rooms: [] });
    const alice = await client.session("alice");
    const bob = await client.session("bob");
    await client.join(alice.token, "lobby");
    await client.join(bob.token, "lobby");
    await client.join(bob.token, "dev");
    const rooms = await client.call("GET", "/api/rooms");
    assertOk(rooms, 200);
    assert.deepEqual(rooms.body, {
      rooms: [{ name: "dev", members: 1 }, { name: "lobby", members: 2 }],
    });
  },
);

serverTest(
  "joining answers the room, its members and earlier history, and creates the room",
  [],
  async (_app, client) => {
    const alice = await client.session("alice");
    const first = await client.join(alice.token, "lobby");
    assertOk(first, 200);
    assert.deepEqual(first.body, {
      room: "lobby",
      members: ["alice"],
      memberCount: 1,
      history: [],
    });
    await client.send(alice.token, "lobby", "one");
    await client.send(alice.token, "lobby", "two", "c-2");

    const bob = await client.session("bob");
    const joined = await client.join(bob.token, "lobby");
    assertOk(joined, 200);
    assert.deepEqual(Object.keys(joined.body).sort(), [
      "history",
      "memberCount",
      "members",
      "room",
    ]);
    assert.equal(joined.body.memberCount, 2);
    assert.equal(joined.body.room, "lobby");
    assert.deepEqual(joined.body.members, ["alice", "bob"]);
    const history = joined.body.history;
    assert.deepEqual(
      history.map((e: { type: string; nick: string; text?: string }) => [e.type, e.nick, e.text]),
      [["join", "alice", undefined], ["message", "alice", "one"], ["message", "alice", "two"]],
    );
    for (const event of history) {
      assert.equal(event.room, "lobby");
      assert.equal(typeof event.id, "number");
      assert.equal(typeof event.ts, "number");
      assert.equal("session" in event, false, "events never carry the author's session id");
    }
    assert.equal(history[2].clientId, "c-2");

    // Joining again (a reloaded page) adds no event and answers the latest history, own join included.
    const cursor = (await client.poll(bob.token, null, 0)).body.cursor;
    const again = await client.join(bob.token, "lobby");
    assertOk(again, 200);
    assert.equal(again.body.room, "lobby");
    assert.deepEqual(again.body.members, ["alice", "bob"]);
    assert.deepEqual(again.body.history.slice(0, 3), history);
    assert.deepEqual(
      again.body.history.slice(3).map((e: { type: string; nick: string }) => [e.type, e.nick]),
      [["join", "bob"]],
    );
    assert.deepEqual((await client.poll(bob.token, cursor, 0)).body.events, []);

    // Names are case-sensitive and any letters work: this is a new room.
    assertOk(await client.join(bob.token, "Café_2.0-x"), 200);
    const rooms = (await client.call("GET", "/api/rooms")).body.rooms;
    assert.deepEqual(rooms.map((r: { name: string }) => r.name), ["Café_2.0-x", "lobby"]);
  },
);

serverTest("an invalid room name is 422 invalid_room", [], async (_app, client) => {
  const alice = await client.session("alice");
  for (
    const room of ["_lobby", ".lobby", "-lobby", "lob by", "lob/by", "lob\u0000by", "a".repeat(65)]
  ) {
    assertError(await client.join(alice.token, room), 422, "invalid_room");
  }
  assertError(
    await client.call("POST", "/api/rooms/%ZZ/join", { token: alice.token }),
    400,
    "bad_request",
  );
  assertOk(await client.join(alice.token, "a".repeat(64)), 200);
  assert.deepEqual((await client.call("GET", "/api/rooms")).body.rooms, [{
    name: "a".repeat(64),
    members: 1,
  }]);
});

serverTest(
  "leaving answers 204 and a room not joined is 404 not_member",
  [],
  async (_app, client) => {
    const { alice, bob, cursor } = await client.aliceAndBob();

    const left = await client.call("POST", "/api/rooms/lobby/leave", { token: alice.token });
    assertOk(left, 204);
    assert.equal(left.body, null);
    const seen = await client.poll(bob.token, cursor, 5);
    assert.deepEqual(
      seen.body.events.map((e: { type: string; nick: string }) => [e.type, e.nick]),
      [["leave", "alice"]],
    );

    assertError(
      await client.call("POST", "/api/rooms/lobby/leave", { token: alice.token }),
      404,
      "not_member",
    );
    assertError(
      await client.call("POST", "/api/rooms/nowhere/leave", { token: alice.token }),
      404,
      "not_member",
    );
    // Once out, the room refuses her messages.
    assertError(await client.send(alice.token, "lobby", "still here?"), 403, "not_member");
  },
);

// ---- messages ----

serverTest("sending a message answers 201 with the event", [], async (_app, client) => {
  const alice = await client.session("alice");
  const joined = await client.join(alice.token, "lobby");
  assertOk(joined, 200);
  const before = Date.now();
  const sent = await client.send(alice.token, "lobby", "hello, world ✓");
  assertOk(sent, 201);
  assert.deepEqual(Object.keys(sent.body), ["event"]);
  const { id, ts, ...rest } = sent.body.event;
  assert.deepEqual(rest, { type: "message", room: "lobby", nick: "alice", text: "hello, world ✓" });
  assert.equal(typeof id, "number");
  assert.ok(ts >= before - 1000 && ts <= Date.now() + 1000, `ts ${ts} is not now`);

  const withId = await client.send(
    alice.token,
    "lobby",
    "again",
    "7c9e6679-7425-40de-944b-e07fc1f90ae7",
  );
  assertOk(withId, 201);
  assert.equal(withId.body.event.clientId, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
  assert.ok(withId.body.event.id > id, "ids increase");
});

serverTest("sending to a room not joined is 403 not_member", [], async (_app, client) => {
  const alice = await client.session("alice");
  const bob = await client.session("bob");
  await client.join(bob.token, "lobby");
  assertError(await client.send(alice.token, "lobby", "hi"), 403, "not_member");
  assertError(await client.send(alice.token, "nowhere", "hi"), 403, "not_member");
  const history = await client.call("GET", "/api/rooms/lobby/history", { token: bob.token });
  assert.deepEqual(history.body.events.map((e: { type: string }) => e.type), ["join"]);
});

serverTest(
  "message text that is empty, too long or not text is 422 invalid_message",
  ["--max-message", "10"],
  async (_app, client) => {
    const alice = await client.session("alice");
    await client.join(alice.token, "lobby");
    const bodies: unknown[] = [
      {},
      { text: "" },
      { text: "   \n\t  " },
      { text: "\u3000\u00a0" },
      { text: "a".repeat(11) },
      { text: "😀".repeat(11) },
      { text: 42 },
      { text: null },
      { text: ["hi"] },
      { text: { hi: 1 } },
      { text: "bell\u0007" },
      rawTextBody('"\\ud800"'),
      rawTextBody('"x\\udc00y"'),
      { text: "hi", clientId: 5 },
      { text: "hi", clientId: "" },
      { text: "hi", clientId: "has space" },
      { text: "hi", clientId: "x".repeat(65) },
    ];
    for (const body of bodies) {
      const res = await client.call("POST", "/api/rooms/lobby/messages", {
        token: alice.token,
        body,
      });
      assertError(res, 422, "invalid_message");
    }
    // The limit counts characters, not UTF-16 code units; a valid escape pair is fine.
    assertOk(await client.send(alice.token, "lobby", "a".repeat(10)), 201);
    assertOk(await client.send(alice.token, "lobby", "😀".repeat(10)), 201);
    const pair = await client.call("POST", "/api/rooms/lobby/messages", {
      token: alice.token,
      body: rawTextBody('"\\ud83d\\ude00"'),
    });
    assertOk(pair, 201);
    assert.equal(pair.body.event.text, "😀");
    const history = await client.call("GET", "/api/rooms/lobby/history", { token: alice.token });
    assert.equal(
      history.body.events.length,
      4,
      "only the join and the three valid messages were stored",
    );
  },
);

serverTest("message bytes that are not UTF-8 are 422 invalid_message", [], async (_app, client) => {
  const alice = await client.session("alice");
  await client.join(alice.token, "lobby");
  const bodies = [
    encode('{"text":"', [0xff, 0xfe], '"}'),
    encode('{"text":"caf', [0xc3], '"}'), // truncated sequence
    encode('{"text":"', [0xc0, 0xaf], '"}'), // overlong "/"
    encode('{"text":"', [0xed, 0xa0, 0x80], '"}'), // an encoded surrogate
  ];
  for (const body of bodies) {
    const res = await client.call("POST", "/api/rooms/lobby/messages", {
      token: alice.token,
      body,
    });
    assertError(res, 422, "invalid_message");
  }
  // Valid multi-byte UTF-8 in the same place is fine.
  const ok = await client.call("POST", "/api/rooms/lobby/messages", {
    token: alice.token,
    body: encode('{"text":"caf', [0xc3, 0xa9], '"}'),
  });
  assertOk(ok, 201);
  assert.equal(ok.body.event.text, "café");
  // A real U+FFFD is text like any other; invalid bytes beside one are still refused.
  const replacement = await client.call("POST", "/api/rooms/lobby/messages", {
    token: alice.token,
    body: encode('{"text":"a', [0xef, 0xbf, 0xbd], 'b"}'),
  });
  assertOk(replacement, 201);
  assert.equal(replacement.body.event.text, "a\uFFFDb");
  const mixed = await client.call("POST", "/api/rooms/lobby/messages", {
    token: alice.token,
    body: encode('{"text":"', [0xef, 0xbf, 0xbd, 0xff], '"}'),
  });
  assertError(mixed, 422, "invalid_message");
  // A byte order mark before the JSON is dropped, as UTF-8 decoding does.
  const bom = await client.call("POST", "/api/rooms/lobby/messages", {
    token: alice.token,
    body: encode("", [0xef, 0xbb, 0xbf], '{"text":"after a BOM"}'),
  });
  assertOk(bom, 201);
  assert.equal(bom.body.event.text, "after a BOM");
});

serverTest("a message body that is not a JSON object is 400 bad_json", [], async (_app, client) => {
  const alice = await client.session("alice");
  await client.join(alice.token, "lobby");
  for (const body of ["{", "[]", '"hi"', "null"]) {
    const res = await client.call("POST", "/api/rooms/lobby/messages", {
      token: alice.token,
      body,
    });
    assertError(res, 400, "bad_json");
  }
});

/** A message request whose body is `size` bytes. */
function bigMessageRequest(token: string, size: number): string {
  const text = "x".repeat(size - '{"text":""}'.length);
  return `POST /api/rooms/lobby/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${size}\r\n\r\n{"text":"${text}"}`;
}

serverTest(
  "a body over --max-body is 413, the connection keeps working, and nothing is stored",
  ["--max-body", "100", "--max-message", "1000"],
  async (_app, client) => {
    const alice = await client.session("alice");
    await client.join(alice.token, "lobby");
    {
      using raw = await RawHttp.connect(client.url);
      await raw.send(bigMessageRequest(alice.token, 100));
      assert.equal((await raw.readResponse()).status, 201, "a body of exactly --max-body is fine");
      await raw.send(bigMessageRequest(alice.token, 101));
      const res = await raw.readResponse();
      assert.equal(res.status, 413);
      assert.equal(res.headers.get("content-type"), JSON_TYPE);
      assert.equal(res.headers.get("cache-control"), "no-store");
      assert.equal(res.headers.get("connection"), undefined);
      const body = JSON.parse(res.text);
      assert.deepEqual(Object.keys(body.error).sort(), ["code", "message"]);
      // DESIGN.md: over a limit, the connection keeps working (the refused body was skipped).
      await raw.send(bigMessageRequest(alice.token, 99));
      assert.equal((await raw.readResponse()).status, 201, "the next request on it is served");
    }
    // Everyone else keeps working, and only the message within the limit was stored.
    const history = await client.call("GET", "/api/rooms/lobby/history", { token: alice.token });
    assertOk(history, 200);
    assert.deepEqual(history.body.events.map((e: { type: string }) => e.type), [
      "join",
      "message",
      "message",
    ]);
  },
);

Deno.test({
  name: "a body over --max-body has the contract's error code too_large",
  fn: () =>
    withServer({ flags: ["--max-body", "100"] }, async (_app, client) => {
      const alice = await client.session("alice");
      await client.join(alice.token, "lobby");
      const res = await client.call("POST", "/api/rooms/lobby/messages", {
        token: alice.token,
        body: { text: "x".repeat(200) },
      });
      assertError(res, 413, "too_large");
    }),
});

serverTest(
  "sending too fast is 429 rate_limited with Retry-After, and repeats do not count",
  ["--send-rate", "2/s"],
  async (_app, client) => {
    const alice = await client.session("alice");
    const bob = await client.session("bob");
    await client.join(alice.token, "lobby");
    await client.join(bob.token, "lobby");
    const first = await client.send(alice.token, "lobby", "one", "c-1");
    assertOk(first, 201);
    assertOk(await client.send(alice.token, "lobby", "two"), 201);
    const limited = await client.send(alice.token, "lobby", "three");
    assertError(limited, 429, "rate_limited");
    const retryAfter = limited.headers.get("retry-after");
    assert.match(retryAfter ?? "", /^\d+$/);
    assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= 2, `Retry-After ${retryAfter}`);
    // A repeat of an accepted send still answers its event: it stores nothing, so it costs nothing.
    const repeat = await client.send(alice.token, "lobby", "one", "c-1");
    assertOk(repeat, 200);
    assert.deepEqual(repeat.body.event, first.body.event);
    // The limit is per session.
    assertOk(await client.send(bob.token, "lobby", "bob's turn"), 201);
  },
);

serverTest(
  "a repeated clientId answers 200 with the first event and stores nothing",
  [],
  async (_app, client) => {
    const { alice, bob, cursor } = await client.aliceAndBob();

    const first = await client.send(alice.token, "lobby", "hello", "msg-1");
    assertOk(first, 201);
    const second = await client.send(alice.token, "lobby", "hello", "msg-1");
    assertOk(second, 200);
    assert.deepEqual(second.body, first.body);
    // Even with other text: the first event is the answer.
    assert.deepEqual(
      (await client.send(alice.token, "lobby", "changed", "msg-1")).body,
      first.body,
    );
    // Retries racing each other store one event.
    const racing = await Promise.all(
      [1, 2, 3].map(() => client.send(alice.token, "lobby", "race", "msg-2")),
    );
    assert.deepEqual(racing.map((r) => r.status).sort(), [200, 200, 201]);
    assert.equal(new Set(racing.map((r) => r.body.event.id)).size, 1);
    // Client ids are per session: bob's msg-1 is his own message.
    const bobs = await client.send(bob.token, "lobby", "mine", "msg-1");
    assertOk(bobs, 201);
    assert.notEqual(bobs.body.event.id, first.body.event.id);

    const seen = await client.poll(bob.token, cursor, 0);
    assert.deepEqual(
      seen.body.events.map((
        e: { nick: string; text: string; clientId: string },
      ) => [e.nick, e.text, e.clientId]),
      [["alice", "hello", "msg-1"], ["alice", "race", "msg-2"], ["bob", "mine", "msg-1"]],
    );
  },
);

// ---- history ----

serverTest(
  "history answers older events oldest first, with before and limit",
  [],
  async (_app, client) => {
    const alice = await client.session("alice");
    await client.join(alice.token, "lobby");
    const ids: number[] = [];
    for (let i = 1; i <= 60; i++) {
      ids.push(
        (await client.send(alice.token, "lobby", `m${i}`)).body.event.id,
      );
    }
    const texts = (res: ApiAnswer) =>
      res.body.events.map((e: { text?: string }) => e.text ?? "join");
    const history = (query: string) =>
      client.call("GET", `/api/rooms/lobby/history${query}`, { token: alice.token });

    const latest = await history("");
    assertOk(latest, 200);
    assert.deepEqual(Object.keys(latest.body), ["events"]);
    assert.deepEqual(
      texts(latest),
      ids.slice(10).map((_, i) => `m${i + 11}`),
      "default limit is 50",
    );
    assert.deepEqual(texts(await history("?limit=2")), ["m59", "m60"]);
    assert.deepEqual(texts(await history(`?before=${ids[3]}&limit=2`)), ["m2", "m3"]);
    assert.deepEqual(texts(await history(`?before=${ids[1]}`)), ["join", "m1"]);
    assert.deepEqual(texts(await history(`?before=${ids[0]}`)), ["join"]);
    assert.deepEqual(texts(await history("?before=1")), []);
    assert.equal((await history("?limit=200")).body.events.length, 61);
    assert.equal((await history("?limit=1")).body.events.length, 1);
    for (const event of latest.body.events) assert.equal("session" in event, false);
  },
);

serverTest("history with a bad limit or before is 400 bad_request", [], async (_app, client) => {
  const alice = await client.session("alice");
  await client.join(alice.token, "lobby");
  for (
    const query of [
      "limit=0",
      "limit=201",
      "limit=x",
      "limit=-1",
      "limit=1.5",
      "limit=",
      "before=x",
      "before=0",
    ]
  ) {
    const res = await client.call("GET", `/api/rooms/lobby/history?${query}`, {
      token: alice.token,
    });
    assertError(res, 400, "bad_request");
  }
});

serverTest("history of a room not joined is 403 not_member", [], async (_app, client) => {
  const alice = await client.session("alice");
  const bob = await client.session("bob");
  await client.join(bob.token, "lobby");
  assertError(
    await client.call("GET", "/api/rooms/lobby/history", { token: alice.token }),
    403,
    "not_member",
  );
  assertError(
    await client.call("GET", "/api/rooms/nowhere/history", { token: alice.token }),
    403,
    "not_member",
  );
});

// ---- events ----

serverTest(
  "a cursor that is not one the server gave is 400 invalid_cursor",
  [],
  async (_app, client) => {
    const alice = await client.session("alice");
    await client.join(alice.token, "lobby");
    const sent = await client.send(alice.token, "lobby", "hi");
    const last = sent.body.event.id;
    for (
      const cursor of [
        "abc",
        "-1",
        "1.5",
        "",
        " 1",
        "0x1",
        String(last + 1),
        "99999999999",
        "1".repeat(40),
      ]
    ) {
      const res = await client.call(
        "GET",
        `/api/events?wait=0&cursor=${encodeURIComponent(cursor)}`,
        {
          token: alice.token,
        },
      );
      assertError(res, 400, "invalid_cursor");
    }
    assertOk(await client.poll(alice.token, String(last), 0), 200);
  },
);

serverTest("wait that is not a number is 400 bad_request", [], async (_app, client) => {
  const alice = await client.session("alice");
  const notNumbers = ["x", "ten", "5s", "", "NaN", "Infinity", "-Infinity", "0x10", "1_000"];
  // `%20` is a space, `%2E` a dot: whitespace around a number and a lone dot are no numbers.
  notNumbers.push("%205", "5%20", "%2E", "1e", "e5", "1..2", "1.2.3", "--1");
  for (const wait of notNumbers) {
    const res = await client.call("GET", `/api/events?wait=${wait}`, { token: alice.token });
    assertError(res, 400, "bad_request");
  }
});

serverTest("a negative wait is 400 bad_request saying the range", [], async (_app, client) => {
  const alice = await client.session("alice");
  for (const wait of ["-1", "-0.5", "-1e3", "-1234567890"]) {
    const res = await client.call("GET", `/api/events?wait=${wait}`, { token: alice.token });
    assertError(res, 400, "bad_request");
    assert.match(res.body.error.message, /0 to 60/);
  }
});

serverTest(
  "wait is a number of any length: short ones answer, long ones above 60 wait as 60",
  [],
  async (_app, client) => {
    const alice = await client.session("alice");
    await client.join(alice.token, "lobby");
    const poll = (wait: string, signal?: AbortSignal) =>
      client.call("GET", `/api/events?wait=${wait}`, {
        token: alice.token,
        ...(signal ? { signal } : {}),
      });
    for (const wait of ["0.0000001", "0.1234567", "1e-9", "0E0", "0".repeat(30), ".5e-3"]) {
      const res = await poll(wait);
      assertOk(res, 200);
      assert.deepEqual(res.body.events, [], `wait=${wait}`);
    }
    for (const wait of ["1234567890", "9".repeat(40), "1e1", "1e400", "61.1234567"]) {
      const abort = new AbortController();
      let settled = false;
      const waiting = poll(wait, abort.signal).finally(() => settled = true);
      await client.untilMetric("parley_waiting_polls", 1);
      await delay(200);
      assert.equal(settled, false, `a poll with wait=${wait} answered at once`);
      abort.abort();
      await assert.rejects(waiting, (error: Error) => error.name === "AbortError");
      await client.untilMetric("parley_waiting_polls", 0);
    }
  },
);

serverTest(
  "wait above 60 is taken as 60: the poll waits instead of failing",
  [],
  async (_app, client) => {
    const alice = await client.session("alice");
    await client.join(alice.token, "lobby");
    const abort = new AbortController();
    let settled = false;
    const poll = client.poll(alice.token, null, 999, abort.signal).finally(() => settled = true);
    await client.untilMetric("parley_waiting_polls", 1);
    await delay(200);
    assert.equal(settled, false, "a poll with wait=999 answered at once");
    abort.abort();
    await assert.rejects(poll, (error: Error) => error.name === "AbortError");
    await client.untilMetric("parley_waiting_polls", 0);
  },
);

// ---- /healthz, /metrics, static files ----

serverTest("the health check answers 200 ok", [], async (_app, client) => {
  const res = await client.call("GET", "/healthz");
  assertOk(res, 200);
  assert.deepEqual(res.body, { status: "ok" });
});

serverTest("the health check answers 503 while the server shuts down", [], async (app, client) => {
  using raw = await RawHttp.connect(client.url);
  // The body comes after shutdown began: the 100 Continue proves the server holds the request.
  await raw.send(
    "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
  );
  assert.equal((await raw.readResponse()).status, 100);
  const stopping = app.shutdown(2000);
  await raw.send("{}");
  const res = await raw.readResponse();
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("content-type"), JSON_TYPE);
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.equal(res.headers.get("connection"), "close");
  assert.equal(JSON.parse(res.text).error.code, "shutting_down");
  assert.ok(await raw.closedByServer());
  raw.close();
  await stopping;
});

serverTest("metrics have every required series with HELP and TYPE", [], async (_app, client) => {
  const { alice, bob, cursor } = await client.aliceAndBob();
  await client.send(alice.token, "lobby", "hi");
  await client.poll(bob.token, cursor, 0);
  await client.call("GET", "/nothing-here");

  const res = await client.raw("/metrics");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  const required: [string, string][] = [
    ["parley_connections", "gauge"],
    ["parley_waiting_polls", "gauge"],
    ["parley_sessions", "gauge"],
    ["parley_rooms", "gauge"],
    ["parley_events_total", "counter"],
    ["parley_events_delivered_total", "counter"],
    ["parley_http_requests_total", "counter"],
    ["parley_store_errors_total", "counter"],
    ["parley_store_healthy", "gauge"],
    ["parley_write_timeouts_total", "counter"],
  ];
  const lines = res.text.split("\n");
  for (const [name, type] of required) {
    assert.ok(
      lines.some((l) => l.startsWith(`# HELP ${name} `) && l.length > `# HELP ${name} `.length),
      `HELP of ${name}`,
    );
    assert.ok(lines.includes(`# TYPE ${name} ${type}`), `TYPE of ${name}`);
  }
  const m = parseMetrics(res.text);
  for (const value of m.values()) assert.ok(Number.isFinite(value));
  assert.ok(m.get("parley_connections")! >= 1);
  assert.equal(m.get("parley_waiting_polls"), 0);
  assert.equal(m.get("parley_sessions"), 2);
  assert.equal(m.get("parley_rooms"), 1);
  assert.equal(m.get("parley_events_total"), 3);
  assert.equal(m.get("parley_events_delivered_total"), 1);
  assert.equal(m.get("parley_store_errors_total"), 0);
  assert.equal(m.get("parley_store_healthy"), 1);
  assert.equal(m.get("parley_write_timeouts_total"), 0);
  for (const cls of ["2xx", "3xx", "4xx", "5xx"]) {
    assert.ok(m.has(`parley_http_requests_total{class="${cls}"}`), `class ${cls}`);
  }
  assert.equal(m.get('parley_http_requests_total{class="2xx"}'), 7);
  assert.equal(m.get('parley_http_requests_total{class="4xx"}'), 1);
  assert.equal(m.get('parley_http_requests_total{class="5xx"}'), 0);
});

serverTest(
  "the page at / has an ETag and answers 304 to If-None-Match",
  [],
  async (_app, client) => {
    const page = await client.raw("/", { "accept-encoding": "identity" });
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.equal(page.headers.get("content-encoding"), null);
    assert.match(page.text, /<html/i);
    const etag = page.headers.get("etag");
    assert.match(etag ?? "", /^"[^"]+"$/);
    assert.equal(Number(page.headers.get("content-length")), page.bytes.byteLength);

    const cached = await client.raw("/", { "accept-encoding": "identity", "if-none-match": etag! });
    assert.equal(cached.status, 304);
    assert.equal(cached.bytes.byteLength, 0);
    assert.equal(cached.headers.get("etag"), etag);
    const stale = await client.raw("/", {
      "accept-encoding": "identity",
      "if-none-match": '"stale"',
    });
    assert.equal(stale.status, 200);
    assert.equal(stale.text, page.text);
    assert.equal((await client.raw("/no-such-file.js")).status, 404);
  },
);

serverTest("the page is gzipped when the client accepts gzip", [], async (_app, client) => {
  const plain = await client.raw("/", { "accept-encoding": "identity" });
  using raw = await RawHttp.connect(client.url);
  await raw.send("GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, deflate\r\n\r\n");
  const zipped = await raw.readResponse();
  assert.equal(zipped.status, 200);
  assert.equal(zipped.headers.get("content-encoding"), "gzip");
  assert.match(zipped.headers.get("vary") ?? "", /accept-encoding/i);
  assert.deepEqual([...zipped.body.subarray(0, 2)], [0x1f, 0x8b], "gzip magic bytes");
  assert.ok(zipped.body.byteLength < plain.bytes.byteLength);
  const unzipped = await new Response(
    new Blob([zipped.body as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
      new DecompressionStream("gzip"),
    ),
  ).text();
  assert.equal(unzipped, plain.text);
  const etag = zipped.headers.get("etag")!;
  assert.notEqual(etag, plain.headers.get("etag"), "each representation has its own ETag");

  await raw.send(
    `GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nIf-None-Match: ${etag}\r\n\r\n`,
  );
  const cached = await raw.readResponse();
  assert.equal(cached.status, 304);
  assert.equal(cached.body.byteLength, 0);
});

serverTest("an unknown path is 404 not_found with the error body", [], async (_app, client) => {
  assertError(await client.call("GET", "/api/nothing"), 404, "not_found");
  assertError(await client.call("GET", "/api/rooms/lobby"), 404, "not_found");
});

serverTest(
  "a join answers at most 100 members and the members endpoint pages through the rest in nick order",
  [],
  async (_app, client) => {
    const nicks: string[] = [];
    let last = "";
    for (let i = 0; i < 150; i++) {
      const nick = `m${String(i).padStart(3, "0")}`;
      nicks.push(nick);
      const { token } = await client.session(nick);
      const joined = await client.join(token, "big");
      assertOk(joined, 200);
      last = token;
      assert.equal(joined.body.memberCount, i + 1);
      assert.deepEqual(joined.body.members, nicks.slice(0, 100));
    }
    const page1 = await client.call("GET", "/api/rooms/big/members?limit=60", { token: last });
    assertOk(page1, 200);
    assert.deepEqual(page1.body, { members: nicks.slice(0, 60), next: "m059" });
    const page2 = await client.call("GET", "/api/rooms/big/members?after=m059&limit=60", {
      token: last,
    });
    assert.deepEqual(page2.body, { members: nicks.slice(60, 120), next: "m119" });
    const page3 = await client.call("GET", "/api/rooms/big/members?after=m119&limit=60", {
      token: last,
    });
    assert.deepEqual(page3.body, { members: nicks.slice(120) }, "the last page has no next");
    const defaults = await client.call("GET", "/api/rooms/big/members", { token: last });
    assert.deepEqual(defaults.body, { members: nicks.slice(0, 100), next: "m099" });
  },
);

serverTest(
  "the members endpoint needs membership and a limit from 1 to 500",
  [],
  async (_app, client) => {
    const { alice, bob } = await client.aliceAndBob();
    const outsider = await client.session("carol");
    const refused = await client.call("GET", "/api/rooms/lobby/members", {
      token: outsider.token,
    });
    assertError(refused, 403, "not_member");
    for (const bad of ["0", "501", "x", "-1"]) {
      const answer = await client.call("GET", `/api/rooms/lobby/members?limit=${bad}`, {
        token: alice.token,
      });
      assertError(answer, 400, "bad_request");
    }
    const all = await client.call("GET", "/api/rooms/lobby/members?limit=500", {
      token: bob.token,
    });
    assert.deepEqual(all.body, { members: ["alice", "bob"] });
    const unauthorized = await client.call("GET", "/api/rooms/lobby/members");
    assertError(unauthorized, 401, "unauthorized");
  },
);
