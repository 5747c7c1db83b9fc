/**
 * Peers that are other programs: nginx with the nchan module (Debian nginx-light and
 * libnginx-mod-nchan) and redis-server. Each runs in the foreground on a free loopback port with
 * its own temporary directory; where a program is missing, `…Missing()` says why in one line.
 */
import { withChildren } from "./_proc.ts";
import { which } from "./_which.ts";
import { freePort, type Server, spawnServer } from "./_server_process.ts";

const NGINX = "nginx";
const NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so";
const REDIS = "redis-server";
const CONFIG = new URL("./nchan.conf", import.meta.url);

/** Open files nginx asks for: this machine's per-process limit is 20,000. */
const NGINX_NOFILE = 20_000;

/** Why nginx with nchan cannot run here, or null when it can. */
export function nchanMissing(): string | null {
  if (!which(NGINX)) return "nginx is not installed (apt-get install nginx-light)";
  try {
    Deno.statSync(NCHAN_MODULE);
  } catch {
    return `the nchan module is not installed (apt-get install libnginx-mod-nchan; no ${NCHAN_MODULE})`;
  }
  return null;
}

/** Why redis-server cannot run here, or null when it can. */
export function redisMissing(): string | null {
  return which(REDIS) ? null : "redis-server is not installed (apt-get install redis-server)";
}

/** Starts nginx with nchan (`nchan.conf`); the caller checks {@linkcode nchanMissing} first. */
export async function startNchan(): Promise<Server> {
  const prefix = await Deno.makeTempDir({ prefix: "parley-bench-nginx-" });
  const port = freePort();
  const template = await Deno.readTextFile(CONFIG);
  const values: Record<string, string> = {
    MODULE: NCHAN_MODULE,
    // As root, nginx would run its workers as "nobody", who cannot enter the private prefix.
    USER: Deno.uid() === 0 ? "user root;" : "",
    NOFILE: String(NGINX_NOFILE),
    CONNECTIONS: String(NGINX_NOFILE - 500),
    PREFIX: prefix,
    PORT: String(port),
  };
  const config = template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`nchan.conf: no value for {{${key}}}`);
    return value;
  });
  await Deno.writeTextFile(`${prefix}/nginx.conf`, config);
  try {
    return await spawnServer({
      name: "nginx+nchan",
      command: which(NGINX) ?? NGINX,
      args: ["-p", `${prefix}/`, "-c", `${prefix}/nginx.conf`, "-e", "stderr"],
      port,
      health: "/healthz",
      pids: withChildren,
      cleanup: () => Deno.remove(prefix, { recursive: true }),
    });
  } catch (error) {
    await Deno.remove(prefix, { recursive: true }).catch(() => {});
    throw error;
  }
}

/** Subscribers nchan holds now (its stub status). */
export async function nchanSubscribers(server: Server): Promise<number> {
  const res = await fetch(`${server.url}/nchan_status`);
  const text = await res.text();
  const match = /^subscribers: (\d+)$/m.exec(text);
  if (!match) throw new Error(`nchan_status has no subscriber count:\n${text}`);
  return Number(match[1]);
}

/** Starts redis-server with `appendonly yes` in a temporary directory. */
export async function startRedis(): Promise<Server> {
  const dir = await Deno.makeTempDir({ prefix: "parley-bench-redis-" });
  const port = freePort();
  try {
    return await spawnServer({
      name: "redis",
      command: which(REDIS) ?? REDIS,
      args: [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "no",
        "--logfile",
        "",
        "--maxclients",
        "10000",
      ],
      port,
      health: null,
      cleanup: () => Deno.remove(dir, { recursive: true }),
    });
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}
