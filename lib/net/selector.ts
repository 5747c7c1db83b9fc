/** Something the selector watches: it becomes ready when its pending async operation settles. */
export interface Selectable {
  /** Handles the settled operation (read bytes, accepted connection, EOF or error) and re-arms. */
  onReadable(): void;
}

/**
 * The seed's `stream_select` over Deno's async I/O: each member keeps one operation pending and
 * calls `ready(member)` when it settles; `select()` resolves with everything ready since the last
 * call. Cost per `select()` is O(ready): no `Promise.race` over all members.
 */
export class Selector<T extends Selectable = Selectable> {
  #members = new Set<T>();
  #ready: T[] = [];
  #readySet = new Set<T>();
  #wake: ((ready: T[]) => void) | null = null;
  #closed = false;

  /** Number of registered members. */
  get size(): number {
    return this.#members.size;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The registered members, for shutdown and timeout sweeps. */
  members(): IterableIterator<T> {
    return this.#members.values();
  }

  /** Registers a member; it must call `ready()` when its pending operation settles. */
  add(member: T): void {
    if (this.#closed) throw new Error("Cannot add to a closed selector");
    this.#members.add(member);
  }

  /** Unregisters a member; a ready notification still queued for it is dropped. */
  remove(member: T): void {
    if (!this.#members.delete(member)) return;
    if (this.#readySet.delete(member)) {
      const i = this.#ready.indexOf(member);
      if (i >= 0) this.#ready.splice(i, 1);
    }
    if (this.#members.size === 0) this.#flush();
  }

  /** Marks a registered member ready; called from its settled promise. */
  ready(member: T): void {
    if (!this.#members.has(member) || this.#readySet.has(member)) return;
    this.#readySet.add(member);
    this.#ready.push(member);
    this.#flush();
  }

  /**
   * Resolves with the members that became ready, in the order they did; with an empty list when
   * the selector has no members left or was closed (the loop's signal to stop).
   */
  select(): Promise<T[]> {
    if (this.#wake) throw new Error("Cannot select: another select() is already waiting");
    if (this.#ready.length > 0 || this.#members.size === 0 || this.#closed) {
      return Promise.resolve(this.#take());
    }
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  /** Ends a waiting `select()` with an empty list and refuses new members. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#flush();
  }

  #take(): T[] {
    const ready = this.#ready;
    this.#ready = [];
    this.#readySet.clear();
    return ready;
  }

  #flush(): void {
    const wake = this.#wake;
    if (!wake) return;
    this.#wake = null;
    wake(this.#take());
  }
}
