import assert from "node:assert/strict";
import { type NewEvent, StorageError } from "../../lib/storage/event_log.ts";
import { VolatileEventLog } from "../../lib/storage/volatile_event_log.ts";

const message = (text: string): NewEvent => ({
  type: "message",
  room: "lobby",
  nick: "alice",
  text,
  ts: 1,
  session: "s",
});

Deno.test("the volatile log gives consecutive ids in call order and keeps nothing", async () => {
  const log = new VolatileEventLog();
  const [a, b] = await Promise.all([log.append([message("a")]), log.append([message("b")])]);
  assert.deepEqual(a, [{ id: 1, ...message("a") }]);
  assert.deepEqual(b!.map((e) => e.id), [2]);
  assert.deepEqual(await log.commit({ events: [message("c"), message("d")], deleteRooms: ["x"] }), [
    { id: 3, ...message("c") },
    { id: 4, ...message("d") },
  ]);
  await log.putSession({
    id: "s",
    token: "t",
    nick: "alice",
    createdAt: 1,
    address: "",
    moderator: false,
    rooms: {},
  });
  assert.deepEqual(await log.load(), { lastId: 4, rooms: [], sessions: [], sends: {}, bans: [] });
  assert.equal(await log.close(), 0);
  await assert.rejects(log.append([message("e")]), StorageError);
});
