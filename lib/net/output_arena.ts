/** Bytes per chunk. */
const CHUNK_BYTES = 64 * 1024;
/** Requests above this get a buffer of their own: a chunk serves many small answers. */
const MAX_VIEW = 8 * 1024;
/** Chunks kept for reuse once all their views were released. */
const MAX_FREE_CHUNKS = 8;

interface Chunk {
  readonly bytes: Uint8Array;
  /** Views handed out and not yet released. */
  pending: number;
  /** No more views are cut from it: it is reused once `pending` is back at 0. */
  retired: boolean;
  readonly arena: OutputArena;
}

/** The chunk of every view an arena handed out, by its buffer; weak, so a lost view leaks nothing. */
const chunkOf = new WeakMap<ArrayBufferLike, Chunk>();

/**
 * Buffers for output about to be written, cut from shared chunks: a new ArrayBuffer per answer
 * costs more than building the answer (about 2 µs, and external memory that hastens GC, measured),
 * while a view of a chunk costs a small object. A chunk is reused once every view cut from it was
 * released with {@linkcode releaseOutput}, which the writer does when the socket took the bytes; a
 * view never released only keeps its chunk from being reused (the garbage collector takes it).
 * The bytes of a view must all be written by whoever fills it: a reused chunk holds old output.
 */
export class OutputArena {
  /** Largest length `alloc` cuts from a chunk; larger ones get a buffer of their own. */
  readonly maxView = MAX_VIEW;
  #chunk: Chunk | null = null;
  #offset = 0;
  #free: Chunk[] = [];

  /** Chunks ready for reuse now (for tests). */
  get freeChunks(): number {
    return this.#free.length;
  }

  /** A buffer of `length` bytes to fill completely; from a chunk when small. */
  alloc(length: number): Uint8Array {
    if (length > MAX_VIEW || length === 0) return new Uint8Array(length);
    let chunk = this.#chunk;
    if (chunk === null || this.#offset + length > CHUNK_BYTES) {
      if (chunk !== null) this.#retire(chunk);
      chunk = this.#chunk = this.#free.pop() ?? this.#newChunk();
      chunk.retired = false;
      this.#offset = 0;
    }
    const at = this.#offset;
    this.#offset = at + length;
    chunk.pending++;
    return chunk.bytes.subarray(at, at + length);
  }

  /** Called when the last view of a retired chunk was released. */
  recycle(chunk: Chunk): void {
    if (this.#free.length < MAX_FREE_CHUNKS) this.#free.push(chunk);
  }

  #retire(chunk: Chunk): void {
    chunk.retired = true;
    if (chunk.pending === 0) this.recycle(chunk);
  }

  #newChunk(): Chunk {
    const chunk: Chunk = {
      bytes: new Uint8Array(CHUNK_BYTES),
      pending: 0,
      retired: false,
      arena: this,
    };
    chunkOf.set(chunk.bytes.buffer, chunk);
    return chunk;
  }
}

/**
 * Marks `view` as written (or dropped): nothing will read it again. Buffers that no arena handed
 * out are ignored, so writers may call it for everything they wrote; each view must be released at
 * most once.
 */
export function releaseOutput(view: Uint8Array): void {
  const chunk = chunkOf.get(view.buffer);
  if (chunk === undefined) return;
  chunk.pending--;
  if (chunk.pending === 0 && chunk.retired) chunk.arena.recycle(chunk);
}
