/**
 * The `Store` service: partd's appendable key→bytes store.
 *
 * A store holds, for each key, the concatenation of every chunk appended to
 * it. It is what a shuffle needs: many writers `append` small chunks to many
 * keys, and later each key is read back whole with `get`.
 *
 * - `append(data)` appends each chunk to its key's value. `data` is a record
 *   (`{ key: bytes }`) or any iterable of `[key, bytes]` pairs (a `Map`, an
 *   array), in which a key may appear more than once. The chunks are handed
 *   over to the store, which may keep them without copying (that is what
 *   makes in-memory appends free): do not modify an array after appending it.
 * - `get` returns fresh arrays that belong to the caller.
 * - `get(keys)` returns the values of the keys in order; a key that holds
 *   nothing returns empty bytes.
 * - `iset(key, value)` sets a key's value, but only the first time it is called
 *   for that key on this store instance (partd's idempotent set).
 * - `delete(keys)` removes keys (missing keys are fine), `drop` removes
 *   everything; the store stays usable after both.
 * - `stream(key, { chunkBytes })` reads one value as pieces of at most
 *   `chunkBytes` (default 1 MiB), a few in memory at a time, as it stood when
 *   the stream started; `keys` lists the keys that hold bytes; `size(keys)`
 *   gives their byte counts without reading them. They let a value larger
 *   than memory be read back, and a store written by another process be
 *   discovered.
 * - `append(data, { id })` gives the call an id: a store applies a call with
 *   an id it has seen (within the window each store documents) no more, so a
 *   call that failed with `Io`, whose fate is unknown, can be sent again.
 *
 * Backends implement a {@link Backend} over canonical key paths and turn it
 * into a store with {@link make}, which owns what every backend shares: key
 * validation (see `Key`), the idempotent-set bookkeeping, and failing with a
 * `Closed` error once the store's scope has closed. Stores that wrap stores
 * (Buffer, Pipelined, codecs, typed stores) are built the same way, on the
 * same {@link shell}, over the inner store's backend ({@link toBackend}).
 *
 * Every operation fails only with a {@link StoreError}.
 *
 * @since 0.1.0
 */
import { Context, Effect, Schema, type Scope, Stream } from "effect"
import * as Key from "./Key.ts"

/**
 * Why a store operation failed.
 *
 * - `BadKey`: the key is invalid (see `Key`); nothing was written.
 * - `BadValue`: a value is not a `Uint8Array`; nothing was written.
 * - `Io`: the backend's storage failed (disk, permissions, a lost connection).
 * - `Closed`: the store's scope has closed.
 * - `Protocol`: a peer sent something that breaks the protocol.
 * - `Unavailable`: the backend could not be reached in time.
 * - `Denied`: the backend refused the caller (a server's token did not match, or none was given).
 *
 * @since 0.1.0
 * @category errors
 */
export const StoreErrorReason = Schema.Literals([
  "BadKey",
  "BadValue",
  "Io",
  "Closed",
  "Protocol",
  "Unavailable",
  "Denied"
])

/**
 * @since 0.1.0
 * @category errors
 */
export type StoreErrorReason = typeof StoreErrorReason.Type

/**
 * The one error a store operation fails with. It is a schema class, so it
 * crosses process boundaries (Client/Server) intact.
 *
 * @since 0.1.0
 * @category errors
 */
export class StoreError extends Schema.TaggedError<StoreError>("@partd/core/StoreError")("StoreError", {
  reason: StoreErrorReason,
  method: Schema.String,
  key: Schema.optional(Schema.String),
  description: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    const key = this.key === undefined ? "" : ` (key ${JSON.stringify(this.key)})`
    const description = this.description === undefined ? "" : `: ${this.description}`
    return `${this.reason} in ${this.method}${key}${description}`
  }
}

/**
 * The message of a thrown value: an `Error`'s message, anything else as a
 * string.
 *
 * @since 0.1.0
 * @category errors
 */
export const describeCause = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/**
 * An `Io` {@link StoreError} for a failure of a backend's storage, carrying
 * what was thrown as its `cause`.
 *
 * @since 0.1.0
 * @category errors
 */
export const ioError = (method: string, cause: unknown, key?: string): StoreError =>
  new StoreError({
    reason: "Io",
    method,
    ...(key === undefined ? {} : { key }),
    description: describeCause(cause),
    cause
  })

/**
 * What `append` accepts: a record of keys to chunks, or any iterable of
 * `[key, chunk]` pairs (a `Map`, an array of pairs).
 *
 * @since 0.1.0
 * @category models
 */
export type AppendInput = Readonly<Record<string, Uint8Array>> | Iterable<readonly [Key.Key, Uint8Array]> | Columns

/**
 * An append in columns: `values[i]` goes to the i-th key of a {@link Key.KeySet}
 * validated once with {@link keySet}. The fastest way to append to the same
 * keys call after call.
 *
 * @since 0.1.0
 * @category models
 */
export interface Columns {
  readonly keys: Key.KeySet
  readonly values: ReadonlyArray<Uint8Array>
}

/**
 * Builds an append in columns.
 *
 * @example
 * ```ts
 * const keys = yield* Store.keySet(["a", "b", "c"])
 * for (const batch of batches) yield* store.append(Store.columns(keys, batch))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const columns = (keys: Key.KeySet, values: ReadonlyArray<Uint8Array>): Columns => ({ keys, values })

/**
 * Validates a list of keys once, for {@link columns}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const keySet = (keys: ReadonlyArray<Key.Key>): Effect.Effect<Key.KeySet, StoreError> =>
  Effect.suspend(() => {
    const result = Key.toKeySet(keys)
    return Key.isKeySet(result)
      ? Effect.succeed(result)
      : Effect.fail(badKey("keySet", result.key, result.invalid.problem))
  })

/**
 * The store's interface.
 *
 * @since 0.1.0
 * @category models
 */
export interface Shape {
  /**
   * Appends each chunk to its key's value. A call with an `id` (see
   * {@link AppendOptions}) is applied at most once however often it is sent.
   */
  readonly append: (data: AppendInput, options?: AppendOptions) => Effect.Effect<void, StoreError>
  /** The values of `keys`, in order; a key that holds nothing gives empty bytes. */
  readonly get: (keys: ReadonlyArray<Key.Key>) => Effect.Effect<ReadonlyArray<Uint8Array>, StoreError>
  /** Sets `key` to `value` the first time it is called for `key` on this store instance. */
  readonly iset: (key: Key.Key, value: Uint8Array) => Effect.Effect<void, StoreError>
  /** Removes `keys`; missing keys are fine. */
  readonly delete: (keys: ReadonlyArray<Key.Key>) => Effect.Effect<void, StoreError>
  /** Removes every key; the store stays usable. */
  readonly drop: Effect.Effect<void, StoreError>
  /**
   * The value of `key` in order, as pieces of at most `chunkBytes` (default
   * {@link defaultChunkBytes}), holding a few pieces in memory whatever the
   * value's size. A missing key is an empty stream. It yields the value as it
   * stood when the stream started, never part of a half-applied append.
   */
  readonly stream: (key: Key.Key, options?: StreamOptions) => Stream.Stream<Uint8Array, StoreError>
  /** Every key that holds bytes, each once, in no particular order. */
  readonly keys: Stream.Stream<Key.Path, StoreError>
  /**
   * The bytes each key holds, without reading them: for a store that encodes
   * (compression, encodings), the size of the encoded bytes it keeps.
   */
  readonly size: (keys: ReadonlyArray<Key.Key>) => Effect.Effect<ReadonlyArray<number>, StoreError>
}

/**
 * Options of an `append` call.
 *
 * @since 0.1.0
 * @category models
 */
export interface AppendOptions {
  /**
   * The call's id: a store applies a call with an id it has seen (within its
   * window, see each store's docs) no more, so a call that failed with `Io`
   * may be sent again with the same id. 1 to 128 characters.
   */
  readonly id?: string | undefined
}

/**
 * Options of a `stream` call.
 *
 * @since 0.1.0
 * @category models
 */
export interface StreamOptions {
  /** The largest piece the stream yields, in bytes (default {@link defaultChunkBytes}). */
  readonly chunkBytes?: number | undefined
}

/**
 * The largest piece `stream` yields unless told otherwise: 1 MiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultChunkBytes = 1024 * 1024

/**
 * The `Store` service.
 *
 * @since 0.1.0
 * @category services
 */
export class Store extends Context.Service<Store, Shape>()("@partd/core/Store") {}

/**
 * What a backend implements: the store operations over canonical key paths,
 * already validated. `append` receives the chunks in call order as two
 * parallel arrays (no object per chunk on the hot path); a path may occur more
 * than once. Appended arrays are handed over, as Python hands over immutable
 * `bytes`: a backend may keep them without copying, and the caller must not
 * modify them afterwards. What `get` returns belongs to the caller and must
 * not alias memory the backend keeps.
 *
 * A call that fails has applied nothing: an `append` that fails leaves every
 * key as it was before the call (a backend that writes key by key undoes what
 * it wrote). Wrapping stores rely on it: `Buffer` lands each key in one call to
 * its slow store and retries exactly the calls that failed, so a slow store
 * that kept part of a failed call would hold those bytes twice. A backend
 * that cannot know (a connection lost after the request was sent) says in
 * its `Io` error's description that the call may have applied; a Buffer over
 * it may then land those bytes twice.
 *
 * Key sets: `paths` may be the frozen array of a {@link Key.KeySet} (see
 * {@link columns}), the same object on every call with those keys, so a
 * backend may cache what it resolves per key with `Key.keySetCache`. Any
 * frozen array is taken for a key set: never freeze and then reuse an array
 * with other contents.
 *
 * @since 0.1.0
 * @category models
 */
export interface Backend {
  /**
   * `id`, when given, is the call's id, already validated: a backend applies
   * a call whose id it has seen (within its window) no more, and succeeds.
   * `sizes`, when given, are the values' lengths as the caller measured them
   * (the shell always gives them, see {@link Sizes}): use them rather than
   * reading each chunk's `byteLength` again.
   */
  readonly append: (
    paths: ReadonlyArray<Key.Path>,
    values: ReadonlyArray<Uint8Array>,
    id?: string | undefined,
    sizes?: Sizes | undefined
  ) => Effect.Effect<void, StoreError>
  readonly get: (paths: ReadonlyArray<Key.Path>) => Effect.Effect<ReadonlyArray<Uint8Array>, StoreError>
  readonly iset: (path: Key.Path, value: Uint8Array) => Effect.Effect<void, StoreError>
  readonly delete: (paths: ReadonlyArray<Key.Path>) => Effect.Effect<void, StoreError>
  readonly drop: Effect.Effect<void, StoreError>
  /** `Store.Shape.stream` over a validated path; `chunkBytes` is a validated positive integer. */
  readonly stream: (path: Key.Path, chunkBytes: number) => Stream.Stream<Uint8Array, StoreError>
  /** `Store.Shape.keys`. */
  readonly keys: Stream.Stream<Key.Path, StoreError>
  /** `Store.Shape.size` over validated paths. */
  readonly size: (paths: ReadonlyArray<Key.Path>) => Effect.Effect<ReadonlyArray<number>, StoreError>
  /**
   * Optional, for in-memory backends: the chunks each path holds, unjoined, so
   * that a wrapping store (Buffer) can move or join them with one copy instead
   * of two. The arrays still belong to the backend: read them, never modify
   * them, and use them before the next write to the backend.
   */
  readonly getChunks?: (
    paths: ReadonlyArray<Key.Path>
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<Uint8Array>>, StoreError>
  /**
   * Optional, for in-memory backends: appends `chunks[i]`, a list of chunks
   * whose lengths add up to `lengths[i]`, to the i-th path, keeping the lists'
   * order. The same as appending every chunk one by one, but without touching
   * each chunk: a wrapping store (Buffer) moves a spilled key's thousands of
   * chunks as one list. The backend copies the lists, not the chunks.
   */
  readonly appendChunks?: (
    paths: ReadonlyArray<Key.Path>,
    chunks: ReadonlyArray<ReadonlyArray<Uint8Array>>,
    lengths: ReadonlyArray<number>
  ) => Effect.Effect<void, StoreError>
}

const badKey = (method: string, key: unknown, problem: string) =>
  new StoreError({ reason: "BadKey", method, key: Key.show(key), description: problem })

/**
 * Validates one key into its path, or the `BadKey` error for it: for stores
 * that validate keys themselves (typed stores, which do not go through
 * {@link make}).
 *
 * @since 0.1.0
 * @category validation
 */
export const toPathOrError = (method: string, key: unknown): Key.Path | StoreError => {
  const path = Key.toPath(key)
  return path instanceof Key.Invalid ? badKey(method, key, path.problem) : path
}

/**
 * The error every operation of a store fails with once the store's scope has
 * closed.
 *
 * @since 0.1.0
 * @category errors
 */
export const closedError = (method: string): StoreError =>
  new StoreError({ reason: "Closed", method, description: "the store's scope has closed" })

const badValue = (method: string, key: unknown, value: unknown) =>
  new StoreError({
    reason: "BadValue",
    method,
    key: Key.show(key),
    description: `a value must be a Uint8Array, got ${value === null ? "null" : typeof value}`
  })

/**
 * The lengths of an append's chunks, in call order, and their total, as
 * measured once when the call was validated. They travel with the chunks to
 * the backend (and through a wrapping store to its inner one), so that no
 * layer reads every chunk again: on an in-memory append, reading a chunk's
 * length is a memory access per chunk (the chunks lie wherever the heap put
 * them) and costs more than storing it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Sizes {
  /** `lengths[i]` is `values[i].byteLength`. */
  readonly lengths: ReadonlyArray<number>
  /** The sum of `lengths`. */
  readonly bytes: number
}

/**
 * The {@link Sizes} of chunks, read from them: for a caller that was not
 * handed them.
 *
 * @since 0.1.0
 * @category constructors
 */
export const sizesOf = (values: ReadonlyArray<Uint8Array>): Sizes => {
  const lengths = new Array<number>(values.length)
  let bytes = 0
  for (let i = 0; i < values.length; i++) {
    const length = values[i]!.byteLength
    lengths[i] = length
    bytes += length
  }
  return { lengths, bytes }
}

/**
 * An `append` input, validated: parallel arrays of paths and chunks.
 *
 * @since 0.1.0
 * @category models
 */
export interface Batch {
  readonly paths: ReadonlyArray<Key.Path>
  readonly values: ReadonlyArray<Uint8Array>
  /** The values' total length in bytes (`toBatch` always gives it). */
  readonly bytes?: number
  /** The values' lengths and total (`toBatch` always gives them), for the backend. */
  readonly sizes?: Sizes | undefined
}

/**
 * Validates an `append` input, or returns the error for the first bad key
 * (else the first bad value). Nothing is written when anything is invalid.
 *
 * @since 0.1.0
 * @category validation
 */
export const toBatch = (data: AppendInput): Batch | StoreError => {
  if (data === null || typeof data !== "object") {
    return new StoreError({ reason: "BadValue", method: "append", description: "append takes a record or an iterable" })
  }
  if (Key.isKeySet((data as Columns).keys)) {
    const { keys, values: given } = data as Columns
    if (!Array.isArray(given) || given.length !== keys.paths.length) return badColumns("append", keys)
    const sizes = measure(keys.paths, given)
    if (sizes instanceof StoreError) return sizes
    // The key set's own frozen array: backends may cache per key set.
    return { paths: keys.paths, values: given, bytes: sizes.bytes, sizes }
  }
  const collected = collect(data)
  return collected instanceof StoreError ? collected : checked(collected.keys, collected.values)
}

/**
 * The values' {@link Sizes}, or the error for the first value that is not a
 * `Uint8Array`. A loop of its own, after the keys: reading a chunk's type and
 * length is a memory access per chunk (the chunks of a record lie wherever
 * the heap put them), and a tight loop lets the CPU overlap those reads. It
 * is the only pass over the chunks: the lengths go down with them.
 */
const measure = (keys: ReadonlyArray<unknown>, values: ReadonlyArray<unknown>): Sizes | StoreError => {
  const lengths = new Array<number>(values.length)
  let bytes = 0
  for (let i = 0; i < values.length; i++) {
    const value = values[i]
    if (!(value instanceof Uint8Array)) return badValue("append", keys[i], value)
    const length = value.byteLength
    lengths[i] = length
    bytes += length
  }
  return { lengths, bytes }
}

/**
 * A batch of keys and values collected from an input, checked: the keys
 * through `Key.toPathList` (which may hand back a frozen array it has seen
 * before, so backends' per-key-set caches hit), then the values. Every key is
 * checked before any value, and nothing is written when anything is invalid.
 */
const checked = (keys: Array<unknown>, values: Array<unknown>): Batch | StoreError => {
  const paths = Key.toPathList(keys)
  if (paths instanceof Key.InvalidAt) return badKey("append", keys[paths.index], paths.invalid.problem)
  const sizes = measure(keys, values)
  if (sizes instanceof StoreError) return sizes
  return { paths, values: values as Array<Uint8Array>, bytes: sizes.bytes, sizes }
}

/** Columns whose values are not an array of one value per key. */
const badColumns = (method: string, keys: Key.KeySet): StoreError =>
  new StoreError({
    reason: "BadValue",
    method,
    description: `columns: expected ${keys.paths.length} values, one per key`
  })

/** The keys and values of an input other than columns, as given, not yet checked. */
interface Collected {
  readonly keys: Array<unknown>
  readonly values: Array<unknown>
}

/** Reads a record, a `Map`, an array of pairs or another iterable of pairs into parallel arrays. */
const collect = (data: object): Collected | StoreError => {
  if (data instanceof Map) return fromMap(data as ReadonlyMap<unknown, unknown>)
  if (Array.isArray(data)) return fromPairs(data)
  if (Symbol.iterator in data) return fromIterable(data as Iterable<unknown>)
  return fromRecord(data as Readonly<Record<string, unknown>>)
}

// Own keys only (`for...in` would also append inherited enumerable ones), and
// an indexed loop: a record of many keys is a hash table in V8, and this
// reads it faster than `for...in`.
const fromRecord = (data: Readonly<Record<string, unknown>>): Collected => {
  const names = Object.keys(data)
  const values = new Array<unknown>(names.length)
  for (let i = 0; i < names.length; i++) values[i] = data[names[i]!]
  return { keys: names, values }
}

// `forEach`, which hands over each key and value without an entry array per pair.
const fromMap = (data: ReadonlyMap<unknown, unknown>): Collected => {
  const keys = new Array<unknown>(data.size)
  const values = new Array<unknown>(data.size)
  let i = 0
  data.forEach((value, key) => {
    keys[i] = key
    values[i++] = value
  })
  return { keys, values }
}

const notAPair = () =>
  new StoreError({ reason: "BadValue", method: "append", description: "expected [key, value] pairs" })

// Pair by pair, failing at the first that is not a pair (a `Uint8Array` given
// by mistake is iterable too: no array of its bytes is built).
const fromIterable = (pairs: Iterable<unknown>): Collected | StoreError => {
  const keys: Array<unknown> = []
  const values: Array<unknown> = []
  for (const pair of pairs) {
    if (!Array.isArray(pair) || pair.length !== 2) return notAPair()
    keys.push(pair[0])
    values.push(pair[1])
  }
  return { keys, values }
}

const fromPairs = (pairs: ReadonlyArray<unknown>): Collected | StoreError => {
  const keys = new Array<unknown>(pairs.length)
  const values = new Array<unknown>(pairs.length)
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i]
    if (!Array.isArray(pair) || pair.length !== 2) return notAPair()
    keys[i] = pair[0]
    values[i] = pair[1]
  }
  return { keys, values }
}

/**
 * Validates a list of keys into paths, or returns the error for the first bad
 * key.
 *
 * @since 0.1.0
 * @category validation
 */
export const toPaths = (method: string, keys: ReadonlyArray<Key.Key>): Array<Key.Path> | StoreError => {
  if (!Array.isArray(keys)) {
    return new StoreError({ reason: "BadKey", method, description: "expected a list of keys" })
  }
  const paths = new Array<Key.Path>(keys.length)
  for (let i = 0; i < keys.length; i++) {
    const path = Key.toPath(keys[i])
    if (path instanceof Key.Invalid) return badKey(method, keys[i], path.problem)
    paths[i] = path
  }
  return paths
}

const BackendTypeId: unique symbol = Symbol.for("@partd/core/Store/Backend")

/**
 * The backend under a store, for stores that wrap other stores (Buffer,
 * encodings): calling it skips validating paths that are already valid. For a
 * store not made by {@link make}, an adapter over its public operations.
 * Calls through the backend bypass the store's `Closed` check and
 * idempotent-set bookkeeping, which the wrapping store keeps for itself.
 *
 * @since 0.1.0
 * @category destructors
 */
export const toBackend = (store: Shape): Backend => {
  const backend = (store as Shape & { readonly [BackendTypeId]?: Backend })[BackendTypeId]
  if (backend !== undefined) return backend
  return {
    append: (paths, values, id) =>
      store.append(
        paths.map((path, i) => [path, values[i]!] as const),
        id === undefined ? undefined : { id }
      ),
    get: (paths) => store.get(paths),
    iset: (path, value) => store.iset(path, value),
    delete: (paths) => store.delete(paths),
    drop: store.drop,
    stream: (path, chunkBytes) => store.stream(path, { chunkBytes }),
    keys: store.keys,
    size: (paths) => store.size(paths)
  }
}

/**
 * What a typed `append` accepts, as {@link AppendInput} is for bytes: a record
 * of keys to values, any iterable of `[key, value]` pairs, or columns over a
 * key set.
 *
 * @since 0.1.0
 * @category models
 */
export type Input<A> = Readonly<Record<string, A>> | Iterable<readonly [Key.Key, A]> | ColumnsOf<A>

/**
 * A typed append in columns: `values[i]` goes to the i-th key of a key set
 * validated once with {@link keySet}, as {@link Columns} does for bytes.
 *
 * @since 0.1.0
 * @category models
 */
export interface ColumnsOf<A> {
  readonly keys: Key.KeySet
  readonly values: ReadonlyArray<A>
}

/**
 * A validated typed `append` input: parallel arrays of paths and values.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entries<A> {
  readonly paths: ReadonlyArray<Key.Path>
  readonly values: ReadonlyArray<A>
  /** For bytes, their lengths (see {@link Sizes}): the shell hands them to `append`. */
  readonly sizes?: Sizes | undefined
}

/**
 * Validates the keys of a typed `append` input (the values are the typed
 * store's to check), or returns the error for the first bad key. Records are
 * read by their own keys only, never inherited ones. For bytes, use
 * {@link toBatch}, which also checks the values.
 *
 * @since 0.1.0
 * @category validation
 */
export const toEntries = <A>(method: string, data: Input<A>): Entries<A> | StoreError => {
  if (data === null || typeof data !== "object") {
    return new StoreError({ reason: "BadValue", method, description: "append takes a record or an iterable" })
  }
  if (Key.isKeySet((data as ColumnsOf<A>).keys)) {
    const { keys, values } = data as ColumnsOf<A>
    if (!Array.isArray(values) || values.length !== keys.paths.length) return badColumns(method, keys)
    // The key set's own frozen array: backends may cache per key set.
    return { paths: keys.paths, values }
  }
  const collected = collect(data)
  if (collected instanceof StoreError) return collected
  const paths = Key.toPathList(collected.keys)
  if (paths instanceof Key.InvalidAt) return badKey(method, collected.keys[paths.index], paths.invalid.problem)
  return { paths, values: collected.values as Array<A> }
}

/**
 * What a store built with {@link shell} implements: its operations over
 * validated paths, for values of type `A` read back as `R`, failing with `E`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Operations<A, R, E, S = R> {
  readonly append: (
    paths: ReadonlyArray<Key.Path>,
    values: ReadonlyArray<A>,
    id?: string | undefined,
    sizes?: Sizes | undefined
  ) => Effect.Effect<void, E>
  readonly get: (paths: ReadonlyArray<Key.Path>) => Effect.Effect<ReadonlyArray<R>, E>
  readonly iset: (path: Key.Path, value: A) => Effect.Effect<void, E>
  readonly delete: (paths: ReadonlyArray<Key.Path>) => Effect.Effect<void, E>
  readonly drop: Effect.Effect<void, E>
  readonly stream: (path: Key.Path, chunkBytes: number) => Stream.Stream<S, E>
  readonly keys: Stream.Stream<Key.Path, E>
  readonly size: (paths: ReadonlyArray<Key.Path>) => Effect.Effect<ReadonlyArray<number>, E>
}

/**
 * The public operations of a store built with {@link shell}: a byte store's
 * {@link Shape} when `A`, `R` and `S` are bytes, a typed store's otherwise
 * (`stream` yields values of type `S`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Shell<A, R, E, I = Input<A>, S = R> {
  readonly append: (data: I, options?: AppendOptions) => Effect.Effect<void, E | StoreError>
  readonly get: (keys: ReadonlyArray<Key.Key>) => Effect.Effect<ReadonlyArray<R>, E | StoreError>
  readonly iset: (key: Key.Key, value: A) => Effect.Effect<void, E | StoreError>
  readonly delete: (keys: ReadonlyArray<Key.Key>) => Effect.Effect<void, E | StoreError>
  readonly drop: Effect.Effect<void, E | StoreError>
  readonly stream: (key: Key.Key, options?: StreamOptions) => Stream.Stream<S, E | StoreError>
  readonly keys: Stream.Stream<Key.Path, E | StoreError>
  readonly size: (keys: ReadonlyArray<Key.Key>) => Effect.Effect<ReadonlyArray<number>, E | StoreError>
}

/**
 * How {@link shell} reads its input.
 *
 * @since 0.1.0
 * @category models
 */
export interface ShellOptions<A, I> {
  /** Validates an `append` input (default: {@link toEntries}). */
  readonly parse?: ((data: I) => Entries<A> | StoreError) | undefined
  /** Checks the value of an `iset`, returning the error for a bad one (default: none). */
  readonly checkValue?: ((method: string, key: unknown, value: unknown) => StoreError | undefined) | undefined
  /**
   * Calls the operations even for calls with no keys, for a store whose empty
   * calls mean something (`Pipelined`: `get([])` waits for pending appends).
   * Default: empty calls are answered without calling them.
   */
  readonly forwardEmpty?: boolean | undefined
}

/**
 * The shell every store shares, byte stores and typed stores, backends and
 * stores that wrap stores: it validates keys (and, through `options`, values)
 * before `operations` see them, answers empty calls without calling them, and
 * fails every call with reason `Closed` once the scope it was made in has
 * closed.
 *
 * Call it after acquiring the resources `operations` use in the same scope, so
 * that the store is marked closed before those resources are released.
 *
 * @since 0.1.0
 * @category constructors
 */
export const shell = <A, R, E, I = Input<A>, S = R>(
  operations: Operations<A, R, E, S>,
  options: ShellOptions<A, I> = {}
): Effect.Effect<Shell<A, R, E, I, S>, never, Scope.Scope> =>
  Effect.gen(function* () {
    let closed = false
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
      })
    )
    const parse = options.parse ?? ((data: I) => toEntries("append", data as Input<A>))
    const checkValue = options.checkValue
    const skipEmpty = options.forwardEmpty !== true
    return {
      append: (data, appendOptions) =>
        Effect.suspend((): Effect.Effect<void, E | StoreError> => {
          if (closed) return Effect.fail(closedError("append"))
          const batch = parse(data)
          if (batch instanceof StoreError) return Effect.fail(batch)
          const id = appendOptions?.id
          if (id !== undefined && !isCallId(id)) return Effect.fail(badCallId(id))
          return skipEmpty && batch.paths.length === 0
            ? Effect.void
            : operations.append(batch.paths, batch.values, id, batch.sizes)
        }),
      get: (keys) =>
        Effect.suspend((): Effect.Effect<ReadonlyArray<R>, E | StoreError> => {
          if (closed) return Effect.fail(closedError("get"))
          const paths = toPaths("get", keys)
          if (paths instanceof StoreError) return Effect.fail(paths)
          return skipEmpty && paths.length === 0 ? Effect.succeed([]) : operations.get(paths)
        }),
      iset: (key, value) =>
        Effect.suspend((): Effect.Effect<void, E | StoreError> => {
          if (closed) return Effect.fail(closedError("iset"))
          const path = toPathOrError("iset", key)
          if (path instanceof StoreError) return Effect.fail(path)
          const bad = checkValue?.("iset", key, value)
          return bad === undefined ? operations.iset(path, value) : Effect.fail(bad)
        }),
      delete: (keys) =>
        Effect.suspend((): Effect.Effect<void, E | StoreError> => {
          if (closed) return Effect.fail(closedError("delete"))
          const paths = toPaths("delete", keys)
          if (paths instanceof StoreError) return Effect.fail(paths)
          return skipEmpty && paths.length === 0 ? Effect.void : operations.delete(paths)
        }),
      drop: Effect.suspend(
        (): Effect.Effect<void, E | StoreError> => (closed ? Effect.fail(closedError("drop")) : operations.drop)
      ),
      stream: (key, streamOptions) =>
        Stream.suspend((): Stream.Stream<S, E | StoreError> => {
          if (closed) return Stream.fail(closedError("stream"))
          const path = toPathOrError("stream", key)
          if (path instanceof StoreError) return Stream.fail(path)
          const chunkBytes = streamOptions?.chunkBytes ?? defaultChunkBytes
          if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) return Stream.fail(badChunkBytes(chunkBytes))
          return operations.stream(path, chunkBytes)
        }),
      keys: Stream.suspend((): Stream.Stream<Key.Path, E | StoreError> => {
        if (closed) return Stream.fail(closedError("keys"))
        return operations.keys
      }),
      size: (keys) =>
        Effect.suspend((): Effect.Effect<ReadonlyArray<number>, E | StoreError> => {
          if (closed) return Effect.fail(closedError("size"))
          const paths = toPaths("size", keys)
          if (paths instanceof StoreError) return Effect.fail(paths)
          if (skipEmpty && paths.length === 0) return Effect.succeed([])
          return operations.size(paths)
        })
    }
  })

/** The longest call id `append` takes. */
const maxCallIdLength = 128

const isCallId = (id: unknown): id is string => typeof id === "string" && id.length >= 1 && id.length <= maxCallIdLength

const badCallId = (id: unknown): StoreError =>
  new StoreError({
    reason: "BadValue",
    method: "append",
    description: `a call id must be a string of 1 to ${maxCallIdLength} characters, got ${
      typeof id === "string" ? `${id.length} characters` : typeof id
    }`
  })

const badChunkBytes = (chunkBytes: unknown): StoreError =>
  new StoreError({
    reason: "BadValue",
    method: "stream",
    description: `chunkBytes must be a positive integer, got ${String(chunkBytes)}`
  })

const checkBytes = (method: string, key: unknown, value: unknown): StoreError | undefined =>
  value instanceof Uint8Array ? undefined : badValue(method, key, value)

/**
 * Builds a store from a backend: the {@link shell} over bytes, plus partd's
 * idempotent-set bookkeeping. The store validates every key and value before
 * the backend sees them, and fails with reason `Closed` once the scope it was
 * made in has closed.
 *
 * Call it after acquiring the backend's resources in the same scope, so that
 * the store is marked closed before those resources are released. With
 * `forwardEmpty`, calls with no keys reach the backend too (see
 * {@link ShellOptions}).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  backend: Backend,
  options?: { readonly forwardEmpty?: boolean | undefined }
): Effect.Effect<Shape, never, Scope.Scope> =>
  Effect.gen(function* () {
    // Paths set by `iset`; forgotten when deleted or dropped, so that a key
    // whose data is gone can be set again.
    const isetSeen = new Set<Key.Path>()
    const store = yield* shell<Uint8Array, Uint8Array, StoreError, AppendInput>(
      {
        append: backend.append,
        get: backend.get,
        stream: backend.stream,
        keys: backend.keys,
        size: backend.size,
        iset: (path, value) =>
          isetSeen.has(path)
            ? Effect.void
            : Effect.map(backend.iset(path, value), () => {
                isetSeen.add(path)
              }),
        delete: (paths) =>
          Effect.map(backend.delete(paths), () => {
            for (const path of paths) isetSeen.delete(path)
          }),
        drop: Effect.map(backend.drop, () => {
          isetSeen.clear()
        })
      },
      { parse: toBatch, checkValue: checkBytes, forwardEmpty: options?.forwardEmpty }
    )
    const withBackend: Shape & { readonly [BackendTypeId]: Backend } = { ...store, [BackendTypeId]: backend }
    return Store.of(withBackend)
  })

/**
 * Appends through the `Store` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const append = (data: AppendInput, options?: AppendOptions): Effect.Effect<void, StoreError, Store> =>
  Store.use((store) => store.append(data, options))

/**
 * Streams one key through the `Store` in context (see {@link Shape.stream}).
 *
 * @since 0.1.0
 * @category accessors
 */
export const stream = (key: Key.Key, options?: StreamOptions): Stream.Stream<Uint8Array, StoreError, Store> =>
  Stream.unwrap(Store.useSync((store) => store.stream(key, options)))

/**
 * Every key of the `Store` in context that holds bytes (see {@link Shape.keys}).
 *
 * @since 0.1.0
 * @category accessors
 */
export const keys: Stream.Stream<Key.Path, StoreError, Store> = Stream.unwrap(Store.useSync((store) => store.keys))

/**
 * The bytes each key holds in the `Store` in context (see {@link Shape.size}).
 *
 * @since 0.1.0
 * @category accessors
 */
export const size = (keys: ReadonlyArray<Key.Key>): Effect.Effect<ReadonlyArray<number>, StoreError, Store> =>
  Store.use((store) => store.size(keys))

/**
 * Gets a list of keys through the `Store` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const get = (keys: ReadonlyArray<Key.Key>): Effect.Effect<ReadonlyArray<Uint8Array>, StoreError, Store> =>
  Store.use((store) => store.get(keys))

/**
 * Gets one key through the `Store` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const getOne = (key: Key.Key): Effect.Effect<Uint8Array, StoreError, Store> =>
  Store.use((store) => getOneFrom(store, key))

/**
 * Gets one key from a store.
 *
 * @since 0.1.0
 * @category combinators
 */
export const getOneFrom = (store: Shape, key: Key.Key): Effect.Effect<Uint8Array, StoreError> =>
  Effect.map(store.get([key]), (values) => values[0]!)

/**
 * partd's nested key lists: arrays are lists, everything else is a key (use
 * `Key.tuple` for a tuple key inside a nested list).
 *
 * @since 0.1.0
 * @category models
 */
export type Nested = string | number | Key.MarkedTuple | ReadonlyArray<Nested>

/**
 * The shape of the result of a nested get: bytes where the request had a key,
 * a list where it had a list.
 *
 * @since 0.1.0
 * @category models
 */
export type NestedResult<N> = N extends string | number | Key.MarkedTuple
  ? Uint8Array
  : N extends ReadonlyArray<infer E>
    ? ReadonlyArray<NestedResult<E>>
    : never

const flattenNested = (nested: Nested, out: Array<Key.Key>): void => {
  if (Array.isArray(nested) && !Key.isMarkedTuple(nested)) {
    for (const item of nested) flattenNested(item, out)
  } else {
    out.push(nested as Key.Key)
  }
}

const rebuildNested = (nested: Nested, values: ReadonlyArray<Uint8Array>, cursor: { i: number }): unknown => {
  if (Array.isArray(nested) && !Key.isMarkedTuple(nested)) {
    return nested.map((item: Nested) => rebuildNested(item, values, cursor))
  }
  return values[cursor.i++]
}

/**
 * partd's nested get: `getNestedFrom(store, ["x", ["y", "z"]])` gives
 * `[x, [y, z]]`, in one call to the store.
 *
 * @since 0.1.0
 * @category combinators
 */
export const getNestedFrom = <const N extends Nested>(
  store: Shape,
  nested: N
): Effect.Effect<NestedResult<N>, StoreError> =>
  Effect.suspend(() => {
    const flat: Array<Key.Key> = []
    flattenNested(nested, flat)
    return Effect.map(store.get(flat), (values) => rebuildNested(nested, values, { i: 0 }) as NestedResult<N>)
  })

/**
 * partd's nested get through the `Store` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const getNested = <const N extends Nested>(nested: N): Effect.Effect<NestedResult<N>, StoreError, Store> =>
  Store.use((store) => getNestedFrom(store, nested))

/**
 * Sets a key once through the `Store` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const iset = (key: Key.Key, value: Uint8Array): Effect.Effect<void, StoreError, Store> =>
  Store.use((store) => store.iset(key, value))

/**
 * Deletes keys through the `Store` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
const delete_ = (keys: ReadonlyArray<Key.Key>): Effect.Effect<void, StoreError, Store> =>
  Store.use((store) => store.delete(keys))

export {
  /**
   * Deletes keys through the `Store` in context.
   *
   * @since 0.1.0
   * @category accessors
   */
  delete_ as delete
}

/**
 * Drops everything through the `Store` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const drop: Effect.Effect<void, StoreError, Store> = Store.use((store) => store.drop)
