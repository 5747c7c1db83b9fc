/**
 * Several instances on one Redis (issue 7): accepted sends/s through two Parley instances sharing
 * a `redis-server` (started here, `appendonly yes`, on a free loopback port in a temporary
 * directory) at 64 clients, and fan-out to 2 × N/2 polls spread over the two instances; each next
 * to one instance on the memory store in the same run. Skipped with the reason while Parley does
 * not accept `--store redis://…` or redis-server is missing.
 */
import { ClientPool } from "./_client.ts";
import { PARLEY, withFresh } from "./_contenders.ts";
import { redisMissing, startRedis } from "./_peers.ts";
import { type BenchOptions, type Scenario, skipped } from "./_scenario.ts";
import { type Server, ServerStartError, startServer } from "./_server_process.ts";
import { count, median, ms, printTable, ratio } from "./_table.ts";
import { wrkMissing } from "./_wrk.ts";
import { chatFanoutRound, type FanoutRound } from "./fanout.ts";
import { measureSends, SEND_CLIENTS, sendNotes, type SendsRun } from "./sends.ts";

const INSTANCES = 2;

/** Redis and two Parley instances on it, all stopped after `fn`; null when Parley refuses. */
async function withRedisInstances<T>(
  fn: (instances: Server[]) => Promise<T>,
): Promise<{ value: T } | { refused: string }> {
  const redis = await startRedis();
  const instances: Server[] = [];
  try {
    for (let i = 0; i < INSTANCES; i++) {
      try {
        instances.push(await startServer(`redis://127.0.0.1:${redis.port}`));
      } catch (error) {
        if (!(error instanceof ServerStartError)) throw error;
        const said = error.stderr.trim().split("\n")[0] || error.message;
        return { refused: `parley does not start with --store redis://…: ${said}` };
      }
    }
    return { value: await fn(instances) };
  } finally {
    for (const instance of instances) await instance.stop();
    await redis.stop();
  }
}

async function run(options: BenchOptions): Promise<void> {
  const missing = redisMissing() ?? wrkMissing();
  if (missing) return skipped("redis", missing);
  const n = options.quick ? 400 : 10_000;
  const seconds = options.seconds ?? (options.quick ? 1 : 5);
  const rounds = options.rounds ?? (options.quick ? 1 : 2);
  // Probe first: while the Redis store does not exist, say so in one line and stop.
  const probe = await withRedisInstances(() => Promise.resolve());
  if ("refused" in probe) return skipped("redis", probe.refused);

  const notes: string[] = [];
  const sends = new Map<string, SendsRun[]>([["memory, 1 instance", []], [
    "redis, 2 instances",
    [],
  ]]);
  const fanouts = new Map<string, FanoutRound[]>([
    ["memory, 1 instance", []],
    ["redis, 2 instances", []],
  ]);
  const pool = ClientPool.start(ClientPool.processesFor(n, 2));
  try {
    for (let round = 0; round < rounds; round++) {
      const one = await withFresh(PARLEY, (server) => measureSends([server], seconds), notes);
      sends.get("memory, 1 instance")!.push(one);
      notes.push(...sendNotes("memory", one));
      const two = await withRedisInstances((instances) => measureSends(instances, seconds));
      if ("refused" in two) return skipped("redis", two.refused);
      sends.get("redis, 2 instances")!.push(two.value);
      notes.push(...sendNotes("redis", two.value));

      fanouts.get("memory, 1 instance")!.push(
        await withFresh(PARLEY, (server) => chatFanoutRound(pool, [server], n), notes),
      );
      const spread = await withRedisInstances((instances) => chatFanoutRound(pool, instances, n));
      if ("refused" in spread) return skipped("redis", spread.refused);
      fanouts.get("redis, 2 instances")!.push(spread.value);
    }
  } finally {
    await pool.stopProcesses();
  }
  const rate = (label: string) => median(sends.get(label)!.map((r) => r.acceptedPerSecond));
  printTable(
    ["store", "accepted sends/s", "vs memory", "non-2xx"],
    [...sends].map(([label, rs]) => [
      label,
      count(rate(label)),
      ratio(rate(label), rate("memory, 1 instance")),
      count(rs.reduce((t, r) => t + r.rejected, 0)),
    ]),
    `Sends through Redis: wrk, ${SEND_CLIENTS} clients split over the instances, ${seconds} s ` +
      `(medians of ${rounds} rounds; target ≥ 20,000/s through two instances)`,
  );
  const p99 = (label: string) => median(fanouts.get(label)!.map((r) => r.p99));
  printTable(
    ["setup", "polls", "p50 ms", "p99 ms", "max ms", "p99 vs memory", "missed"],
    [...fanouts].map(([label, rs]) => [
      label,
      count(n),
      ms(median(rs.map((r) => r.p50))),
      ms(p99(label)),
      ms(Math.max(...rs.map((r) => r.max))),
      ratio(p99(label), p99("memory, 1 instance")),
      count(rs.reduce((t, r) => t + r.missed, 0)),
    ]),
    `Fan-out through Redis: one message to ${count(n)} polls in one room, ${
      count(n / INSTANCES)
    } on each of ${INSTANCES} instances, vs one instance on the memory store ` +
      `(medians of ${rounds} rounds)`,
  );
  for (const note of new Set(notes)) console.log(`note: ${note}`);
}

/** The Redis scenario (prepared for issue 7's store). */
export const redis: Scenario = {
  name: "redis",
  summary: "two instances on one Redis: sends/s at 64 clients and fan-out to 2 × 5,000 polls",
  run,
};
