/**
 * Routing: a Redis store's calls on a Redis Cluster, split by the master that
 * serves each key's slot.
 *
 * Keys of different masters cannot share a command (or a script), so every
 * multi-key call becomes one pipeline (an append: one script, or a few for
 * a large share) per master, sent at once; the results are put back in the
 * caller's order. `drop` scans every master,
 * and unlinks key by key there (a node refuses multi-key commands across
 * slots).
 *
 * @since 0.1.0
 */
import type { Cluster, Redis as IORedis } from "ioredis"
import * as Append from "./Append.ts"
import * as Calls from "./Calls.ts"
import type * as Connection from "./Connection.ts"
import * as Slot from "./Slot.ts"

/** How many keys one `SCAN` step asks for during `drop`. */
const SCAN_COUNT = 1000

/**
 * What ioredis returns for a bulk string is a view into the socket chunk that
 * carried it, which nothing else holds or reuses: a plain Uint8Array view of
 * it belongs to the caller without a copy.
 *
 * @since 0.1.0
 * @category decoding
 */
export const toValue = (b: Buffer | null | undefined): Uint8Array =>
  b == null || b.byteLength === 0 ? new Uint8Array(0) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength)

/**
 * Indices of `keys` grouped by the cluster master that serves their slot, in order.
 *
 * @since 0.1.0
 * @category routing
 */
export const byNode = (cluster: Cluster, keys: ReadonlyArray<string>): Array<Array<number>> => {
  const groups = new Map<string, Array<number>>()
  const slots = cluster.slots
  for (let i = 0; i < keys.length; i++) {
    const slot = Slot.of(keys[i]!)
    const node = slots[slot]?.[0] ?? `slot ${slot}`
    const group = groups.get(node)
    if (group === undefined) groups.set(node, [i])
    else group.push(i)
  }
  return Array.from(groups.values())
}

/** Runs `each` on every node group of `keys`, marking the call spread when there is more than one. */
const perNode = <A>(
  cluster: Cluster,
  keys: ReadonlyArray<string>,
  call: Connection.Call,
  each: (group: ReadonlyArray<number>) => Promise<A>
): Promise<Array<A>> => {
  const groups = byNode(cluster, keys)
  if (groups.length > 1) call.spread = true
  return Promise.all(groups.map(each))
}

/**
 * Appends `values[i]` to `keys[i]`: one pipeline of `APPEND`s per master.
 *
 * @since 0.1.0
 * @category commands
 */
export const append = (
  cluster: Cluster,
  keys: ReadonlyArray<string>,
  values: ReadonlyArray<Uint8Array>,
  call: Connection.Call
): Promise<unknown> => perNode(cluster, keys, call, (group) => Append.pipeline(cluster, keys, values, group))

/**
 * What an append's attempt tells about each master it sent a share to: that
 * the share's scripts all succeeded there, or that one failed.
 *
 * @since 0.1.0
 * @category models
 */
export interface Landing {
  readonly landed: (master: string) => void
  readonly failed: (master: string) => void
}

/**
 * Appends `values[i]` to `paths[i]` as call `id`: one script per master (a
 * few for a share of more than 1024 chunks or 1 MiB), each recording its own
 * id key in the slot of its first key. Waits for every master's share to
 * settle, tells `landing` how each went, and fails with the first failure.
 * Resolves to the slots of the first key of each master's share, one per
 * master touched (for `WAIT`).
 *
 * @since 0.1.0
 * @category commands
 */
export const appendScripts = async (
  cluster: Cluster,
  scripts: Append.Scripts,
  keyPrefix: string,
  paths: ReadonlyArray<string>,
  values: ReadonlyArray<Uint8Array>,
  id: string,
  call: Connection.Call,
  landing: Landing
): Promise<Array<number>> => {
  const keys = new Array<string>(paths.length)
  for (let i = 0; i < paths.length; i++) keys[i] = keyPrefix + paths[i]!
  const groups = byNode(cluster, keys)
  if (groups.length > 1) call.spread = true
  const shares: Array<Promise<unknown>> = []
  const firstSlots: Array<number> = []
  for (const group of groups) {
    const n = group.length
    const groupPaths = new Array<string>(n)
    const groupValues = new Array<Uint8Array>(n)
    for (let j = 0; j < n; j++) {
      groupPaths[j] = paths[group[j]!]!
      groupValues[j] = values[group[j]!]!
    }
    const sent: Array<Promise<number>> = []
    for (let start = 0; start < n; ) {
      const end = Append.pieceEnd(groupValues, start, n)
      const first = group[start]!
      const slot = Slot.of(keys[first]!)
      if (start === 0) firstSlots.push(slot)
      const idKey = Calls.clusterKey(keyPrefix, id, first, slot)
      sent.push(scripts.cluster(cluster, groupPaths, groupValues, start, end, idKey, slot))
      start = end
    }
    const master = cluster.slots[firstSlots[firstSlots.length - 1]!]?.[0] ?? "unknown"
    shares.push(
      Promise.all(sent).then(
        () => landing.landed(master),
        (error) => {
          landing.failed(master)
          throw error
        }
      )
    )
  }
  const settled = await Promise.allSettled(shares)
  for (const outcome of settled) if (outcome.status === "rejected") throw outcome.reason
  return firstSlots
}

/**
 * The values of `keys`, in order: one pipeline of `GET`s per master.
 *
 * @since 0.1.0
 * @category commands
 */
export const get = async (
  cluster: Cluster,
  keys: ReadonlyArray<string>,
  call: Connection.Call
): Promise<Array<Uint8Array>> => {
  // Every index belongs to exactly one node's group, so every slot is filled.
  const out = new Array<Uint8Array>(keys.length)
  await perNode(cluster, keys, call, async (group) => {
    const pipeline = cluster.pipeline()
    for (const i of group) pipeline.getBuffer(keys[i]!)
    const found = Append.results<Buffer | null>(await pipeline.exec())
    for (let j = 0; j < group.length; j++) out[group[j]!] = toValue(found[j])
  })
  return out
}

/**
 * Unlinks `keys`: one pipeline of `UNLINK`s per master.
 *
 * @since 0.1.0
 * @category commands
 */
export const unlink = async (cluster: Cluster, keys: ReadonlyArray<string>, call: Connection.Call): Promise<void> => {
  await perNode(cluster, keys, call, async (group) => {
    const pipeline = cluster.pipeline()
    for (const i of group) pipeline.unlink(keys[i]!)
    Append.results(await pipeline.exec())
  })
}

/**
 * Every key matching `match` on one server (a cluster master, or the only
 * server): `SCAN` + `UNLINK`, key by key when `perKey`, but never a key for
 * which `keep` says so.
 *
 * @since 0.1.0
 * @category commands
 */
export const dropOn = async (
  node: IORedis,
  match: string,
  perKey: boolean,
  keep?: (key: Buffer) => boolean
): Promise<void> => {
  let cursor = "0"
  do {
    const [next, page] = await node.scanBuffer(cursor, "MATCH", match, "COUNT", SCAN_COUNT)
    cursor = next.toString()
    const found = keep === undefined ? page : page.filter((key) => !keep(key))
    if (found.length === 0) continue
    if (perKey) {
      const pipeline = node.pipeline()
      for (const key of found) pipeline.unlink(key)
      Append.results(await pipeline.exec())
    } else {
      await node.unlink(...found)
    }
  } while (cursor !== "0")
}

/**
 * Every key matching `match` on every master of the cluster, but never a key
 * for which `keep` says so.
 *
 * @since 0.1.0
 * @category commands
 */
export const drop = async (
  cluster: Cluster,
  match: string,
  call: Connection.Call,
  keep?: (key: Buffer) => boolean
): Promise<void> => {
  const masters = cluster.nodes("master")
  if (masters.length > 1) call.spread = true
  await Promise.all(masters.map((node) => dropOn(node, match, true, keep)))
}
