/**
 * Calls: where a Redis store remembers the ids of the append calls it has
 * applied, so that a call sent again (a retry after a dropped connection, a
 * failover, a caller's own retry with the same id) is applied once.
 *
 * The append script records the call's id with `SET <key> 1 NX EX <window>`
 * before its `APPEND`s, in the same script, and appends nothing when the id
 * was there already: Redis runs a script whole or not at all when the
 * connection drops, and replicates its effects together, so a promoted
 * replica holds either the id and the chunks or neither.
 *
 * An id's key lives under the store's prefix in a namespace no key can
 * name: `<prefix>/./calls/…` (a key's path never has a `.` segment), so
 * `keys` never lists an id and an id never collides with a key. A call sent
 * as several scripts (more than 1024 keys or 1 MiB, or a cluster call over
 * several masters) records one id key per script, named by the index of the
 * script's first chunk in the call: `<prefix>/./calls/<start>/<id>` on one
 * server. On a cluster the script's keys must all live on the master that runs
 * it, so the id key carries a hash tag that maps it to the slot of the
 * script's first key: `<prefix>/./calls/{<tag>}<start>/<id>`.
 *
 * @since 0.1.0
 */
import * as Slot from "./Slot.ts"

/**
 * How long a store remembers an id unless told otherwise: one hour.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_WINDOW_SECONDS = 3600

/**
 * The segment after the prefix under which ids live: `.` is never a key's
 * segment (`Key.toPath` refuses it).
 *
 * @since 0.1.0
 * @category constants
 */
export const NAMESPACE = "./calls/"

/**
 * Whether a Redis key (without the store's `<prefix>/`) is one of the
 * store's own records rather than a key: every path that starts with `./`.
 *
 * @since 0.1.0
 * @category naming
 */
export const isRecord = (path: string): boolean => path.charCodeAt(0) === 46 /* . */ && path.charCodeAt(1) === 47

/**
 * A fresh id for a call whose caller gave none.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (): string => crypto.randomUUID()

/**
 * The id key of the script that starts at chunk `start` of call `id`, on one
 * server.
 *
 * @since 0.1.0
 * @category naming
 */
export const serverKey = (keyPrefix: string, id: string, start: number): string =>
  `${keyPrefix}${NAMESPACE}${start}/${id}`

let tags: Array<string> | undefined

/**
 * A short string whose hash slot is `slot`, for every slot: the first
 * decimal numbers to cover each slot (about 160,000 tries, once per process).
 */
const tagOf = (slot: number): string => {
  if (tags === undefined) {
    const found = new Array<string>(Slot.SLOTS)
    let missing = Slot.SLOTS
    for (let n = 0; missing > 0; n++) {
      const candidate = n.toString(36)
      const s = Slot.of(candidate)
      if (found[s] === undefined) {
        found[s] = candidate
        missing--
      }
    }
    tags = found
  }
  return tags[slot]!
}

/**
 * The id key of the script that starts at chunk `start` of call `id`, on a
 * cluster: in the slot `slot` of the script's first key.
 *
 * @since 0.1.0
 * @category naming
 */
export const clusterKey = (keyPrefix: string, id: string, start: number, slot: number): string =>
  `${keyPrefix}${NAMESPACE}{${tagOf(slot)}}${start}/${id}`
