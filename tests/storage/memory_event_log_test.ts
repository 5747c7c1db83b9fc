import assert from "node:assert/strict";
import { MemoryEventLog } from "../../lib/storage/memory_event_log.ts";
import { runEventLogContract } from "./event_log_contract.ts";

runEventLogContract("memory log", (history) => {
  const log = new MemoryEventLog({ history });
  // Nothing outlives the instance, so "the same log after a restart" is the instance itself.
  return { log, reopen: () => Promise.resolve(log) };
});

Deno.test("memory log rejects a negative or fractional history", () => {
  assert.throws(() => new MemoryEventLog({ history: -1 }), RangeError);
  assert.throws(() => new MemoryEventLog({ history: 1.5 }), RangeError);
});

Deno.test("memory log keeps retention bounded over many appends to one room", async () => {
  const log = new MemoryEventLog({ history: 100 });
  for (let i = 0; i < 10_000; i++) {
    await log.append([{
      type: "message",
      room: "r",
      nick: "n",
      text: `${i}`,
      ts: i,
      session: "s",
    }]);
  }
  const [room] = (await log.load()).rooms;
  assert.equal(room?.events.length, 100);
  assert.equal(room?.events[0]?.text, "9900");
  assert.equal(room?.droppedThrough, 9900);
  await log.close();
});
