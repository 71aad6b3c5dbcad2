/**
 * Encode: codecs applied to stores, partd's `Encode(encode, decode, join, partd)`.
 *
 * Two ways to apply a `Codec` (see `Codec` for codecs, their errors and
 * their frames):
 *
 * - a byte→byte codec (compression) gives back a `Store`:
 *   {@link layerStore} is a `Layer<Store, never, Store>`, so compressions stack
 *   on each other and on every backend, as `BZ2(File(...))` does in partd;
 * - any codec gives a typed {@link EncodedStore}, whose `append` takes values
 *   of type `A` and whose `get` returns the join of each key's values. Bind it
 *   to your own service with one call: declare
 *   `class Events extends Encode.Tag<Events, Event>()("app/Events") {}` and
 *   provide `Encode.layer(Events, codec)`.
 *
 * Both are built on `Store.shell`, so key validation, empty calls and the
 * `Closed` state are the same as every store's.
 *
 * Streams decode frame by frame: the inner store's pieces go through a
 * frame reader (`Framing.frames`), each complete frame is decoded as soon as
 * it is read, so a value of any size is read holding one frame (and one
 * piece) at a time. A byte store yields the decoded bytes regrouped in pieces
 * of at most `chunkBytes`; a typed store yields each frame's value (or the
 * codec's `items` of it). A torn trailing frame fails the stream with
 * `TornFrame` after everything before it. `size` is the size of the encoded
 * bytes the inner store keeps, frame headers included; `keys` are the inner
 * store's; an append's call id goes to the inner store with the call.
 *
 * This module also re-exports everything of `Codec`, so `Encode.CodecError`
 * and `Codec.CodecError` are the same class.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, type Scope, Stream } from "effect"
import { type Codec, type CodecError, decodeStream, decodeValues, encodeFrames, toStoreError } from "./Codec.ts"
import type * as Key from "./Key.ts"
import * as Observe from "./Observe.ts"
import * as Pieces from "./Pieces.ts"
import * as Store from "./Store.ts"

export * from "./Codec.ts"

/**
 * The smallest piece a byte store reads from its inner store when streaming:
 * the pieces it yields are cut to the caller's `chunkBytes` after decoding,
 * so reading 1-byte pieces of a compressed value would only be slow.
 */
const minReadBytes = 64 * 1024

/**
 * A byte store over another store: chunks are encoded and framed on the way
 * in, split, decoded and joined on the way out. Key validation, idempotent
 * sets and the closed state are the new store's own (see `Store.make`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeStore = (
  codec: Codec<Uint8Array, Uint8Array, unknown>,
  inner: Store.Shape
): Effect.Effect<Store.Shape, never, Scope.Scope> => {
  const backend = Store.toBackend(inner)
  return Observe.make("Encode", {
    append: (paths, values, id) =>
      Effect.flatMap(
        Effect.mapError(encodeFrames(codec, paths, values), (e) => toStoreError("append", e)),
        (framed) => backend.append(paths, framed, id)
      ),
    stream: (path, chunkBytes) =>
      Pieces.cut(
        Stream.mapError(decodeStream(codec, path, backend.stream(path, Math.max(chunkBytes, minReadBytes))), (e) =>
          e instanceof Store.StoreError ? e : toStoreError("stream", e)
        ),
        chunkBytes
      ),
    keys: backend.keys,
    size: (paths) => backend.size(paths),
    get: (paths) =>
      Effect.flatMap(backend.get(paths), (stored) =>
        Effect.mapError(decodeValues(codec, paths, stored), (e) => toStoreError("get", e))
      ),
    iset: (path, value) =>
      Effect.flatMap(
        Effect.mapError(encodeFrames(codec, [path], [value]), (e) => toStoreError("iset", e)),
        (framed) => backend.iset(path, framed[0]!)
      ),
    delete: (paths) => backend.delete(paths),
    drop: backend.drop
  })
}

/**
 * A byte codec as a store transformer: the `Store` it provides encodes into
 * the `Store` it requires, so layers stack:
 * `Encode.layerStore(zstd).pipe(Layer.provide(File.layer({ path })))`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerStore = (codec: Codec<Uint8Array>): Layer.Layer<Store.Store, never, Store.Store> =>
  Layer.effect(
    Store.Store,
    Effect.flatMap(Store.Store, (inner) => makeStore(codec, inner))
  )

/**
 * What a typed `append` accepts: a record of keys to values, any iterable of
 * `[key, value]` pairs, or columns.
 *
 * @since 0.1.0
 * @category models
 */
export type Input<A> = Store.Input<A>

/**
 * A typed append in columns: `values[i]` goes to the i-th key of a key set
 * validated once with `Store.keySet`, as `Store.columns` does for bytes.
 *
 * @since 0.1.0
 * @category models
 */
export type Columns<A> = Store.ColumnsOf<A>

/**
 * Builds a typed append in columns.
 *
 * @since 0.1.0
 * @category constructors
 */
export const columns = <A>(keys: Key.KeySet, values: ReadonlyArray<A>): Columns<A> => ({ keys, values })

/**
 * A typed store: the store operations over values of type `A`.
 *
 * @since 0.1.0
 * @category models
 */
export interface EncodedStore<A, J = A, S = A> {
  /** The codec's name. */
  readonly codec: string
  /** Encodes each value and appends it to its key. Nothing is written if any key or value is invalid. */
  readonly append: (data: Input<A>, options?: Store.AppendOptions) => Effect.Effect<void, Store.StoreError | CodecError>
  /** The join of every value appended to each key (the codec's empty value for a key that holds nothing). */
  readonly get: (keys: ReadonlyArray<Key.Key>) => Effect.Effect<ReadonlyArray<J>, Store.StoreError | CodecError>
  /** `get` for one key. */
  readonly getOne: (key: Key.Key) => Effect.Effect<J, Store.StoreError | CodecError>
  /** Sets `key` to `value` the first time it is called for `key`. */
  readonly iset: (key: Key.Key, value: A) => Effect.Effect<void, Store.StoreError | CodecError>
  readonly delete: (keys: ReadonlyArray<Key.Key>) => Effect.Effect<void, Store.StoreError>
  readonly drop: Effect.Effect<void, Store.StoreError>
  /**
   * The values appended to `key`, decoded frame by frame in append order
   * (see the module's description): a value of any size in bounded memory.
   * `chunkBytes` is the size of the pieces read from the byte store.
   */
  readonly stream: (key: Key.Key, options?: Store.StreamOptions) => Stream.Stream<S, Store.StoreError | CodecError>
  /** Every key that holds bytes, each once, in no particular order. */
  readonly keys: Stream.Stream<Key.Path, Store.StoreError>
  /** The encoded bytes each key holds in the byte store, without reading them. */
  readonly size: (keys: ReadonlyArray<Key.Key>) => Effect.Effect<ReadonlyArray<number>, Store.StoreError>
}

/**
 * A service key for a typed store: `class Events extends
 * Encode.Tag<Events, Event>()("app/Events") {}`. `A` is what `append` takes,
 * `J` what `get` returns (default `A`), `S` what `stream` yields (default
 * `A`): give the codec's own types, e.g. `Encode.Tag<Rows,
 * ReadonlyArray<unknown>, Array<unknown>, unknown>` for Msgpack (which
 * streams the lists' elements) and `Encode.Tag<Tables, Table | RecordBatch,
 * Table, RecordBatch>` for Arrow.
 *
 * @since 0.1.0
 * @category services
 */
export const Tag = <Self, A, J = A, S = A>() => Context.Service<Self, EncodedStore<A, J, S>>()

/**
 * A typed store from its operations over validated paths: the `Store.shell`
 * (key validation, empty calls, `Closed`), plus `getOne`. `delete`, `drop`,
 * `keys` and `size` must fail only with `StoreError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTyped = <A, J, S = A>(
  codec: string,
  operations: Store.Operations<A, J, Store.StoreError | CodecError, S>
): Effect.Effect<EncodedStore<A, J, S>, never, Scope.Scope> =>
  Effect.map(Store.shell(operations), (shell) => ({
    codec,
    append: shell.append,
    get: shell.get,
    getOne: (key) => Effect.map(shell.get([key]), (values) => values[0]!),
    iset: shell.iset,
    // The operations' delete, drop, keys and size fail only with StoreError (see above).
    delete: shell.delete as EncodedStore<A, J, S>["delete"],
    drop: shell.drop as EncodedStore<A, J, S>["drop"],
    stream: shell.stream,
    keys: shell.keys as EncodedStore<A, J, S>["keys"],
    size: shell.size as EncodedStore<A, J, S>["size"]
  }))

/**
 * A typed store over a byte store. Appends and gets go straight to the
 * store's backend (keys are validated here, once); `iset`, `delete` and
 * `drop` go through the store, which keeps partd's idempotent-set
 * bookkeeping. Fails with `Closed` once the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeEncoded = <A, J, S = A>(
  codec: Codec<A, J, S>,
  inner: Store.Shape
): Effect.Effect<EncodedStore<A, J, S>, never, Scope.Scope> => {
  const backend = Store.toBackend(inner)
  const items = codec.items
  return makeTyped<A, J, S>(codec.name, {
    append: (paths, values, id) =>
      Effect.flatMap(encodeFrames(codec, paths, values), (framed) => backend.append(paths, framed, id)),
    stream: (path, chunkBytes) => {
      const values = decodeStream(codec, path, backend.stream(path, chunkBytes))
      return items === undefined
        ? (values as unknown as Stream.Stream<S, Store.StoreError | CodecError>)
        : Stream.flattenIterable(Stream.map(values, items))
    },
    keys: backend.keys,
    size: (paths) => backend.size(paths),
    get: (paths) => Effect.flatMap(backend.get(paths), (stored) => decodeValues(codec, paths, stored)),
    iset: (path, value) =>
      Effect.flatMap(encodeFrames(codec, [path], [value]), (framed) => inner.iset(path, framed[0]!)),
    delete: (paths) => inner.delete(paths),
    drop: inner.drop
  })
}

/**
 * A typed store bound to your own service, over the `Store` in context:
 * `Encode.layer(Events, Json.codec<Event>())`. The service key states the
 * types; a codec whose `append`, `get` or `stream` types differ from the
 * key's does not type-check.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <Self, A, J, S = A>(
  tag: Context.Key<Self, EncodedStore<A, J, S>>,
  codec: Codec<NoInfer<A>, NoInfer<J>, NoInfer<S>>
): Layer.Layer<Self, never, Store.Store> =>
  Layer.effect(
    tag,
    Effect.flatMap(Store.Store, (inner) => makeEncoded(codec, inner))
  )
