/**
 * Parley as a real child process (`deno run main.ts`), for the tests that kill or restart it:
 * durability is about what survives the process, so the process must really go away.
 */
import assert from "node:assert/strict";
import { withDefaults } from "../../scripts/bench/_server_process.ts";
import { ApiClient } from "../_server.ts";

/** The repository root, the cwd of every spawned server. */
export const ROOT: URL = new URL("../../", import.meta.url);

/** The flags every spawned server gets unless the test gives them: loopback, any port, limits off. */
const BASE_FLAGS = [
  "--host",
  "127.0.0.1",
  "--port",
  "0",
  "--send-rate",
  "0",
  "--session-rate",
  "0",
];

/** A running (or exited) server process. */
export class ServerProcess {
  readonly child: Deno.ChildProcess;
  /** Resolves with the exit status; never rejects. */
  readonly status: Promise<Deno.CommandStatus>;
  #stderr = "";
  /** Where in stderr the line after the last one `waitFor` matched begins. */
  #seen = 0;
  /** Resolved (and replaced) whenever stderr grows or ends. */
  #grew = Promise.withResolvers<void>();
  #ended = false;
  #drained: Promise<void>;
  #listening = Promise.withResolvers<string>();

  private constructor(child: Deno.ChildProcess) {
    this.child = child;
    this.status = child.status;
    this.#drained = this.#readStderr();
    // A process that exits before listening fails `url()` with what it printed.
    this.status.then(async () => {
      await this.#drained;
      this.#listening.reject(new Error(`server exited before listening:\n${this.#stderr}`));
    });
    // Handled by url() callers; this keeps an unobserved rejection from failing the test.
    this.#listening.promise.catch(() => {});
  }

  /** Spawns `main.ts` with `--store sqlite:PATH` (or `store` as given) and `flags`. */
  static spawn(store: string, flags: string[] = []): ServerProcess {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "--store", store, ...withDefaults(BASE_FLAGS, flags)],
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    return new ServerProcess(child);
  }

  /** Spawns and waits for the "listening on" line; kills the child if it does not come in time. */
  static async start(
    store: string,
    flags: string[] = [],
    timeoutMs = 20_000,
  ): Promise<ServerProcess> {
    const server = ServerProcess.spawn(store, flags);
    try {
      await server.url(timeoutMs);
      return server;
    } catch (error) {
      await server.stop("SIGKILL");
      throw error;
    }
  }

  /** Everything the process wrote to stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** The URL from its "listening on http://…" line. */
  async url(timeoutMs = 20_000): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`server did not listen within ${timeoutMs} ms:\n${this.#stderr}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.#listening.promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Waits for the exit and for stderr to end; kills with SIGKILL after `timeoutMs` (the test then
   * sees `signal: "SIGKILL"` instead of the code it expected).
   */
  async exit(timeoutMs = 15_000): Promise<{ status: Deno.CommandStatus; stderr: string }> {
    const timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    try {
      const status = await this.status;
      await this.#drained;
      return { status, stderr: this.#stderr };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `signal` (if still running) and waits for the exit; for `finally` blocks. */
  async stop(
    signal: Deno.Signal = "SIGKILL",
    timeoutMs = 15_000,
  ): Promise<{ status: Deno.CommandStatus; stderr: string }> {
    this.kill(signal);
    return await this.exit(timeoutMs);
  }

  /**
   * The next whole stderr line matching `re`, after the last line this returned (so waiting twice
   * for the same pattern takes two lines); throws once `timeoutMs` passed or stderr ended.
   */
  async waitFor(re: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const whole = this.#stderr.lastIndexOf("\n") + 1;
      for (let start = this.#seen; start < whole;) {
        const end = this.#stderr.indexOf("\n", start);
        const line = this.#stderr.slice(start, end);
        start = end + 1;
        if (re.test(line)) {
          this.#seen = start;
          return line;
        }
      }
      const left = deadline - Date.now();
      if (this.#ended || left <= 0) throw new Error(`no line matching ${re} in:\n${this.#stderr}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#grew.promise,
        new Promise((resolve) => timer = setTimeout(resolve, left)),
      ]);
      clearTimeout(timer);
    }
  }

  /** Sends `signal` unless the process exited already. */
  kill(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch {
      // Exited already.
    }
  }

  async #readStderr(): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of this.child.stderr) {
      this.#stderr += decoder.decode(chunk, { stream: true });
      // Resolving again is a no-op, so later output does not matter.
      const match = /listening on (https?:\/\/[^\s"]+)/.exec(this.#stderr);
      if (match) this.#listening.resolve(match[1]!);
      this.#grown();
    }
    this.#stderr += decoder.decode();
    this.#ended = true;
    this.#grown();
  }

  #grown(): void {
    const grew = this.#grew;
    this.#grew = Promise.withResolvers<void>();
    grew.resolve();
  }
}

/** Runs the server with `store` and `flags`, expecting it to fail at start; returns how. */
export async function startFailure(
  store: string,
  flags: string[] = [],
): Promise<{ code: number; lines: string[]; stderr: string }> {
  const server = ServerProcess.spawn(store, flags);
  const { status, stderr } = await server.exit();
  const lines = stderr.split("\n").filter((line) => line.trim() !== "");
  return { code: status.code, lines, stderr };
}

/**
 * Starts a server on `store` with `flags`, runs `fn` with a client of it, then stops it with
 * SIGTERM and checks it was a clean stop (exit 0, the shutdown lines); kills it if anything failed.
 */
export async function runUntilSigterm(
  store: string,
  flags: string[],
  fn: (client: ApiClient) => Promise<void>,
): Promise<void> {
  const server = await ServerProcess.start(store, flags);
  try {
    await fn(new ApiClient(await server.url()));
    const { status, stderr } = await server.stop("SIGTERM");
    assert.equal(status.code, 0, `a clean stop exits 0:\n${stderr}`);
    assert.match(stderr, /shutting down signal="SIGTERM"[\s\S]*stopped/);
  } finally {
    await server.stop("SIGKILL");
  }
}
