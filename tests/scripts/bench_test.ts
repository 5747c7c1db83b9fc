/**
 * The benchmark suite still runs: the quick fan-out scenario against real servers (Parley, the
 * Deno.serve peer and nginx+nchan) prints its table with every row and ratio, and every poll got
 * the message. Without nginx and the nchan module it is ignored, except in CI, where it fails.
 */
import assert from "node:assert/strict";
import { available, NCHAN, PARLEY } from "../../scripts/bench/_contenders.ts";
import { main } from "../../scripts/bench/main.ts";
import { nchanMissing } from "../../scripts/bench/_peers.ts";

const ROOT = new URL("../../", import.meta.url);
const MISSING = nchanMissing();
const IN_CI = Boolean(Deno.env.get("CI"));
const NAME = "bench fanout --quick prints a table with every server's row and ratios";

Deno.test({
  name: MISSING === null
    ? NAME
    : IN_CI
    ? `${NAME} (fails: ${MISSING})`
    : `${NAME} (ignored: ${MISSING})`,
  ignore: MISSING !== null && !IN_CI,
  async fn() {
    if (MISSING !== null) throw new Error(`nginx with nchan is required in CI: ${MISSING}`);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/bench/main.ts", "fanout", "--quick"],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    const context = `${text}\n${new TextDecoder().decode(out.stderr)}`;
    assert.equal(out.code, 0, context);
    assert.match(text, /^Fan-out: one message to 200 polls waiting in one room/m, context);
    const lines = text.split("\n");
    const header = lines.find((l) => l.startsWith("server ") && l.includes("p99 ms"));
    assert.ok(header, context);
    const columns = header.trim().split(/\s{2,}/);
    assert.ok(columns.includes("p99 vs nginx+nchan"), context);
    assert.ok(columns.includes("p99 vs Deno.serve peer"), context);
    for (const server of ["nginx+nchan", "parley", "Deno.serve peer"]) {
      const row = lines.find((l) => l.startsWith(`${server}  `));
      assert.ok(row, `no row for ${server}:\n${context}`);
      const cells = row.trim().split(/\s{2,}/);
      assert.equal(cells.length, columns.length, row);
      const cell = (name: string) => cells[columns.indexOf(name)]!;
      assert.equal(cell("polls"), "200", row);
      assert.equal(cell("missed"), "0", `${server} left polls without the message:\n${row}`);
      assert.match(cell("p99 ms"), /^\d+\.\d$/, row);
      assert.match(cell("p99 vs nginx+nchan"), /^\d+\.\d\d×$/, row);
    }
    assert.doesNotMatch(text, /FAILED/, context);
  },
});

Deno.test("bench --only starts only the contenders it names", () => {
  const all = [NCHAN, PARLEY].filter((c) => c.missing() === null);
  assert.deepEqual(available("test", all, { quick: true, only: ["parley"] }), [PARLEY]);
  assert.deepEqual(available("test", all, { quick: true }), all);
});

Deno.test("bench --only refuses a name that is no contender, before starting anything", async () => {
  const said: string[] = [];
  const error = console.error;
  console.error = (...args: unknown[]) => said.push(args.join(" "));
  try {
    assert.equal(await main(["fanout", "--only", "parley,nginx"]), 2);
  } finally {
    console.error = error;
  }
  assert.match(said.join("\n"), /--only: no contender nginx; they are: nginx\+nchan, parley/);
});
