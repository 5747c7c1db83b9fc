/**
 * A realistic mix: N sessions in rooms of ten, every one polling in a loop, and messages sent at
 * a steady rate round robin over the rooms (each by a member of its room, on its own
 * connections). Delivery latency is from a message's send to its arrival at each member; server
 * CPU seconds (utime + stime) per 10,000 deliveries. nchan gets one channel per room.
 */
import { ClientPool, type PollReport, type SendReport, type SendTarget } from "./_client.ts";
import { createSessions, gauge, joinRooms, waitUntil } from "./_chat.ts";
import {
  available,
  type Contender,
  DENO_FLOOR,
  DENO_PEER,
  NCHAN,
  WAITING_POLL_CONTENDERS,
  withFresh,
} from "./_contenders.ts";
import { nchanSubscribers } from "./_peers.ts";
import { cpuSeconds } from "./_proc.ts";
import type { BenchOptions, Scenario } from "./_scenario.ts";
import { count, ms, percentile, printTable, ratio } from "./_table.ts";

const ROOM_SIZE = 10;
/** Connections each sender process sends on. */
const SEND_CONNECTIONS = 64;
/** Sends pipelined per connection at most (Parley's own pipeline limit is 16). */
const SEND_DEPTH = 16;

interface MixResult {
  report: PollReport;
  sends: SendReport;
  serverCpu: number;
  clientCpu: number;
}

function roomOf(i: number): string {
  return `r${Math.floor(i / ROOM_SIZE)}`;
}

async function measureMix(
  pool: ClientPool,
  senders: ClientPool,
  contender: Contender,
  n: number,
  perSecond: number,
  seconds: number,
  notes: string[],
): Promise<MixResult> {
  return await withFresh(contender, async (server) => {
    await pool.connect(Array.from({ length: n }, () => server.port));
    try {
      const targets: SendTarget[] = [];
      if (contender.kind === "chat") {
        const tokens = await createSessions(pool, "x");
        await joinRooms(pool, tokens, tokens.map((_, i) => roomOf(i)));
        await pool.poll(tokens.map((token) => ({ kind: "chat", token, wait: 60 })), true);
        await waitUntil("waiting polls", () => gauge(server, "parley_waiting_polls"), n);
        for (let i = 0; i < n; i += ROOM_SIZE) {
          targets.push({ kind: "chat", token: tokens[i]!, room: roomOf(i) });
        }
      } else {
        await pool.poll(
          Array.from({ length: n }, (_, i) => ({ kind: "nchan", channel: roomOf(i) })),
          true,
        );
        await waitUntil("nchan subscribers", () => nchanSubscribers(server), n);
        for (let i = 0; i < n; i += ROOM_SIZE) targets.push({ kind: "nchan", channel: roomOf(i) });
      }
      const clientPids = [...pool.pids(), ...senders.pids()];
      const server0 = cpuSeconds(server.pids());
      const client0 = cpuSeconds(clientPids);
      const sends = await senders.send(
        server.port,
        targets,
        perSecond,
        seconds,
        SEND_CONNECTIONS,
        SEND_DEPTH,
      );
      // Until every delivery arrived (or none came for a while).
      await pool.drain(sends.accepted * ROOM_SIZE);
      const report = await pool.stop();
      const serverCpu = cpuSeconds(server.pids()) - server0;
      const clientCpu = cpuSeconds(clientPids) - client0;
      return { report, sends, serverCpu, clientCpu };
    } finally {
      await pool.close();
    }
  }, notes);
}

async function run(options: BenchOptions): Promise<void> {
  const n = options.quick ? 500 : 10_000;
  const perSecond = options.quick ? 100 : 1000;
  const seconds = options.seconds ?? (options.quick ? 1 : 30);
  // The floors show what Deno's sockets cost at this rate with next to no JavaScript: a bound on
  // any server built on them, Parley included.
  const contenders = available("mix", [...WAITING_POLL_CONTENDERS], options);
  const notes: string[] = [];
  const pool = ClientPool.start(ClientPool.processesFor(n, 2));
  const senders = ClientPool.start(1);
  const results = new Map<string, MixResult>();
  try {
    for (const contender of contenders) {
      results.set(
        contender.name,
        await measureMix(pool, senders, contender, n, perSecond, seconds, notes),
      );
    }
  } finally {
    await pool.stopProcesses();
    await senders.stopProcesses();
  }
  const p99Of = (r?: MixResult) => r && percentile(r.report.latencies, 99);
  const cpuOf = (r?: MixResult) => r && (r.serverCpu / r.report.latencies.length) * 10_000;
  const nchan = results.get(NCHAN.name);
  const peer = results.get(DENO_PEER.name);
  const floor = results.get(DENO_FLOOR.name);
  printTable(
    [
      "server",
      "sent",
      "delivered",
      "repeated",
      "p50 ms",
      "p99 ms",
      "p99 vs nchan",
      "p99 vs peer",
      "p99 vs floor",
      "server CPU s",
      "CPU s / 10k",
      "CPU vs nchan",
      "CPU vs peer",
      "CPU vs floor",
      "client CPU s",
    ],
    [...results].map(([name, r]) => {
      const delivered = r.report.latencies.length;
      return [
        name,
        count(r.sends.accepted),
        `${count(delivered)} (${(100 * delivered / (r.sends.accepted * ROOM_SIZE)).toFixed(1)}%)`,
        contenders.find((c) => c.name === name)?.kind === "chat" ? count(r.report.duplicates) : "–",
        ms(percentile(r.report.latencies, 50)),
        ms(p99Of(r)!),
        ratio(p99Of(r), p99Of(nchan)),
        ratio(p99Of(r), p99Of(peer)),
        ratio(p99Of(r), p99Of(floor)),
        r.serverCpu.toFixed(2),
        cpuOf(r)!.toFixed(3),
        ratio(cpuOf(r), cpuOf(nchan)),
        ratio(cpuOf(r), cpuOf(peer)),
        ratio(cpuOf(r), cpuOf(floor)),
        r.clientCpu.toFixed(2),
      ];
    }),
    `Mix: ${count(n)} sessions in ${count(n / ROOM_SIZE)} rooms of ${ROOM_SIZE}, all polling; ` +
      `${count(perSecond)} messages/s round robin over the rooms for ${seconds} s ` +
      `(send → arrival per delivery; CPU = utime + stime from the first send until the last ` +
      `delivery arrived; peer: ${DENO_PEER.name}; floor: ${DENO_FLOOR.name}, nchan's contract ` +
      `with next to no JavaScript)`,
  );
  for (const [name, r] of results) {
    const missed = r.sends.skipped + r.sends.errors + r.sends.rejected;
    if (missed > 0) {
      notes.push(
        `${name}: ${missed} of ${r.sends.issued + r.sends.skipped} sends skipped (every ` +
          `connection's pipeline full) or failed ${r.sends.errorSamples.join("; ")}`,
      );
    }
    if (r.sends.unanswered > 0) {
      notes.push(`${name}: ${r.sends.unanswered} sends had no answer a minute later`);
    }
    for (const e of r.report.errorSamples) notes.push(`${name}: ${e}`);
  }
  for (const note of new Set(notes)) console.log(`note: ${note}`);
}

/** The realistic-mix scenario. */
export const mix: Scenario = {
  name: "mix",
  summary: "10,000 sessions in rooms of ten, 1,000 messages/s for 30 s: p99 and CPU vs nchan",
  run,
};
