import assert from "node:assert/strict";
import { type Selectable, Selector } from "../../lib/net/selector.ts";

class Fake implements Selectable {
  handled = 0;
  constructor(readonly name: string) {}
  onReadable(): void {
    this.handled++;
  }
}

function fakes(n: number): Fake[] {
  return Array.from({ length: n }, (_, i) => new Fake(`m${i}`));
}

Deno.test("selector counts added and removed members", () => {
  const selector = new Selector<Fake>();
  const [a, b] = fakes(2) as [Fake, Fake];
  selector.add(a);
  selector.add(b);
  selector.add(a);
  assert.equal(selector.size, 2);
  assert.deepEqual([...selector.members()], [a, b]);
  selector.remove(a);
  selector.remove(a);
  assert.equal(selector.size, 1);
  assert.deepEqual([...selector.members()], [b]);
});

Deno.test("selector resolves select() with the ready members in the order they became ready", async () => {
  const selector = new Selector<Fake>();
  const [a, b, c] = fakes(3) as [Fake, Fake, Fake];
  for (const m of [a, b, c]) selector.add(m);
  selector.ready(c);
  selector.ready(a);
  assert.deepEqual(await selector.select(), [c, a]);
  selector.ready(b);
  assert.deepEqual(await selector.select(), [b]);
  // The selector only reports readiness; handling it is the loop's job.
  assert.equal(a.handled + b.handled + c.handled, 0);
});

Deno.test("selector wakes a waiting select() when a member becomes ready", async () => {
  const selector = new Selector<Fake>();
  const [a, b] = fakes(2) as [Fake, Fake];
  selector.add(a);
  selector.add(b);
  const waiting = selector.select();
  let settled = false;
  waiting.then(() => settled = true);
  await Promise.resolve();
  assert.equal(settled, false);
  selector.ready(b);
  assert.deepEqual(await waiting, [b]);
});

Deno.test("selector reports a member ready twice before select() only once", async () => {
  const selector = new Selector<Fake>();
  const [a, b] = fakes(2) as [Fake, Fake];
  selector.add(a);
  selector.add(b);
  selector.ready(a);
  selector.ready(b);
  selector.ready(a);
  assert.deepEqual(await selector.select(), [a, b]);
  // After a select() took it, the member can become ready again.
  selector.ready(a);
  assert.deepEqual(await selector.select(), [a]);
});

Deno.test("selector drops the queued readiness of a removed member", async () => {
  const selector = new Selector<Fake>();
  const [a, b, c] = fakes(3) as [Fake, Fake, Fake];
  for (const m of [a, b, c]) selector.add(m);
  selector.ready(a);
  selector.ready(b);
  selector.ready(c);
  selector.remove(b);
  assert.deepEqual(await selector.select(), [a, c]);
  // A removed member that settles later is ignored, and can be added again.
  selector.ready(b);
  selector.ready(a);
  assert.deepEqual(await selector.select(), [a]);
  selector.add(b);
  selector.ready(b);
  assert.deepEqual(await selector.select(), [b]);
});

Deno.test("selector ignores ready() from a member that was never added", async () => {
  const selector = new Selector<Fake>();
  const [a, stranger] = fakes(2) as [Fake, Fake];
  selector.add(a);
  selector.ready(stranger);
  selector.ready(a);
  assert.deepEqual(await selector.select(), [a]);
});

Deno.test("selector select() on an empty selector resolves with no members", async () => {
  const selector = new Selector<Fake>();
  assert.deepEqual(await selector.select(), []);
});

Deno.test("selector ends a waiting select() with [] when its last member is removed", async () => {
  const selector = new Selector<Fake>();
  const [a] = fakes(1) as [Fake];
  selector.add(a);
  const waiting = selector.select();
  selector.remove(a);
  assert.deepEqual(await waiting, []);
});

Deno.test("selector close() ends a waiting select() with [] and refuses new members", async () => {
  const selector = new Selector<Fake>();
  const [a, b] = fakes(2) as [Fake, Fake];
  selector.add(a);
  const waiting = selector.select();
  selector.close();
  selector.close();
  assert.equal(selector.closed, true);
  assert.deepEqual(await waiting, []);
  assert.deepEqual(await selector.select(), []);
  assert.throws(() => selector.add(b), /closed selector/);
});

Deno.test("selector throws on a second select() while one is waiting", async () => {
  const selector = new Selector<Fake>();
  const [a] = fakes(1) as [Fake];
  selector.add(a);
  const waiting = selector.select();
  assert.throws(() => selector.select(), /another select\(\) is already waiting/);
  selector.ready(a);
  assert.deepEqual(await waiting, [a]);
  // Once the first one resolved, selecting again is fine.
  selector.ready(a);
  assert.deepEqual(await selector.select(), [a]);
});

Deno.test("selector select() returns only the ready member among 10,000 registered", async () => {
  const selector = new Selector<Fake>();
  const members = fakes(10_000);
  for (const m of members) selector.add(m);
  assert.equal(selector.size, 10_000);
  // Many rounds of one ready member each: every round yields exactly that member, whatever
  // the number registered (a scan or race over all members would also be visible in the cost).
  for (let round = 0; round < 1000; round++) {
    const member = members[(round * 7919) % members.length]!;
    const waiting = selector.select();
    selector.ready(member);
    const ready = await waiting;
    assert.equal(ready.length, 1);
    assert.equal(ready[0], member);
  }
  // Removing most members keeps the rest selectable.
  for (const m of members.slice(1)) selector.remove(m);
  assert.equal(selector.size, 1);
  selector.ready(members[0]!);
  assert.deepEqual(await selector.select(), [members[0]]);
  assert.ok(members.every((m) => m.handled === 0));
});
