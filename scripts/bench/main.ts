/**
 * `deno task bench [scenario…] [--quick] [--rounds N] [--seconds S]`: Parley's benchmark suite.
 * Each scenario prints a table with absolute figures and ratios against peers measured in the
 * same run with the same raw-TCP client; servers are fresh processes for every round.
 */
import { parseArgs } from "node:util";
import type { BenchOptions, Scenario } from "./_scenario.ts";
import { WAITING_POLL_CONTENDERS } from "./_contenders.ts";
import { BENCH_FLAGS, parleyRunArgs } from "./_server_process.ts";
import { churn } from "./churn.ts";
import { fanout } from "./fanout.ts";
import { http } from "./http.ts";
import { joinStorm } from "./join_storm.ts";
import { memory } from "./memory.ts";
import { mix } from "./mix.ts";
import { redis } from "./redis.ts";
import { sends } from "./sends.ts";
import { store } from "./store.ts";

/** Every scenario, in the order a full run takes them. */
export const SCENARIOS: Scenario[] = [
  fanout,
  memory,
  http,
  joinStorm,
  churn,
  mix,
  sends,
  store,
  redis,
];

function usage(): string {
  const width = Math.max(...SCENARIOS.map((s) => s.name.length));
  return [
    "Usage: deno task bench [SCENARIO…] [--quick] [--rounds N] [--seconds S] [--only NAMES]",
    "",
    "Runs the named scenarios (all of them without a name), each printing a table with ratios",
    "against peers measured in the same run. Scenarios:",
    "",
    ...SCENARIOS.map((s) => `  ${s.name.padEnd(width)}  ${s.summary}`),
    "",
    "Options:",
    "  --quick      small sizes and short runs: a smoke test of the whole suite in about a minute",
    "  --rounds N   rounds per measurement (each scenario has its own default)",
    "  --seconds S  seconds per timed run (churn, mix, http, sends; default 30, 30, 5, 5)",
    "  --only NAMES start only these contenders (comma-separated) in fanout, memory, joinstorm,",
    "               churn and mix, of:",
    ...WAITING_POLL_CONTENDERS.map((c) => `                 ${c.name}`),
    "  --help       this text",
  ].join("\n");
}

function machine(): string {
  const read = (path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch {
      return "";
    }
  };
  const memKiB = Number(/MemTotal:\s+(\d+)/.exec(read("/proc/meminfo"))?.[1] ?? NaN);
  const cpu = /model name\s*:\s*(.*)/.exec(read("/proc/cpuinfo"))?.[1] ?? "?";
  return `${navigator.hardwareConcurrency} CPUs (${cpu}), ${Math.round(memKiB / 1024)} MiB, ` +
    `Linux ${Deno.osRelease()}, Deno ${Deno.version.deno}`;
}

/** The 1-minute load average: other work on the machine skews every figure. */
function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ")[0]!;
  } catch {
    return "?";
  }
}

/** Runs the CLI; answers the exit code. */
export async function main(args: string[]): Promise<number> {
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      options: {
        quick: { type: "boolean" },
        rounds: { type: "string" },
        seconds: { type: "string" },
        only: { type: "string" },
        help: { type: "boolean" },
      },
      allowPositionals: true,
    }));
  } catch (error) {
    console.error(`bench: ${(error as Error).message.split("\n")[0]} (see --help)`);
    return 2;
  }
  if (values.help) {
    console.log(usage());
    return 0;
  }
  const options: BenchOptions = { quick: values.quick ?? false };
  for (const name of ["rounds", "seconds"] as const) {
    const text = values[name];
    if (text === undefined) continue;
    const n = Number(text);
    if (!(n > 0) || (name === "rounds" && !Number.isInteger(n))) {
      console.error(`bench: --${name} must be a positive number (see --help)`);
      return 2;
    }
    options[name] = n;
  }
  if (values.only !== undefined) {
    const known = new Set(WAITING_POLL_CONTENDERS.map((c) => c.name));
    options.only = values.only.split(",").map((name) => name.trim());
    const unknown = options.only.filter((name) => !known.has(name));
    if (unknown.length > 0) {
      console.error(
        `bench: --only: no contender ${unknown.join(", ")}; they are: ` +
          [...known].join(", "),
      );
      return 2;
    }
  }
  const chosen: Scenario[] = [];
  for (const name of positionals) {
    const scenario = SCENARIOS.find((s) => s.name === name);
    if (!scenario) {
      console.error(`bench: no scenario ${name} (see --help)`);
      return 2;
    }
    chosen.push(scenario);
  }
  console.log(`Machine: ${machine()}`);
  console.log(`Command: deno task bench ${args.join(" ")}`.trimEnd());
  console.log(
    `Parley: deno ${parleyRunArgs().join(" ")} --host 127.0.0.1 --port <free> --store memory ` +
      `${BENCH_FLAGS.join(" ")} (sqlite: where a table says so)`,
  );
  const started = performance.now();
  let failed = 0;
  for (const scenario of chosen.length > 0 ? chosen : SCENARIOS) {
    const t0 = performance.now();
    console.log(`\n== ${scenario.name}: ${scenario.summary} (load average ${loadAverage()})`);
    try {
      await scenario.run(options);
    } catch (error) {
      failed++;
      console.log(`${scenario.name}: FAILED: ${(error as Error).stack ?? error}`);
    }
    console.log(`(${scenario.name}: ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  }
  console.log(`\nAll done in ${((performance.now() - started) / 1000).toFixed(0)} s.`);
  return failed > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
