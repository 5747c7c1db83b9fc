/**
 * Join storm: N sessions, each on its own connection, all join one room at once. Wall time is
 * from the first join written to the last answer read; the largest join answer is in bytes
 * (targets: under 2 s for 10,000, no answer over 16 KiB).
 */
import { ClientPool } from "./_client.ts";
import { createSessions, joinRooms } from "./_chat.ts";
import { available, type Contender, DENO_PEER, PARLEY, withFresh } from "./_contenders.ts";
import type { BenchOptions, Scenario } from "./_scenario.ts";
import { count, maxOf, median, printTable, ratio } from "./_table.ts";

const ROOM = "storm";
const TARGET_SECONDS = 2;
const TARGET_BYTES = 16 * 1024;

interface StormRound {
  /** Seconds to create the sessions (not part of the storm). */
  sessions: number;
  /** Seconds from the first join written to the last answer. */
  joins: number;
  largest: number;
  /** Bytes of the last join's answer (the room at its fullest). */
  last: number;
}

async function storm(pool: ClientPool, contender: Contender, n: number): Promise<StormRound> {
  return await withFresh(contender, async (server) => {
    await pool.connect(Array.from({ length: n }, () => server.port));
    try {
      const t0 = performance.now();
      const tokens = await createSessions(pool, "s");
      const sessions = (performance.now() - t0) / 1000;
      const { start, results } = await joinRooms(pool, tokens, tokens.map(() => ROOM), 0);
      const arrivals = results.map((r) => r[2]);
      const end = maxOf(arrivals);
      const lastIndex = arrivals.indexOf(end);
      return {
        sessions,
        joins: (end - start) / 1000,
        largest: maxOf(results.map((r) => r[1])),
        last: results[lastIndex]![1],
      };
    } finally {
      await pool.close();
    }
  });
}

async function run(options: BenchOptions): Promise<void> {
  const n = options.quick ? 500 : 10_000;
  const rounds = options.rounds ?? (options.quick ? 1 : 2);
  const contenders = available("joinstorm", [PARLEY, DENO_PEER], options);
  const results = new Map<string, StormRound[]>(contenders.map((c) => [c.name, []]));
  const pool = ClientPool.start(ClientPool.processesFor(n, 2));
  try {
    for (let round = 0; round < rounds; round++) {
      for (const contender of contenders) {
        results.get(contender.name)!.push(await storm(pool, contender, n));
      }
    }
  } finally {
    await pool.stopProcesses();
  }
  const joinsOf = (name: string) => median(results.get(name)?.map((r) => r.joins) ?? []);
  printTable(
    [
      "server",
      "sessions",
      "create s",
      "joins s",
      "range",
      "vs Deno.serve peer",
      "largest answer",
      "last answer",
      "target",
    ],
    [...results].map(([name, rs]) => {
      const joins = rs.map((r) => r.joins);
      const largest = maxOf(rs.map((r) => r.largest));
      const met = median(joins) < TARGET_SECONDS && largest <= TARGET_BYTES;
      return [
        name,
        count(n),
        median(rs.map((r) => r.sessions)).toFixed(2),
        median(joins).toFixed(2),
        `${Math.min(...joins).toFixed(2)}–${Math.max(...joins).toFixed(2)}`,
        ratio(median(joins), joinsOf(DENO_PEER.name)),
        `${count(largest)} B`,
        `${count(median(rs.map((r) => r.last)))} B`,
        n >= 10_000 ? (met ? "met" : "NOT met") : "–",
      ];
    }),
    `Join storm: ${count(n)} sessions on their own connections join one room at once; first ` +
      `join written → last answer (medians of ${rounds} rounds; target < ${TARGET_SECONDS} s ` +
      `and no answer over ${TARGET_BYTES / 1024} KiB)`,
  );
}

/** The join storm scenario. */
export const joinStorm: Scenario = {
  name: "joinstorm",
  summary: "10,000 sessions join one room: total time and the largest join answer",
  run,
};
