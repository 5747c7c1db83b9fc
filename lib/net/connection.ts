import type { Selectable, Selector } from "./selector.ts";

/** What a connection reports to the protocol layer above it. */
export interface ConnectionHandler {
  /** Bytes arrived; `bytes` is only valid during the call (the buffer is reused). */
  onData(bytes: Uint8Array): void;
  /** The peer closed its side (EOF) or the read failed. */
  onEnd(): void;
  /** The connection is closed for good; called once. */
  onClose(): void;
}

/** Tuning of a {@linkcode Connection}. */
export interface ConnectionOptions {
  /** First read buffer size; it doubles while reads fill it. */
  initialBuffer?: number;
  /** Largest read buffer. */
  maxBuffer?: number;
  /** Queued bytes above which reading pauses until the writer catches up. */
  highWaterMark?: number;
  /** How long `end()` keeps draining input before closing, in milliseconds. */
  lingerMs?: number;
}

const DEFAULTS = {
  initialBuffer: 2048,
  maxBuffer: 16384,
  highWaterMark: 1 << 20,
  lingerMs: 2000,
} as const;

/**
 * A socket with one pending read into its own buffer and a write queue flushed by a single
 * writer. Readiness goes through the selector; the protocol layer gets the bytes in `onData`.
 */
export class Connection implements Selectable {
  readonly remoteAddr: string;
  handler: ConnectionHandler | null = null;

  #conn: Deno.Conn;
  #selector: Selector;
  #options: Required<ConnectionOptions>;
  #buf: Uint8Array;
  #readResult: number | null | Error = null;
  #reading = false;
  #paused = false;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #writing = false;
  #ending = false;
  #closed = false;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #drained: (() => void)[] = [];
  #closeListeners: (() => void)[] = [];

  constructor(conn: Deno.Conn, selector: Selector, options: ConnectionOptions = {}) {
    this.#conn = conn;
    this.#selector = selector;
    this.#options = { ...DEFAULTS, ...options };
    this.#buf = new Uint8Array(this.#options.initialBuffer);
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remoteAddr = addr.hostname ?? "unknown";
    // Responses are written whole; Nagle's delay would only add latency to each one.
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
  }

  /** Runs `listener` once when the connection closes (at once if it already has). */
  onClosed(listener: () => void): void {
    if (this.#closed) listener();
    else this.#closeListeners.push(listener);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes waiting to be written. */
  get writableLength(): number {
    return this.#queued;
  }

  /** Registers with the selector and starts reading. */
  start(): void {
    this.#selector.add(this);
    this.#arm();
  }

  /** Stops reading (backpressure from the protocol layer) until `resume()`. */
  pause(): void {
    this.#paused = true;
  }

  /** Reads again after `pause()` or after the write queue drained. */
  resume(): void {
    this.#paused = false;
    this.#arm();
  }

  /** Queues bytes; the single writer coalesces everything queued into one write. */
  write(bytes: Uint8Array): void {
    if (this.#closed || this.#ending) return;
    this.#queue.push(bytes);
    this.#queued += bytes.byteLength;
    if (!this.#writing) {
      // Start on a microtask, so everything written in this tick goes out as one write.
      this.#writing = true;
      queueMicrotask(() => this.#flush());
    }
  }

  /** Resolves when everything queued so far is written (or the connection closed). */
  drained(): Promise<void> {
    if (this.#closed || (!this.#writing && this.#queued === 0)) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  /**
   * Closes gracefully: flushes the queue, shuts down our side, and keeps reading (discarding)
   * until the peer closes or the linger time passes, so unread input does not turn into a TCP
   * reset that would destroy the response we just wrote.
   */
  end(): void {
    if (this.#ending || this.#closed) return;
    this.#ending = true;
    this.drained().then(() => {
      if (this.#closed) return;
      try {
        this.#conn.closeWrite();
      } catch {
        this.close();
        return;
      }
      this.#lingerTimer = setTimeout(() => this.close(), this.#options.lingerMs);
      this.#paused = false;
      this.#arm();
    });
  }

  /** Closes now; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#lingerTimer);
    this.#selector.remove(this);
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer or the runtime: nothing left to release.
    }
    this.#queue = [];
    this.#queued = 0;
    for (const resolve of this.#drained.splice(0)) resolve();
    this.handler?.onClose();
    for (const listener of this.#closeListeners.splice(0)) listener();
  }

  /** Called by the selector loop when the pending read settled. */
  onReadable(): void {
    const result = this.#readResult;
    this.#readResult = null;
    // Only now is the buffer free for the next read (see #settle).
    this.#reading = false;
    if (this.#closed) return;
    if (result === null || result instanceof Error) {
      if (this.#ending) return this.close();
      this.handler?.onEnd();
      return;
    }
    if (!this.#ending) {
      // Grow the buffer while reads fill it, so large requests take fewer reads.
      const full = result === this.#buf.byteLength;
      this.handler?.onData(this.#buf.subarray(0, result));
      if (full && this.#buf.byteLength < this.#options.maxBuffer) {
        this.#buf = new Uint8Array(Math.min(this.#buf.byteLength * 2, this.#options.maxBuffer));
      }
    }
    this.#arm();
  }

  #arm(): void {
    if (this.#reading || this.#closed || this.#paused) return;
    if (this.#queued > this.#options.highWaterMark && !this.#ending) return;
    this.#reading = true;
    this.#conn.read(this.#buf).then(
      (n) => this.#settle(n),
      (err) => this.#settle(err instanceof Error ? err : new Error(String(err))),
    );
  }

  #settle(result: number | null | Error): void {
    // #reading stays true until onReadable() took the result: a read armed before that (by a
    // write finishing, resume() or end()) would overwrite the unread buffer and result.
    this.#readResult = result;
    this.#selector.ready(this);
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const chunk = this.#takeQueue();
        let off = 0;
        while (off < chunk.byteLength) {
          off += await this.#conn.write(off === 0 ? chunk : chunk.subarray(off));
        }
      }
    } catch {
      this.#writing = false;
      this.close();
      return;
    }
    this.#writing = false;
    for (const resolve of this.#drained.splice(0)) resolve();
    if (!this.#paused) this.#arm();
  }

  #takeQueue(): Uint8Array {
    const queue = this.#queue;
    const total = this.#queued;
    this.#queue = [];
    this.#queued = 0;
    if (queue.length === 1) return queue[0]!;
    const out = new Uint8Array(total);
    let off = 0;
    for (const part of queue) {
      out.set(part, off);
      off += part.byteLength;
    }
    return out;
  }
}
