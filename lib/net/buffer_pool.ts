/** Bytes per slab: a slab holds this many bytes of slots (at least one slot). */
const SLAB_BYTES = 64 * 1024;

/**
 * Equal-size byte buffers cut from shared slabs, for the reads connections keep pending while
 * they wait. A buffer of its own per connection costs an ArrayBuffer, its backing store and the
 * allocator's overhead besides its bytes (about twice its size in resident memory at 2 KiB,
 * measured); a slot of a slab costs its bytes. A slab is freed once none of its slots is in use
 * and another slab's free slots remain, so memory goes back after clients leave.
 */
export class BufferPool {
  /** Bytes of each buffer. */
  readonly size: number;
  readonly #perSlab: number;
  /** Free slots of every slab, most recently freed last (it is taken first). */
  #free: Uint8Array[] = [];
  /** Slots in use per slab. */
  #used = new Map<ArrayBufferLike, number>();

  /** Creates a pool of `size`-byte buffers. */
  constructor(size: number) {
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new RangeError(`Cannot create buffer pool: size must be an integer >= 1, got ${size}`);
    }
    this.size = size;
    this.#perSlab = Math.max(1, Math.floor(SLAB_BYTES / size));
  }

  /** Slabs allocated now. */
  get slabs(): number {
    return this.#used.size;
  }

  /** Buffers handed out and not given back. */
  get inUse(): number {
    let n = 0;
    for (const used of this.#used.values()) n += used;
    return n;
  }

  /** A buffer of `size` bytes (not zeroed: it held earlier reads) until `give()`. */
  take(): Uint8Array {
    let slot = this.#free.pop();
    if (slot === undefined) {
      const slab = new ArrayBuffer(this.size * this.#perSlab);
      this.#used.set(slab, 0);
      // Pushed highest first, so the slab is handed out from its start.
      for (let i = this.#perSlab - 1; i > 0; i--) {
        this.#free.push(new Uint8Array(slab, i * this.size, this.size));
      }
      slot = new Uint8Array(slab, 0, this.size);
    }
    this.#used.set(slot.buffer, this.#used.get(slot.buffer)! + 1);
    return slot;
  }

  /** Takes back a buffer from `take()`; nothing may read into it any more. */
  give(slot: Uint8Array): void {
    const slab = slot.buffer;
    const used = this.#used.get(slab);
    if (used === undefined || slot.byteLength !== this.size) {
      throw new TypeError("Cannot give back a buffer this pool did not hand out");
    }
    if (used > 1 || this.#free.length < this.#perSlab * 2) {
      this.#used.set(slab, used - 1);
      this.#free.push(slot);
      return;
    }
    // The slab's last slot in use, and more than a slab's worth free elsewhere: free the slab.
    this.#used.delete(slab);
    this.#free = this.#free.filter((free) => free.buffer !== slab);
  }
}
