/**
 * `deno task compile` makes a single binary that serves the embedded page. Building needs Deno's
 * runtime for the target (downloaded, or `DENORT_BIN`); where it cannot be had, this test reports
 * itself ignored with the reason, and nothing else in the suite depends on it.
 */
import assert from "node:assert/strict";

const root = new URL("..", import.meta.url).pathname;
/** Where `deno task compile` writes the binary (deno.json). */
const output = `${root}dist/parley`;

async function build(): Promise<{ ok: boolean; reason: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "compile"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stderr);
  if (out.success) return { ok: true, reason: "" };
  // The first error line and its innermost cause (e.g. "dns error") say why.
  // deno-lint-ignore no-control-regex -- ANSI colour codes start with ESC
  const lines = text.replace(/\x1b\[[0-9;]*m/g, "").split("\n").map((l) => l.trim());
  const first = lines.find((l) => l.startsWith("error:")) ?? lines[0] ?? "";
  const causes = lines.filter((l) => /^\d+: /.test(l) && !l.includes("<unknown>"));
  const cause = causes.at(-1)?.replace(/^\d+: /, "");
  return { ok: false, reason: cause ? `${first} (${cause})` : first };
}

const result = await build();

Deno.test({
  name: result.ok
    ? "compiled binary serves the embedded page and the API"
    : `compiled binary serves the embedded page and the API (ignored: deno compile could not build: ${result.reason})`,
  ignore: !result.ok,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "parley_compiled_" });
    const child = new Deno.Command(output, {
      // The default store, SQLite on its worker thread: the worker must be inside the binary too.
      args: ["--host", "127.0.0.1", "--port", "0", "--store", `sqlite:${dir}/parley.db`],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      while (!/listening on (http:\/\/\S+)/.test(seen)) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += value;
      }
      const url = /listening on (http:\/\/\S+)/.exec(seen)?.[1];
      assert.ok(url, `the binary printed no start line: ${seen}`);
      const page = await fetch(`${url}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);
      const health = await fetch(`${url}/healthz`);
      assert.deepEqual(await health.json(), { status: "ok" });
      const session = await fetch(`${url}/api/session`, {
        method: "POST",
        body: JSON.stringify({ nick: "binary" }),
      });
      assert.equal(session.status, 201, "a session is written through the SQLite worker");
      await session.body?.cancel();
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0);
      await reader.cancel();
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited already
      }
      await Deno.remove(output).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
