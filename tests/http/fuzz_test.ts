/**
 * Deterministic fuzzing of the HTTP core over real sockets: valid requests are mutated (bytes
 * flipped, CR/LF/NUL/space/colon inserted, truncated, headers duplicated, absurd lengths, split
 * across writes) and each mutant must get a well-formed 2xx/4xx/5xx response or a close, never a
 * hang past the timeouts, while a healthy keep-alive connection beside them keeps working.
 *
 * Reproduce a failure with `FUZZ_SEED=<seed> FUZZ_CASE=<index> deno test -A tests/http/fuzz_test.ts`;
 * hunt longer with `FUZZ_SEED=<any> FUZZ_COUNT=<n>`.
 */
import assert from "node:assert/strict";
import { HttpError, STATUS } from "../../lib/http/errors.ts";
import { jsonResponse } from "../../lib/http/response.ts";
import { Router } from "../../lib/http/router.ts";
import type { HttpServer } from "../../lib/http/server.ts";
import type { HttpResponse } from "../../lib/http/types.ts";
import { bytes, ManualClock, RawClient, withHttpServer } from "./_raw.ts";

const DEFAULT_SEED = 0x5eed_2026;
const COUNT = 1500;
/** Mutants in flight at once; the healthy connection is checked between batches. */
const BATCH = 50;
/** Real time a batch gets to be answered before the clock jumps past every timeout. */
const GRACE_MS = 100;
/** Real time allowed for answers or closes once the timeouts fired. */
const BOUND_MS = 3000;
/** Seconds; the clock jumps past all of them at once. */
const TIMEOUTS = { header: 1, body: 1, idle: 1 } as const;
const LIMITS = { maxHeader: 2048, maxTarget: 512, maxBody: 4096 } as const;
const ALLOWED = new Set([200, 201, 204, 400, 404, 405, 408, 413, 414, 431, 501, 505]);

function envNumber(name: string): number | undefined {
  try {
    const value = Deno.env.get(name);
    return value === undefined ? undefined : Number(value);
  } catch {
    return undefined; // no --allow-env
  }
}

/** mulberry32: a small, fast PRNG with a 32-bit state; enough to drive mutations. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

function chunked(parts: string[]): string {
  return parts.map((p) => `${p.length.toString(16)}\r\n${p}\r\n`).join("") + "0\r\n\r\n";
}

const MESSAGE = '{"text":"hi there"}';
const SESSION = '{"nick":"alice"}';

/** Valid requests the mutants start from. */
const SEEDS: readonly string[] = [
  "GET /api/rooms HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n",
  `POST /api/rooms/lobby/messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n` +
  `Authorization: Bearer abc\r\nContent-Length: ${MESSAGE.length}\r\n\r\n${MESSAGE}`,
  "POST /api/rooms/lobby/messages HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
  chunked(['{"text":', '"hi there"', "}"]),
  "GET /api/events?cursor=5&wait=0 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
  "HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
  "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
  `POST /api/session HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: ${SESSION.length}\r\n\r\n${SESSION}`,
  "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nDELETE /api/session HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
  "GET http://a/api/rooms/l%C3%A9/history?limit=5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
];

const SPECIALS = ["\r", "\n", "\0", " ", ":", "\t", "\r\n", "\r\n\r\n", ",", "\x7f", "\xff"];
const LENGTHS = [
  "99999999999999999999",
  "18446744073709551616",
  "9007199254740993",
  "4294967296",
  "-1",
  "+5",
  "1e3",
  "0x10",
  "",
  " 5",
  "5, 6",
  "5,5",
  "0",
  "100000",
];
const CHUNK_SIZES = [
  "FFFFFFFFFFFFFFFFFFFF",
  "7fffffffffffffff",
  "-1",
  "0x5",
  "5 ",
  "5;",
  " 5",
  "",
  "1000000",
  "g",
];
const VERSIONS = ["HTTP/1.2", "HTTP/9.9", "HTTP/1.1 ", "http/1.1", "HTTP/1", "HTTP/11", "HTTP/1.0"];

/** One mutation of `text` (each char is a byte). */
function mutate(rng: Rng, text: string): string {
  const at = rng.int(text.length + 1);
  switch (rng.int(11)) {
    case 0: // replace a byte
      return text.slice(0, at) + String.fromCharCode(rng.int(256)) + text.slice(at + 1);
    case 1: { // flip a bit
      const i = Math.min(at, text.length - 1);
      return text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ (1 << rng.int(8))) +
        text.slice(i + 1);
    }
    case 2: // insert a byte that matters to the grammar
      return text.slice(0, at) + rng.pick(SPECIALS) + text.slice(at);
    case 3: // delete a few bytes
      return text.slice(0, at) + text.slice(at + 1 + rng.int(8));
    case 4: // truncate
      return text.slice(0, at);
    case 5: { // duplicate a header line
      const lines = text.split("\r\n");
      const end = Math.max(2, lines.indexOf(""));
      const i = 1 + rng.int(end - 1);
      lines.splice(i, 0, lines[i] ?? "X-Dup: 1");
      return lines.join("\r\n");
    }
    case 6: { // an absurd Content-Length, replacing the field or added
      const value = rng.pick(LENGTHS);
      if (/Content-Length: [^\r]*/.test(text)) {
        return text.replace(/Content-Length: [^\r]*/, `Content-Length: ${value}`);
      }
      return text.replace("\r\n", `\r\nContent-Length: ${value}\r\n`);
    }
    case 7: { // an absurd chunk size
      const head = text.indexOf("\r\n\r\n");
      if (head < 0 || !/chunked/i.test(text)) return text.slice(0, at) + "\r\n" + text.slice(at);
      const body = text.slice(head + 4).replace(/^[^\r]*/, rng.pick(CHUNK_SIZES));
      return text.slice(0, head + 4) + body;
    }
    case 8: // another version
      return text.replace("HTTP/1.1", rng.pick(VERSIONS));
    case 9: // a long run of bytes, against the limits
      return text.slice(0, at) + rng.pick(["a", "%", " ", "\t", "0"]).repeat(1 + rng.int(5000)) +
        text.slice(at);
    default: // the request again (pipelining), maybe with the first one cut
      return text.slice(0, rng.int(2) === 0 ? text.length : at) + text;
  }
}

interface Case {
  index: number;
  parts: string[];
}

function makeCase(seed: number, index: number): Case {
  const rng = new Rng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  let text = rng.pick(SEEDS);
  const mutations = 1 + rng.int(3);
  for (let i = 0; i < mutations; i++) text = mutate(rng, text);
  // Random splits across writes.
  const cuts = Array.from({ length: rng.int(4) }, () => rng.int(text.length + 1)).sort((a, b) =>
    a - b
  );
  const parts: string[] = [];
  let from = 0;
  for (const cut of cuts) {
    parts.push(text.slice(from, cut));
    from = cut;
  }
  parts.push(text.slice(from));
  return { index, parts: parts.filter((p) => p.length > 0) };
}

function fuzzRouter(steady: { resolve: ((res: HttpResponse) => void) | null }): Router {
  return new Router()
    .get("/api/rooms", () => jsonResponse(STATUS.OK, { rooms: [] }))
    .post("/api/rooms/:room/messages", (req, params) => {
      let value: unknown;
      try {
        value = JSON.parse(new TextDecoder().decode(req.body));
      } catch {
        throw new HttpError(STATUS.BadRequest, "bad_json", "The body is not JSON");
      }
      return jsonResponse(STATUS.Created, { room: params.room, value });
    })
    .get(
      "/api/rooms/:room/history",
      (_req, params) => jsonResponse(STATUS.OK, { room: params.room, events: [] }),
    )
    .get("/api/events", async (req) => {
      await Promise.resolve();
      return jsonResponse(STATUS.OK, { events: [], cursor: req.query.get("cursor") ?? "0" });
    })
    .post("/api/session", () => jsonResponse(STATUS.Created, { token: "t" }))
    .delete("/api/session", () => ({ status: STATUS.NoContent }))
    .get("/healthz", () => jsonResponse(STATUS.OK, { status: "ok" }))
    // The healthy connection's long poll: keeps it busy (so no timeout applies) while the clock jumps.
    .get("/__steady/wait", () => new Promise((resolve) => steady.resolve = resolve));
}

type Outcome = { kind: "response"; status: number; head: string } | {
  kind: "closed";
  received: string;
};

/** Sends a case on its own connection; `done` settles with the first final response or the close. */
async function startCase(
  port: number,
  c: Case,
): Promise<{ client: RawClient; done: Promise<Outcome> }> {
  const client = await RawClient.connect(port);
  const done = (async (): Promise<Outcome> => {
    for (const [i, part] of c.parts.entries()) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 0));
      try {
        await client.send(bytes(part));
      } catch {
        break; // the server answered and closed early (e.g. 431 mid-upload)
      }
    }
    for (;;) {
      let text = client.buffered;
      // Interim 1xx responses come before the final one.
      while (text.startsWith("HTTP/1.1 100 ")) {
        const end = text.indexOf("\r\n\r\n");
        if (end < 0) break;
        text = text.slice(end + 4);
      }
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0 && !text.startsWith("HTTP/1.1 100 ")) {
        const head = text.slice(0, end);
        return {
          kind: "response",
          status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1] ?? NaN),
          head,
        };
      }
      if (client.eof) return { kind: "closed", received: client.buffered };
      await client.fill(60_000);
    }
  })();
  return { client, done };
}

/** What is wrong with an outcome, or null. */
function problem(outcome: Outcome): string | null {
  if (outcome.kind === "closed") {
    return outcome.received === ""
      ? null
      : `closed after a partial response: ${JSON.stringify(outcome.received)}`;
  }
  const [statusLine = "", ...lines] = outcome.head.split("\r\n");
  if (!/^HTTP\/1\.1 \d{3} [A-Za-z -]+$/.test(statusLine)) {
    return `bad status line ${JSON.stringify(statusLine)}`;
  }
  if (!ALLOWED.has(outcome.status)) return `unexpected status ${outcome.status}`;
  const names = new Set<string>();
  for (const line of lines) {
    const m = /^([A-Za-z-]+): ([\x20-\x7e]*)$/.exec(line);
    if (!m) return `bad header line ${JSON.stringify(line)}`;
    names.add(m[1]!.toLowerCase());
  }
  if (!names.has("date")) return "no Date";
  const bodyless = outcome.status === 204 || outcome.status === 304;
  if (names.has("content-length") === bodyless) {
    return `Content-Length ${bodyless ? "on" : "missing from"} ${outcome.status}`;
  }
  return null;
}

function describe(seed: number, c: Case, why: string): string {
  return `seed=${seed} index=${c.index}: ${why}\n  parts=${JSON.stringify(c.parts)}`;
}

async function steadyCheck(
  client: RawClient,
  steady: { resolve: ((res: HttpResponse) => void) | null },
) {
  await client.send("GET /healthz HTTP/1.1\r\nHost: steady\r\n\r\n");
  const res = await client.readResponse();
  assert.equal(res.status, 200, "the healthy keep-alive connection answers /healthz");
  assert.deepEqual(JSON.parse(res.body), { status: "ok" });
  await client.send("GET /__steady/wait HTTP/1.1\r\nHost: steady\r\n\r\n");
  const deadline = Date.now() + 2000;
  while (!steady.resolve) {
    if (Date.now() > deadline) throw new Error("the healthy connection's poll did not arrive");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

async function steadyRelease(
  client: RawClient,
  steady: { resolve: ((res: HttpResponse) => void) | null },
) {
  const resolve = steady.resolve!;
  steady.resolve = null;
  resolve(jsonResponse(STATUS.OK, { waited: true }));
  const res = await client.readResponse();
  assert.equal(res.status, 200, "the healthy connection's poll is answered");
}

Deno.test("http fuzz: mutated requests get an answer or a close, and never disturb a healthy connection", async () => {
  const seed = envNumber("FUZZ_SEED") ?? DEFAULT_SEED;
  const only = envNumber("FUZZ_CASE");
  const count = envNumber("FUZZ_COUNT") ?? COUNT;
  const indexes = only === undefined ? Array.from({ length: count }, (_, i) => i) : [only];
  const clock = new ManualClock();
  const steady: { resolve: ((res: HttpResponse) => void) | null } = { resolve: null };
  const router = fuzzRouter(steady);
  const serverErrors: unknown[] = [];
  const failures: string[] = [];
  const outcomes = new Map<string, number>();
  await withHttpServer((req) => router.handle(req), {
    now: clock.now,
    timeouts: TIMEOUTS,
    limits: LIMITS,
    onError: (error) => serverErrors.push(error),
  }, async (server: HttpServer, port) => {
    const healthy = await RawClient.connect(port);
    try {
      for (let b = 0; b < indexes.length; b += BATCH) {
        await steadyCheck(healthy, steady);
        const batch = indexes.slice(b, b + BATCH).map((i) => makeCase(seed, i));
        const started = await Promise.all(batch.map((c) => startCase(port, c)));
        const results: (Outcome | null)[] = started.map(() => null);
        const all = Promise.all(started.map((s, i) => s.done.then((o) => results[i] = o)));
        let timer: ReturnType<typeof setTimeout> | undefined;
        const wait = (ms: number) =>
          Promise.race([all, new Promise((resolve) => timer = setTimeout(resolve, ms))]).finally(
            () => clearTimeout(timer),
          );
        await wait(GRACE_MS);
        if (results.includes(null)) {
          // Whatever is still waiting for bytes must now be timed out: 408 or a close.
          clock.advance(2000);
          server.sweep();
          await wait(BOUND_MS);
        }
        for (const [i, c] of batch.entries()) {
          const outcome = results[i];
          const why = outcome
            ? problem(outcome)
            : `no answer and no close ${BOUND_MS} ms after the timeouts`;
          if (why) failures.push(describe(seed, c, why));
          const key = outcome?.kind === "response"
            ? String(outcome.status)
            : outcome
            ? "close"
            : "hang";
          outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        }
        for (const s of started) await s.client.close();
        await Promise.allSettled(started.map((s) => s.done));
        await steadyRelease(healthy, steady);
      }
      await steadyCheck(healthy, steady);
      await steadyRelease(healthy, steady);
      // Every mutant's connection is gone; only the healthy one is left.
      const deadline = Date.now() + 3000;
      while (server.connections > 1 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.equal(server.connections, 1, "connections left open by the mutants");
    } finally {
      await healthy.close();
    }
  });
  if (failures.length > 0) {
    console.error(`${failures.length} failing cases:\n${failures.slice(0, 20).join("\n")}`);
  }
  assert.deepEqual(failures, []);
  assert.deepEqual(serverErrors, [], "the server loop or a handler failed");
  // The mutants must have reached more than the parser's first error.
  if (only === undefined) {
    const kinds = [...outcomes.keys()];
    for (const expected of ["200", "400", "408", "413", "431"]) {
      assert.ok(
        kinds.includes(expected),
        `no ${expected} among ${JSON.stringify(Object.fromEntries(outcomes))}`,
      );
    }
  }
});
