/**
 * BufferLedger: what a `Buffer` holds in memory, key by key.
 *
 * For each key the ledger counts the bytes in the fast store and keeps the
 * *stranded* chunks: taken out of the fast store for landing in the slow one
 * and not landed yet. Their sum over all keys is the memory the buffer's bound
 * applies to. It also remembers when each key's oldest held byte arrived, so
 * that a buffer with `flushAfter` can land bytes before they get old.
 *
 * Plain mutable state, no Effect: the buffer calls it under its lock, once
 * per key per call on the append path.
 *
 * @since 0.1.0
 */
import * as Key from "./Key.ts"
import type * as Store from "./Store.ts"

/**
 * One key's held bytes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Held {
  /** Bytes of this key in the fast store. */
  fast: number
  /** When the oldest of the `fast` bytes arrived (milliseconds). */
  fastSince: number
  /** Chunks taken from the fast store and not yet in the slow store, oldest first. */
  stranded: Array<Uint8Array>
  strandedBytes: number
  /** When the oldest stranded byte arrived (milliseconds). */
  strandedSince: number
}

/**
 * Bytes a buffer holds for one key, as reported when they could not be
 * landed.
 *
 * @since 0.1.0
 * @category models
 */
export interface Unflushed {
  readonly key: string
  readonly bytes: number
}

/**
 * The ledger of a buffer.
 *
 * @since 0.1.0
 * @category models
 */
export class Ledger {
  private readonly held = new Map<Key.Path, Held>()
  /** Resolved `Held` records per key set, stale once a key leaves the ledger. */
  private readonly resolved = Key.keySetCache((paths: ReadonlyArray<Key.Path>) => paths.map((p) => this.holdOf(p)))
  /** The bytes held: fast and stranded, over every key. */
  memory = 0

  /** The key's record, if it holds anything. */
  get(path: Key.Path): Held | undefined {
    return this.held.get(path)
  }

  /** Whether the key holds anything. */
  has(path: Key.Path): boolean {
    return this.held.has(path)
  }

  /** Every key that holds something, in the order they started holding. */
  paths(): Array<Key.Path> {
    return Array.from(this.held.keys())
  }

  private holdOf(path: Key.Path): Held {
    let h = this.held.get(path)
    if (h === undefined) {
      h = { fast: 0, fastSince: 0, stranded: [], strandedBytes: 0, strandedSince: 0 }
      this.held.set(path, h)
    }
    return h
  }

  /** Counts an append to the fast store of `sizes.lengths[i]` bytes to `paths[i]`, at `now`. */
  appended(paths: ReadonlyArray<Key.Path>, sizes: Store.Sizes, now: number): void {
    const helds = this.resolved.get(paths)
    const lengths = sizes.lengths
    for (let i = 0; i < helds.length; i++) {
      const h = helds[i]!
      if (h.fast === 0) h.fastSince = now
      h.fast += lengths[i]!
    }
    this.memory += sizes.bytes
  }

  /**
   * Records that the fast store let go of `paths[i]`'s bytes, `chunks[i]`:
   * they are stranded until landed.
   */
  strand(paths: ReadonlyArray<Key.Path>, chunks: ReadonlyArray<ReadonlyArray<Uint8Array>>): void {
    for (let i = 0; i < paths.length; i++) {
      const h = this.held.get(paths[i]!)!
      if (h.strandedBytes === 0) h.strandedSince = h.fastSince
      h.stranded = h.stranded.length === 0 ? chunks[i]!.slice() : h.stranded.concat(chunks[i]!)
      h.strandedBytes += h.fast
      h.fast = 0
    }
  }

  /** Records that the key's stranded chunks are in the slow store. */
  landed(path: Key.Path): void {
    const h = this.held.get(path)
    if (h === undefined) return
    this.memory -= h.strandedBytes
    h.stranded = []
    h.strandedBytes = 0
    if (h.fast === 0) this.remove(path)
  }

  /** Forgets a key and everything it holds (deleted, or set in the slow store). */
  remove(path: Key.Path): void {
    const h = this.held.get(path)
    if (h === undefined) return
    this.memory -= h.fast + h.strandedBytes
    this.held.delete(path)
    this.resolved.invalidate()
  }

  /** Forgets everything. */
  clear(): void {
    this.held.clear()
    this.resolved.invalidate()
    this.memory = 0
  }

  /** The keys to land to free `need` bytes: the largest first. */
  largest(need: number): Array<Key.Path> {
    if (need <= 0) return []
    const sizes = Array.from(this.held, ([path, h]) => [path, h.fast + h.strandedBytes] as const)
    sizes.sort((a, b) => b[1] - a[1])
    const keys: Array<Key.Path> = []
    let freed = 0
    for (const [path, size] of sizes) {
      if (freed >= need) break
      keys.push(path)
      freed += size
    }
    return keys
  }

  /** The keys holding a byte that arrived at or before `cutoff`. */
  olderThan(cutoff: number): Array<Key.Path> {
    const keys: Array<Key.Path> = []
    for (const [path, h] of this.held) {
      const since = h.strandedBytes > 0 ? h.strandedSince : h.fastSince
      if (since <= cutoff) keys.push(path)
    }
    return keys
  }

  /** What every key holds, in the order they started holding. */
  unflushed(): Array<Unflushed> {
    return Array.from(this.held, ([key, h]) => ({ key, bytes: h.fast + h.strandedBytes }))
  }
}
