/**
 * Driving the chat contract (Parley or the Deno.serve peer) through the raw-TCP client pool:
 * sessions, joins, gauges, and one timed send.
 */
import type { ClientPool, ExchangeResult } from "./_client.ts";
import { encodeRequest, now, RawConnection } from "./_raw_http.ts";
import type { Server } from "./_server_process.ts";

/**
 * Requests in flight per client process while setting up: the way a crowd arrives over a few
 * seconds, not a storm (the join storm scenario makes its own).
 */
export const SETUP_LIMIT = 256;

/** Creates one session per pool connection (`<prefix><i>`) and returns their tokens. */
export async function createSessions(pool: ClientPool, prefix: string): Promise<string[]> {
  const { results } = await pool.exchange(
    Array.from({ length: pool.size }, (_, i) => ({
      method: "POST",
      path: "/api/session",
      body: JSON.stringify({ nick: `${prefix}${i}` }),
    })),
    { bodies: true, limit: SETUP_LIMIT },
  );
  return results.map((r, i) => {
    if (r[0] !== 201) throw new Error(`session ${i}: ${describe(r)}`);
    return JSON.parse(r[3]!).token as string;
  });
}

/**
 * Joins `rooms[i]` with `tokens[i]` on connection i (`limit` in flight per client process, 0:
 * all at once); throws on any failure.
 */
export async function joinRooms(
  pool: ClientPool,
  tokens: string[],
  rooms: string[],
  limit = SETUP_LIMIT,
): Promise<{ start: number; results: ExchangeResult[] }> {
  const answer = await pool.exchange(
    tokens.map((token, i) => ({
      method: "POST",
      path: `/api/rooms/${rooms[i]}/join`,
      headers: [`Authorization: Bearer ${token}`],
    })),
    { limit },
  );
  for (const [i, r] of answer.results.entries()) {
    if (r[0] !== 200) throw new Error(`join ${i}: ${describe(r)}`);
  }
  return answer;
}

/** Ends the sessions (one DELETE per connection); answers how many were not 204. */
export async function deleteSessions(pool: ClientPool, tokens: string[]): Promise<number> {
  const { results } = await pool.exchange(
    tokens.map((token) => ({
      method: "DELETE",
      path: "/api/session",
      headers: [`Authorization: Bearer ${token}`],
    })),
    { limit: SETUP_LIMIT },
  );
  return results.filter((r) => r[0] !== 204).length;
}

function describe(r: ExchangeResult): string {
  return r[0] === 0 ? `no answer (${r[3] ?? "?"})` : `${r[0]} ${r[3]?.slice(0, 200) ?? ""}`;
}

/** A gauge from `/metrics` (Parley's names; the Deno.serve peer exposes the ones used here). */
export async function gauge(server: Server, name: string): Promise<number> {
  const res = await fetch(`${server.url}/metrics`);
  const text = await res.text();
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, "m").exec(text);
  if (!match) throw new Error(`${server.name}: /metrics has no ${name}`);
  return Number(match[1]);
}

/** Waits until `value()` reaches `target`; throws with the last value after `timeoutMs`. */
export async function waitUntil(
  what: string,
  value: () => Promise<number>,
  target: number,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = NaN;
  while (Date.now() < deadline) {
    last = await value();
    if (last >= target) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what}: ${last} of ${target} after ${timeoutMs / 1000} s`);
}

/** Sends one benchmark message (`b:<now>`) as `token` to `room`; answers its status. */
export async function sendOne(
  port: number,
  target: { token: string; room: string } | { channel: string },
): Promise<number> {
  const conn = await RawConnection.open(port);
  try {
    const text = `b:${now().toFixed(3)}`;
    const bytes = "channel" in target
      ? encodeRequest("POST", `/pub/${target.channel}`, [], text)
      : encodeRequest("POST", `/api/rooms/${target.room}/messages`, [
        `Authorization: Bearer ${target.token}`,
      ], JSON.stringify({ text }));
    const res = await conn.request(bytes);
    return res.status;
  } finally {
    conn.close();
  }
}
