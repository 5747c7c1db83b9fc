/**
 * A Map that exists only while it has entries. A session keeps several maps of work in progress
 * (sends, joins, leaves still committing) and of its recent sends, and most sessions have nothing
 * in most of them: a Map with its hash table costs about 200 bytes of heap (heap snapshots),
 * this object one field.
 */
export class LazyMap<K, V> implements Iterable<[K, V]> {
  #map: Map<K, V> | null = null;

  /** Entries now. */
  get size(): number {
    return this.#map?.size ?? 0;
  }

  /** The value of `key`, or undefined. */
  get(key: K): V | undefined {
    return this.#map?.get(key);
  }

  /** Whether `key` has a value. */
  has(key: K): boolean {
    return this.#map?.has(key) ?? false;
  }

  /** Sets `key` (a new key goes last, as in a Map). */
  set(key: K, value: V): this {
    (this.#map ??= new Map()).set(key, value);
    return this;
  }

  /** Removes `key`; the map goes once it is empty. */
  delete(key: K): boolean {
    const map = this.#map;
    if (map === null || !map.delete(key)) return false;
    if (map.size === 0) this.#map = null;
    return true;
  }

  /** Keys in insertion order. */
  keys(): IterableIterator<K> {
    return (this.#map ?? EMPTY).keys() as IterableIterator<K>;
  }

  /** Values in insertion order. */
  values(): IterableIterator<V> {
    return (this.#map ?? EMPTY).values() as IterableIterator<V>;
  }

  /** Entries in insertion order; deleting while iterating is safe, as with a Map. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return (this.#map ?? EMPTY).entries() as IterableIterator<[K, V]>;
  }
}

const EMPTY: ReadonlyMap<unknown, unknown> = new Map();
