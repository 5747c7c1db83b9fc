/**
 * The deployment of README's "Running several instances", tested as it is written: Redis, two
 * instances and HAProxy with `scripts/deploy/haproxy.cfg` in front; two people chat through the
 * page while HAProxy sends their requests round robin to both instances. Needs chromium,
 * redis-server and haproxy: ignored without them, failing in CI.
 */
import assert from "node:assert/strict";
import { type App, startApp } from "../../lib/app.ts";
import { Logger } from "../../lib/log.ts";
import { ApiClient, eventually, testConfig } from "../_server.ts";
import { freePort, REDIS_TOOLS, RedisServer } from "../_redis.ts";
import { Browser } from "./_cdp.ts";
import {
  CHROMIUM,
  enter,
  screenshot,
  submit,
  untilActiveRoom,
  untilMembers,
  untilShown,
} from "./_page.ts";

const CONFIG = new URL("../../scripts/deploy/haproxy.cfg", import.meta.url).pathname;
const IN_CI = Boolean(Deno.env.get("CI"));

function haproxyPath(): string | null {
  for (const dir of ["/usr/sbin", "/usr/bin", ...(Deno.env.get("PATH") ?? "").split(":")]) {
    try {
      if (dir && Deno.statSync(`${dir}/haproxy`).isFile) return `${dir}/haproxy`;
    } catch {
      // not there
    }
  }
  return null;
}

const HAPROXY = haproxyPath();
const missing = !CHROMIUM
  ? "chromium"
  : !REDIS_TOOLS.server
  ? "redis-server"
  : !HAPROXY
  ? "haproxy"
  : null;

const NAME = "page: two people chat through HAProxy in front of two instances on one Redis";

Deno.test({
  name: missing === null
    ? NAME
    : IN_CI
    ? `${NAME} (fails: ${missing} is required in CI)`
    : `${NAME} (ignored: ${missing} is not installed)`,
  ignore: missing !== null && !IN_CI,
  async fn() {
    if (missing !== null) throw new Error(`${missing} is required in CI`);
    const redis = await RedisServer.start();
    const apps: App[] = [];
    let haproxy: Deno.ChildProcess | undefined;
    let browser: Browser | undefined;
    try {
      for (let i = 0; i < 2; i++) {
        apps.push(
          await startApp(
            testConfig(["--store", `redis://127.0.0.1:${redis.port}`, "--trust-proxy"]),
            { logger: new Logger("error", "text", () => {}) },
          ),
        );
      }
      const port = freePort();
      haproxy = new Deno.Command(HAPROXY!, {
        args: ["-db", "-f", CONFIG],
        env: {
          PARLEY_BIND: `127.0.0.1:${port}`,
          PARLEY_A: `127.0.0.1:${apps[0]!.addr.port}`,
          PARLEY_B: `127.0.0.1:${apps[1]!.addr.port}`,
        },
        stdout: "null",
        stderr: "null",
      }).spawn();
      const url = `http://127.0.0.1:${port}`;
      const client = new ApiClient(url);
      await eventually(async () => {
        try {
          return (await client.raw("/healthz")).status === 200;
        } catch {
          return false;
        }
      }, { timeoutMs: 10_000, what: () => "HAProxy to answer" });

      // Requests through HAProxy reach both instances (round robin, no stickiness).
      const before = await Promise.all(apps.map((app) => app.server.stats.responses[2] ?? 0));
      for (let i = 0; i < 6; i++) assert.equal((await client.raw("/healthz")).status, 200);
      apps.forEach((app, i) => {
        assert.ok((app.server.stats.responses[2] ?? 0) > before[i]!, `instance ${i} was used`);
      });

      browser = await Browser.launch({ path: CHROMIUM! });
      const a = await browser.newPage();
      const b = await browser.newPage();
      await enter(a, `${url}/#lobby`, "alice");
      await untilActiveRoom(a, "lobby");
      await enter(b, `${url}/#lobby`, "bob");
      await untilActiveRoom(b, "lobby");
      await untilMembers(a, ["alice", "bob"]);
      for (let i = 0; i < 5; i++) {
        await submit(a, `from alice ${i}`);
        await submit(b, `from bob ${i}`);
      }
      for (let i = 0; i < 5; i++) {
        await untilShown(b, `from alice ${i}`);
        await untilShown(a, `from bob ${i}`);
      }
      await screenshot(a, "haproxy-two-instances");
    } finally {
      await browser?.close();
      if (haproxy) {
        try {
          haproxy.kill("SIGTERM");
        } catch {
          // gone already
        }
        await haproxy.status;
      }
      await Promise.all(apps.map((app) => app.shutdown(2000)));
      await redis.close();
    }
  },
});
