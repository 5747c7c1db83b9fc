/**
 * Fan-out: one message to N long polls waiting in one room. Latency is from the send (the time in
 * the message text, taken just before its bytes are written) to each poll's answer arriving at
 * the client; p50/p99/max per round, fresh servers every round. nchan gets N subscribers on one
 * channel.
 */
import { ClientPool, type PollReport } from "./_client.ts";
import { createSessions, gauge, joinRooms, sendOne, waitUntil } from "./_chat.ts";
import {
  available,
  type Contender,
  isParley,
  WAITING_POLL_CONTENDERS,
  withFresh,
} from "./_contenders.ts";
import { nchanSubscribers } from "./_peers.ts";
import { cpuSeconds } from "./_proc.ts";
import type { BenchOptions, Scenario } from "./_scenario.ts";
import type { Server } from "./_server_process.ts";
import { count, maxOf, median, ms, percentile, printTable, ratio } from "./_table.ts";

const ROOM = "fan";
/** Seconds a poll may wait: longer than any round. */
const WAIT = 60;

/** One round's figures. */
export interface FanoutRound {
  p50: number;
  p99: number;
  max: number;
  /** Polls that had no answer with the message by the deadline, or answered without it. */
  missed: number;
  /** CPU seconds from the send until every answer arrived: the servers', the client's. */
  serverCpu: number;
  clientCpu: number;
  errors: string[];
}

/** Measures CPU of the servers and the client over `fn` (the send and the answers). */
async function measured(
  pool: ClientPool,
  servers: Server[],
  n: number,
  fn: () => Promise<PollReport>,
): Promise<FanoutRound> {
  const serverPids = servers.flatMap((s) => s.pids());
  const server0 = cpuSeconds(serverPids);
  const client0 = cpuSeconds(pool.pids());
  const report = await fn();
  const serverCpu = cpuSeconds(serverPids) - server0;
  const clientCpu = cpuSeconds(pool.pids()) - client0;
  const values = report.latencies;
  return {
    serverCpu,
    clientCpu,
    p50: percentile(values, 50),
    p99: percentile(values, 99),
    max: maxOf(values),
    missed: n - report.latencies.length,
    errors: report.errorSamples,
  };
}

/**
 * One round against chat servers (one, or several sharing a store): N sessions, connection i on
 * `servers[floor(i * servers.length / n)]`, all joined to one room and polling; then one send to
 * the first server. `beforeSend` sees the servers with every poll waiting (e.g. to read memory).
 */
export async function chatFanoutRound(
  pool: ClientPool,
  servers: Server[],
  n: number,
  beforeSend?: () => Promise<void> | void,
): Promise<FanoutRound> {
  const ports = Array.from(
    { length: n },
    (_, i) => servers[Math.floor(i * servers.length / n)]!.port,
  );
  await pool.connect(ports);
  try {
    const tokens = await createSessions(pool, "fan");
    await joinRooms(pool, tokens, tokens.map(() => ROOM));
    // The sender is a member too, with no poll of its own.
    const sender = (await createSessionsOn(servers[0]!))!;
    await pool.poll(tokens.map((token) => ({ kind: "chat", token, wait: WAIT })), false);
    await waitUntil(
      "waiting polls",
      async () => {
        let total = 0;
        for (const s of servers) total += await gauge(s, "parley_waiting_polls");
        return total;
      },
      n,
    );
    await beforeSend?.();
    return await measured(pool, servers, n, async () => {
      const status = await sendOne(servers[0]!.port, { token: sender, room: ROOM });
      if (status !== 201) throw new Error(`fanout: the send answered ${status}`);
      return await pool.collect(30_000);
    });
  } finally {
    await pool.close();
  }
}

async function createSessionsOn(server: Server): Promise<string> {
  const res = await fetch(`${server.url}/api/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ nick: "sender" }),
  });
  const { token } = await res.json();
  const join = await fetch(`${server.url}/api/rooms/${ROOM}/join`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  });
  await join.body?.cancel();
  if (!join.ok) throw new Error(`fanout: the sender could not join: ${join.status}`);
  return token;
}

/** One round against nchan: N subscribers on one channel, then one publish. */
export async function nchanFanoutRound(
  pool: ClientPool,
  server: Server,
  n: number,
  beforeSend?: () => Promise<void> | void,
): Promise<FanoutRound> {
  await pool.connect(Array.from({ length: n }, () => server.port));
  try {
    await pool.poll(Array.from({ length: n }, () => ({ kind: "nchan", channel: ROOM })), false);
    await waitUntil("nchan subscribers", () => nchanSubscribers(server), n);
    await beforeSend?.();
    return await measured(pool, [server], n, async () => {
      const status = await sendOne(server.port, { channel: ROOM });
      if (status < 200 || status > 299) throw new Error(`fanout: the publish answered ${status}`);
      return await pool.collect(30_000);
    });
  } finally {
    await pool.close();
  }
}

/** A round of `contender` with a fresh server. */
export function fanoutRound(
  pool: ClientPool,
  contender: Contender,
  n: number,
  notes: string[],
  beforeSend?: (server: Server) => Promise<void> | void,
): Promise<FanoutRound> {
  return withFresh(contender, (server) => {
    const hook = beforeSend && (() => beforeSend(server));
    return contender.kind === "nchan"
      ? nchanFanoutRound(pool, server, n, hook)
      : chatFanoutRound(pool, [server], n, hook);
  }, notes);
}

/** Table rows for rounds of each contender: medians over rounds, ratios of p99 to `peers`. */
export function fanoutRows(
  n: number,
  results: Map<string, FanoutRound[]>,
  peers: string[],
): (string | number)[][] {
  const p99Of = (name: string) => {
    const rounds = results.get(name);
    return rounds ? median(rounds.map((r) => r.p99)) : undefined;
  };
  return [...results].map(([name, rounds]) => {
    const p99s = rounds.map((r) => r.p99);
    return [
      name,
      count(n),
      rounds.length,
      ms(median(rounds.map((r) => r.p50))),
      ms(median(p99s)),
      ms(maxOf(rounds.map((r) => r.max))),
      `${ms(Math.min(...p99s))}–${ms(Math.max(...p99s))}`,
      ...peers.map((peer) => ratio(median(p99s), p99Of(peer))),
      count(rounds.reduce((t, r) => t + r.missed, 0)),
      (median(rounds.map((r) => r.serverCpu)) * 1000).toFixed(0),
      (median(rounds.map((r) => r.clientCpu)) * 1000).toFixed(0),
    ];
  });
}

async function run(options: BenchOptions): Promise<void> {
  const sizes = options.quick ? [200] : [1000, 10_000];
  const contenders = available("fanout", [...WAITING_POLL_CONTENDERS], options);
  const peers = contenders.filter((c) => !isParley(c.name)).map((c) => c.name);
  const notes: string[] = [];
  for (const n of sizes) {
    const rounds = options.rounds ?? (options.quick ? 1 : 3);
    const pool = ClientPool.start(ClientPool.processesFor(n, 2));
    const results = new Map<string, FanoutRound[]>(contenders.map((c) => [c.name, []]));
    try {
      for (let round = 0; round < rounds; round++) {
        // Contenders take turns within a round, so drift on the machine hits all alike.
        for (const contender of contenders) {
          const result = await fanoutRound(pool, contender, n, notes);
          results.get(contender.name)!.push(result);
          for (const e of result.errors) notes.push(`${contender.name}: ${e}`);
        }
      }
    } finally {
      await pool.stopProcesses();
    }
    printTable(
      [
        "server",
        "polls",
        "rounds",
        "p50 ms",
        "p99 ms",
        "max ms",
        "p99 range",
        ...peers.map((p) => `p99 vs ${p}`),
        "missed",
        "server CPU ms",
        "client CPU ms",
      ],
      fanoutRows(n, results, peers),
      `Fan-out: one message to ${count(n)} polls waiting in one room; send → answer arrival ` +
        `(medians of ${rounds} round${rounds === 1 ? "" : "s"}, fresh servers each round)`,
    );
  }
  for (const note of new Set(notes)) console.log(`note: ${note}`);
}

/** The fan-out scenario. */
export const fanout: Scenario = {
  name: "fanout",
  summary: "one message to 1,000 and 10,000 waiting polls in one room: p50/p99/max vs nchan",
  run,
};
