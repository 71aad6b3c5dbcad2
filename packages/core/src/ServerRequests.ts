/**
 * ServerRequests: what each request does to the served store, and the one
 * place where the server turns a request's joined key list into keys.
 *
 * Keys are validated once, by the store's own rules: `get` and `delete` hand
 * the split key list to the store, which validates it; `append` validates
 * its key list into a `Key.KeySet` and appends through the store as
 * `Store.columns`, so that the store's own checks (its `Closed` state, its
 * values) apply and nothing validates the keys a second time. A shuffle's
 * workers append to the same keys call after call, so key lists are
 * remembered by their joined text: the second append with a key list costs
 * one map lookup, and the store's backend sees the same frozen paths array
 * each time (which it may cache by, see `Key.keySetCache`).
 *
 * @since 0.1.0
 */
import { Cause, Effect } from "effect"
import * as Key from "./Key.ts"
import * as Store from "./Store.ts"
import * as Wire from "./Wire.ts"

/** A key list as it arrived, split, and (once an append asked) validated. */
interface KeyList {
  readonly paths: ReadonlyArray<string>
  keySet: Key.KeySet | Store.StoreError | undefined
}

/** The most characters of joined key lists remembered. */
const maxCachedPathChars = 4 * 1024 * 1024

/**
 * Splits joined key lists, remembering them by their text; bounded by
 * `maxCachedPathChars`, forgotten all at once when full.
 */
const makeKeyLists = () => {
  const cache = new Map<string, KeyList>()
  let chars = 0
  return (method: string, joined: string, count: number): KeyList | Store.StoreError => {
    const known = cache.get(joined)
    if (known !== undefined && known.paths.length === count) return known
    const split = Wire.splitPaths(method, joined, count)
    if (split instanceof Store.StoreError) return split
    const list: KeyList = { paths: Object.freeze(split), keySet: undefined }
    if (joined.length <= maxCachedPathChars / 4) {
      if (chars + joined.length > maxCachedPathChars) {
        cache.clear()
        chars = 0
      }
      cache.set(joined, list)
      chars += joined.length
    }
    return list
  }
}

/**
 * Validates paths into a key set, or the `BadKey` error for the first bad
 * one.
 *
 * @since 0.1.0
 * @category validation
 */
export const toKeySet = (method: string, paths: ReadonlyArray<string>): Key.KeySet | Store.StoreError => {
  const result = Key.toKeySet(paths)
  return Key.isKeySet(result)
    ? result
    : new Store.StoreError({
        reason: "BadKey",
        method,
        key: Key.show(result.key),
        description: result.invalid.problem
      })
}

/**
 * A request's outcome as the store gave it: nothing, or a get's values.
 *
 * @since 0.1.0
 * @category models
 */
export type Work = Effect.Effect<ReadonlyArray<Uint8Array> | undefined, Store.StoreError>

/**
 * The limits that replies are held to.
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits {
  readonly maxFrameBytes: number
  readonly maxChunksPerFrame: number
}

/**
 * The server's requests over one store.
 *
 * @since 0.1.0
 * @category models
 */
export interface Requests {
  /** The paths of a joined key list, split and checked against its count (not validated). */
  readonly paths: (method: string, joined: string, count: number) => ReadonlyArray<string> | Store.StoreError
  /** A joined key list, validated into a key set (remembered with the list). */
  readonly keySet: (method: string, joined: string, count: number) => Key.KeySet | Store.StoreError
  /** Appends `values[i]` to the i-th key of `keys`, through the store, as the call `call` when given. */
  readonly append: (keys: Key.KeySet, values: ReadonlyArray<Uint8Array>, call?: string | undefined) => Work
  /** Every request but an append (see `ServerAppend`, which puts appends sent in parts together). */
  readonly handle: (request: Exclude<Wire.Request, { readonly _tag: "Append" }>) => Work
}

/**
 * The served store's error, or an `Io` error for anything else it died of.
 *
 * @since 0.1.0
 * @category errors
 */
export const failedUnexpectedly = (method: string, cause: Cause.Cause<unknown>): Store.StoreError => {
  const error = Cause.squash(cause)
  return error instanceof Store.StoreError ? error : Store.ioError(method, error)
}

const replyTooLarge = (description: string) => new Store.StoreError({ reason: "Protocol", method: "get", description })

/**
 * A get's values, or a `Protocol` error when they would not fit one reply:
 * checked here so that the client gets a typed error, not a closed
 * connection.
 */
const checkReply = (values: ReadonlyArray<Uint8Array>, limits: Limits): Work => {
  if (values.length > limits.maxChunksPerFrame) {
    return Effect.fail(
      replyTooLarge(`a reply of ${values.length} values exceeds the limit of ${limits.maxChunksPerFrame} per frame`)
    )
  }
  let total = 0
  for (let i = 0; i < values.length; i++) total += values[i]!.byteLength + 8
  return total + Wire.envelopeHeadroomBytes > limits.maxFrameBytes
    ? Effect.fail(
        replyTooLarge(
          `the reply of ${total} bytes exceeds the frame limit of ${limits.maxFrameBytes} bytes: get fewer keys at a time`
        )
      )
    : Effect.succeed(values)
}

/**
 * The requests over `store`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (store: Store.Shape, limits: Limits): Requests => {
  const lists = makeKeyLists()
  const paths = (method: string, joined: string, count: number) => {
    const list = lists(method, joined, count)
    return list instanceof Store.StoreError ? list : list.paths
  }
  const keySet = (method: string, joined: string, count: number) => {
    const list = lists(method, joined, count)
    if (list instanceof Store.StoreError) return list
    list.keySet ??= toKeySet(method, list.paths)
    return list.keySet
  }
  const append = (keys: Key.KeySet, values: ReadonlyArray<Uint8Array>, call?: string): Work =>
    Effect.as(store.append(Store.columns(keys, values), call === undefined ? undefined : { id: call }), undefined)
  const handle: Requests["handle"] = (request) => {
    switch (request._tag) {
      case "Get": {
        const valid = paths("get", request.paths, request.count)
        if (valid instanceof Store.StoreError) return Effect.fail(valid)
        return Effect.flatMap(store.get(valid), (values) => checkReply(values, limits))
      }
      case "Iset":
        return Effect.as(store.iset(request.path, request.value), undefined)
      case "Delete": {
        const valid = paths("delete", request.paths, request.count)
        return valid instanceof Store.StoreError ? Effect.fail(valid) : Effect.as(store.delete(valid), undefined)
      }
      case "Drop":
        return Effect.as(store.drop, undefined)
    }
  }
  return { paths, keySet, append, handle }
}
