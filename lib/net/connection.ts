import { BufferPool } from "./buffer_pool.ts";
import type { ByteSocket } from "./node_socket.ts";
import { releaseOutput } from "./output_arena.ts";
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
  /**
   * Paused by `pause()`, the connection holds all the input it takes while paused: more (and a
   * close behind it) is read only once the handler resumes. Called once per pause, on a microtask.
   */
  onHeldFull?(): void;
}

/**
 * Tuning of a {@linkcode Connection}. Connections made with the same options object share what
 * comes from it: the settings, and one pool of first-size read buffers (a listener passes one
 * object for all its connections).
 */
export interface ConnectionOptions {
  /**
   * First read buffer size, and the size of the one every connection keeps while it waits (cut
   * from slabs shared by connections of the same options); a larger one is used only while reads
   * fill it, doubling each time.
   */
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
  initialBuffer: 1024,
  maxBuffer: 16384,
  highWaterMark: 1 << 20,
  lingerMs: 2000,
  handshakeTimeout: 0,
  onHandshakeError: () => {},
} as const;

/** Options with defaults filled in, and the buffer pool of their connections. */
interface Settings extends Required<ConnectionOptions> {
  pool: BufferPool;
}

/** Settings per options object, so connections of one listener share them and their pool. */
const settingsOf = new WeakMap<ConnectionOptions, Settings>();

function settings(options: ConnectionOptions): Settings {
  let resolved = settingsOf.get(options);
  if (resolved === undefined) {
    const all = { ...DEFAULTS, ...options };
    resolved = { ...all, pool: new BufferPool(all.initialBuffer) };
    settingsOf.set(options, resolved);
  }
  return resolved;
}

const EMPTY = new Uint8Array(0);

/**
 * Bytes reads may take while paused, in all: enough to see the peer's EOF (a client that gave up)
 * behind a little more input (a first-size buffer's worth), without taking more of its input
 * than this while we do not want it.
 */
export const HELD_READ = 1024;

/** The peer's EOF, read and not yet reported. */
const EOF = Symbol("eof");

/**
 * A socket with one pending read into its own buffer and a write queue flushed by a single
 * writer. Readiness goes through the selector; the protocol layer gets the bytes in `onData`.
 *
 * While paused (by `pause()` or by unsent output above the high-water mark) reads go on into the
 * first HELD_READ bytes of the buffer and stop when those are full: their bytes are held until
 * reading goes on, and the peer's EOF is reported at once, after the bytes held before it (the
 * only input delivered while paused, so none is lost or reordered). A paused connection thus
 * notices a client that left, behind up to that much input, and takes no more than that.
 */
export class Connection implements Selectable {
  readonly remoteAddr: string;
  handler: ConnectionHandler | null = null;

  #conn: ByteSocket;
  #selector: Selector;
  #options: Settings;
  /** A TLS handshake in progress: reads wait for it, and the writer awaits it (never rejects). */
  #handshake: Promise<void> | null = null;
  /** This connection's first-size buffer from the pool; given back once no read can use it. */
  #slot: Uint8Array | null = null;
  /** A larger buffer, while reads fill the slot; dropped when the buffer shrinks. */
  #large: Uint8Array | null = null;
  /** The size the next full read uses: grown while reads fill it, shrunk on request. */
  #bufSize: number;
  /** The buffer reads go into now: the slot or the large buffer. */
  #buf: Uint8Array = EMPTY;
  /** A read is pending. */
  #reading = false;
  /** Bytes read into `#buf` (from its start) and not yet delivered. */
  #held = 0;
  /** Where in the buffer the pending read puts its bytes (after the bytes held when it began). */
  #readAt = 0;
  /** onData is running: the buffer holds its bytes, so no read may start into it. */
  #delivering = false;
  /** The peer's EOF or a read error, read and not yet reported. */
  #end: typeof EOF | Error | null = null;
  #paused = false;
  /** onHeldFull was called (or is queued) since the last pause(). */
  #heldFullTold = false;
  /** The peer's EOF (or a read error) was reported: nothing more is read. */
  #eof = false;
  /** Chunks written and not yet taken by the writer (null: none). */
  #queue: Uint8Array[] | null = null;
  #queued = 0;
  /** The chunk inside an unfinished write, and how much of it the socket took. */
  #chunk: Uint8Array = EMPTY;
  #chunkOff = 0;
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
  #drained: (() => void)[] | null = null;
  #closeListener: ((conn: Connection) => void) | null = null;
  #moreCloseListeners: ((conn: Connection) => void)[] | null = null;
  /**
   * The settled read, as the one callback its promise takes for both outcomes: one function per
   * connection instead of two closures per read.
   */
  #onRead = (result: number | null | unknown): void => {
    this.#settle(
      typeof result === "number"
        ? result
        : result === null
        ? EOF
        : result instanceof Error
        ? result
        : new Error(String(result)),
    );
  };
  /** The writer's one callback: undefined starts a flush (a microtask), a number is progress. */
  #onWrite = (result?: number | unknown): void => {
    if (result === undefined) this.#flush();
    else this.#wrote(result);
  };

  constructor(conn: ByteSocket, selector: Selector, options: ConnectionOptions = {}) {
    this.#conn = conn;
    this.#selector = selector;
    this.#options = settings(options);
    this.#bufSize = this.#options.initialBuffer;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remoteAddr = addr.hostname ?? "unknown";
    // Responses are written whole; Nagle's delay would only add latency to each one.
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
  }

  /**
   * Runs `listener` once, with this connection, when it closes (at once if it already has). A
   * listener that needs nothing else can be one function for every connection.
   */
  onClosed(listener: (conn: Connection) => void): void {
    if (this.#closed) listener(this);
    else if (this.#closeListener === null) this.#closeListener = listener;
    else (this.#moreCloseListeners ??= []).push(listener);
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

  /** Bytes of the read buffer the next full read uses. */
  get readBufferSize(): number {
    return this.#large?.byteLength ?? this.#options.initialBuffer;
  }

  /** Registers with the selector and starts reading (a TLS connection: its handshake first). */
  start(): void {
    this.#selector.add(this);
    if ("handshake" in this.#conn) this.#shake(this.#conn as unknown as Deno.TlsConn);
    else this.#arm();
  }

  /** Stops delivering input (backpressure from the protocol layer) until `resume()`. */
  pause(): void {
    this.#paused = true;
    this.#heldFullTold = false;
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

  /**
   * Queues bytes; the single writer coalesces everything queued into one write. Bytes from an
   * output arena are released to it once written or dropped: the caller must not touch them again.
   */
  write(bytes: Uint8Array): void {
    if (this.#closed || this.#ending) {
      releaseOutput(bytes);
      return;
    }
    if (this.#queue === null) this.#queue = [bytes];
    else this.#queue.push(bytes);
    this.#queued += bytes.byteLength;
    this.#unsent += bytes.byteLength;
    if (this.#unsent > this.#options.highWaterMark) this.#over = true;
    if (!this.#writing) {
      // Start on a microtask, so everything written in this tick goes out as one write.
      this.#writing = true;
      queueMicrotask(this.#onWrite as () => void);
    }
  }

  /** Resolves when everything queued so far is written (or the connection closed). */
  drained(): Promise<void> {
    if (this.#closed || (!this.#writing && this.#queued === 0)) return Promise.resolve();
    return new Promise((resolve) => (this.#drained ??= []).push(resolve));
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
    // A read still pending gives the buffer back when it settles (closing ends it).
    if (!this.#reading) this.#release();
    // Queued output is dropped; a chunk inside a write is released when that write settles.
    for (const part of this.#queue ?? []) releaseOutput(part);
    this.#queue = null;
    this.#queued = 0;
    this.#unsent = 0;
    this.#resolveDrained();
    this.handler?.onClose();
    const listener = this.#closeListener;
    const more = this.#moreCloseListeners;
    this.#closeListener = this.#moreCloseListeners = null;
    listener?.(this);
    for (const other of more ?? []) other(this);
  }

  /** Called by the selector loop when a read settled (or held bytes may go on). */
  onReadable(): void {
    if (this.#closed || this.#delivering) return;
    const end = this.#end;
    const held = this.#held;
    // Held bytes go on when input is wanted, or ahead of the EOF behind them.
    if (held > 0 && (this.#open() || end !== null)) {
      const buf = this.#buf;
      this.#held = 0;
      if (!this.#ending) {
        // Grow the buffer while reads fill it, so large requests take fewer reads. Decided before
        // onData, so a shrinkBuffer() from the handler wins.
        if (held === buf.byteLength && this.#bufSize < this.#options.maxBuffer) {
          this.#bufSize = Math.min(held * 2, this.#options.maxBuffer);
        }
        this.#delivering = true;
        try {
          this.handler?.onData(buf.subarray(0, held));
        } finally {
          this.#delivering = false;
        }
        if (this.#closed) return;
      }
    }
    if (end !== null && this.#held === 0) {
      this.#end = null;
      this.#eof = true;
      if (this.#ending) {
        // Lingering: the peer closed, we are done. Still writing: end() closes after the drain.
        if (this.#lingering) this.close();
        return;
      }
      this.handler?.onEnd();
      return;
    }
    this.#arm();
  }

  /** Whether input is wanted now: not paused and not behind on output, or ending (discarded). */
  #open(): boolean {
    return this.#ending || (!this.#paused && !this.#over);
  }

  /** Input may go on: hands over held bytes through the selector, or starts a read. */
  #wake(): void {
    if (this.#closed) return;
    if (this.#held > 0 || this.#end !== null) this.#selector.ready(this);
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

  /**
   * Starts a read when none is pending and nothing read waits: into the whole buffer when input
   * is wanted, else into what is left of its first HELD_READ bytes.
   */
  #arm(): void {
    if (
      this.#reading || this.#delivering || this.#closed || this.#eof || this.#end !== null ||
      this.#handshake !== null
    ) {
      return;
    }
    const held = this.#held;
    let target: Uint8Array;
    if (this.#open()) {
      // Held bytes are handed on (through the selector) before anything more is read.
      if (held > 0) return;
      if (this.#bufSize === this.#options.initialBuffer) {
        this.#large = null;
        this.#buf = this.#slot ??= this.#options.pool.take();
      } else {
        if (this.#large === null || this.#large.byteLength !== this.#bufSize) {
          this.#large = new Uint8Array(this.#bufSize);
        }
        this.#buf = this.#large;
      }
      target = this.#buf;
      this.#readAt = 0;
    } else {
      if (held === 0 && this.#buf === EMPTY) this.#buf = this.#slot ??= this.#options.pool.take();
      const limit = Math.min(HELD_READ, this.#buf.byteLength);
      if (held >= limit) {
        this.#tellHeldFull();
        return;
      }
      target = this.#buf.subarray(held, limit);
      this.#readAt = held;
    }
    this.#reading = true;
    this.#conn.read(target).then(this.#onRead, this.#onRead);
  }

  /** Tells the handler that paused input is full (not when unsent output paused it). */
  #tellHeldFull(): void {
    if (!this.#paused || this.#over || this.#heldFullTold) return;
    this.#heldFullTold = true;
    queueMicrotask(() => {
      if (!this.#closed && this.#paused && this.#held > 0) this.handler?.onHeldFull?.();
    });
  }

  #settle(result: number | typeof EOF | Error): void {
    this.#reading = false;
    if (this.#closed) {
      // The read close() ended: nothing reads into the buffer any more.
      this.#release();
      return;
    }
    if (typeof result === "number") {
      // The bytes held when this read began may have been handed over meanwhile (resume()):
      // what it read then moves up to follow what is still held.
      const at = this.#readAt;
      if (at !== this.#held) this.#buf.copyWithin(this.#held, at, at + result);
      this.#held += result;
      // Paused: no wake-up for bytes nobody wants yet; read on into the held part to see an EOF.
      if (!this.#open()) {
        this.#arm();
        return;
      }
    } else {
      this.#end = result;
    }
    this.#selector.ready(this);
  }

  /** Gives the pooled buffer back; only once no read can use it. */
  #release(): void {
    const slot = this.#slot;
    if (slot === null) return;
    this.#slot = null;
    this.#large = null;
    this.#buf = EMPTY;
    this.#options.pool.give(slot);
  }

  /** Takes what is queued and writes it; the writer's single loop, driven by #wrote. */
  #flush(): void {
    if (this.#closed) return;
    // Written after the handshake: a failed one is then counted once, by #shake, not as a write.
    if (this.#handshake !== null) {
      this.#handshake.then(() => this.#flush());
      return;
    }
    if (this.#queue === null) {
      this.#writing = false;
      this.#resolveDrained();
      return;
    }
    this.#chunk = this.#takeQueue();
    this.#chunkOff = 0;
    this.#conn.write(this.#chunk).then(this.#onWrite, this.#onWrite);
  }

  #wrote(result: unknown): void {
    // The chunk's write settled: no write reads it any more.
    if (this.#closed || typeof result !== "number") {
      releaseOutput(this.#chunk);
      this.#chunk = EMPTY;
      if (this.#closed) return;
      this.#writing = false;
      this.close();
      return;
    }
    this.#chunkOff += result;
    this.#unsent -= result;
    this.#written += result;
    if (this.#over && this.#unsent <= this.#options.highWaterMark) {
      this.#over = false;
      this.handler?.onDrain?.();
      this.#wake();
      if (this.#closed) {
        releaseOutput(this.#chunk);
        this.#chunk = EMPTY;
        return;
      }
    }
    const chunk = this.#chunk;
    if (this.#chunkOff < chunk.byteLength) {
      this.#conn.write(chunk.subarray(this.#chunkOff)).then(this.#onWrite, this.#onWrite);
      return;
    }
    this.#chunk = EMPTY;
    releaseOutput(chunk);
    this.#flush();
  }

  #resolveDrained(): void {
    const drained = this.#drained;
    if (drained === null) return;
    this.#drained = null;
    for (const resolve of drained) resolve();
  }

  #takeQueue(): Uint8Array {
    const queue = this.#queue!;
    const total = this.#queued;
    this.#queue = null;
    this.#queued = 0;
    if (queue.length === 1) return queue[0]!;
    const out = new Uint8Array(total);
    let off = 0;
    for (const part of queue) {
      out.set(part, off);
      off += part.byteLength;
      releaseOutput(part);
    }
    return out;
  }
}
