/**
 * Plain TCP through `node:net`, shaped like `Deno.Conn` and `Deno.Listener` (the part Connection
 * and Listener use). Deno's own `Conn.write` starts its write at once only while the event loop's
 * turn has I/O budget left (the cooperative budget of the task that runs all JavaScript); past it,
 * writes wait for later turns behind everything else. Answering thousands of polls at once hit
 * that: in the churn benchmark some answers waited 15 s. Deno's `node:net` writes in the call and
 * reads through a callback, with no read pending per connection: on the same fan-out contract a
 * bare `node:net` server answered 10,000 polls with p99 299 ms against 554 ms on `Deno.listen`,
 * and held 5.0 KiB per waiting poll against 8.7 (benchmark floors, measured side by side).
 * TLS stays on `Deno.listenTls` (its certificate reload and handshake bounds are built on it).
 */
import net from "node:net";

/** What Connection needs of a socket: `Deno.Conn` has it, and so does {@linkcode NodeSocket}. */
export interface ByteSocket {
  readonly remoteAddr: Deno.Addr;
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
}

/** What Listener needs of a listening socket: `Deno.Listener` has it, and NodeListener. */
export interface ByteListener {
  readonly addr: Deno.Addr;
  accept(): Promise<ByteSocket>;
  close(): void;
}

/**
 * Bytes received and not yet read above which the socket stops reading (the kernel's buffers and
 * TCP then hold the peer back), as a pending `Deno.Conn` read takes no more than its buffer.
 */
export const READ_AHEAD = 16 * 1024;
/** Bytes handed to one write at most, so a slow reader's progress shows write by write. */
const MAX_WRITE = 64 * 1024;

function closedError(): Error {
  return new Deno.errors.BadResource("The socket is closed");
}

/** `node:net` error codes as the `Deno.errors` classes callers already handle. */
const DENO_ERRORS: Record<string, new (message: string) => Error> = {
  EADDRINUSE: Deno.errors.AddrInUse,
  EADDRNOTAVAIL: Deno.errors.AddrNotAvailable,
  EACCES: Deno.errors.PermissionDenied,
  ECONNRESET: Deno.errors.ConnectionReset,
  EPIPE: Deno.errors.BrokenPipe,
};

function denoError(error: Error & { code?: string }): Error {
  const Class = error.code ? DENO_ERRORS[error.code] : undefined;
  return Class ? new Class(error.message) : error;
}

/** One accepted `node:net` socket, read and written like a `Deno.Conn`. */
export class NodeSocket implements ByteSocket {
  readonly remoteAddr: Deno.NetAddr;
  #socket: net.Socket;
  /** Received and not yet read, oldest first. */
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #stopped = false;
  #ended = false;
  #error: Error | null = null;
  #closed = false;
  #readTarget: Uint8Array | null = null;
  #readResolve: ((n: number | null) => void) | null = null;
  #readReject: ((error: Error) => void) | null = null;

  constructor(socket: net.Socket) {
    this.#socket = socket;
    this.remoteAddr = {
      transport: "tcp",
      hostname: socket.remoteAddress ?? "unknown",
      port: socket.remotePort ?? 0,
    };
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.byteLength;
      if (!this.#stopped && this.#buffered >= READ_AHEAD) {
        this.#stopped = true;
        socket.pause();
      }
      this.#settle();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#settle();
    });
    socket.on("error", (error: Error) => {
      this.#error ??= denoError(error);
      this.#settle();
    });
    socket.on("close", () => {
      // Gone without an EOF or error (destroyed): a read still pending ends like Deno's.
      if (!this.#ended) this.#error ??= closedError();
      this.#settle();
    });
  }

  /** Bytes received and not yet read. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  setNoDelay(noDelay = true): void {
    this.#socket.setNoDelay(noDelay);
  }

  read(p: Uint8Array): Promise<number | null> {
    if (this.#readResolve !== null) return Promise.reject(new Error("A read is already pending"));
    if (this.#closed) return Promise.reject(closedError());
    if (this.#buffered > 0) return Promise.resolve(this.#take(p));
    if (this.#error !== null) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      this.#readTarget = p;
      this.#readResolve = resolve;
      this.#readReject = reject;
    });
  }

  write(p: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(closedError());
    const part = p.byteLength > MAX_WRITE ? p.subarray(0, MAX_WRITE) : p;
    return new Promise((resolve, reject) => {
      this.#socket.write(part, (error?: Error | null) => {
        if (error) reject(denoError(error));
        else resolve(part.byteLength);
      });
    });
  }

  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    return new Promise((resolve) => this.#socket.end(resolve));
  }

  close(): void {
    if (this.#closed) throw closedError();
    this.#closed = true;
    this.#chunks = [];
    this.#buffered = 0;
    this.#socket.destroy();
    this.#settle();
  }

  /** Copies received bytes into `p`; reading goes on once they fell below the read-ahead. */
  #take(p: Uint8Array): number {
    let n = 0;
    const chunks = this.#chunks;
    while (n < p.byteLength && chunks.length > 0) {
      const chunk = chunks[0]!;
      const k = Math.min(chunk.byteLength, p.byteLength - n);
      if (k === chunk.byteLength) {
        p.set(chunk, n);
        chunks.shift();
      } else {
        p.set(chunk.subarray(0, k), n);
        chunks[0] = chunk.subarray(k);
      }
      n += k;
    }
    this.#buffered -= n;
    if (this.#stopped && this.#buffered < READ_AHEAD && !this.#closed) {
      this.#stopped = false;
      this.#socket.resume();
    }
    return n;
  }

  /** Ends the pending read, if there is one and something to end it with. */
  #settle(): void {
    const resolve = this.#readResolve;
    if (resolve === null) return;
    const reject = this.#readReject!;
    const target = this.#readTarget!;
    if (this.#closed) {
      this.#clearRead();
      reject(closedError());
    } else if (this.#buffered > 0) {
      this.#clearRead();
      resolve(this.#take(target));
    } else if (this.#error !== null) {
      this.#clearRead();
      reject(this.#error);
    } else if (this.#ended) {
      this.#clearRead();
      resolve(null);
    }
  }

  #clearRead(): void {
    this.#readTarget = null;
    this.#readResolve = null;
    this.#readReject = null;
  }
}

/**
 * A `node:net` server handing out {@linkcode NodeSocket}s through `accept()`.
 *
 * Deno's `node:net` stops accepting for good once an accept fails for want of file descriptors,
 * and says nothing (no error event, no callback; seen with `ulimit -n 100`), where `Deno.listen`
 * reports and retries: hence `listen()`'s `maxConnections`, and the server's start warning when
 * `--max-conns` leaves too little room below the open-file limit (open_files.ts).
 */
export class NodeListener implements ByteListener {
  readonly addr: Deno.NetAddr;
  #server: net.Server;
  #accepted: NodeSocket[] = [];
  #errors: Error[] = [];
  #waiter: { resolve: (socket: ByteSocket) => void; reject: (error: Error) => void } | null = null;
  #closed = false;

  private constructor(server: net.Server) {
    this.#server = server;
    const bound = server.address() as net.AddressInfo;
    this.addr = { transport: "tcp", hostname: bound.address, port: bound.port };
    server.on("connection", (socket: net.Socket) => this.#hand(new NodeSocket(socket), null));
    // After listening, a server error is an accept that failed.
    server.on("error", (error: Error) => this.#hand(null, denoError(error)));
  }

  /**
   * Listens on `hostname:port` (0: a free port). Rejects with `Deno.errors.AddrInUse` and the
   * like, as `Deno.listen` throws them. Past `maxConnections` open sockets, node:net closes new
   * ones at once, before they are handed on: a flood cannot use up the descriptors, after which
   * node:net would never accept again.
   */
  static listen(
    hostname: string,
    port: number,
    options: { maxConnections?: number } = {},
  ): Promise<NodeListener> {
    // Half-open: a client that shuts down its side still gets the answers to what it sent.
    const server = net.createServer({ allowHalfOpen: true });
    if (options.maxConnections !== undefined) server.maxConnections = options.maxConnections;
    return new Promise((resolve, reject) => {
      const failed = (error: Error) => reject(denoError(error));
      server.once("error", failed);
      server.listen({ host: hostname, port }, () => {
        server.off("error", failed);
        resolve(new NodeListener(server));
      });
    });
  }

  accept(): Promise<ByteSocket> {
    if (this.#closed) return Promise.reject(closedError());
    const socket = this.#accepted.shift();
    if (socket) return Promise.resolve(socket);
    const error = this.#errors.shift();
    if (error) return Promise.reject(error);
    if (this.#waiter !== null) return Promise.reject(new Error("An accept is already pending"));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  close(): void {
    if (this.#closed) throw closedError();
    this.#closed = true;
    this.#server.close();
    for (const socket of this.#accepted.splice(0)) socket.close();
    this.#errors = [];
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.reject(closedError());
  }

  #hand(socket: NodeSocket | null, error: Error | null): void {
    if (this.#closed) {
      socket?.close();
      return;
    }
    const waiter = this.#waiter;
    if (waiter !== null) {
      this.#waiter = null;
      if (socket) waiter.resolve(socket);
      else waiter.reject(error!);
      return;
    }
    if (socket) this.#accepted.push(socket);
    else this.#errors.push(error!);
  }
}
