/**
 * Chat requests pipelined on one connection take effect in the order they were sent (DESIGN.md,
 * "Requests pipelined on one connection take effect in the order they were sent"), and the same
 * requests racing on separate connections never store what the contract forbids.
 */
import assert from "node:assert/strict";
import { type ApiClient, withServer } from "../_server.ts";
import { parseAll, RawClient, utf8 } from "../http/_raw.ts";

/** One request as bytes: JSON body, bearer token. */
function request(method: string, path: string, token: string, body?: unknown): Uint8Array {
  const json = body === undefined ? "" : JSON.stringify(body);
  const head = `${method} ${path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${token}\r\n` +
    (json ? `Content-Type: application/json\r\n` : "") +
    `Content-Length: ${utf8(json).byteLength}\r\n\r\n`;
  return utf8(head + json);
}

/** Writes every request in one write and reads `requests.length` answers. */
async function pipeline(url: string, requests: Uint8Array[]): Promise<number[]> {
  const client = await RawClient.connect(Number(new URL(url).port));
  try {
    const all = new Uint8Array(requests.reduce((n, r) => n + r.byteLength, 0));
    let off = 0;
    for (const r of requests) {
      all.set(r, off);
      off += r.byteLength;
    }
    await client.send(all);
    const statuses: number[] = [];
    for (let i = 0; i < requests.length; i++) {
      statuses.push((await client.readResponse({ timeoutMs: 5000 })).status);
    }
    assert.equal(parseAll(client.buffered).length, 0, "no extra answers");
    return statuses;
  } finally {
    await client.close();
  }
}

async function historyOf(client: ApiClient, token: string, room: string): Promise<string[]> {
  const answer = await client.call("GET", `/api/rooms/${room}/history?limit=200`, { token });
  assert.equal(answer.status, 200);
  return answer.body.events.map((e: { type: string; nick: string; text?: string }) =>
    e.type === "message" ? `message:${e.text}` : `${e.type}:${e.nick}`
  );
}

Deno.test("three pipelined sends with one clientId answer 201, 200, 200 and store one message", async () => {
  await withServer({}, async (app, client) => {
    const alice = await client.session("alice");
    await client.join(alice.token, "r");
    const send = request("POST", "/api/rooms/r/messages", alice.token, {
      text: "once",
      clientId: "dup-1",
    });
    assert.deepEqual(await pipeline(app.url, [send, send, send]), [201, 200, 200]);
    assert.deepEqual(await historyOf(client, alice.token, "r"), ["join:alice", "message:once"]);
  });
});

Deno.test("three concurrent sends with one clientId on separate connections store one message", async () => {
  await withServer({}, async (_app, client) => {
    const alice = await client.session("alice");
    await client.join(alice.token, "r");
    const answers = await Promise.all(
      [1, 2, 3].map(() => client.send(alice.token, "r", "once", "dup-2")),
    );
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 200, 201]);
    const ids = new Set(answers.map((a) => a.body.event.id));
    assert.equal(ids.size, 1, "every answer carries the first event");
    assert.deepEqual(await historyOf(client, alice.token, "r"), ["join:alice", "message:once"]);
  });
});

Deno.test("a send pipelined before a leave is stored before the leave", async () => {
  await withServer({}, async (app, client) => {
    const { alice, bob } = await client.aliceAndBob(["r"]);
    const statuses = await pipeline(app.url, [
      request("POST", "/api/rooms/r/messages", alice.token, { text: "bye", clientId: "c-1" }),
      request("POST", "/api/rooms/r/leave", alice.token),
    ]);
    assert.deepEqual(statuses, [201, 204]);
    assert.deepEqual(await historyOf(client, bob.token, "r"), [
      "join:alice",
      "join:bob",
      "message:bye",
      "leave:alice",
    ]);
  });
});

Deno.test("a send pipelined before DELETE /api/session is stored before the session's leave", async () => {
  await withServer({}, async (app, client) => {
    const { alice, bob } = await client.aliceAndBob(["r"]);
    const statuses = await pipeline(app.url, [
      request("POST", "/api/rooms/r/messages", alice.token, { text: "bye", clientId: "c-1" }),
      request("DELETE", "/api/session", alice.token),
    ]);
    assert.deepEqual(statuses, [201, 204]);
    assert.deepEqual(await historyOf(client, bob.token, "r"), [
      "join:alice",
      "join:bob",
      "message:bye",
      "leave:alice",
    ]);
  });
});

Deno.test("a join pipelined before a leave takes effect first, and the session is no member", async () => {
  await withServer({}, async (app, client) => {
    const alice = await client.session("alice");
    const statuses = await pipeline(app.url, [
      request("POST", "/api/rooms/r/join", alice.token),
      request("POST", "/api/rooms/r/leave", alice.token),
    ]);
    assert.deepEqual(statuses, [200, 204]);
    const rooms = await client.call("GET", "/api/rooms");
    assert.deepEqual(rooms.body.rooms, [{ name: "r", members: 0 }]);
    const send = await client.send(alice.token, "r", "still here?");
    assert.equal(send.status, 403);
  });
});

Deno.test("a send pipelined after a join is accepted", async () => {
  await withServer({}, async (app, client) => {
    const alice = await client.session("alice");
    const statuses = await pipeline(app.url, [
      request("POST", "/api/rooms/r/join", alice.token),
      request("POST", "/api/rooms/r/messages", alice.token, { text: "hi" }),
    ]);
    assert.deepEqual(statuses, [200, 201]);
    assert.deepEqual(await historyOf(client, alice.token, "r"), ["join:alice", "message:hi"]);
  });
});
