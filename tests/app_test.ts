/** The assembled app (lib/app.ts): what every answer of the running server carries. */
import assert from "node:assert/strict";
import { SECURITY_HEADERS } from "../lib/http/response.ts";
import { PAGE_CSP } from "../lib/http/static_files.ts";
import { startApp } from "../lib/app.ts";
import { Logger } from "../lib/log.ts";
import { testConfig, withServer } from "./_server.ts";

function assertSecurityHeaders(headers: Headers, what: string): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    assert.equal(headers.get(name), value, `${what}: ${name}`);
  }
  assert.equal(headers.get("strict-transport-security"), null, `${what}: no HSTS without TLS`);
}

Deno.test("the page, static files, 304s, API answers and errors all carry the security headers; HTML also the CSP", async () => {
  await withServer({}, async (_app, client) => {
    const page = await client.raw("/");
    assert.equal(page.status, 200);
    assertSecurityHeaders(page.headers, "/");
    assert.equal(page.headers.get("content-security-policy"), PAGE_CSP);

    for (const path of ["/app.js", "/style.css", "/icon.svg"]) {
      const file = await client.raw(path);
      assert.equal(file.status, 200, path);
      assertSecurityHeaders(file.headers, path);
      const again = await client.raw(path, { "if-none-match": file.headers.get("etag")! });
      assert.equal(again.status, 304, `${path} revalidated`);
      assertSecurityHeaders(again.headers, `${path} 304`);
    }

    const { token } = await client.session("alice");
    const answers = [
      ["GET /api/rooms", await client.call("GET", "/api/rooms"), 200],
      ["POST join", await client.join(token, "lobby"), 200],
      ["POST bad JSON", await client.call("POST", "/api/session", { body: "{" }), 400],
      ["GET events without a token", await client.call("GET", "/api/events?wait=0"), 401],
      ["POST an empty message", await client.send(token, "lobby", ""), 422],
      ["GET /healthz", await client.call("GET", "/healthz"), 200],
    ] as const;
    for (const [what, res, status] of answers) {
      assert.equal(res.status, status, what);
      assertSecurityHeaders(res.headers, what);
    }
    for (const path of ["/metrics", "/nowhere"]) {
      const res = await client.raw(path);
      assert.equal(res.status, path === "/nowhere" ? 404 : 200, path);
      assertSecurityHeaders(res.headers, path);
    }
  });
});

/** Runs `fn` with `globalThis.gc` set to `gc` (undefined: absent), as `--expose-gc` would. */
async function withGc(gc: unknown, fn: () => Promise<void>): Promise<void> {
  const global = globalThis as { gc?: unknown };
  const before = global.gc;
  if (gc === undefined) delete global.gc;
  else global.gc = gc;
  try {
    await fn();
  } finally {
    if (before === undefined) delete global.gc;
    else global.gc = before;
  }
}

Deno.test("the app trims the heap with V8's memory-reducing gc once quiet after the heap grew, and logs it at debug level", async () => {
  let ballast: number[][] | null = null;
  const calls: unknown[] = [];
  let trimmed!: () => void;
  const done = new Promise<void>((resolve) => trimmed = resolve);
  const gc = (options: unknown) => {
    calls.push(options);
    ballast = null;
    trimmed();
  };
  await withGc(gc, async () => {
    const lines: string[] = [];
    const app = await startApp(testConfig(["--trim-idle", "0.1", "--log-level", "debug"]), {
      logger: new Logger("debug", "text", (line) => lines.push(line)),
    });
    // The trimmer cannot tell live from garbage: 32 MiB more heap is a burst's leftovers to it.
    const guard = setTimeout(() => {}, 10_000);
    try {
      ballast = Array.from({ length: 32 }, () => new Array<number>(128 * 1024).fill(1.5));
      await done;
    } finally {
      clearTimeout(guard);
      await app.shutdown(2000);
    }
    assert.equal(ballast, null);
    assert.deepEqual(calls, [{ type: "major", flavor: "last-resort" }]);
    assert.ok(lines.some((line) => line.includes("heap trimmed")), lines.join("\n"));
  });
});

Deno.test("the app says at debug level that it cannot trim the heap without gc exposed, unless --trim-idle 0 turned trimming off", async () => {
  await withGc(undefined, async () => {
    for (const [flags, said] of [[[], true], [["--trim-idle", "0"], false]] as const) {
      const lines: string[] = [];
      const app = await startApp(testConfig([...flags, "--log-level", "debug"]), {
        logger: new Logger("debug", "text", (line) => lines.push(line)),
      });
      await app.shutdown(2000);
      assert.equal(
        lines.some((line) => line.includes("heap trimming off")),
        said,
        lines.join("\n"),
      );
    }
  });
});

Deno.test("with --sockets node, the app warns at start when --max-conns leaves too little room below the open-file limit", async () => {
  const cases = [
    [["--sockets", "node", "--max-conns", "10000"], 4096, true],
    [["--sockets", "node", "--max-conns", "1000"], 4096, false],
    [["--sockets", "deno", "--max-conns", "10000"], 4096, false],
  ] as const;
  for (const [flags, limit, warned] of cases) {
    const lines: string[] = [];
    const app = await startApp(testConfig([...flags]), {
      logger: new Logger("warn", "text", (line) => lines.push(line)),
      openFileLimit: limit,
    });
    await app.shutdown(2000);
    assert.equal(
      lines.some((line) => line.includes("open-file limit") && line.includes("openFileLimit=4096")),
      warned,
      `${flags.join(" ")}: ${lines.join("\n")}`,
    );
  }
});
