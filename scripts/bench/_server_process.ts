/**
 * Servers in child processes for benchmarks and soak runs — Parley, its peers and Redis — each on
 * a free loopback port, plus a tiny API client.
 */
import denoJson from "../../deno.json" with { type: "json" };

const ROOT = new URL("../../", import.meta.url);
const HERE = new URL("./", import.meta.url);

/** A server in its own process. */
export interface Server {
  /** What it is, for tables: `parley`, `Deno.serve peer`, `nginx+nchan`, … */
  name: string;
  url: string;
  port: number;
  /** The process id, e.g. to read its memory from /proc. */
  pid: number;
  /** Every process that serves (nginx: master and workers). */
  pids(): number[];
  /** What it wrote to stderr so far (at most 64 KiB). */
  stderr(): string;
  stop(): Promise<void>;
}

/** A port that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Flags every benchmarked Parley gets: rate limits off; more connections than any scenario opens;
 * presence and the header and idle timeouts long enough that setting up 10,000 sessions on a busy
 * machine expires none of them and times out no connection whose request already arrived.
 */
export const BENCH_FLAGS: readonly string[] = [
  "--send-rate",
  "0",
  "--session-rate",
  "0",
  "--max-conns",
  "100000",
  "--presence-grace",
  "600",
  "--header-timeout",
  "300",
  "--idle-timeout",
  "300",
  "--log-level",
  "error",
];

/**
 * `deno` arguments of `deno task start` (e.g. its permissions and V8 flags), so benchmarks
 * measure Parley as it is started.
 */
export function parleyRunArgs(): string[] {
  const words = denoJson.tasks.start.trim().split(/\s+/);
  if (words[0] !== "deno") throw new Error(`the start task does not run deno: ${words.join(" ")}`);
  return words.slice(1);
}

/**
 * `defaults` (pairs of flag and value) without the flags `flags` gives, then `flags`: Parley
 * refuses a flag given twice, so a caller's flag must replace the default, not follow it.
 */
export function withDefaults(defaults: readonly string[], flags: readonly string[]): string[] {
  const given = new Set(flags.filter((word) => word.startsWith("--")).map((w) => w.split("=")[0]));
  const kept: string[] = [];
  for (let i = 0; i < defaults.length; i += 2) {
    if (!given.has(defaults[i]!)) kept.push(defaults[i]!, defaults[i + 1]!);
  }
  return [...kept, ...flags];
}

/**
 * Starts `main.ts` on a free loopback port with the limits off, plus `flags` (which replace these
 * defaults); waits until healthy.
 */
export function startServer(store: string, flags: string[] = []): Promise<Server> {
  const port = freePort();
  return spawnServer({
    name: "parley",
    command: Deno.execPath(),
    args: [
      ...parleyRunArgs(),
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--store",
      store,
      ...withDefaults(BENCH_FLAGS, flags),
    ],
    cwd: ROOT,
    port,
    health: "/healthz",
  });
}

/** Starts a peer script of this folder with `--port` on a free port; healthy at `/healthz`. */
function startPeerScript(name: string, script: string, denoFlags: string[] = []): Promise<Server> {
  const port = freePort();
  return spawnServer({
    name,
    command: Deno.execPath(),
    args: ["run", "-A", ...denoFlags, new URL(script, HERE).pathname, "--port", String(port)],
    cwd: ROOT,
    port,
    health: "/healthz",
  });
}

/** Starts the minimal `Deno.serve` long-poll build of the contract (`peer_deno_serve.ts`). */
export function startDenoPeer(): Promise<Server> {
  return startPeerScript("Deno.serve peer", "peer_deno_serve.ts", ["--unstable-no-legacy-abort"]);
}

/** Starts the floor of long polling on `Deno.listen` (`peer_deno_floor.ts`). */
export function startDenoFloor(): Promise<Server> {
  return startPeerScript("Deno.listen floor", "peer_deno_floor.ts");
}

/** The same floor on `node:net`, where Parley's plain TCP comes from. */
export function startNodeFloor(): Promise<Server> {
  return startPeerScript("node:net floor", "peer_node_floor.ts");
}

/** Options of {@linkcode spawnServer}. */
export interface SpawnOptions {
  name: string;
  command: string;
  args: string[];
  cwd?: string | URL;
  port: number;
  /** A path answering 2xx once the server serves; null: wait for the port to accept. */
  health: string | null;
  /** Every serving process, from the spawned one's id (default: just that one). */
  pids?: (pid: number) => number[];
  /** Called after the process exited (e.g. to remove its files). */
  cleanup?: () => Promise<void>;
}

/** Spawns a server process and waits until it serves; throws with its stderr if it does not. */
export async function spawnServer(options: SpawnOptions): Promise<Server> {
  const child = new Deno.Command(options.command, {
    args: options.args,
    ...(options.cwd ? { cwd: options.cwd } : {}),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Keep stderr drained (a full pipe would stall the server) and at hand for error reports.
  let stderr = "";
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      if (stderr.length < 64 * 1024) stderr += decoder.decode(chunk, { stream: true });
    }
  })();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  let stopped: Promise<void> | null = null;
  const stop = () =>
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Exited already.
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Exited meanwhile.
        }
      }, 15_000);
      await status;
      clearTimeout(timer);
      await drained;
      await options.cleanup?.();
    })();
  const url = `http://127.0.0.1:${options.port}`;
  const server: Server = {
    name: options.name,
    url,
    port: options.port,
    pid: child.pid,
    pids: () => options.pids?.(child.pid) ?? [child.pid],
    stderr: () => stderr,
    stop,
  };
  const deadline = Date.now() + 20_000;
  while (true) {
    if (await serving(options.port, options.health)) return server;
    if (exited || Date.now() > deadline) {
      await stop();
      const reason = exited ? `exited with ${(await status).code}` : "did not answer in 20 s";
      throw new ServerStartError(`${options.name} ${reason}: ${stderr.trim()}`, stderr);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A server that exited or did not answer at start; `stderr` holds what it said. */
export class ServerStartError extends Error {
  constructor(message: string, readonly stderr: string) {
    super(message);
    this.name = "ServerStartError";
  }
}

async function serving(port: number, health: string | null): Promise<boolean> {
  try {
    if (health === null) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return true;
    }
    const res = await fetch(`http://127.0.0.1:${port}${health}`);
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

/** One API call; throws with the answer on a non-2xx status. */
export async function api(
  url: string,
  method: string,
  path: string,
  token?: string,
  body?: unknown,
) {
  const res = await fetch(url + path, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
