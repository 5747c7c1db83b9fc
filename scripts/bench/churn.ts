/**
 * Churn: N pollers in one room, 10 messages/s for S seconds, twice; between and after the runs
 * the whole population leaves (polls dropped, sessions deleted) and, for the second run, comes
 * back. Peak resident memory (VmHWM) and memory after everyone left, against the Deno.serve peer
 * in the same run (targets: peak no higher than the peer's; after leaving, within 50 MB of the
 * start).
 */
import { ClientPool, type PollReport, type SendReport } from "./_client.ts";
import { createSessions, deleteSessions, gauge, joinRooms, waitUntil } from "./_chat.ts";
import {
  available,
  type Contender,
  DENO_PEER,
  isParley,
  PARLEY,
  PARLEY_NODE,
  withFresh,
} from "./_contenders.ts";
import { peakRssKiB, rssKiB } from "./_proc.ts";
import type { BenchOptions, Scenario } from "./_scenario.ts";
import { api, type Server } from "./_server_process.ts";
import { count, mib, ms, percentile, printTable, ratio } from "./_table.ts";

const ROOM = "churn";
const PER_SECOND = 10;
const RUNS = 2;
/** Connections the sender may use, so a slow answer does not hold back the next send. */
const SEND_CONNECTIONS = 8;
/** How far above its start memory may stay once every client left, in KiB. */
const AFTER_TARGET_KIB = 50 * 1024;

interface ChurnResult {
  start: number;
  peak: number;
  /** KiB once every client left, after each run. */
  after: number[];
  /**
   * Seconds after the last client left until memory was back within the target, per run (null:
   * not within the wait).
   */
  back: (number | null)[];
  reports: PollReport[];
  sends: SendReport[];
  leaveFailures: number;
}

async function churnRun(
  pool: ClientPool,
  senders: ClientPool,
  server: Server,
  n: number,
  seconds: number,
  run: number,
): Promise<{ report: PollReport; sends: SendReport; leaveFailures: number }> {
  const ports = Array.from({ length: n }, () => server.port);
  await pool.connect(ports);
  let tokens: string[];
  let sender: string;
  let report: PollReport;
  let sends: SendReport;
  try {
    // The same people come back: the same nicks as in the first run.
    tokens = await createSessions(pool, "c");
    await joinRooms(pool, tokens, tokens.map(() => ROOM));
    ({ token: sender } = await api(server.url, "POST", "/api/session", undefined, {
      nick: `sender${run}`,
    }));
    await api(server.url, "POST", `/api/rooms/${ROOM}/join`, sender);
    await pool.poll(tokens.map((token) => ({ kind: "chat", token, wait: 60 })), true);
    await waitUntil("waiting polls", () => gauge(server, "parley_waiting_polls"), n);
    sends = await senders.send(
      server.port,
      [{ kind: "chat", token: sender, room: ROOM }],
      PER_SECOND,
      seconds,
      SEND_CONNECTIONS,
    );
    // Let the last messages reach every poller.
    await pool.drain(sends.accepted * n);
    report = await pool.stop();
  } finally {
    // Everyone leaves: their polls go away with their connections, then they end their sessions.
    await pool.close();
  }
  await pool.connect(ports);
  let leaveFailures: number;
  try {
    leaveFailures = await deleteSessions(pool, tokens);
  } finally {
    await pool.close();
  }
  await api(server.url, "DELETE", "/api/session", sender);
  return { report, sends, leaveFailures };
}

async function measureChurn(
  pool: ClientPool,
  senders: ClientPool,
  contender: Contender,
  n: number,
  seconds: number,
  settleMs: number,
  returnMs: number,
  notes: string[],
): Promise<ChurnResult> {
  return await withFresh(contender, async (server) => {
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const start = rssKiB(server.pids());
    const result: ChurnResult = {
      start,
      peak: 0,
      after: [],
      back: [],
      reports: [],
      sends: [],
      leaveFailures: 0,
    };
    for (let run = 1; run <= RUNS; run++) {
      const { report, sends, leaveFailures } = await churnRun(
        pool,
        senders,
        server,
        n,
        seconds,
        run,
      );
      result.reports.push(report);
      result.sends.push(sends);
      result.leaveFailures += leaveFailures;
      // Memory as it stands a while after the last client left, with no help from us.
      const leftAt = Date.now();
      await new Promise((resolve) => setTimeout(resolve, settleMs));
      result.after.push(rssKiB(server.pids()));
      // Then how long until it is back within the target (V8 gives heap back after a while).
      let back: number | null = null;
      for (;;) {
        const seconds = (Date.now() - leftAt) / 1000;
        if (rssKiB(server.pids()) - start <= AFTER_TARGET_KIB) back = seconds;
        if (back !== null || seconds * 1000 >= returnMs) break;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      result.back.push(back);
      const left = await gauge(server, "parley_waiting_polls");
      if (left !== 0) notes.push(`${contender.name}: ${left} polls still waiting after all left`);
    }
    result.peak = peakRssKiB(server.pid);
    return result;
  }, notes);
}

async function run(options: BenchOptions): Promise<void> {
  const n = options.quick ? 200 : 5000;
  const seconds = options.seconds ?? (options.quick ? 1 : 30);
  const settleMs = options.quick ? 500 : 5000;
  /** How long after the last client left memory may take to come back within the target. */
  const returnMs = options.quick ? 1000 : 30_000;
  const contenders = available("churn", [PARLEY, PARLEY_NODE, DENO_PEER], options);
  const notes: string[] = [];
  const pool = ClientPool.start(ClientPool.processesFor(n, 2));
  const senders = ClientPool.start(1);
  const results = new Map<string, ChurnResult>();
  try {
    for (const contender of contenders) {
      results.set(
        contender.name,
        await measureChurn(pool, senders, contender, n, seconds, settleMs, returnMs, notes),
      );
    }
  } finally {
    await pool.stopProcesses();
    await senders.stopProcesses();
  }
  const peer = results.get(DENO_PEER.name);
  printTable(
    [
      "server",
      "pollers",
      "start MiB",
      "peak MiB",
      "peak vs peer",
      ...Array.from({ length: RUNS }, (_, i) => `left ${i + 1} MiB`),
      "left − start",
      "back ≤ 50 MB after",
      "delivered",
      "repeated",
      "p99 ms",
      "targets",
    ],
    [...results].map(([name, r]) => {
      const accepted = r.sends.reduce((t, s) => t + s.accepted, 0);
      const latencies = r.reports.flatMap((x) => x.latencies);
      const last = r.after[r.after.length - 1]!;
      const peakMet = peer === undefined || r.peak <= peer.peak;
      // Back within the target after every run, within the wait.
      const afterMet = r.back.every((b) => b !== null);
      return [
        name,
        count(n),
        mib(r.start),
        mib(r.peak),
        ratio(r.peak, peer?.peak),
        ...r.after.map(mib),
        `${mib(last - r.start)} MiB`,
        r.back.map((b) => b === null ? `not in ${returnMs / 1000} s` : `${b.toFixed(0)} s`).join(
          ", ",
        ),
        `${((100 * latencies.length) / (accepted * n)).toFixed(1)}%`,
        count(r.reports.reduce((t, x) => t + x.duplicates, 0)),
        ms(percentile(latencies, 99)),
        isParley(name)
          ? `peak ${peakMet ? "met" : "NOT met"}, left ${afterMet ? "met" : "NOT met"}`
          : "",
      ];
    }),
    `Churn: ${count(n)} pollers in one room, ${PER_SECOND} messages/s for ${seconds} s, ${RUNS} ` +
      `times; everyone leaves after each run and returns for the next (peak = VmHWM; "left" = ` +
      `RSS ${settleMs / 1000} s after the last client left; "back" = when RSS was first within ` +
      `${AFTER_TARGET_KIB / 1024} MiB of the start again, looked at each second up to ` +
      `${returnMs / 1000} s; the "left" target is met when every run came back)`,
  );
  for (const [name, r] of results) {
    const skippedSends = r.sends.reduce((t, s) => t + s.skipped + s.errors + s.rejected, 0);
    if (skippedSends > 0) notes.push(`${name}: ${skippedSends} sends skipped or failed`);
    const unanswered = r.sends.reduce((t, s) => t + s.unanswered, 0);
    if (unanswered > 0) notes.push(`${name}: ${unanswered} sends had no answer a minute later`);
    if (r.leaveFailures > 0) notes.push(`${name}: ${r.leaveFailures} session deletes failed`);
    for (const report of r.reports) {
      for (const e of report.errorSamples) notes.push(`${name}: ${e}`);
    }
  }
  for (const note of new Set(notes)) console.log(`note: ${note}`);
}

/** The churn scenario. */
export const churn: Scenario = {
  name: "churn",
  summary: "5,000 pollers, 10 messages/s for 30 s, twice: peak and after-leave memory",
  run,
};
