/**
 * Sustained ACCEPTED sends per second through the real HTTP API, memory store and SQLite store
 * next to each other. Each store gets a fresh server process per round, one session joined to one
 * room, and wrk POSTing `{"text":"hello"}` to that room from 64 connections at once (so SQLite's
 * group commit can batch them). Only 2xx answers count; `/metrics` `parley_events_total`
 * cross-checks the count.
 */
import type { BenchOptions, Scenario } from "./_scenario.ts";
import { skipped } from "./_scenario.ts";
import { api, type Server, startDenoPeer, startServer } from "./_server_process.ts";
import { count, median, printTable, ratio } from "./_table.ts";
import { wrk, wrkMissing } from "./_wrk.ts";

const ROOM = "bench";
/** The row of the `Deno.serve` build of the contract. */
const PEER = "Deno.serve peer (memory)";
/** Clients sending at once (issue 8's figure). */
export const SEND_CLIENTS = 64;

/** One run's figures. */
export interface SendsRun {
  acceptedPerSecond: number;
  accepted: number;
  rejected: number;
  socketErrors: string[];
  latencyP50: string[];
  /** Growth of `parley_events_total` on the first server (null with several instances). */
  eventsDelta: number | null;
}

async function eventsTotal(url: string): Promise<number> {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  const match = /^parley_events_total(?:\{[^}]*\})? (\d+)/m.exec(text);
  if (!match) throw new Error("sends: /metrics has no parley_events_total");
  return Number(match[1]);
}

/** Seconds from wrk's "N requests in 5.00s" (wrk prints us, ms, s, m or h). */
function wrkSeconds(value: string, unit: string): number {
  const factor: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  return Number(value) * (factor[unit] ?? NaN);
}

/**
 * Sends through `servers` (one wrk per server, the clients split evenly) as one session made on
 * the first; answers accepted sends per second summed over them.
 */
export async function measureSends(
  servers: Server[],
  seconds: number,
  clients = SEND_CLIENTS,
): Promise<SendsRun> {
  const dir = await Deno.makeTempDir({ prefix: "parley-bench-wrk-" });
  try {
    const first = servers[0]!;
    const { token } = await api(first.url, "POST", "/api/session", undefined, { nick: "bench" });
    await api(first.url, "POST", `/api/rooms/${ROOM}/join`, token);
    const script = `${dir}/send.lua`;
    await Deno.writeTextFile(
      script,
      [
        `wrk.method = "POST"`,
        `wrk.body = '{"text":"hello"}'`,
        `wrk.headers["Content-Type"] = "application/json"`,
        `wrk.headers["Authorization"] = "Bearer ${token}"`,
        "",
      ].join("\n"),
    );
    const before = servers.length === 1 ? await eventsTotal(first.url) : null;
    const results = await Promise.all(
      servers.map((server) =>
        wrk(`${server.url}/api/rooms/${ROOM}/messages`, {
          connections: Math.round(clients / servers.length),
          seconds,
          // One wrk thread each: on a small machine more take CPU the servers need.
          threads: 1,
          script,
        })
      ),
    );
    const eventsDelta = before === null ? null : (await eventsTotal(first.url)) - before;
    let acceptedPerSecond = 0;
    let accepted = 0;
    let rejected = 0;
    const socketErrors: string[] = [];
    const latencyP50: string[] = [];
    for (const result of results) {
      if (!result) throw new Error("wrk vanished");
      const totals = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(result.output);
      if (!totals) throw new Error(`sends: cannot read wrk's output:\n${result.output}`);
      const requests = Number(totals[1]);
      const notOk = Number(/Non-2xx or 3xx responses: (\d+)/.exec(result.output)?.[1] ?? 0);
      accepted += requests - notOk;
      rejected += notOk;
      acceptedPerSecond += (requests - notOk) / wrkSeconds(totals[2]!, totals[3]!);
      const errors = /Socket errors: (.*)/.exec(result.output)?.[1];
      if (errors) socketErrors.push(errors);
      latencyP50.push(result.latencyP50);
    }
    return { acceptedPerSecond, accepted, rejected, socketErrors, latencyP50, eventsDelta };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Notes about a run that looks wrong: rejections, socket errors, a count /metrics disagrees with. */
export function sendNotes(label: string, run: SendsRun, clients = SEND_CLIENTS): string[] {
  const notes: string[] = [];
  if (run.rejected > 0) notes.push(`${label}: ${run.rejected} sends were not answered 2xx`);
  for (const e of run.socketErrors) notes.push(`${label}: wrk socket errors: ${e}`);
  // Every 2xx stored an event; sends still in flight when wrk stopped may add a few more.
  if (
    run.eventsDelta !== null &&
    (run.eventsDelta < run.accepted || run.eventsDelta > run.accepted + clients)
  ) {
    notes.push(
      `${label}: wrk counted ${run.accepted} accepted sends but parley_events_total grew by ` +
        `${run.eventsDelta}`,
    );
  }
  return notes;
}

async function run(options: BenchOptions): Promise<void> {
  const missing = wrkMissing();
  if (missing) return skipped("sends", missing);
  const seconds = options.seconds ?? (options.quick ? 1 : 5);
  const rounds = options.rounds ?? (options.quick ? 1 : 2);
  const dir = await Deno.makeTempDir({ prefix: "parley-bench-sends-" });
  /**
   * What is measured: a label, the store (a fresh SQLite file per round) and extra flags; last the
   * `Deno.serve` build of the contract (memory), which shows what this machine gives today (the
   * issue's targets are absolute figures, and this row moves with the machine as Parley's do).
   */
  const setups = (round: number): [string, string | null, string[]][] => [
    ["memory", "memory", []],
    ["memory, --sockets node", "memory", ["--sockets", "node"]],
    ["sqlite", `sqlite:${dir}/${round}.db`, []],
    [PEER, null, []],
  ];
  const runs = new Map<string, SendsRun[]>(setups(0).map(([label]) => [label, []]));
  const notes: string[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const [label, store, flags] of setups(round)) {
        const server = store === null ? await startDenoPeer() : await startServer(store, flags);
        try {
          const result = await measureSends([server], seconds);
          runs.get(label)!.push(result);
          notes.push(...sendNotes(label, result));
        } finally {
          await server.stop();
          if (server.stderr().trim()) notes.push(`${label} stderr: ${server.stderr().trim()}`);
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const rate = (label: string) => median(runs.get(label)!.map((r) => r.acceptedPerSecond));
  printTable(
    [
      "store",
      "accepted sends/s",
      "range",
      "vs memory",
      "vs Deno.serve peer",
      "2xx",
      "non-2xx",
      "p50 latency",
    ],
    [...runs].map(([label, rs]) => {
      const rates = rs.map((r) => r.acceptedPerSecond);
      return [
        label,
        count(rate(label)),
        `${count(Math.min(...rates))}–${count(Math.max(...rates))}`,
        ratio(rate(label), rate("memory")),
        ratio(rate(label), rate(PEER)),
        count(rs.reduce((n, r) => n + r.accepted, 0)),
        count(rs.reduce((n, r) => n + r.rejected, 0)),
        rs.map((r) => r.latencyP50.join("/")).join(", "),
      ];
    }),
    `Accepted sends through POST /api/rooms/${ROOM}/messages: wrk -t1 -c${SEND_CLIENTS} ` +
      `-d${seconds}s, one session (medians of ${rounds} rounds, fresh servers each round)`,
  );
  for (const note of new Set(notes)) console.log(`note: ${note}`);
}

/** The accepted-sends scenario. */
export const sends: Scenario = {
  name: "sends",
  summary: "accepted sends/s at 64 clients, memory store (both socket kinds) and SQLite store",
  run,
};
