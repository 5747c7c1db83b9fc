/**
 * Throughput of `RedisClient`: 64 concurrent callers on its one pipelined connection, each sending
 * its next command as soon as its reply came, against `redis-benchmark` (redis-tools) on the same
 * server in the same run, with 64 connections and with one connection pipelining 64.
 * The server is a fresh `redis-server` with `appendonly yes` (as deployed) in a temp directory.
 * Run: `deno run --allow-all scripts/bench_redis_client.ts [commands per row]`.
 */
import { RedisClient } from "../../lib/storage/redis_client.ts";
import type { RedisArg } from "../../lib/storage/resp.ts";
import { REDIS_TOOLS, RedisServer } from "../../tests/_redis.ts";
import { count, printTable } from "./_table.ts";

const CALLERS = 64;
const VALUE = "x".repeat(64);

interface Row {
  test: string;
  who: string;
  perSecond: number;
}

/** Runs each command kind through the client and through redis-benchmark; prints one table. */
export async function benchRedisClient(total = 200_000): Promise<void> {
  const benchmark = REDIS_TOOLS.server?.replace(/redis-server$/, "redis-benchmark");
  if (!REDIS_TOOLS.server || !benchmark) {
    console.log("bench_redis_client: redis-server and redis-benchmark are required; skipped");
    return;
  }
  const server = await RedisServer.start();
  const client = new RedisClient(server.clientOptions({ commandTimeoutMs: 10_000 }));
  const rows: Row[] = [];
  try {
    await client.connect();
    await drive(client, 20_000, () => ["PING"]); // warm-up: compile the hot path
    const tests: [string, string, (i: number) => RedisArg[]][] = [
      ["INCR", "incr", () => ["INCR", "counter:__rand_int__"]],
      ["SET 64 B", "set", (i) => ["SET", `key:${i & 1023}`, VALUE]],
    ];
    for (const [test, name, command] of tests) {
      rows.push({
        test,
        who: `RedisClient: 1 conn, ${CALLERS} callers`,
        perSecond: await drive(client, total, command),
      });
      rows.push({
        test,
        who: `redis-benchmark: ${CALLERS} conns`,
        perSecond: await redisBenchmark(benchmark, server.port, name, total, [
          "-c",
          String(CALLERS),
        ]),
      });
      rows.push({
        test,
        who: `redis-benchmark: 1 conn, -P ${CALLERS}`,
        perSecond: await redisBenchmark(benchmark, server.port, name, total, [
          "-c",
          "1",
          "-P",
          String(CALLERS),
        ]),
      });
    }
  } finally {
    await client.close();
    await server.close();
  }
  printRows(rows);
}

/** `total` commands from CALLERS callers, each awaiting its reply before its next command. */
async function drive(client: RedisClient, total: number, command: (i: number) => RedisArg[]) {
  let next = 0;
  const caller = async () => {
    while (next < total) await client.send(command(next++));
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: CALLERS }, caller));
  return total / ((performance.now() - start) / 1000);
}

/** Requests per second as `redis-benchmark --csv` reports them. */
async function redisBenchmark(
  path: string,
  port: number,
  test: string,
  total: number,
  extra: string[],
): Promise<number> {
  const args = ["-h", "127.0.0.1", "-p", String(port), "-n", String(total), "-t", test, "-d", "64"];
  args.push("--csv", ...extra);
  const { code, stdout, stderr } = await new Deno.Command(path, { args, stdin: "null" }).output();
  const text = new TextDecoder().decode(stdout);
  const row = text.split("\n").find((line) => line.startsWith(`"${test.toUpperCase()}`));
  if (code !== 0 || !row) {
    throw new Error(
      `redis-benchmark ${args.join(" ")}: ${text}${new TextDecoder().decode(stderr)}`,
    );
  }
  return Number(row.split(",")[1]!.replaceAll('"', ""));
}

function printRows(rows: Row[]): void {
  const header = ["command", "driver", "commands/s", "vs redis-benchmark 64 conns"];
  const lines = rows.map((row) => {
    const peer = rows.find((r) => r.test === row.test && r.who.endsWith(`${CALLERS} conns`))!;
    return [
      row.test,
      row.who,
      count(row.perSecond),
      (row.perSecond / peer.perSecond).toFixed(2),
    ];
  });
  printTable(header, lines);
}

if (import.meta.main) await benchRedisClient(Number(Deno.args[0] ?? 200_000));
