/**
 * A benchmark client process: holds many raw TCP connections and drives them on command (JSON
 * lines on stdin, answers on stdout). Several of these run at once so that one process's event
 * loop and file limit never cap what a server is measured at.
 */
import type {
  Command,
  ExchangeAnswer,
  ExchangeResult,
  PollReport,
  PollSpec,
  SendReport,
  SendTarget,
} from "./_client_protocol.ts";
import { encodeRequest, headerValue, now, RawConnection, type RawResponse } from "./_raw_http.ts";

/** Connections opened at once: more would overflow the servers' accept backlog. */
const CONNECT_CONCURRENCY = 64;
/** Bytes each connection reads at a time; larger answers are assembled from several reads. */
const READ_SIZE = 4096;
/** How often the sender checks whether sends are due. */
const SEND_TICK_MS = 2;
/** Error descriptions kept per report. */
const ERROR_SAMPLES = 5;

const decoder = new TextDecoder();
/**
 * This worker's connections by index, and their ports. A connection opens at its first request,
 * which it writes at once: a server may close a connection that stays silent after it opened.
 */
let ports: number[] = [];
let connections: (RawConnection | Promise<RawConnection> | undefined)[] = [];
let polls: PollState | null = null;

/** Opens at most CONNECT_CONCURRENCY connections at a time. */
const opening = { active: 0, queue: [] as (() => void)[] };

async function open(port: number): Promise<RawConnection> {
  if (opening.active >= CONNECT_CONCURRENCY) {
    await new Promise<void>((resolve) => opening.queue.push(resolve));
  }
  opening.active++;
  try {
    return await RawConnection.open(port, READ_SIZE);
  } finally {
    opening.active--;
    opening.queue.shift()?.();
  }
}

/** Connection `i`, opened if it was not yet. */
function connection(i: number): RawConnection | Promise<RawConnection> {
  const existing = connections[i];
  if (existing) return existing;
  const port = ports[i];
  if (port === undefined) throw new Error(`no connection ${i} (have ${ports.length})`);
  const opened = open(port).then((conn) => {
    if (connections[i] === opened) connections[i] = conn;
    else conn.close();
    return conn;
  });
  connections[i] = opened;
  return opened;
}

function closeAll(): void {
  for (const entry of connections) {
    if (entry instanceof RawConnection) entry.close();
    else entry?.then((conn) => conn.close(), () => {});
  }
  connections = [];
  ports = [];
}

/** The long polls of this worker and what they saw. */
class PollState {
  running = true;
  report: PollReport = {
    latencies: [],
    answers: 0,
    empty: 0,
    errors: 0,
    unanswered: 0,
    duplicates: 0,
    errorSamples: [],
  };
  pending = new Set<Promise<void>>();

  error(text: string): void {
    this.report.errors++;
    if (this.report.errorSamples.length < ERROR_SAMPLES) this.report.errorSamples.push(text);
  }
}

/**
 * Latency of each benchmark message (text `b:<send time>`) in a chat poll answer; answers the
 * highest event id the connection has seen, counting any event at or below `lastId` as repeated.
 */
function chatAnswer(
  state: PollState,
  spec: PollSpec & { kind: "chat" },
  res: RawResponse,
  lastId: number,
): number {
  const body = JSON.parse(decoder.decode(res.body)) as {
    events: { id: number; type: string; text?: string }[];
    cursor: string;
  };
  spec.cursor = body.cursor;
  let found = 0;
  for (const event of body.events) {
    if (event.id <= lastId) state.report.duplicates++;
    else lastId = event.id;
    if (event.type === "message" && event.text?.startsWith("b:")) {
      state.report.latencies.push(res.at - Number(event.text.slice(2)));
      found++;
    }
  }
  if (found === 0) state.report.empty++;
  return lastId;
}

/** Runs one connection's long poll, once or until stopped. */
async function pollLoop(
  state: PollState,
  index: number,
  spec: PollSpec,
  loop: boolean,
): Promise<void> {
  // nchan's position in its channel: the previous answer's Last-Modified and Etag.
  let since: string | null = null;
  let etag: string | null = null;
  // The highest chat event id this connection got.
  let lastId = 0;
  let bytes = encodePoll(spec, since, etag);
  do {
    let res: RawResponse;
    try {
      const conn = connection(index);
      res = await (conn instanceof RawConnection ? conn : await conn).request(bytes);
    } catch (error) {
      if (state.running) state.error(`connection: ${(error as Error).message}`);
      return;
    }
    state.report.answers++;
    if (spec.kind === "chat") {
      if (res.status !== 200) {
        // Polling on would repeat the same error as fast as the server answers it.
        state.error(`poll answered ${res.status}: ${decoder.decode(res.body).slice(0, 200)}`);
        return;
      }
      lastId = chatAnswer(state, spec, res, lastId);
    } else if (res.status === 200) {
      const text = decoder.decode(res.body);
      if (text.startsWith("b:")) state.report.latencies.push(res.at - Number(text.slice(2)));
      else state.report.empty++;
      since = headerValue(res.head, "last-modified");
      etag = headerValue(res.head, "etag");
    } else if (res.status === 304 || res.status === 408) {
      // A subscriber timeout: poll again.
      state.report.empty++;
    } else {
      state.error(`poll answered ${res.status}`);
      return;
    }
    if (loop && state.running) bytes = encodePoll(spec, since, etag);
  } while (loop && state.running);
}

function encodePoll(spec: PollSpec, since: string | null, etag: string | null): Uint8Array {
  if (spec.kind === "chat") {
    const cursor = spec.cursor === undefined ? "" : `cursor=${spec.cursor}&`;
    return encodeRequest("GET", `/api/events?${cursor}wait=${spec.wait}`, [
      `Authorization: Bearer ${spec.token}`,
    ]);
  }
  const headers = [];
  if (since !== null) headers.push(`If-Modified-Since: ${since}`);
  if (etag !== null) headers.push(`If-None-Match: ${etag}`);
  return encodeRequest("GET", `/sub/${spec.channel}`, headers);
}

function encodeSend(target: SendTarget): Uint8Array {
  const text = `b:${now().toFixed(3)}`;
  if (target.kind === "chat") {
    return encodeRequest(
      "POST",
      `/api/rooms/${target.room}/messages`,
      [`Authorization: Bearer ${target.token}`],
      JSON.stringify({ text }),
    );
  }
  return encodeRequest("POST", `/pub/${target.channel}`, [], text);
}

function connect(more: number[]): { opened: number; failed: number } {
  ports.push(...more);
  connections.length = ports.length;
  return { opened: more.length, failed: 0 };
}

async function exchange(
  requests: ({ method: string; path: string; headers?: string[]; body?: string } | null)[],
  bodies: boolean,
  limit: number,
): Promise<ExchangeAnswer> {
  const encoded = requests.map((r) => r && encodeRequest(r.method, r.path, r.headers, r.body));
  const results: ExchangeResult[] = new Array(encoded.length);
  const one = async (i: number): Promise<void> => {
    const bytes = encoded[i];
    if (!bytes) {
      results[i] = [0, 0, 0];
      return;
    }
    try {
      const res = await (await connection(i)).request(bytes);
      results[i] = bodies
        ? [res.status, res.body.length, res.at, decoder.decode(res.body)]
        : [res.status, res.body.length, res.at];
    } catch (error) {
      results[i] = [0, 0, now(), (error as Error).message];
    }
  };
  const start = now();
  if (limit <= 0) {
    await Promise.all(encoded.map((_, i) => one(i)));
  } else {
    let next = 0;
    await Promise.all(Array.from({ length: limit }, async () => {
      while (next < encoded.length) await one(next++);
    }));
  }
  return { start, results };
}

function startPolls(specs: PollSpec[], loop: boolean): void {
  const state = new PollState();
  polls = state;
  if (specs.length !== ports.length) {
    throw new Error(`${specs.length} polls for ${ports.length} connections`);
  }
  for (const [i, spec] of specs.entries()) {
    const done: Promise<void> = pollLoop(state, i, spec, loop).finally(() =>
      state.pending.delete(done)
    );
    state.pending.add(done);
  }
}

async function collect(timeoutMs: number): Promise<PollReport> {
  const state = polls;
  if (!state) throw new Error("collect before poll");
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all(state.pending),
    new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
  ]);
  clearTimeout(timer);
  state.running = false;
  state.report.unanswered = state.pending.size;
  polls = null;
  return state.report;
}

function stop(): PollReport {
  const state = polls;
  if (!state) throw new Error("stop before poll");
  state.running = false;
  polls = null;
  return state.report;
}

async function send(
  port: number,
  count: number,
  depth: number,
  targets: SendTarget[],
  perSecond: number,
  seconds: number,
): Promise<SendReport> {
  const conns = await Promise.all(Array.from({ length: count }, () => RawConnection.open(port)));
  const report: SendReport = {
    issued: 0,
    accepted: 0,
    rejected: 0,
    skipped: 0,
    errors: 0,
    unanswered: 0,
    errorSamples: [],
    seconds: 0,
  };
  const answers = new Set<Promise<void>>();
  const start = now();
  let next = 0;
  let cursor = 0;
  while (true) {
    const elapsed = (now() - start) / 1000;
    if (elapsed >= seconds) break;
    const due = Math.floor(elapsed * perSecond) - report.issued - report.skipped;
    for (let k = 0; k < due; k++) {
      // The next connection with room in its pipeline, round robin; none means the server is far
      // behind (the sends are not queued here, which would hide that).
      let conn: RawConnection | undefined;
      for (let tries = 0; tries < conns.length; tries++) {
        const candidate = conns[cursor++ % conns.length]!;
        if (candidate.inFlight < depth && !candidate.closed) {
          conn = candidate;
          break;
        }
      }
      if (!conn) {
        report.skipped++;
        continue;
      }
      report.issued++;
      const target = targets[next++ % targets.length]!;
      const answer: Promise<void> = conn.request(encodeSend(target)).then(
        (res) => {
          if (res.status >= 200 && res.status < 300) report.accepted++;
          else {
            report.rejected++;
            if (report.errorSamples.length < ERROR_SAMPLES) {
              report.errorSamples.push(`send answered ${res.status}`);
            }
          }
        },
        (error) => {
          report.errors++;
          if (report.errorSamples.length < ERROR_SAMPLES) {
            report.errorSamples.push(`send: ${(error as Error).message}`);
          }
        },
      ).finally(() => answers.delete(answer));
      answers.add(answer);
    }
    await new Promise((resolve) => setTimeout(resolve, SEND_TICK_MS));
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all(answers),
    new Promise((resolve) => timer = setTimeout(resolve, 60_000)),
  ]);
  clearTimeout(timer);
  report.unanswered = answers.size;
  report.seconds = (now() - start) / 1000;
  // A copy: closing fails the sends still waiting, which would count them again.
  const result = { ...report, errorSamples: [...report.errorSamples] };
  for (const conn of conns) conn.close();
  return result;
}

async function handle(command: Command): Promise<unknown> {
  switch (command.op) {
    case "connect":
      return connect(command.ports);
    case "close":
      closeAll();
      return {};
    case "exchange":
      return await exchange(command.requests, command.bodies, command.limit);
    case "poll":
      startPolls(command.polls, command.loop);
      return {};
    case "collect":
      return await collect(command.timeoutMs);
    case "stop":
      return stop();
    case "delivered":
      return polls?.report.latencies.length ?? 0;
    case "send":
      return await send(
        command.port,
        command.connections,
        command.depth,
        command.targets,
        command.perSecond,
        command.seconds,
      );
  }
}

async function main(): Promise<void> {
  const encoder = new TextEncoder();
  const out = Deno.stdout;
  const write = async (value: unknown) => {
    const bytes = encoder.encode(JSON.stringify(value) + "\n");
    let offset = 0;
    while (offset < bytes.length) offset += await out.write(bytes.subarray(offset));
  };
  // Answers are written one at a time so their lines never interleave.
  let writing = Promise.resolve();
  const answer = (value: unknown) => writing = writing.then(() => write(value));
  let buffered = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const command = JSON.parse(buffered.slice(0, newline)) as Command;
      buffered = buffered.slice(newline + 1);
      handle(command).then(
        (result) => answer({ id: command.id, result }),
        (error) => answer({ id: command.id, error: String(error?.stack ?? error) }),
      );
    }
  }
  closeAll();
  await writing;
}

if (import.meta.main) await main();
