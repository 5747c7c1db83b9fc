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

const NAMES = {
  parley: "parley HttpServer",
  "parley-node": "parley HttpServer, node:net sockets",
  deno: "Deno.serve",
  floor: "Deno.listen floor",
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
  const rounds = options.rounds ?? (options.quick ? 1 : 3);
  const parley: number[] = [];
  const parleyNode: number[] = [];
  const deno: number[] = [];
  const floor: number[] = [];
  for (let round = 0; round < rounds; round++) {
    // Alternating, so drift on the machine hits all alike.
    deno.push(await measure("deno", seconds));
    parley.push(await measure("parley", seconds));
    parleyNode.push(await measure("parley-node", seconds));
    floor.push(await measure("floor", seconds));
  }
  const row = (name: string, xs: number[]) => [
    name,
    count(median(xs)),
    `${count(Math.min(...xs))}–${count(Math.max(...xs))}`,
    ratio(median(xs), median(deno)),
  ];
  printTable(
    ["server", "requests/s", "range", "vs Deno.serve"],
    [
      row(NAMES.deno, deno),
      row(NAMES.parley, parley),
      row(NAMES["parley-node"], parleyNode),
      row(`${NAMES.floor} (no parsing)`, floor),
    ],
    `HTTP keep-alive, tiny GET, same handler: wrk -t1 -c${CONNECTIONS} -d${seconds}s ` +
      `(medians of ${rounds} rounds, fresh processes each round)`,
  );
}

/** The keep-alive throughput scenario. */
export const http: Scenario = {
  name: "http",
  summary: "keep-alive tiny GET requests/s, Parley's HttpServer vs Deno.serve (wrk)",
  run,
};
