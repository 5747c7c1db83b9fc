import { Connection, type ConnectionOptions } from "./connection.ts";
import type { ByteListener, ByteSocket } from "./node_socket.ts";
import type { Selectable, Selector } from "./selector.ts";

/** Limits the listener enforces at accept time. */
export interface ListenerLimits {
  /** Open connections at most (`--max-conns`). */
  maxConns: number;
  /** Open connections per client address at most; 0 = no limit (`--max-conns-per-ip`). */
  maxConnsPerIp: number;
}

/** What the listener hands accepted connections to. */
export interface ListenerCallbacks {
  /** A connection within the limits, already registered and reading. */
  onConnection(conn: Connection): void;
  /** A connection refused for a limit; it gets `refusal` and is closed. */
  onRefused?(reason: "max_conns" | "max_conns_per_ip", remoteAddr: string): void;
  /** An accept error that is not the listener closing (e.g. EMFILE); accepting goes on. */
  onAcceptError?(error: Error): void;
}

const MIN_BACKOFF_MS = 5;
/** How long a refused connection drains its input before closing, in milliseconds. */
const REFUSED_LINGER_MS = 500;
/**
 * How long a refused TLS connection may take for its handshake before its 503: refused ones are
 * not counted against any limit, so a flood of them must not hold descriptors for long.
 */
const REFUSED_HANDSHAKE_MS = 1000;
const MAX_BACKOFF_MS = 1000;

/**
 * The accept loop as a selectable: one pending `accept()`; over a limit the new connection gets
 * a prepared 503 and is closed. Accept errors (EMFILE, ENFILE, ...) are reported and retried
 * with an exponential back-off until `close()`. `replace()` moves accepting to another socket
 * (a TLS listener with a new certificate) without touching open connections.
 */
export class Listener implements Selectable {
  #listener: ByteListener;
  #selector: Selector;
  #limits: ListenerLimits;
  #callbacks: ListenerCallbacks;
  #connOptions: ConnectionOptions;
  /** One object for all refused connections, so they share one buffer pool. */
  #refusedOptions: ConnectionOptions;
  #refusal: Uint8Array | (() => Uint8Array);
  /** Settled accepts not yet handled, with the socket each came from (one, or two during a swap). */
  #results: [ByteListener, ByteSocket | Error][] = [];
  #perIp = new Map<string, number>();
  #open = 0;
  #backoff = 0;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    listener: ByteListener,
    selector: Selector,
    limits: ListenerLimits,
    callbacks: ListenerCallbacks,
    /** The bytes a refused connection gets, or a function making them (fresh `Date`). */
    refusal: Uint8Array | (() => Uint8Array),
    connOptions: ConnectionOptions = {},
  ) {
    this.#listener = listener;
    this.#selector = selector;
    this.#limits = limits;
    this.#callbacks = callbacks;
    this.#refusal = refusal;
    this.#connOptions = connOptions;
    this.#refusedOptions = {
      ...connOptions,
      lingerMs: REFUSED_LINGER_MS,
      handshakeTimeout: REFUSED_HANDSHAKE_MS,
    };
  }

  /** The bound address. */
  get addr(): Deno.NetAddr {
    return this.#listener.addr as Deno.NetAddr;
  }

  /** Connections accepted and not yet closed. */
  get openConnections(): number {
    return this.#open;
  }

  /** Registers with the selector and starts accepting. */
  start(): void {
    this.#selector.add(this);
    this.#arm();
  }

  /** Stops accepting; open connections are left alone. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#selector.remove(this);
    closeQuietly(this.#listener);
    for (const [, result] of this.#results.splice(0)) {
      if (!(result instanceof Error)) closeQuietly(result);
    }
  }

  /**
   * Accepts from `next` from now on and closes the current socket. Connections it accepted stay
   * open; one its pending accept still hands over is admitted as usual. Both sockets must share
   * the address (SO_REUSEPORT), so no moment passes without a socket accepting.
   */
  replace(next: ByteListener): void {
    if (this.#closed) throw new Error("Cannot replace the socket of a closed listener");
    const old = this.#listener;
    this.#listener = next;
    // A back-off pending for the old socket's errors does not apply to the new one.
    clearTimeout(this.#timer);
    this.#backoff = 0;
    this.#arm();
    closeQuietly(old);
  }

  /** Called by the selector loop when a pending accept settled. */
  onReadable(): void {
    const results = this.#results;
    if (results.length === 0) return;
    this.#results = [];
    let thrown: unknown = null;
    for (const [source, result] of results) {
      const current = source === this.#listener;
      if (result instanceof Error) {
        // The end of a replaced socket's accept, not a failure.
        if (!current) continue;
        // Only our own close() ends the loop (#settle); any other error, BadResource and
        // Interrupted included, is reported and retried, or the server would stop accepting
        // without a word while it looks healthy.
        this.#callbacks.onAcceptError?.(result);
        // Out of descriptors or similar: wait before trying again instead of spinning.
        this.#backoff = Math.min(Math.max(this.#backoff * 2, MIN_BACKOFF_MS), MAX_BACKOFF_MS);
        this.#timer = setTimeout(() => this.#arm(), this.#backoff);
        continue;
      }
      if (current) this.#backoff = 0;
      try {
        this.#admit(result);
      } catch (error) {
        // One bad connection must not stop all accepting, nor the results after it; the first
        // error goes on to the loop, which reports it.
        thrown ??= error;
      } finally {
        if (current) this.#arm();
      }
    }
    if (thrown !== null) throw thrown;
  }

  #admit(raw: ByteSocket): void {
    const ip = (raw.remoteAddr as Deno.NetAddr).hostname ?? "unknown";
    const perIp = this.#perIp.get(ip) ?? 0;
    let refused: "max_conns" | "max_conns_per_ip" | null = null;
    if (this.#open >= this.#limits.maxConns) refused = "max_conns";
    else if (this.#limits.maxConnsPerIp > 0 && perIp >= this.#limits.maxConnsPerIp) {
      refused = "max_conns_per_ip";
    }
    if (refused) {
      this.#callbacks.onRefused?.(refused, ip);
      // Refused connections hold a descriptor only while the 503 is written and lingers briefly,
      // so a flood over the limit cannot pile up descriptors.
      const conn = new Connection(raw, this.#selector, this.#refusedOptions);
      conn.handler = { onData() {}, onEnd: () => conn.close(), onClose() {} };
      conn.start();
      conn.write(typeof this.#refusal === "function" ? this.#refusal() : this.#refusal);
      conn.end();
      return;
    }
    const conn = new Connection(raw, this.#selector, this.#connOptions);
    this.#open++;
    this.#perIp.set(ip, perIp + 1);
    conn.onClosed(this.#release);
    try {
      this.#callbacks.onConnection(conn);
    } catch (error) {
      // Not started, so nothing else would ever close it or give its slot back.
      conn.close();
      throw error;
    }
    conn.start();
  }

  /** Gives an admitted connection's places back; one function for all (its address is the key). */
  #release = (conn: Connection): void => {
    this.#open--;
    const n = (this.#perIp.get(conn.remoteAddr) ?? 1) - 1;
    if (n <= 0) this.#perIp.delete(conn.remoteAddr);
    else this.#perIp.set(conn.remoteAddr, n);
  };

  #arm(): void {
    if (this.#closed) return;
    const source = this.#listener;
    source.accept().then(
      (conn) => this.#settle(source, conn),
      (err) => this.#settle(source, err instanceof Error ? err : new Error(String(err))),
    );
  }

  #settle(source: ByteListener, result: ByteSocket | Error): void {
    if (this.#closed) {
      if (!(result instanceof Error)) closeQuietly(result);
      return;
    }
    this.#results.push([source, result]);
    this.#selector.ready(this);
  }
}

function closeQuietly(closable: { close(): void }): void {
  try {
    closable.close();
  } catch {
    // Already closed.
  }
}
