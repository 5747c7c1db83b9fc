/**
 * The benchmark client: several `_client_worker.ts` processes, each holding a share of the
 * connections. Connection `i` of the pool lives in worker `floor(i / perWorker)`; every call takes
 * and returns per-connection arrays in pool order.
 */
import type {
  Command,
  ExchangeAnswer,
  ExchangeResult,
  PollReport,
  PollSpec,
  RequestSpec,
  SendReport,
  SendTarget,
} from "./_client_protocol.ts";

export type { ExchangeResult, PollReport, PollSpec, RequestSpec, SendReport, SendTarget };

/** Connections one worker holds at most (each process may open 20,000 files here). */
export const MAX_PER_WORKER = 2500;

// Commands are objects without their id until sent.
type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;
type Request = DistributiveOmit<Command, "id">;

class Worker {
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  #nextId = 1;
  #encoder = new TextEncoder();
  readonly done: Promise<void>;
  /** Connections this worker holds. */
  size = 0;

  constructor() {
    // The child raises its soft file limit to the hard one before it starts.
    const script = new URL("./_client_worker.ts", import.meta.url).pathname;
    this.#child = new Deno.Command("sh", {
      args: [
        "-c",
        'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" run -A "$1"',
        Deno.execPath(),
        script,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.done = this.#readAnswers();
  }

  call<T>(request: Request): Promise<T> {
    const id = this.#nextId++;
    const answer = new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
    });
    const line = JSON.stringify({ ...request, id }) + "\n";
    this.#stdin.write(this.#encoder.encode(line)).catch((error) => {
      this.#pending.get(id)?.reject(error);
      this.#pending.delete(id);
    });
    return answer;
  }

  /** The process id (`sh` execs deno in place, so it is deno's). */
  get pid(): number {
    return this.#child.pid;
  }

  async stop(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }, 5000);
    await this.#child.status;
    clearTimeout(timer);
    await this.done;
  }

  async #readAnswers(): Promise<void> {
    let buffered = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const message = JSON.parse(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        const waiter = this.#pending.get(message.id);
        this.#pending.delete(message.id);
        if (message.error) waiter?.reject(new Error(`client worker: ${message.error}`));
        else waiter?.resolve(message.result);
      }
    }
    for (const waiter of this.#pending.values()) waiter.reject(new Error("client worker exited"));
    this.#pending.clear();
  }
}

/** Several client processes holding connections to the servers under test. */
export class ClientPool {
  #workers: Worker[];

  private constructor(workers: Worker[]) {
    this.#workers = workers;
  }

  /** Starts `processes` client processes. */
  static start(processes: number): ClientPool {
    return new ClientPool(Array.from({ length: processes }, () => new Worker()));
  }

  /** Client processes needed for `connections` (at least `min`, e.g. to share CPU). */
  static processesFor(connections: number, min = 1): number {
    return Math.max(min, Math.ceil(connections / MAX_PER_WORKER));
  }

  /** The client processes' ids, e.g. to read their CPU time. */
  pids(): number[] {
    return this.#workers.map((w) => w.pid);
  }

  /** Connections open in the pool. */
  get size(): number {
    return this.#workers.reduce((n, w) => n + w.size, 0);
  }

  /**
   * Adds connections: `ports[i]` is the port of connection i. They are split in contiguous blocks
   * over the workers, so each worker holds about the same number; each opens at its first
   * request and writes it at once (servers close connections that stay silent).
   */
  async connect(ports: number[]): Promise<void> {
    if (this.size > 0) throw new Error("ClientPool.connect: close the open connections first");
    const per = Math.ceil(ports.length / this.#workers.length);
    const results = await Promise.all(this.#workers.map((worker, w) => {
      const share = ports.slice(w * per, (w + 1) * per);
      worker.size = 0;
      return worker.call<{ opened: number; failed: number }>({ op: "connect", ports: share })
        .then((r) => {
          worker.size = r.opened;
          return r;
        });
    }));
    const failed = results.reduce((n, r) => n + r.failed, 0);
    if (failed > 0) {
      await this.close();
      throw new Error(`${failed} of ${ports.length} connections could not be opened`);
    }
  }

  /** Closes every connection (polls still open on them end with them). */
  async close(): Promise<void> {
    await Promise.all(this.#workers.map(async (w) => {
      await w.call({ op: "close" });
      w.size = 0;
    }));
  }

  /**
   * Writes `requests[i]` on connection i (null: none) and waits for every answer: all at once, or
   * at most `limit` in flight per client process. `start` is the earliest moment any worker began
   * writing; `bodies` asks for the answers' text.
   */
  async exchange(
    requests: (RequestSpec | null)[],
    options: { bodies?: boolean; limit?: number } = {},
  ): Promise<{ start: number; results: ExchangeResult[] }> {
    const answers = await Promise.all(
      this.#split(requests).map(([worker, share]) =>
        worker.call<ExchangeAnswer>({
          op: "exchange",
          requests: share,
          bodies: options.bodies ?? false,
          limit: options.limit ?? 0,
        })
      ),
    );
    return {
      start: Math.min(...answers.map((a) => a.start)),
      results: answers.flatMap((a) => a.results),
    };
  }

  /** Starts polls: `specs[i]` on connection i; `loop` polls again after every answer. */
  async poll(specs: PollSpec[], loop: boolean): Promise<void> {
    await Promise.all(
      this.#split(specs).map(([worker, share]) => worker.call({ op: "poll", polls: share, loop })),
    );
  }

  /** Waits for one-shot polls to be answered (or the deadline) and merges what they saw. */
  async collect(timeoutMs: number): Promise<PollReport> {
    return mergeReports(
      await Promise.all(this.#workers.map((w) => w.call<PollReport>({ op: "collect", timeoutMs }))),
    );
  }

  /** Benchmark messages the running polls received so far. */
  async delivered(): Promise<number> {
    return sum(await Promise.all(this.#workers.map((w) => w.call<number>({ op: "delivered" }))));
  }

  /**
   * Waits until the running polls received `expected` messages, or until none came for
   * `quietMs`, or `timeoutMs` passed; answers how many came.
   */
  async drain(expected: number, quietMs = 3000, timeoutMs = 30_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let last = -1;
    let lastChange = Date.now();
    while (true) {
      const now = await this.delivered();
      if (now >= expected || Date.now() > deadline) return now;
      if (now !== last) {
        last = now;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > quietMs) return now;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Stops poll loops (open polls stay open until `close`) and merges what they saw. */
  async stop(): Promise<PollReport> {
    return mergeReports(
      await Promise.all(this.#workers.map((w) => w.call<PollReport>({ op: "stop" }))),
    );
  }

  /**
   * Sends `perSecond` messages in all for `seconds`, round robin over `targets`, each worker on
   * `connections` new connections with up to `depth` sends pipelined on each: the rate holds even
   * when answers are slow. Answers the summed report.
   */
  async send(
    port: number,
    targets: SendTarget[],
    perSecond: number,
    seconds: number,
    connections = 16,
    depth = 4,
  ): Promise<SendReport> {
    const each = perSecond / this.#workers.length;
    const reports = await Promise.all(this.#workers.map((worker, w) =>
      worker.call<SendReport>({
        op: "send",
        port,
        connections,
        depth,
        // Each worker takes every n-th target, so together they cover all of them.
        targets: targets.filter((_, i) => i % this.#workers.length === w),
        perSecond: each,
        seconds,
      })
    ));
    return {
      issued: sum(reports.map((r) => r.issued)),
      accepted: sum(reports.map((r) => r.accepted)),
      rejected: sum(reports.map((r) => r.rejected)),
      skipped: sum(reports.map((r) => r.skipped)),
      errors: sum(reports.map((r) => r.errors)),
      unanswered: sum(reports.map((r) => r.unanswered)),
      errorSamples: reports.flatMap((r) => r.errorSamples).slice(0, 5),
      seconds: Math.max(...reports.map((r) => r.seconds)),
    };
  }

  /** Stops every client process. */
  async stopProcesses(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.stop()));
  }

  /** Splits a per-connection array into each worker's share, in pool order. */
  #split<T>(items: T[]): [Worker, T[]][] {
    if (items.length !== this.size) {
      throw new Error(`ClientPool: ${items.length} items for ${this.size} connections`);
    }
    let offset = 0;
    return this.#workers.map((w) => {
      const share = items.slice(offset, offset + w.size);
      offset += w.size;
      return [w, share];
    });
  }
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function mergeReports(reports: PollReport[]): PollReport {
  return {
    latencies: reports.flatMap((r) => r.latencies),
    answers: sum(reports.map((r) => r.answers)),
    empty: sum(reports.map((r) => r.empty)),
    errors: sum(reports.map((r) => r.errors)),
    unanswered: sum(reports.map((r) => r.unanswered)),
    duplicates: sum(reports.map((r) => r.duplicates)),
    errorSamples: reports.flatMap((r) => r.errorSamples).slice(0, 5),
  };
}
