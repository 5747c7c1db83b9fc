import assert from "node:assert/strict";
import { BENCH_FLAGS, withDefaults } from "../../scripts/bench/_server_process.ts";

Deno.test("a script's flag replaces the benchmark default instead of repeating it", () => {
  const args = withDefaults(BENCH_FLAGS, ["--log-level", "warn", "--history=200"]);
  assert.equal(args.filter((word) => word === "--log-level").length, 1);
  assert.deepEqual(args.slice(-3), ["--log-level", "warn", "--history=200"]);
  assert.equal(args[args.indexOf("--send-rate") + 1], "0", "other defaults stay");
});

Deno.test("a flag given as --flag=value replaces the default too", () => {
  const args = withDefaults(["--presence-grace", "600", "--send-rate", "0"], [
    "--presence-grace=1",
  ]);
  assert.deepEqual(args, ["--send-rate", "0", "--presence-grace=1"]);
});
