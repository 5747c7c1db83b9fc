/**
 * RESP2, the Redis wire protocol, as pure code: an incremental decoder of replies and an encoder of
 * commands. No sockets here, so every split of the byte stream is testable.
 */

/** A command argument: text (sent as UTF-8), a number or bigint (sent as its decimal text), or bytes. */
export type RedisArg = string | number | bigint | Uint8Array;

/**
 * A decoded reply: simple and bulk strings as `string` (or `Uint8Array` when the decoder was made
 * with `bulk: "bytes"`), integers as `number` (`bigint` beyond 2^53), null bulk strings and null
 * arrays as `null`, error replies as `RespError` values (also inside arrays), arrays as arrays.
 */
export type RespReply = string | number | bigint | null | Uint8Array | RespError | RespReply[];

/** An error reply (`-ERR …`) as a value: the client turns a top-level one into a rejection. */
export class RespError {
  /** The whole text Redis sent, e.g. `NOSCRIPT No matching script. Please use EVAL.` */
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
  /** The first word, Redis's error code by convention: `ERR`, `NOSCRIPT`, `WRONGTYPE`, … */
  get code(): string {
    const space = this.message.indexOf(" ");
    return space < 0 ? this.message : this.message.slice(0, space);
  }
}

/** Bytes that are not RESP2, or a reply over the size limit: the connection cannot be trusted after it. */
export class RespProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RespProtocolError";
  }
}

/** Redis's own `proto-max-bulk-len` default: the largest reply the decoder accepts by default. */
export const DEFAULT_MAX_REPLY_BYTES = 512 * 1024 * 1024;

/** Options of `RespDecoder`. */
export interface RespDecoderOptions {
  /** Bytes one top-level reply may take on the wire (header lines included); more is a protocol error. */
  maxReplyBytes?: number;
  /** Bulk strings as UTF-8 text (the default; invalid sequences become U+FFFD) or as bytes. */
  bulk?: "string" | "bytes";
}

const CR = 13;
const LF = 10;
const MINUS = 45;
const ZERO = 48;
/** Digits a length or integer line may have: "-9223372036854775808" is 20. */
const MAX_NUMBER_LINE = 21;
const EMPTY = new Uint8Array(0);
/** Buffers grown past this for one large command or reply are let go once it is done. */
const KEEP_BUFFER_BYTES = 1024 * 1024;
const utf8Decoder = new TextDecoder();

/** An array being filled: how many elements it still waits for. */
interface Frame {
  items: RespReply[];
  remaining: number;
}

/**
 * Decodes a stream of RESP2 replies fed in chunks of any size. Complete replies are handed to the
 * callback in stream order; an incomplete tail is kept (copied) until the next chunk. When the
 * decoder's own buffer is empty the chunk is parsed in place, so the common case copies nothing.
 * After a `RespProtocolError` the decoder refuses further input.
 */
export class RespDecoder {
  #maxReplyBytes: number;
  #bytes: boolean;
  /** Kept bytes are `#buf[#start..#end]`. */
  #buf: Uint8Array = EMPTY;
  #start = 0;
  #end = 0;
  /** Open arrays of the reply being decoded, innermost last. */
  #stack: Frame[] = [];
  /** Bytes of the current top-level reply consumed so far. */
  #replyBytes = 0;
  #failure: RespProtocolError | undefined;

  constructor(options: RespDecoderOptions = {}) {
    const max = options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES;
    if (!Number.isSafeInteger(max) || max < 16) {
      throw new RangeError(`maxReplyBytes must be an integer of at least 16, got ${max}`);
    }
    this.#maxReplyBytes = max;
    this.#bytes = options.bulk === "bytes";
  }

  /** Bytes kept from earlier chunks, waiting for the rest of a reply. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** True while a reply has started but is not complete. */
  get partial(): boolean {
    return this.#end > this.#start || this.#stack.length > 0;
  }

  /** Forgets any partial reply and a past failure, for a new connection. */
  reset(): void {
    this.#buf = EMPTY;
    this.#start = this.#end = 0;
    this.#stack.length = 0;
    this.#replyBytes = 0;
    this.#failure = undefined;
  }

  /**
   * Decodes `chunk` after what was kept, calling `onReply` for each complete top-level reply.
   * Throws `RespProtocolError` on bytes that are not RESP2 or a reply over `maxReplyBytes`.
   */
  feed(chunk: Uint8Array, onReply: (reply: RespReply) => void): void {
    if (this.#failure) throw this.#failure;
    let data: Uint8Array;
    let pos: number;
    let end: number;
    if (this.#end === this.#start) {
      data = chunk;
      pos = 0;
      end = chunk.length;
    } else {
      this.#append(chunk);
      // A view ending at the data, so searches never run into stale bytes past it.
      data = this.#buf.subarray(0, this.#end);
      pos = this.#start;
      end = this.#end;
    }
    try {
      pos = this.#parse(data, pos, end, onReply);
    } catch (error) {
      if (error instanceof RespProtocolError) {
        this.#failure = error;
        this.#buf = EMPTY;
        this.#start = this.#end = 0;
      }
      throw error;
    }
    if (data === chunk) {
      if (pos < end) this.#keep(chunk, pos, end);
    } else if (pos < end) {
      this.#start = pos;
    } else {
      this.#start = this.#end = 0;
      // A buffer grown for one large reply is not kept for the small ones after it.
      if (this.#buf.length > KEEP_BUFFER_BYTES) this.#buf = EMPTY;
    }
  }

  /** Parses whole elements from `data[pos..end]`; returns where the unparsed tail starts. */
  #parse(data: Uint8Array, pos: number, end: number, onReply: (reply: RespReply) => void): number {
    const stack = this.#stack;
    while (pos < end) {
      const type = data[pos]!;
      if (type !== 43 && type !== 45 && type !== 58 && type !== 36 && type !== 42) {
        throw this.#error(`unexpected type byte 0x${type.toString(16).padStart(2, "0")}`);
      }
      const lineEnd = findCrlf(data, pos + 1, end);
      if (lineEnd < 0) {
        // The type byte, the digits and a CR may be here; more without LF is not a number line.
        if (type !== 43 && type !== 45 && end - pos > MAX_NUMBER_LINE + 2) {
          throw this.#error(`a ${typeName(type)} line is longer than ${MAX_NUMBER_LINE} digits`);
        }
        this.#checkSize(end - pos);
        return pos;
      }
      let next = lineEnd + 2;
      let value: RespReply | undefined;
      switch (type) {
        case 43: // '+'
          // "OK" answers most writes: no decoder call (and no new string) for it.
          value = lineEnd === pos + 3 && data[pos + 1] === 79 && data[pos + 2] === 75
            ? "OK"
            : utf8Decoder.decode(data.subarray(pos + 1, lineEnd));
          break;
        case 45: // '-'
          value = new RespError(utf8Decoder.decode(data.subarray(pos + 1, lineEnd)));
          break;
        case 58: // ':'
          value = this.#integer(data, pos + 1, lineEnd);
          break;
        case 36: { // '$'
          const length = this.#length(data, pos + 1, lineEnd, "bulk string");
          if (length < 0) {
            value = null;
            break;
          }
          this.#checkSize(next - pos + length + 2);
          if (next + length + 2 > end) return pos;
          if (data[next + length] !== CR || data[next + length + 1] !== LF) {
            throw this.#error(`a bulk string of ${length} bytes is not followed by CRLF`);
          }
          value = this.#bytes
            ? data.slice(next, next + length)
            : utf8Decoder.decode(data.subarray(next, next + length));
          next += length + 2;
          break;
        }
        case 42: { // '*'
          const length = this.#length(data, pos + 1, lineEnd, "array");
          if (length < 0) value = null;
          else if (length === 0) value = [];
          else stack.push({ items: [], remaining: length });
          break;
        }
      }
      this.#checkSize(next - pos);
      this.#replyBytes += next - pos;
      pos = next;
      while (value !== undefined) {
        const top = stack[stack.length - 1];
        if (top === undefined) {
          this.#replyBytes = 0;
          onReply(value);
          break;
        }
        top.items.push(value);
        if (--top.remaining > 0) break;
        stack.pop();
        value = top.items;
      }
    }
    return pos;
  }

  /** Fails when the current reply would exceed the limit with `more` bytes. */
  #checkSize(more: number): void {
    if (this.#replyBytes + more > this.#maxReplyBytes) {
      throw this.#error(`a reply is larger than ${this.#maxReplyBytes} bytes`);
    }
  }

  #length(data: Uint8Array, from: number, to: number, what: string): number {
    const n = this.#integer(data, from, to);
    if (typeof n !== "number" || n < -1) {
      throw this.#error(`${what} length ${n} is out of range`);
    }
    if (n > this.#maxReplyBytes) {
      throw this.#error(`a reply is larger than ${this.#maxReplyBytes} bytes`);
    }
    return n;
  }

  #integer(data: Uint8Array, from: number, to: number): number | bigint {
    let i = from;
    const negative = data[i] === MINUS;
    if (negative) i++;
    if (i === to || to - from > MAX_NUMBER_LINE) {
      throw this.#error(`"${utf8Decoder.decode(data.subarray(from, to))}" is not an integer`);
    }
    let n = 0;
    for (let j = i; j < to; j++) {
      const digit = data[j]! - ZERO;
      if (digit < 0 || digit > 9) {
        throw this.#error(`"${utf8Decoder.decode(data.subarray(from, to))}" is not an integer`);
      }
      n = n * 10 + digit;
    }
    if (n <= Number.MAX_SAFE_INTEGER) return negative && n !== 0 ? -n : n;
    const big = BigInt(utf8Decoder.decode(data.subarray(from, to)));
    if (big < -(2n ** 63n) || big >= 2n ** 63n) {
      throw this.#error(`integer ${big} does not fit in 64 bits`);
    }
    return big;
  }

  #error(reason: string): RespProtocolError {
    return new RespProtocolError(`Cannot decode Redis reply: ${reason}`);
  }

  /** Copies `chunk[from..to]` into the (empty) buffer. */
  #keep(chunk: Uint8Array, from: number, to: number): void {
    const length = to - from;
    if (this.#buf.length < length) this.#buf = new Uint8Array(Math.max(length, 4096));
    this.#buf.set(chunk.subarray(from, to), 0);
    this.#start = 0;
    this.#end = length;
  }

  /** Appends `chunk` after the kept bytes, moving them to the front or growing as needed. */
  #append(chunk: Uint8Array): void {
    const kept = this.#end - this.#start;
    const needed = kept + chunk.length;
    if (this.#end + chunk.length > this.#buf.length) {
      if (needed <= this.#buf.length) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        const grown = new Uint8Array(Math.max(needed, this.#buf.length * 2));
        grown.set(this.#buf.subarray(this.#start, this.#end), 0);
        this.#buf = grown;
      }
      this.#start = 0;
      this.#end = kept;
    }
    this.#buf.set(chunk, this.#end);
    this.#end += chunk.length;
  }
}

/** The index of the next CRLF at or after `from`, or -1. */
function findCrlf(data: Uint8Array, from: number, end: number): number {
  let i = data.indexOf(CR, from);
  while (i >= 0 && i + 1 < end) {
    if (data[i + 1] === LF) return i;
    i = data.indexOf(CR, i + 1);
  }
  return -1;
}

function typeName(type: number): string {
  return type === 36 ? "bulk string length" : type === 42 ? "array length" : "integer";
}

const utf8Encoder = new TextEncoder();

/**
 * Encodes commands (arrays of bulk strings) into a reusable buffer. Commands appended between two
 * `take()` calls go out as one write: that is the pipelining. Two buffers alternate, so the bytes
 * `take()` returns stay valid while the next batch is encoded, until the `take()` after next.
 */
export class RespEncoder {
  #buf: Uint8Array;
  #spare: Uint8Array;
  #length = 0;

  constructor(initialBytes = 16 * 1024) {
    this.#buf = new Uint8Array(initialBytes);
    this.#spare = new Uint8Array(initialBytes);
  }

  /** Bytes encoded and not yet taken. */
  get length(): number {
    return this.#length;
  }

  /** Encodes one command; on a bad argument (TypeError) nothing of it is kept. */
  append(args: readonly RedisArg[]): void {
    if (args.length === 0) throw new TypeError("A Redis command needs at least a name");
    const start = this.#length;
    try {
      this.#header(42, args.length);
      for (const arg of args) this.#arg(arg);
    } catch (error) {
      this.#length = start;
      throw error;
    }
  }

  /** Returns the bytes encoded since the last call and starts a new batch in the other buffer. */
  take(): Uint8Array {
    const bytes = this.#buf.subarray(0, this.#length);
    const next = this.#spare.length > KEEP_BUFFER_BYTES ? new Uint8Array(16 * 1024) : this.#spare;
    this.#spare = this.#buf;
    this.#buf = next;
    this.#length = 0;
    return bytes;
  }

  /** Drops what was encoded and not taken. */
  clear(): void {
    this.#length = 0;
  }

  #arg(arg: RedisArg): void {
    if (typeof arg === "string") {
      const bytes = utf8Length(arg);
      this.#header(36, bytes);
      this.#reserve(bytes + 2);
      const buf = this.#buf;
      let at = this.#length;
      if (bytes === arg.length && bytes < 64) {
        for (let i = 0; i < bytes; i++) buf[at++] = arg.charCodeAt(i);
      } else if (bytes > 0) {
        const { written } = utf8Encoder.encodeInto(arg, buf.subarray(at, at + bytes));
        if (written !== bytes) throw new Error(`UTF-8 length ${written} is not ${bytes}`);
        at += written;
      }
      buf[at] = CR;
      buf[at + 1] = LF;
      this.#length = at + 2;
    } else if (arg instanceof Uint8Array) {
      this.#header(36, arg.length);
      this.#reserve(arg.length + 2);
      this.#buf.set(arg, this.#length);
      this.#length += arg.length;
      this.#buf[this.#length++] = CR;
      this.#buf[this.#length++] = LF;
    } else if (typeof arg === "bigint" || (typeof arg === "number" && Number.isFinite(arg))) {
      this.#arg(String(arg));
    } else {
      throw new TypeError(`A Redis argument must be a string, finite number or bytes, not ${arg}`);
    }
  }

  /** Writes `*N\r\n` or `$N\r\n`. */
  #header(type: number, n: number): void {
    this.#reserve(20);
    const buf = this.#buf;
    let at = this.#length;
    buf[at++] = type;
    if (n < 10) {
      buf[at++] = ZERO + n;
    } else {
      let digits = 1;
      for (let m = n; m >= 10; m = Math.floor(m / 10)) digits++;
      for (let i = at + digits - 1, m = n; i >= at; i--, m = Math.floor(m / 10)) {
        buf[i] = ZERO + (m % 10);
      }
      at += digits;
    }
    buf[at] = CR;
    buf[at + 1] = LF;
    this.#length = at + 2;
  }

  #reserve(more: number): void {
    const needed = this.#length + more;
    if (needed <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(needed, this.#buf.length * 2));
    grown.set(this.#buf.subarray(0, this.#length), 0);
    this.#buf = grown;
  }
}

/** Encodes one command into its own bytes. */
export function encodeCommand(args: readonly RedisArg[]): Uint8Array {
  const encoder = new RespEncoder(64);
  encoder.append(args);
  return encoder.take().slice();
}

/** The length of `text` in UTF-8, as `TextEncoder` writes it (a lone surrogate as U+FFFD). */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      bytes += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        bytes += 2; // 4 bytes for 2 UTF-16 units
        i++;
      } else {
        bytes += 2;
      }
    } else {
      bytes += 2;
    }
  }
  return bytes;
}
