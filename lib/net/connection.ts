import type { Selectable, Selector } from "./selector.ts";

/** What a connection reports to the protocol layer above it. */
export interface ConnectionHandler {
  /** Bytes arrived; `bytes` is only valid during the call (the buffer is reused). */
  onData(bytes: Uint8Array): void;
  /** The peer closed its side (EOF) or the read failed; nothing is read after it. */
  onEnd(): void;
  /** The connection is closed for good; called once. */
  onClose(): void;
  /** The unsent output fell back to the high-water mark after being above it. */
  onDrain?(): void;
}

/** Tuning of a {@linkcode Connection}. */
export interface ConnectionOptions {
  /** First read buffer size; it doubles while reads fill it. */
  initialBuffer?: number;
  /** Largest read buffer. */
  maxBuffer?: number;
  /**
   * Unsent bytes (queued or inside an unfinished write) above which reading pauses until the
   * peer takes them; the protocol layer stops producing output above it too (`needsDrain`).
   */
  highWaterMark?: number;
  /** How long `end()` keeps draining input before closing, in milliseconds. */
  lingerMs?: number;
  /**
   * Milliseconds a TLS peer (`Deno.TlsConn`) has to finish its handshake before the connection is
   * closed; 0 = no bound of its own. Nothing is read or written before the handshake is done.
   */
  handshakeTimeout?: number;
  /** Called when a TLS handshake fails or times out; the connection is then closed. */
  onHandshakeError?: (error: Error, remoteAddr: string) => void;
}

const DEFAULTS = {
  initialBuffer: 2048,
  maxBuffer: 16384,
  highWaterMark: 1 << 20,
  lingerMs: 2000,
  handshakeTimeout: 0,
  onHandshakeError: () => {},
} as const;

/**
 * Bytes the one read kept armed while paused may take: enough to see the peer's EOF (a client
 * that gave up) without taking more of its input than this while we do not want it.
 */
const HELD_READ = 512;

/**
 * A socket with one pending read into its own buffer and a write queue flushed by a single
 * writer. Readiness goes through the selector; the protocol layer gets the bytes in `onData`.
 *
 * While paused (by `pause()` or by unsent output above the high-water mark) one small read stays
 * armed: its EOF is reported at once, its bytes are held until reading goes on, and no further
 * read starts, so a paused connection notices a client that left and takes at most that much.
 */
export class Connection implements Selectable {
  readonly remoteAddr: string;
  handler: ConnectionHandler | null = null;

  #conn: Deno.Conn;
  #selector: Selector;
  #options: Required<ConnectionOptions>;
  /** A TLS handshake in progress: reads wait for it, and the writer awaits it (never rejects). */
  #handshake: Promise<void> | null = null;
  #buf: Uint8Array;
  /** The size the next full read allocates: grown while reads fill it, shrunk on request. */
  #bufSize: number;
  /** What the pending read reads into: `#buf` or its first HELD_READ bytes. */
  #target: Uint8Array;
  /** A read is pending, or its result (and the buffer holding it) is not yet handled. */
  #reading = false;
  #settled = false;
  #readResult: number | null | Error = null;
  #paused = false;
  /** The peer's EOF (or a read error) was reported: nothing more is read. */
  #eof = false;
  #queue: Uint8Array[] = [];
  #queued = 0;
  /** Queued bytes plus the rest of the chunk inside an unfinished write. */
  #unsent = 0;
  #written = 0;
  /** Unsent output went above the high-water mark; cleared (with onDrain) when back at it. */
  #over = false;
  #writing = false;
  #ending = false;
  /** end() shut our side down and now only drains input until the peer closes. */
  #lingering = false;
  #closed = false;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #drained: (() => void)[] = [];
  #closeListeners: (() => void)[] = [];

  constructor(conn: Deno.Conn, selector: Selector, options: ConnectionOptions = {}) {
    this.#conn = conn;
    this.#selector = selector;
    this.#options = { ...DEFAULTS, ...options };
    this.#bufSize = this.#options.initialBuffer;
    this.#buf = new Uint8Array(this.#bufSize);
    this.#target = this.#buf;
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

  /** Bytes not yet taken by the socket: queued, or inside an unfinished write. */
  get writableLength(): number {
    return this.#unsent;
  }

  /** Bytes the socket took since the start; a write timeout watches it move. */
  get bytesWritten(): number {
    return this.#written;
  }

  /** True while unsent output is above the high-water mark: produce no more until `onDrain`. */
  get needsDrain(): boolean {
    return this.#over;
  }

  /** Bytes of the read buffer in use. */
  get readBufferSize(): number {
    return this.#buf.byteLength;
  }

  /** Registers with the selector and starts reading (a TLS connection: its handshake first). */
  start(): void {
    this.#selector.add(this);
    if ("handshake" in this.#conn) this.#shake(this.#conn as Deno.TlsConn);
    else this.#arm();
  }

  /** Stops delivering input (backpressure from the protocol layer) until `resume()`. */
  pause(): void {
    this.#paused = true;
  }

  /** Delivers input again after `pause()`: first what the held read took, then new reads. */
  resume(): void {
    this.#paused = false;
    this.#wake();
  }

  /**
   * Goes back to the initial read buffer from the next read on: the protocol layer asks once a
   * request is parsed, so a keep-alive connection does not keep a buffer grown for one large head.
   */
  shrinkBuffer(): void {
    this.#bufSize = this.#options.initialBuffer;
  }

  /** Queues bytes; the single writer coalesces everything queued into one write. */
  write(bytes: Uint8Array): void {
    if (this.#closed || this.#ending) return;
    this.#queue.push(bytes);
    this.#queued += bytes.byteLength;
    this.#unsent += bytes.byteLength;
    if (this.#unsent > this.#options.highWaterMark) this.#over = true;
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
   * reset that would destroy the response we just wrote. Input is no longer delivered.
   */
  end(): void {
    if (this.#ending || this.#closed) return;
    this.#ending = true;
    this.#wake();
    this.drained().then(() => {
      if (this.#closed) return;
      // Still in the TLS handshake: nothing was sent, so there is nothing to shut down gracefully.
      if (this.#handshake !== null) return this.close();
      try {
        this.#conn.closeWrite();
      } catch {
        this.close();
        return;
      }
      // The peer already closed its side: nothing is left to drain.
      if (this.#eof) return this.close();
      this.#lingering = true;
      this.#lingerTimer = setTimeout(() => this.close(), this.#options.lingerMs);
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
    this.#unsent = 0;
    for (const resolve of this.#drained.splice(0)) resolve();
    this.handler?.onClose();
    for (const listener of this.#closeListeners.splice(0)) listener();
  }

  /** Called by the selector loop when the pending read settled (or held bytes may go on). */
  onReadable(): void {
    if (this.#closed || !this.#settled) return;
    const result = this.#readResult;
    // Bytes read while paused wait for resume(); an EOF or error is reported at once.
    if (typeof result === "number" && !this.#open()) return;
    this.#readResult = null;
    this.#settled = false;
    if (typeof result !== "number") {
      this.#reading = false;
      this.#eof = true;
      if (this.#ending) {
        // Lingering: the peer closed, we are done. Still writing: end() closes after the drain.
        if (this.#lingering) this.close();
        return;
      }
      this.handler?.onEnd();
      return;
    }
    if (!this.#ending) {
      const target = this.#target;
      // Grow the buffer while reads fill it, so large requests take fewer reads. Decided before
      // onData, so a shrinkBuffer() from the handler wins.
      if (result === this.#buf.byteLength && this.#bufSize < this.#options.maxBuffer) {
        this.#bufSize = Math.min(this.#buf.byteLength * 2, this.#options.maxBuffer);
      }
      // #reading stays true during onData: the buffer holds `bytes` until it returns, so no read
      // may start into it (a resume() from the handler only marks it wanted).
      this.handler?.onData(target.subarray(0, result));
    }
    this.#reading = false;
    this.#arm();
  }

  /** Whether input is wanted now: not paused and not behind on output, or ending (discarded). */
  #open(): boolean {
    return this.#ending || (!this.#paused && !this.#over);
  }

  /** Input may go on: hands over held bytes through the selector, or starts a read. */
  #wake(): void {
    if (this.#closed) return;
    if (this.#settled) this.#selector.ready(this);
    else this.#arm();
  }

  /**
   * Runs the TLS handshake on its own, with a deadline, so a peer that never finishes it (or
   * speaks plain HTTP to the TLS port) is counted and closed without a read or write pending.
   */
  #shake(tls: Deno.TlsConn): void {
    const ms = this.#options.handshakeTimeout;
    let timer: ReturnType<typeof setTimeout> | undefined;
    this.#handshake = new Promise<void>((done) => {
      const fail = (error: Error) => {
        clearTimeout(timer);
        done();
        if (this.#closed || this.#handshake === null) return;
        this.#handshake = null;
        this.#options.onHandshakeError(error, this.remoteAddr);
        this.close();
      };
      if (ms > 0) {
        timer = setTimeout(
          () => fail(new Deno.errors.TimedOut(`TLS handshake not finished within ${ms} ms`)),
          ms,
        );
      }
      tls.handshake().then(() => {
        clearTimeout(timer);
        done();
        if (this.#closed || this.#handshake === null) return;
        this.#handshake = null;
        this.#arm();
      }, (error) => fail(error instanceof Error ? error : new Error(String(error))));
    });
  }

  #arm(): void {
    if (this.#reading || this.#closed || this.#eof || this.#handshake !== null) return;
    let target: Uint8Array;
    if (this.#open()) {
      if (this.#buf.byteLength !== this.#bufSize) this.#buf = new Uint8Array(this.#bufSize);
      target = this.#buf;
    } else {
      target = this.#buf.byteLength > HELD_READ ? this.#buf.subarray(0, HELD_READ) : this.#buf;
    }
    this.#target = target;
    this.#reading = true;
    this.#conn.read(target).then(
      (n) => this.#settle(n),
      (err) => this.#settle(err instanceof Error ? err : new Error(String(err))),
    );
  }

  #settle(result: number | null | Error): void {
    // #reading stays true until onReadable() took the result: a read armed before that (by a
    // write finishing, resume() or end()) would overwrite the unread buffer and result.
    this.#readResult = result;
    this.#settled = true;
    // Bytes nobody wants yet stay put without waking the loop; resume() or a drain hands them on.
    if (typeof result === "number" && !this.#open()) return;
    this.#selector.ready(this);
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    const mark = this.#options.highWaterMark;
    // Written after the handshake: a failed one is then counted once, by #shake, not as a write.
    if (this.#handshake !== null) await this.#handshake;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const chunk = this.#takeQueue();
        let off = 0;
        while (off < chunk.byteLength) {
          const n = await this.#conn.write(off === 0 ? chunk : chunk.subarray(off));
          if (this.#closed) return;
          off += n;
          this.#unsent -= n;
          this.#written += n;
          if (this.#over && this.#unsent <= mark) {
            this.#over = false;
            this.handler?.onDrain?.();
            this.#wake();
          }
        }
      }
    } catch {
      this.#writing = false;
      this.close();
      return;
    }
    this.#writing = false;
    for (const resolve of this.#drained.splice(0)) resolve();
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
