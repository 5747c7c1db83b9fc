/**
 * Sustained ACCEPTED sends per second through the real HTTP API, SQLite against memory, in one
 * run. Each store gets a fresh server process (so the load generator does not share its event
 * loop), one session joined to one room, and wrk POSTing `{"text":"hello"}` to that room from
 * many connections at once, so SQLite's group commit can batch them. Only 2xx answers count;
 * `/metrics` `parley_events_total` cross-checks the count. Loopback only.
 */
import { api, startServer } from "./_server_process.ts";
import { printTable, wrk } from "./_wrk.ts";

/** Accepted sends per second the SQLite store should sustain. */
const TARGET = 20_000;
const ROOM = "bench";

interface Measurement {
  store: string;
  /** 2xx answers per second over wrk's run. */
  acceptedPerSecond: number;
  accepted: number;
  rejected: number;
  socketErrors: string;
  /** Growth of `parley_events_total` during the run (answered or not). */
  eventsDelta: number;
  latencyP50: string;
}

async function eventsTotal(url: string): Promise<number> {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  const match = /^parley_events_total(?:\{[^}]*\})? (\d+)/m.exec(text);
  if (!match) throw new Error("bench_sends: /metrics has no parley_events_total");
  return Number(match[1]);
}

/** Seconds from wrk's "N requests in 5.00s" (wrk prints us, ms, s, m or h). */
function wrkSeconds(value: string, unit: string): number {
  const factor: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  return Number(value) * (factor[unit] ?? NaN);
}

async function measure(
  store: string,
  label: string,
  seconds: number,
  connections: number,
): Promise<Measurement | null> {
  const server = await startServer(store);
  const dir = await Deno.makeTempDir({ prefix: "parley-bench-wrk-" });
  try {
    const { token } = await api(server.url, "POST", "/api/session", undefined, { nick: "bench" });
    await api(server.url, "POST", `/api/rooms/${ROOM}/join`, token);
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
    const before = await eventsTotal(server.url);
    const result = await wrk(`${server.url}/api/rooms/${ROOM}/messages`, {
      connections,
      seconds,
      // One wrk thread, as in bench_http: on a small machine a second one takes CPU the server
      // needs, and one thread keeps 64 connections busy.
      threads: 1,
      script,
    });
    if (!result) return null;
    const eventsDelta = (await eventsTotal(server.url)) - before;
    const totals = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(result.output);
    if (!totals) throw new Error(`bench_sends: cannot read wrk's output:\n${result.output}`);
    const requests = Number(totals[1]);
    const elapsed = wrkSeconds(totals[2]!, totals[3]!);
    const rejected = Number(/Non-2xx or 3xx responses: (\d+)/.exec(result.output)?.[1] ?? 0);
    const accepted = requests - rejected;
    const socketErrors = /Socket errors: (.*)/.exec(result.output)?.[1] ?? "none";
    // Every 2xx stored an event; sends still in flight when wrk stopped may add a few more.
    if (eventsDelta < accepted || eventsDelta > accepted + connections) {
      console.warn(
        `bench_sends: ${label}: wrk counted ${accepted} accepted sends but parley_events_total ` +
          `grew by ${eventsDelta}`,
      );
    }
    return {
      store: label,
      acceptedPerSecond: accepted / elapsed,
      accepted,
      rejected,
      socketErrors,
      eventsDelta,
      latencyP50: result.latencyP50,
    };
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs the comparison and prints it; `rounds` alternate the two stores to even out noise and the
 * best round of each is shown.
 */
export async function benchSends(seconds = 5, connections = 64, rounds = 2): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "parley-bench-sends-" });
  const best = new Map<string, Measurement>();
  try {
    for (let round = 0; round < rounds; round++) {
      const runs: [string, string][] = [
        ["memory", "memory"],
        [`sqlite:${dir}/bench-${round}.db`, "sqlite"],
      ];
      for (const [store, label] of runs) {
        const m = await measure(store, label, seconds, connections);
        if (!m) {
          console.log("bench_sends: wrk is not installed (apt-get install -y wrk); skipped");
          return;
        }
        const prev = best.get(label);
        if (!prev || m.acceptedPerSecond > prev.acceptedPerSecond) best.set(label, m);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const memory = best.get("memory")!;
  const sqlite = best.get("sqlite")!;
  console.log(
    `\nAccepted sends through POST /api/rooms/${ROOM}/messages: wrk -t1 -c${connections} ` +
      `-d${seconds}s, one session, best of ${rounds}`,
  );
  printTable(
    [
      "store",
      "accepted sends/s",
      "ratio sqlite/memory",
      "2xx",
      "non-2xx",
      "events Δ",
      "p50 latency",
    ],
    [memory, sqlite].map((m) => [
      m.store,
      m.acceptedPerSecond.toFixed(0),
      (m.acceptedPerSecond / memory.acceptedPerSecond).toFixed(2),
      m.accepted,
      m.rejected,
      m.eventsDelta,
      m.latencyP50,
    ]),
  );
  for (const m of [memory, sqlite]) {
    if (m.socketErrors !== "none") console.log(`${m.store}: wrk socket errors: ${m.socketErrors}`);
  }
  const met = sqlite.acceptedPerSecond >= TARGET;
  console.log(
    `Target ${TARGET.toLocaleString("en-US")} accepted sends/s with SQLite: ` +
      `${met ? "met" : "NOT met"} (${sqlite.acceptedPerSecond.toFixed(0)}/s).`,
  );
}

if (import.meta.main) await benchSends();
