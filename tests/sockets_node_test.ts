/**
 * `--sockets node`: the HTTP, chat and app integration tests once more, with every test server's
 * plain TCP sockets from `node:net` (tests/_server.ts and tests/http/_raw.ts read
 * PARLEY_TEST_SOCKETS), in a test process of their own.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const SUITES = ["tests/http/", "tests/chat/", "tests/app_test.ts", "tests/main_test.ts"];

Deno.test({
  name: "the HTTP, chat and app integration tests pass on node:net sockets (--sockets node)",
  // Another test process inherits no sanitizer state from this one.
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["test", "--allow-all", ...SUITES],
      cwd: ROOT,
      env: { PARLEY_TEST_SOCKETS: "node", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
    const summary = /^(ok|FAILED) \| (\d+) passed(?: \([^)]*\))? \| (\d+) failed/m.exec(out);
    assert.ok(summary, `no test summary in:\n${out.slice(-3000)}`);
    assert.equal(Number(summary[3]), 0, out.slice(-6000));
    assert.equal(run.code, 0, out.slice(-3000));
    // The suites are not empty: a path typo would pass with nothing run.
    assert.ok(Number(summary[2]) > 300, `only ${summary[2]} tests ran`);
  },
});
