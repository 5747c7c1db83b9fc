/** The commands a benchmark client worker process takes (JSON lines on stdin) and its answers. */

/** A request the worker encodes and writes on one of its connections. */
export interface RequestSpec {
  method: string;
  path: string;
  /** `Name: value` lines. */
  headers?: string[];
  body?: string;
}

/** Which long-poll contract a connection speaks. */
export type PollKind = "chat" | "nchan";

/** One connection's long poll: a chat session (Parley or the Deno.serve peer) or an nchan channel. */
export type PollSpec =
  | { kind: "chat"; token: string; cursor?: string; wait: number }
  | { kind: "nchan"; channel: string };

/** What a sender sends to: a chat room as one of its members, or an nchan channel. */
export type SendTarget =
  | { kind: "chat"; token: string; room: string }
  | { kind: "nchan"; channel: string };

/** A command to a worker; `id` pairs it with its answer. */
export type Command =
  | { id: number; op: "connect"; ports: number[] }
  | { id: number; op: "close" }
  | {
    id: number;
    op: "exchange";
    requests: (RequestSpec | null)[];
    bodies: boolean;
    /** Requests in flight at once (0: all at once). */
    limit: number;
  }
  | { id: number; op: "poll"; polls: PollSpec[]; loop: boolean }
  | { id: number; op: "collect"; timeoutMs: number }
  | { id: number; op: "stop" }
  | { id: number; op: "delivered" }
  | {
    id: number;
    op: "send";
    port: number;
    connections: number;
    /** Sends in flight per connection at most (pipelined), so a slow answer holds back none. */
    depth: number;
    targets: SendTarget[];
    perSecond: number;
    seconds: number;
  };

/** One answer of an exchange: status (0 = no answer), body bytes, arrival time, body text. */
export type ExchangeResult = [status: number, bytes: number, at: number, body?: string];

/** The answer to `exchange`. */
export interface ExchangeAnswer {
  /** When the worker began writing ({@linkcode now} of `_raw_http.ts`). */
  start: number;
  results: ExchangeResult[];
}

/** What polls saw, answered by `collect` (one-shot polls) and `stop` (poll loops). */
export interface PollReport {
  /** Milliseconds from a message's send time (in its text) to its arrival, per delivery. */
  latencies: number[];
  /** Polls answered (any status). */
  answers: number;
  /** Polls answered without a benchmark message (e.g. join events, timeouts). */
  empty: number;
  /** Non-2xx/304/408 answers and failed connections. */
  errors: number;
  /** One-shot polls still unanswered at the deadline. */
  unanswered: number;
  /**
   * Chat events a connection got again or out of order (an id not above the last it got): each
   * breaks "exactly once, in order".
   */
  duplicates: number;
  /** The first few error descriptions. */
  errorSamples: string[];
}

/** The answer to `send`. */
export interface SendReport {
  issued: number;
  accepted: number;
  rejected: number;
  /** Sends that were due while every connection had `depth` sends waiting for an answer. */
  skipped: number;
  errors: number;
  /** Sends with no answer yet when the report was made (a minute after the last send). */
  unanswered: number;
  errorSamples: string[];
  /** Seconds from the first send to the last answer. */
  seconds: number;
}
