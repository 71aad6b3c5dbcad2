/**
 * Read: a Redis store's `stream`, `keys` and `size`, which read what the
 * store holds without `get`ting whole values.
 *
 * - `stream` takes the key's length with `STRLEN` when it starts, then reads
 *   it in `GETRANGE` pieces below that length, on the key's own master, one
 *   piece in flight at a time. `APPEND` only ever adds bytes after the end,
 *   and an append script runs whole, so every byte below the length taken at
 *   the start stays as it was: the stream yields exactly the value as it
 *   stood then, never part of a later append. A key deleted (or dropped, or
 *   replaced by `iset` after a delete) while it streams comes back shorter:
 *   the stream fails with `Io` rather than yield a torn value.
 * - `keys` `SCAN`s the store's prefix (`MATCH <prefix>/*`, never `KEYS`) on
 *   the server or on every master of a cluster, a page at a time, skips the
 *   store's own records (`./calls/…` ids) and keys that hold no bytes (a
 *   `STRLEN` per page), and yields each key once (`SCAN` may return a key
 *   twice; the paths seen are remembered for the stream's life).
 * - `size` is `STRLEN` per key: one pipeline on a server, one per master on a
 *   cluster.
 *
 * @since 0.1.0
 */
import { Pieces, Store } from "@partd/core"
import { Effect, Option, Stream } from "effect"
import { Cluster, type Redis as IORedis } from "ioredis"
import * as Append from "./Append.ts"
import * as Calls from "./Calls.ts"
import type * as Retry from "./Retry.ts"
import * as Routing from "./Routing.ts"

/** How many keys one `SCAN` step of `keys` asks for. */
const SCAN_COUNT = 1000

/**
 * The bytes of `key` as pieces of at most `chunkBytes`, as it stood when the
 * stream started.
 *
 * @since 0.1.0
 * @category reads
 */
export const stream = (
  client: IORedis | Cluster,
  retrying: Retry.Retrying,
  key: string,
  chunkBytes: number
): Stream.Stream<Uint8Array, Store.StoreError> =>
  Stream.unwrap(
    Effect.map(
      retrying.run("stream", "always", () => client.strlen(key)),
      (length) =>
        Pieces.fromRanges(
          length,
          chunkBytes,
          (offset, bytes) =>
            Effect.map(
              retrying.run("stream", "always", () => client.getrangeBuffer(key, offset, offset + bytes - 1)),
              Routing.toValue
            ),
          (at) =>
            new Store.StoreError({
              reason: "Io",
              method: "stream",
              description: `redis: ${key} shrank from ${length} to ${at} bytes while it streamed (deleted or replaced)`
            })
        )
    )
  )

/** The paths on one page of a `SCAN` that are keys holding bytes. */
const keysOfPage = async (node: IORedis, keyPrefix: string, found: ReadonlyArray<Buffer>): Promise<Array<string>> => {
  const paths: Array<string> = []
  const pipeline = node.pipeline()
  for (const key of found) {
    const path = key.toString("utf8").slice(keyPrefix.length)
    if (Calls.isRecord(path)) continue
    paths.push(path)
    pipeline.strlen(key)
  }
  if (paths.length === 0) return paths
  const lengths = Append.results<number>(await pipeline.exec())
  return paths.filter((_, i) => lengths[i]! > 0)
}

/**
 * Every key of the store that holds bytes, each once: `SCAN` over its prefix
 * on the server, or on every master of a cluster in turn.
 *
 * @since 0.1.0
 * @category reads
 */
export const keys = (
  client: IORedis | Cluster,
  retrying: Retry.Retrying,
  keyPrefix: string,
  match: string
): Stream.Stream<string, Store.StoreError> =>
  Stream.suspend(() => {
    const nodes = client instanceof Cluster ? client.nodes("master") : [client]
    const seen = new Set<string>()
    type Cursor = { readonly node: number; readonly cursor: string }
    return Stream.paginate<Cursor, string, Store.StoreError>({ node: 0, cursor: "0" }, ({ node, cursor }) =>
      retrying
        .run("keys", "always", async () => {
          const [next, found] = await nodes[node]!.scanBuffer(cursor, "MATCH", match, "COUNT", SCAN_COUNT)
          return [next.toString(), await keysOfPage(nodes[node]!, keyPrefix, found)] as const
        })
        .pipe(
          Effect.map(([next, paths]) => {
            const fresh = paths.filter((path) => !seen.has(path) && seen.add(path) !== undefined)
            const after: Option.Option<Cursor> =
              next !== "0"
                ? Option.some({ node, cursor: next })
                : node + 1 < nodes.length
                  ? Option.some({ node: node + 1, cursor: "0" })
                  : Option.none()
            return [fresh, after] as const
          })
        )
    )
  })

/**
 * The bytes each key holds: `STRLEN` per key, one pipeline per server.
 *
 * @since 0.1.0
 * @category reads
 */
export const sizes = async (client: IORedis | Cluster, keys: ReadonlyArray<string>): Promise<Array<number>> => {
  if (!(client instanceof Cluster)) {
    const pipeline = client.pipeline()
    for (const key of keys) pipeline.strlen(key)
    return Append.results<number>(await pipeline.exec())
  }
  const out = new Array<number>(keys.length)
  await Promise.all(
    Routing.byNode(client, keys).map(async (group) => {
      const pipeline = client.pipeline()
      for (const i of group) pipeline.strlen(keys[i]!)
      const found = Append.results<number>(await pipeline.exec())
      for (let j = 0; j < group.length; j++) out[group[j]!] = found[j]!
    })
  )
  return out
}
