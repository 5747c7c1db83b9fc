/**
 * Resident memory of a Parley server process under abusive clients, each scenario against a fresh
 * `--store memory` server on loopback, read from `/proc/PID/status` (VmRSS):
 *
 * - idle: the server alone;
 * - non-reading: CLIENTS connections each pipelining 200 × `GET /app.js` and never reading;
 * - runaway: one connection pipelining `GET /healthz` (answered at once), or long polls with
 *   `wait=0.001` (answered a moment later), as fast as it can while reading.
 *
 *   deno run -A scripts/abuse_memory.ts [clients=40] [seconds=6]
 */
import { api, startServer } from "./bench/_server_process.ts";
import { printTable } from "./bench/_table.ts";

const encoder = new TextEncoder();

function residentMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.byteLength) off += await conn.write(bytes.subarray(off));
}

function hostPort(url: string): { hostname: string; port: number } {
  const u = new URL(url);
  return { hostname: u.hostname, port: Number(u.port) };
}

/** Samples the server's RSS once a second for `seconds`; returns [last, peak, every sample]. */
async function sample(pid: number, seconds: number): Promise<[number, number, string]> {
  let peak = 0;
  let last = 0;
  const all: string[] = [];
  for (let s = 0; s < seconds; s++) {
    await delay(1000);
    last = residentMiB(pid);
    peak = Math.max(peak, last);
    all.push(last.toFixed(0));
  }
  return [last, peak, all.join(" ")];
}

async function idle(rows: (string | number)[][]): Promise<void> {
  const server = await startServer("memory", ["--log-level", "warn"]);
  try {
    await delay(2000);
    const rss = residentMiB(server.pid);
    rows.push(["idle server", rss.toFixed(1), rss.toFixed(1), "", "", ""]);
  } finally {
    await server.stop();
  }
}

async function nonReading(rows: (string | number)[][], clients: number): Promise<void> {
  const server = await startServer("memory", ["--log-level", "warn"]);
  const conns: Deno.Conn[] = [];
  try {
    await delay(1000);
    const before = residentMiB(server.pid);
    const batch = encoder.encode("GET /app.js HTTP/1.1\r\nHost: a\r\n\r\n".repeat(200));
    for (let i = 0; i < clients; i++) {
      const conn = await Deno.connect(hostPort(server.url));
      conns.push(conn);
      await writeAll(conn, batch);
    }
    const [last, peak, series] = await sample(server.pid, 4);
    rows.push([
      `${clients} non-reading clients, 200 × /app.js each, after 4 s`,
      last.toFixed(1),
      peak.toFixed(1),
      before.toFixed(1),
      ((last - before) * 1024 / clients).toFixed(0),
      series,
    ]);
  } finally {
    for (const conn of conns) conn.close();
    await server.stop();
  }
}

async function runaway(
  rows: (string | number)[][],
  seconds: number,
  what: "healthz" | "poll",
): Promise<void> {
  const server = await startServer("memory", ["--log-level", "warn"]);
  try {
    await delay(1000);
    let request = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
    if (what === "poll") {
      const { token } = await api(server.url, "POST", "/api/session", undefined, {
        nick: "runaway",
      });
      // Answered by a timer a millisecond later: the handler is asynchronous, so requests wait.
      request =
        `GET /api/events?wait=0.001 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${token}\r\n\r\n`;
    }
    const before = residentMiB(server.pid);
    const conn = await Deno.connect(hostPort(server.url));
    const batch = encoder.encode(request.repeat(500));
    let stop = false;
    let received = 0;
    const writer = (async () => {
      while (!stop) await writeAll(conn, batch);
    })().catch(() => {});
    const reader = (async () => {
      const buf = new Uint8Array(1 << 16);
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) return;
        received += n;
      }
    })().catch(() => {});
    const [last, peak, series] = await sample(server.pid, seconds);
    stop = true;
    conn.close();
    await Promise.all([writer, reader]);
    const label = what === "poll" ? "GET /api/events?wait=0.001" : "GET /healthz";
    rows.push([
      `one client pipelining ${label}, after ${seconds} s (${(received / 1e6).toFixed(1)} MB read)`,
      last.toFixed(1),
      peak.toFixed(1),
      before.toFixed(1),
      "",
      series,
    ]);
  } finally {
    await server.stop();
  }
}

/** Runs the scenarios and prints a table. */
export async function abuseMemory(clients = 40, seconds = 6): Promise<void> {
  const rows: (string | number)[][] = [];
  await idle(rows);
  await nonReading(rows, clients);
  await runaway(rows, seconds, "healthz");
  await runaway(rows, seconds, "poll");
  console.log("\nParley server resident memory (VmRSS, MiB), --store memory");
  printTable(
    ["scenario", "RSS", "peak RSS", "RSS before", "KiB per client", "RSS each second"],
    rows,
  );
}

if (import.meta.main) {
  await abuseMemory(Number(Deno.args[0] ?? 40), Number(Deno.args[1] ?? 6));
}
