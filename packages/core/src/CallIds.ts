/**
 * CallIds: the append call ids an in-memory store remembers (issue #20).
 *
 * A caller that may send the same `append` twice (it retries after an `Io`
 * error whose fate is unknown) gives the call an id; a store applies a call
 * with an id it has seen no more, and succeeds. Stores whose data lives in
 * memory (Dict, Buffer) remember ids in memory too, as durable as the data
 * they guard: the last {@link defaultCapacity} ids, oldest forgotten first.
 * A call repeated after more than that many other calls with ids is applied
 * again. `delete` and `drop` do not forget ids: a repeat of a call is still a
 * repeat after the data it wrote is gone.
 *
 * @since 0.1.0
 */

/**
 * How many ids a store remembers unless told otherwise: 65,536.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultCapacity = 65_536

/**
 * A bounded set of the most recent call ids.
 *
 * @since 0.1.0
 * @category models
 */
export class CallIds {
  private readonly seen = new Set<string>()
  /** The most ids remembered. */
  readonly capacity: number

  constructor(capacity: number = defaultCapacity) {
    this.capacity = capacity
  }

  /** Whether `id` was recorded (and not forgotten since). */
  has(id: string): boolean {
    return this.seen.has(id)
  }

  /** Records `id`, forgetting the oldest id once more than `capacity` are held. */
  add(id: string): void {
    if (this.seen.has(id)) return
    this.seen.add(id)
    if (this.seen.size > this.capacity) this.seen.delete(this.seen.values().next().value!)
  }

  /** How many ids are remembered. */
  get size(): number {
    return this.seen.size
  }
}
