/**
 * Sustained append throughput of the event log backends in-process: memory vs SQLite (temp file),
 * with many single-event appends in flight at once (as under load, so group commit can batch them)
 * and one at a time (each its own commit).
 */
import type { EventLog, NewEvent } from "../../lib/storage/event_log.ts";
import { MemoryEventLog } from "../../lib/storage/memory_event_log.ts";
import { SqliteEventLog, type SqliteSynchronous } from "../../lib/storage/sqlite_event_log.ts";
import type { BenchOptions, Scenario } from "./_scenario.ts";
import { count, printTable } from "./_table.ts";

const BENCH = {
  /** Appends per run with a window of concurrent appends. */
  concurrentAppends: 200_000,
  /** Appends in flight at once. */
  window: 1000,
  /** Appends per one-at-a-time run: fewer, since with `full` each one waits for an fsync. */
  sequentialAppends: 5_000,
  /** Events kept per room (the `--history` default), so retention deletes in steady state. */
  history: 1000,
  rooms: 10,
} as const;

interface Row {
  backend: string;
  mode: string;
  appends: number;
  seconds: number;
  perSecond: number;
  /** Appends per transaction, for SQLite. */
  batch?: number;
}

/** Runs the benchmark and prints a table of appends per second. */
async function run(options: BenchOptions): Promise<void> {
  // A smoke run appends a fiftieth as much.
  const scale = options.quick ? 0.02 : 1;
  const dir = await Deno.makeTempDir({ prefix: "parley_bench_" });
  const rows: Row[] = [];
  try {
    const modes = [
      {
        mode: `window ${BENCH.window}`,
        appends: BENCH.concurrentAppends * scale,
        window: BENCH.window,
      },
      { mode: "sequential", appends: BENCH.sequentialAppends * scale, window: 1 },
    ];
    let run = 0;
    for (const { mode, appends, window } of modes) {
      const memory = new MemoryEventLog({ history: BENCH.history });
      rows.push({ backend: "memory", mode, appends, ...await drive(memory, appends, window) });
      for (const synchronous of ["full", "normal"] satisfies SqliteSynchronous[]) {
        const path = `${dir}/bench_${run++}.db`;
        const log = await SqliteEventLog.open(path, { history: BENCH.history, synchronous });
        const result = await drive(log, appends, window);
        rows.push({
          backend: `sqlite (${synchronous})`,
          mode,
          appends,
          ...result,
          batch: log.stats.appended / log.stats.transactions,
        });
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  printRows(rows);
}

/** Appends `total` single events keeping `window` in flight; closes the log. */
async function drive(
  log: EventLog,
  total: number,
  window: number,
): Promise<{ seconds: number; perSecond: number }> {
  await log.load();
  let next = 0;
  const worker = async () => {
    while (next < total) await log.append([event(next++)]);
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: window }, worker));
  const seconds = (performance.now() - start) / 1000;
  await log.close();
  return { seconds, perSecond: total / seconds };
}

function event(i: number): NewEvent {
  return {
    type: "message",
    room: `room-${i % BENCH.rooms}`,
    nick: `user-${i % 100}`,
    text: `message number ${i}: the quick brown fox jumps over the lazy dog`,
    ts: Date.now(),
    clientId: crypto.randomUUID(),
    session: `session-${i % 100}`,
  };
}

function printRows(rows: Row[]): void {
  const header = ["backend", "mode", "appends", "seconds", "appends/s", "per commit", "vs memory"];
  const lines = rows.map((row) => {
    const memory = rows.find((r) => r.backend === "memory" && r.mode === row.mode);
    const ratio = memory === undefined ? "" : (row.perSecond / memory.perSecond).toFixed(3);
    return [
      row.backend,
      row.mode,
      count(row.appends),
      row.seconds.toFixed(2),
      count(row.perSecond),
      row.batch === undefined ? "–" : row.batch.toFixed(0),
      ratio,
    ];
  });
  printTable(header, lines, "Event log appends in-process (no HTTP), single-event appends");
}

/** The event log scenario. */
export const store: Scenario = {
  name: "store",
  summary: "event log appends/s in-process, memory vs SQLite (full and normal sync)",
  run,
};
