/** The CLI as users run it: `deno run -A main.ts …` in a subprocess. */
import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { FLAGS } from "../lib/config.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;

/** Runs main.ts to completion with `args`. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

Deno.test("--help exits 0 and lists every flag", async () => {
  const { code, stdout, stderr } = await run(["--help"]);
  assert.equal(code, 0);
  assert.equal(stderr, "");
  for (const flag of [...Object.keys(FLAGS), "trust-proxy", "help", "version"]) {
    assert.match(stdout, new RegExp(`--${flag}\\b`), `--help does not list --${flag}`);
  }
});

Deno.test("--version prints the version and exits 0", async () => {
  const { code, stdout } = await run(["--version"]);
  assert.equal(code, 0);
  assert.equal(stdout.trim(), `parley ${denoJson.version}`);
});

Deno.test("a bad flag value prints exactly one line on stderr and exits 2", async () => {
  for (const args of [["--port", "x"], ["--send-rate", "fast"], ["--store", "nowhere"]]) {
    const { code, stdout, stderr } = await run(args);
    assert.equal(code, 2, args.join(" "));
    assert.equal(stdout, "");
    assert.equal(lines(stderr).length, 1, `more than one line: ${stderr}`);
    assert.ok(stderr.includes(args[0]!), stderr);
  }
});

Deno.test("an unknown flag exits 2", async () => {
  const { code, stderr } = await run(["--colour", "blue"]);
  assert.equal(code, 2);
  assert.equal(lines(stderr).length, 1);
  assert.match(stderr, /--colour/);
});

Deno.test("a port already in use is a clear message and exit 1", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const { code, stderr } = await run([
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--store",
    "memory",
  ]);
  assert.equal(code, 1);
  assert.match(stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
  assert.match(stderr, /already in use/);
});

Deno.test("a store that cannot open is a clear message and exit 1", async () => {
  const { code, stderr } = await run([
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--store",
    "sqlite:/nonexistent-dir/parley/x.db",
  ]);
  assert.equal(code, 1);
  assert.equal(lines(stderr).length, 1, stderr);
  assert.match(stderr, /^parley: .*nonexistent-dir/);
});

Deno.test("an unreachable Redis at start is one 'Cannot connect to Redis' line and exit 1", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  const { code, stderr } = await run([
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--store",
    `redis://127.0.0.1:${port}`,
  ]);
  assert.equal(code, 1);
  assert.equal(lines(stderr).length, 1, stderr);
  assert.match(stderr, new RegExp(`^parley: Cannot connect to Redis 127\\.0\\.0\\.1:${port}: `));
});

/** A server from `deno <denoArgs> --host 127.0.0.1 --port 0 --store memory`, read up to its start line. */
async function spawnServer(denoArgs: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...denoArgs, "--host", "127.0.0.1", "--port", "0", "--store", "memory"],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  let url: string | undefined;
  const deadline = Date.now() + 10_000;
  while (url === undefined && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    log += value;
    url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log)?.[1];
  }
  return { child, reader, log, url };
}

Deno.test("the server starts, prints its URL, serves, and stops cleanly on SIGTERM", async () => {
  const { child, reader, url, ...started } = await spawnServer(["run", "-A", MAIN]);
  let log = started.log;
  let terminated = false;
  try {
    assert.ok(url, `no start line in: ${log}`);
    assert.doesNotMatch(url, /:0$/, "the start line shows the bound port, not 0");

    const res = await fetch(`${url}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: "ok" });

    child.kill("SIGTERM");
    terminated = true;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      log += value;
    }
    const status = await child.status;
    assert.equal(status.code, 0, log);
    assert.match(log, /shutting down/);
    assert.match(log, /stopped/);
    assert.doesNotMatch(log, /ERROR/);
  } finally {
    if (!terminated) child.kill("SIGKILL");
    await reader.cancel().catch(() => {});
    await child.status;
  }
});

Deno.test("deno task start runs Parley with V8's gc exposed, so it trims its heap; plain deno run says it does not", async () => {
  // The start task's own words (deno.json), run directly: deno task would leave its child behind.
  const task = denoJson.tasks.start.trim().split(/\s+/).slice(1);
  assert.equal(task.at(-1), "main.ts");
  const runs: [string[], string][] = [
    [task, "heap trimming on"],
    [["run", "-A", "main.ts"], "heap trimming off"],
  ];
  for (const [args, said] of runs) {
    const { child, reader, log, url } = await spawnServer([...args, "--log-level", "debug"]);
    try {
      assert.ok(url, `no start line in: ${log}`);
      assert.ok(log.includes(said), `${args.join(" ")}: no "${said}" in:\n${log}`);
    } finally {
      child.kill("SIGTERM");
      await reader.cancel().catch(() => {});
      await child.status;
    }
  }
});

Deno.test("--tls-cert without --tls-key, or the other way round, is one line and exit 2", async () => {
  for (const args of [["--tls-cert", "cert.pem"], ["--tls-key", "key.pem"]]) {
    const { code, stdout, stderr } = await run(args);
    assert.equal(code, 2, args.join(" "));
    assert.equal(stdout, "");
    assert.equal(lines(stderr).length, 1, stderr);
    assert.match(stderr, /^parley: --tls-(cert|key) needs --tls-(key|cert) too/);
  }
});

Deno.test("a TLS file that is missing, a directory or not PEM is one clear line and exit 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "parley_main_tls_" });
  try {
    const cert = `${dir}/cert.pem`;
    await Deno.writeTextFile(
      cert,
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    await Deno.writeTextFile(`${dir}/notes.txt`, "not a key\n");
    const cases: [string[], RegExp][] = [
      [
        ["--tls-cert", `${dir}/gone.pem`, "--tls-key", cert],
        /cannot read --tls-cert .*gone\.pem: no such file/,
      ],
      [["--tls-cert", cert, "--tls-key", dir], /cannot read --tls-key /],
      [
        ["--tls-cert", cert, "--tls-key", `${dir}/notes.txt`],
        /--tls-key .*notes\.txt holds no PEM private key/,
      ],
      [
        ["--tls-cert", `${dir}/notes.txt`, "--tls-key", cert],
        /--tls-cert .*notes\.txt holds no PEM certificate/,
      ],
    ];
    for (const [args, expected] of cases) {
      const { code, stdout, stderr } = await run([
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--store",
        "memory",
        ...args,
      ]);
      assert.equal(code, 1, `${args.join(" ")}: ${stderr}`);
      assert.equal(stdout, "");
      assert.equal(lines(stderr).length, 1, stderr);
      assert.match(stderr, /^parley: /);
      assert.match(stderr, expected);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
