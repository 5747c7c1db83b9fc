/**
 * Memory per waiting poll: resident memory (VmRSS, /proc) of a fresh server, then with N long
 * polls waiting in one room; (waiting − idle) / N, read 1 s and 5 s after they all waited. Chat
 * servers also show the step after the sessions joined and before they poll. nginx counts master
 * plus worker.
 */
import { ClientPool } from "./_client.ts";
import { createSessions, gauge, joinRooms, waitUntil } from "./_chat.ts";
import {
  available,
  type Contender,
  isParley,
  NCHAN,
  WAITING_POLL_CONTENDERS,
  withFresh,
} from "./_contenders.ts";
import { nchanSubscribers } from "./_peers.ts";
import { rssKiB } from "./_proc.ts";
import type { BenchOptions, Scenario } from "./_scenario.ts";
import type { Server } from "./_server_process.ts";
import { count, median, mib, printTable, ratio } from "./_table.ts";

const ROOM = "memory";
/** Time for a fresh server to settle before its idle memory is read, and for polls' garbage. */
const SETTLE_MS = 1000;
/** When memory is read again: what a poll costs once it has waited a while. */
const LATER_MS = 5000;

interface MemoryRound {
  idle: number;
  /** After the sessions joined (chat servers), KiB. */
  joined: number;
  waiting: number;
  /** LATER_MS after the polls all waited. */
  later: number;
}

async function measure(pool: ClientPool, contender: Contender, server: Server, n: number) {
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  const rss = () => rssKiB(server.pids());
  const idle = rss();
  await pool.connect(Array.from({ length: n }, () => server.port));
  try {
    let joined = NaN;
    if (contender.kind === "chat") {
      const tokens = await createSessions(pool, "m");
      await joinRooms(pool, tokens, tokens.map(() => ROOM));
      joined = rss();
      await pool.poll(tokens.map((token) => ({ kind: "chat", token, wait: 60 })), false);
      await waitUntil("waiting polls", () => gauge(server, "parley_waiting_polls"), n);
    } else {
      await pool.poll(Array.from({ length: n }, () => ({ kind: "nchan", channel: ROOM })), false);
      await waitUntil("nchan subscribers", () => nchanSubscribers(server), n);
    }
    // Let the last requests' garbage settle as it would between bursts.
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const waiting = rss();
    await new Promise((resolve) => setTimeout(resolve, LATER_MS - SETTLE_MS));
    return { idle, joined, waiting, later: rss() };
  } finally {
    await pool.close();
  }
}

async function run(options: BenchOptions): Promise<void> {
  const n = options.quick ? 500 : 10_000;
  const rounds = options.rounds ?? 1;
  const contenders = available("memory", [...WAITING_POLL_CONTENDERS], options);
  const results = new Map<string, MemoryRound[]>(contenders.map((c) => [c.name, []]));
  const notes: string[] = [];
  const pool = ClientPool.start(ClientPool.processesFor(n, 2));
  try {
    for (let round = 0; round < rounds; round++) {
      for (const contender of contenders) {
        results.get(contender.name)!.push(
          await withFresh(contender, (server) => measure(pool, contender, server, n), notes),
        );
      }
    }
  } finally {
    await pool.stopProcesses();
  }
  const perPoll = (r: MemoryRound) => (r.waiting - r.idle) / n;
  const perPollLater = (r: MemoryRound) => (r.later - r.idle) / n;
  const perPollOf = (name: string) => {
    const rs = results.get(name);
    return rs ? median(rs.map(perPoll)) : undefined;
  };
  const peers = contenders.filter((c) => !isParley(c.name)).map((c) => c.name);
  const nchan = results.get(NCHAN.name);
  printTable(
    [
      "server",
      "polls",
      "idle MiB",
      "joined MiB",
      "waiting MiB",
      "KiB per poll",
      "range",
      "poll only KiB",
      ...peers.map((p) => `vs ${p}`),
      `after ${LATER_MS / 1000} s KiB`,
      ...(nchan ? [`after ${LATER_MS / 1000} s vs ${NCHAN.name}`] : []),
    ],
    [...results].map(([name, rs]) => {
      const per = rs.map(perPoll);
      return [
        name,
        count(n),
        mib(median(rs.map((r) => r.idle))),
        mib(median(rs.map((r) => r.joined))),
        mib(median(rs.map((r) => r.waiting))),
        median(per).toFixed(1),
        `${Math.min(...per).toFixed(1)}–${Math.max(...per).toFixed(1)}`,
        contenders.find((c) => c.name === name)?.kind === "chat"
          ? median(rs.map((r) => (r.waiting - r.joined) / n)).toFixed(1)
          : "–",
        ...peers.map((p) => ratio(median(per), perPollOf(p))),
        median(rs.map(perPollLater)).toFixed(1),
        ...(nchan ? [ratio(median(rs.map(perPollLater)), median(nchan.map(perPollLater)))] : []),
      ];
    }),
    `Memory per waiting poll: (RSS ${SETTLE_MS / 1000} s after ${count(n)} polls all waited − ` +
      `RSS of the fresh server) / ${count(n)}, and the same ${LATER_MS / 1000} s after; "poll ` +
      `only" counts from after the joins (medians of ${rounds} round` +
      `${rounds === 1 ? "" : "s"}; nginx = master + worker)`,
  );
  for (const note of new Set(notes)) console.log(`note: ${note}`);
}

/** The memory scenario. */
export const memory: Scenario = {
  name: "memory",
  summary: "resident memory per waiting poll at 10,000 vs nchan",
  run,
};
