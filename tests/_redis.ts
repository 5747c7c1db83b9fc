/**
 * Real `redis-server` processes for tests (Debian's `redis-server`; `redis-cli` from `redis-tools`
 * drives them, so the harness does not trust the client under test). Each server runs on a free
 * loopback port in its own temporary directory with `appendonly yes`, optionally with a password
 * and a TLS port whose certificates `openssl` makes at test time. `stop()` and `start()` restart it
 * on the same files and port, as an operator would.
 */
import type { RedisOptions } from "../lib/storage/redis_link.ts";

/** Finds an executable on PATH (or in /usr/bin), or undefined. */
function which(name: string): string | undefined {
  const dirs = [
    ...(Deno.env.get("PATH") ?? "").split(":").filter(Boolean),
    "/usr/bin",
    "/usr/sbin",
  ];
  for (const dir of dirs) {
    try {
      const path = `${dir}/${name}`;
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

/** Paths of the tools the harness needs, undefined when not installed. */
export const REDIS_TOOLS = {
  server: which("redis-server"),
  cli: which("redis-cli"),
  openssl: which("openssl"),
} as const;

const IN_CI = Boolean(Deno.env.get("CI"));

/** How to run a test server. */
export interface RedisServerOptions {
  /** Sets `requirepass`. */
  password?: string;
  /** Adds a TLS port (`tls-port`) with a certificate signed by a CA made for this server. */
  tls?: boolean;
}

/** A `redis-server` child process with its directory, ports and admin commands. */
export class RedisServer {
  /** Temporary directory holding the config, the AOF files, the log and the certificates. */
  readonly dir: string;
  /** Plain TCP port, used by `cli()` even when TLS is on. */
  readonly port: number;
  /** TLS port, when started with `tls`. */
  readonly tlsPort: number | undefined;
  /** PEM file of the CA that signed the server's certificate, when started with `tls`. */
  readonly caFile: string | undefined;
  readonly password: string | undefined;
  #child: Deno.ChildProcess | undefined;
  /** What the running process wrote to stderr (config errors come there, not to the log). */
  #stderr: Promise<string> = Promise.resolve("");

  private constructor(
    dir: string,
    port: number,
    tlsPort: number | undefined,
    options: RedisServerOptions,
  ) {
    this.dir = dir;
    this.port = port;
    this.tlsPort = tlsPort;
    this.caFile = options.tls ? `${dir}/ca.crt` : undefined;
    this.password = options.password;
  }

  /** Makes a directory and config, starts the server and waits until it answers. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    if (!REDIS_TOOLS.server || !REDIS_TOOLS.cli) {
      throw new Error("redis-server and redis-cli are required");
    }
    const dir = await Deno.makeTempDir({ prefix: "parley-redis-" });
    const server = new RedisServer(dir, freePort(), options.tls ? freePort() : undefined, options);
    try {
      const config = [
        "bind 127.0.0.1",
        `port ${server.port}`,
        `dir ${dir}`,
        `logfile ${dir}/redis.log`,
        "daemonize no",
        "appendonly yes",
        'save ""',
        "enable-debug-command local",
      ];
      if (options.password !== undefined) {
        config.push(`requirepass ${JSON.stringify(options.password)}`);
      }
      if (options.tls) {
        await makeCertificates(dir);
        config.push(
          `tls-port ${server.tlsPort}`,
          `tls-cert-file ${dir}/server.crt`,
          `tls-key-file ${dir}/server.key`,
          `tls-ca-cert-file ${dir}/ca.crt`,
          "tls-auth-clients no",
        );
      }
      await Deno.writeTextFile(`${dir}/redis.conf`, config.join("\n") + "\n");
      await server.restart();
      return server;
    } catch (error) {
      await server.close();
      throw error;
    }
  }

  /** True while the process runs. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Client options for this server: the TLS port with the test CA when `tls`, else plain TCP. */
  clientOptions(overrides: Partial<RedisOptions> & { tls?: boolean } = {}): RedisOptions {
    const tls = overrides.tls ?? false;
    const options: RedisOptions = {
      hostname: "127.0.0.1",
      port: tls ? this.tlsPort! : this.port,
      commandTimeoutMs: 2000,
      connectTimeoutMs: 2000,
      reconnectMinMs: 10,
      reconnectMaxMs: 100,
    };
    if (tls) {
      options.tls = true;
      options.caFile = this.caFile!;
    }
    if (this.password !== undefined) options.password = this.password;
    return { ...options, ...overrides };
  }

  /** Starts the server (again) on the same directory, files and ports; waits until it answers. */
  async restart(): Promise<void> {
    if (this.#child) throw new Error("redis-server is running already");
    this.#child = new Deno.Command(REDIS_TOOLS.server!, {
      args: [`${this.dir}/redis.conf`],
      cwd: this.dir,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#stderr = new Response(this.#child.stderr).text();
    const deadline = Date.now() + 10_000;
    while (!(await this.#answers())) {
      if (Date.now() > deadline) {
        throw new Error(`redis-server did not start within 10 s:\n${await this.log()}`);
      }
      const exited = await settledWithin(20, this.#child.status);
      if (exited) {
        this.#child = undefined;
        const stderr = await this.#stderr;
        throw new Error(`redis-server exited with ${exited.code}:\n${stderr}\n${await this.log()}`);
      }
    }
  }

  /** `SHUTDOWN` (the AOF is flushed), then waits for the process to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    // The server closes the connection as it shuts down, so redis-cli may report an error.
    await this.cli("SHUTDOWN").catch(() => {});
    const exited = await settledWithin(10_000, child.status);
    if (!exited) {
      child.kill("SIGKILL");
      await child.status;
    }
    await this.#stderr;
    this.#child = undefined;
  }

  /** Ends the process with SIGKILL: no goodbye to clients, no final fsync. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    child.kill("SIGKILL");
    await child.status;
    await this.#stderr;
    this.#child = undefined;
  }

  /** Closes every pub/sub connection from the server side; returns how many. */
  async killPubsubClients(): Promise<number> {
    return Number(await this.cli("CLIENT", "KILL", "TYPE", "pubsub"));
  }

  /** Runs one command with `redis-cli` on the plain port; returns its output, trimmed. */
  async cli(...args: string[]): Promise<string> {
    const auth = this.password === undefined ? [] : ["-a", this.password, "--no-auth-warning"];
    const { code, stdout, stderr } = await new Deno.Command(REDIS_TOOLS.cli!, {
      args: ["-h", "127.0.0.1", "-p", String(this.port), ...auth, ...args],
      stdin: "null",
    }).output();
    const out = new TextDecoder().decode(stdout).trim();
    if (code !== 0 || out.startsWith("ERR") || out.startsWith("(error)")) {
      throw new Error(`redis-cli ${args.join(" ")}: ${out} ${new TextDecoder().decode(stderr)}`);
    }
    return out;
  }

  /** The server's log file, for failure messages. */
  async log(): Promise<string> {
    return await Deno.readTextFile(`${this.dir}/redis.log`).catch(() => "(no log)");
  }

  /** Kills the process if it still runs and removes the directory. */
  async close(): Promise<void> {
    await this.kill();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** True when the server answers PING (or asks for a password): it has loaded its data. */
  async #answers(): Promise<boolean> {
    let conn: Deno.Conn | undefined;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
      const auth = this.password === undefined
        ? ""
        : `*2\r\n$4\r\nAUTH\r\n$${
          new TextEncoder().encode(this.password).length
        }\r\n${this.password}\r\n`;
      await conn.write(new TextEncoder().encode(`${auth}*1\r\n$4\r\nPING\r\n`));
      let text = "";
      const buffer = new Uint8Array(1024);
      while (!text.includes("PONG") && !text.includes("-LOADING")) {
        const n = await conn.read(buffer);
        if (n === null) return false;
        text += new TextDecoder().decode(buffer.subarray(0, n));
      }
      return text.includes("PONG");
    } catch {
      return false;
    } finally {
      conn?.close();
    }
  }
}

/** A port nothing listens on right now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** `promise`'s value if it settles within `ms`, else undefined; the timer never outlives it. */
async function settledWithin<T>(ms: number, promise: Promise<T>): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) =>
    timer = setTimeout(() => resolve(undefined), ms)
  );
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A CA and a server certificate for 127.0.0.1 signed by it (P-256 keys: made in milliseconds). */
async function makeCertificates(dir: string): Promise<void> {
  if (!REDIS_TOOLS.openssl) throw new Error("openssl is required for TLS tests");
  const run = async (...args: string[]) => {
    const { code, stderr } = await new Deno.Command(REDIS_TOOLS.openssl!, { args, cwd: dir })
      .output();
    if (code !== 0) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(stderr)}`);
  };
  const ecKey = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"];
  await run(...ecKey, "ca.key");
  await run(
    "req",
    "-x509",
    "-new",
    "-key",
    "ca.key",
    "-sha256",
    "-days",
    "2",
    "-subj",
    "/CN=Parley test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-out",
    "ca.crt",
  );
  await run(...ecKey, "server.key");
  await run("req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1", "-out", "server.csr");
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n" +
      "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
  );
  await run(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-sha256",
    "-extfile",
    "server.ext",
    "-out",
    "server.crt",
  );
}

/** What a Redis test is missing, or undefined when it can run. */
function missingTools(options: RedisServerOptions): string | undefined {
  if (!REDIS_TOOLS.server) return "redis-server";
  if (!REDIS_TOOLS.cli) return "redis-cli";
  if (options.tls && !REDIS_TOOLS.openssl) return "openssl";
  return undefined;
}

/**
 * Registers a test with a fresh `redis-server`, always shut down and removed. Without the tools it
 * is ignored, except in CI (`CI` set), where it fails.
 */
export function redisTest(
  name: string,
  fn: (server: RedisServer) => Promise<void>,
  options: RedisServerOptions = {},
): void {
  const missing = missingTools(options);
  Deno.test({
    name: missing === undefined
      ? name
      : IN_CI
      ? `${name} (fails: ${missing} is required in CI)`
      : `${name} (ignored: ${missing} is not installed)`,
    ignore: missing !== undefined && !IN_CI,
    async fn() {
      if (missing !== undefined) throw new Error(`${missing} is required in CI`);
      const server = await RedisServer.start(options);
      try {
        await fn(server);
      } catch (error) {
        if (error instanceof Error) {
          const log = (await server.log()).trim().split("\n").slice(-15).join("\n");
          error.message += `\n--- redis.log (tail) ---\n${log}`;
        }
        throw error;
      } finally {
        await server.close();
      }
    },
  });
}

/** Resolves with `promise`, or rejects when it takes longer than `ms`: every wait has a deadline. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
