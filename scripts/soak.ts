/**
 * Soak: waves of short-lived clients against one server process on loopback. Each client makes a
 * session, joins one of 50 rooms, sends a few messages, opens a poll and drops it, then vanishes;
 * presence expiry (`--presence-grace 1`) must remove it. After each wave the table shows the
 * server's resident memory and gauges: with retention (`--history`) capping every room, memory
 * should level off and sessions, waiting polls and connections return to zero.
 *
 *   deno run -A scripts/soak.ts [waves=12] [store=sqlite]
 */
import { api, startServer } from "./bench/_server_process.ts";
import { printTable } from "./bench/_table.ts";

const CLIENTS_PER_WAVE = 500;
const CONCURRENCY = 20;
const ROOMS = 50;
const MESSAGES = 5;

function residentMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
}

function gauge(metrics: string, name: string): number {
  return Number(new RegExp(`^parley_${name} (\\d+)$`, "m").exec(metrics)?.[1] ?? NaN);
}

async function client(url: string, wave: number, n: number): Promise<void> {
  const { token } = await api(url, "POST", "/api/session", undefined, { nick: `w${wave}c${n}` });
  const room = `room${(wave * 7 + n) % ROOMS}`;
  await api(url, "POST", `/api/rooms/${room}/join`, token);
  for (let m = 0; m < MESSAGES; m++) {
    await api(url, "POST", `/api/rooms/${room}/messages`, token, {
      text: `soak message ${m} `.repeat(10),
      clientId: crypto.randomUUID(),
    });
  }
  // A poll whose client goes away must leave no waiter behind.
  const abort = new AbortController();
  const poll = fetch(`${url}/api/events?wait=30`, {
    headers: { authorization: `Bearer ${token}` },
    signal: abort.signal,
  }).then((res) => res.body?.cancel(), () => {});
  await new Promise((resolve) => setTimeout(resolve, 5));
  abort.abort();
  await poll;
}

/** Runs `waves` waves and prints one row per wave. */
export async function soak(waves = 12, store = "sqlite"): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "parley-soak-" });
  const server = await startServer(store === "memory" ? "memory" : `sqlite:${dir}/soak.db`, [
    "--presence-grace",
    "1",
    "--history",
    "200",
  ]);
  const rows: (string | number)[][] = [];
  try {
    for (let wave = 0; wave < waves; wave++) {
      let next = 0;
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < CLIENTS_PER_WAVE) await client(server.url, wave, next++);
      }));
      // Past the grace, the presence sweep (every second) expires the wave's sessions.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const res = await fetch(`${server.url}/metrics`);
      const metrics = await res.text();
      rows.push([
        wave + 1,
        (wave + 1) * CLIENTS_PER_WAVE,
        residentMiB(server.pid).toFixed(0),
        gauge(metrics, "sessions"),
        gauge(metrics, "waiting_polls"),
        gauge(metrics, "connections"),
        gauge(metrics, "rooms"),
        gauge(metrics, "events_total"),
      ]);
    }
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
  console.log(
    `\nSoak: ${CLIENTS_PER_WAVE} clients a wave (${CONCURRENCY} at once), ${ROOMS} rooms, ` +
      `${MESSAGES} messages each, --history 200, --presence-grace 1, store ${store}`,
  );
  printTable(
    ["wave", "clients", "RSS MiB", "sessions", "waiting", "connections", "rooms", "events"],
    rows,
  );
}

if (import.meta.main) await soak(Number(Deno.args[0] ?? 12), Deno.args[1] ?? "sqlite");
