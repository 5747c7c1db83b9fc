/**
 * Keep-alive requests/s of Parley's `HttpServer` against `Deno.serve`, both answering the same
 * tiny handler (`peer_http.ts`) in a fresh process per round, measured with wrk; beside them the
 * floor of `Deno.listen` (one read and one write per request, no HTTP at all), to show how much of
 * the gap is the runtime's socket ops and how much Parley's own work.
 */
import type { BenchOptions, Scenario } from "./_scenario.ts";
import { skipped } from "./_scenario.ts";
import { freePort, spawnServer } from "./_server_process.ts";
import { count, median, printTable, ratio } from "./_table.ts";
import { wrk, wrkMissing } from "./_wrk.ts";

const CONNECTIONS = 50;

/** The servers of `peer_http.ts`, in the order they are measured and printed. */
const NAMES = {
  deno: "Deno.serve",
  parley: "parley HttpServer",
  "parley-node": "parley HttpServer, node:net sockets",
  floor: "Deno.listen floor (no parsing)",
};

async function measure(server: keyof typeof NAMES, seconds: number): Promise<number> {
  const port = freePort();
  const process = await spawnServer({
    name: NAMES[server],
    command: Deno.execPath(),
    args: [
      "run",
      "-A",
      new URL("./peer_http.ts", import.meta.url).pathname,
      "--server",
      server,
      "--port",
      String(port),
    ],
    port,
    health: "/",
  });
  try {
    const result = await wrk(`${process.url}/`, { seconds, connections: CONNECTIONS });
    if (!result) throw new Error("wrk vanished");
    return result.rps;
  } finally {
    await process.stop();
  }
}

async function run(options: BenchOptions): Promise<void> {
  const missing = wrkMissing();
  if (missing) return skipped("http", missing);
  const seconds = options.seconds ?? (options.quick ? 1 : 5);
  const rounds = options.rounds ?? (options.quick ? 1 : 5);
  const servers = Object.keys(NAMES) as (keyof typeof NAMES)[];
  const results = new Map(servers.map((server) => [server, [] as number[]]));
  for (let round = 0; round < rounds; round++) {
    // Alternating, so drift on the machine hits all alike.
    for (const server of servers) results.get(server)!.push(await measure(server, seconds));
  }
  const denoRates = results.get("deno")!;
  const deno = median(denoRates);
  printTable(
    ["server", "requests/s", "range", "vs Deno.serve", "round by round"],
    servers.map((server) => {
      const xs = results.get(server)!;
      // Each round's ratio to the Deno.serve run just before it: the machine's speed drifts by
      // tens of percent within minutes, less within one round.
      const paired = xs.map((x, i) => x / denoRates[i]!);
      return [
        NAMES[server],
        count(median(xs)),
        `${count(Math.min(...xs))}–${count(Math.max(...xs))}`,
        ratio(median(xs), deno),
        `${ratio(median(paired), 1)} (${paired.map((r) => r.toFixed(2)).join(", ")})`,
      ];
    }),
    `HTTP keep-alive, tiny GET, same handler: wrk -t1 -c${CONNECTIONS} -d${seconds}s ` +
      `(medians of ${rounds} rounds, fresh processes each round; "round by round": the median ` +
      `of each round's ratio, and the ratios)`,
  );
}

/** The keep-alive throughput scenario. */
export const http: Scenario = {
  name: "http",
  summary: "keep-alive tiny GET requests/s, Parley's HttpServer vs Deno.serve (wrk)",
  run,
};
