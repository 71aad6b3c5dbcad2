/**
 * TypedArrays: numeric arrays laid out as partd's `Numpy` lays them out.
 *
 * Python partd's `partd.Numpy` does not frame: it appends each array's raw
 * bytes to the key, and keeps the array's dtype string (numpy's `dtype.str`,
 * such as `<f8`) in a sidecar key, the key with `.dtype` appended to its
 * last segment, set once. This store writes exactly that, so
 * `partd.Numpy(partd.File(dir)).get(key)` in Python returns the numpy array
 * appended here, and the reverse:
 *
 * | TypedArray | dtype |
 * | --- | --- |
 * | Int8Array | `\|i1` |
 * | Uint8Array, Uint8ClampedArray | `\|u1` |
 * | Int16Array, Uint16Array | `<i2`, `<u2` |
 * | Int32Array, Uint32Array | `<i4`, `<u4` |
 * | BigInt64Array, BigUint64Array | `<i8`, `<u8` |
 * | Float32Array, Float64Array | `<f4`, `<f8` |
 *
 * Bytes are little-endian whatever the host; big-endian dtypes (`>f8`)
 * written by numpy are read too, and numpy's `datetime64`/`timedelta64`
 * (`<M8[..]`, `<m8[..]`) are read as BigInt64Array.
 *
 * Where partd goes wrong, this store does not: appending an array of
 * another dtype to a key fails with an `Encode` CodecError instead of
 * silently reinterpreting bytes; a value whose length is not a whole number
 * of items (an append cut short) fails with a `TornFrame` CodecError that
 * carries the complete items in `recovered`; and `delete` removes the data
 * as well as the dtype. A key that holds nothing gives an empty Uint8Array.
 *
 * `stream` yields a key's items as arrays of the key's dtype, one per piece
 * read from the byte store (an item cut between two pieces goes with the
 * next), so an array of any size is read in bounded memory; a value that
 * ends in a partial item fails with `TornFrame` after the whole items.
 * `keys` leaves out the `.dtype` sidecars (so a key of this store whose own
 * name ends in `.dtype` is not listed either); `size` is the data's bytes,
 * without the dtype. An append's call id goes to the byte store's append
 * (setting a dtype is idempotent, so a repeated call sets nothing new).
 *
 * @since 0.1.0
 */
import { Encode, Framing, type Key, Store } from "@partd/core"
import { Effect, Layer, type Scope, Stream } from "effect"
import type * as Context from "effect/Context"

/**
 * The arrays this store holds.
 *
 * @since 0.1.0
 * @category models
 */
export type TypedArray =
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array

/**
 * The typed store of arrays.
 *
 * @since 0.1.0
 * @category models
 */
export type TypedArrayStore = Encode.EncodedStore<TypedArray>

const CODEC = "numpy"

type Constructor = new (buffer: ArrayBuffer, byteOffset: number, length: number) => TypedArray

interface Kind {
  readonly ctor: Constructor
  readonly itemsize: number
}

const kinds: Record<string, Kind> = {
  i1: { ctor: Int8Array, itemsize: 1 },
  u1: { ctor: Uint8Array, itemsize: 1 },
  i2: { ctor: Int16Array, itemsize: 2 },
  u2: { ctor: Uint16Array, itemsize: 2 },
  i4: { ctor: Int32Array, itemsize: 4 },
  u4: { ctor: Uint32Array, itemsize: 4 },
  i8: { ctor: BigInt64Array as unknown as Constructor, itemsize: 8 },
  u8: { ctor: BigUint64Array as unknown as Constructor, itemsize: 8 },
  f4: { ctor: Float32Array, itemsize: 4 },
  f8: { ctor: Float64Array, itemsize: 8 }
}

const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/**
 * The numpy dtype string of an array (`dtype.str`), or `undefined` for
 * something that is not a supported typed array.
 *
 * @since 0.1.0
 * @category dtypes
 */
export const dtypeOf = (array: unknown): string | undefined => {
  if (array instanceof Float64Array) return "<f8"
  if (array instanceof Float32Array) return "<f4"
  if (array instanceof Int32Array) return "<i4"
  if (array instanceof Uint32Array) return "<u4"
  if (array instanceof Int16Array) return "<i2"
  if (array instanceof Uint16Array) return "<u2"
  if (array instanceof Int8Array) return "|i1"
  if (array instanceof Uint8Array || array instanceof Uint8ClampedArray) return "|u1"
  if (array instanceof BigInt64Array) return "<i8"
  if (array instanceof BigUint64Array) return "<u8"
  return undefined
}

interface Parsed {
  readonly kind: Kind
  readonly littleEndian: boolean
}

/**
 * Parses a numpy dtype string into the typed array that holds it, or a
 * description of why it cannot be held.
 */
const parseDtype = (dtype: string): Parsed | string => {
  const match = /^([<>|=]?)([iuf][1248]|[Mm]8(?:\[[A-Za-z0-9]+\])?)$/.exec(dtype)
  if (match === null) return `dtype ${JSON.stringify(dtype)} has no TypedArray counterpart`
  const order = match[1]!
  const code = match[2]!
  const kind = code.startsWith("M") || code.startsWith("m") ? kinds.i8! : kinds[code]
  if (kind === undefined) return `dtype ${JSON.stringify(dtype)} has no TypedArray counterpart`
  return { kind, littleEndian: order === ">" ? false : order === "=" ? hostIsLittleEndian : true }
}

/** A copy of `bytes` with every `itemsize`-byte item reversed. */
const swapped = (bytes: Uint8Array, itemsize: number): Uint8Array => {
  const out = new Uint8Array(bytes.byteLength)
  for (let i = 0; i < bytes.byteLength; i += itemsize) {
    for (let j = 0; j < itemsize; j++) out[i + j] = bytes[i + itemsize - 1 - j]!
  }
  return out
}

/** The little-endian bytes of an array: a view when the host is little-endian. */
const toBytes = (array: TypedArray, itemsize: number): Uint8Array => {
  const view = new Uint8Array(array.buffer, array.byteOffset, array.byteLength)
  return hostIsLittleEndian || itemsize === 1 ? view : swapped(view, itemsize)
}

/** An array over `bytes` (a whole number of items), copying only to align or swap. */
const fromBytes = (parsed: Parsed, bytes: Uint8Array): TypedArray => {
  const { ctor, itemsize } = parsed.kind
  let data = bytes
  if (itemsize > 1 && parsed.littleEndian !== hostIsLittleEndian) data = swapped(bytes, itemsize)
  else if (data.byteOffset % itemsize !== 0) data = data.slice()
  return new ctor(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength / itemsize)
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** partd's `suffix(key, '.dtype')`: the suffix goes on the last segment, so on the path. */
const dtypePath = (path: Key.Path): Key.Path => `${path}.dtype`

const codecError = (reason: Encode.CodecErrorReason, key: string, description: string, extra?: object) =>
  new Encode.CodecError({ reason, codec: CODEC, key, description, ...extra })

/**
 * Makes the typed-array store over a byte store.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (inner: Store.Shape): Effect.Effect<TypedArrayStore, never, Scope.Scope> =>
  Effect.gen(function* () {
    const backend = Store.toBackend(inner)
    // dtypes this instance has written or read, so that an append checks a
    // key's stored dtype once rather than on every call.
    const known = new Map<Key.Path, string>()
    yield* Effect.addFinalizer(() => Effect.sync(() => known.clear()))

    /** Reads the stored dtypes of the paths whose dtype this instance does not know yet. */
    const learn = (paths: ReadonlyArray<Key.Path>) =>
      Effect.suspend(() => {
        const unknown = [...new Set(paths.filter((path) => !known.has(path)))]
        if (unknown.length === 0) return Effect.void
        return Effect.map(backend.get(unknown.map(dtypePath)), (dtypes) => {
          for (let i = 0; i < unknown.length; i++) {
            if (dtypes[i]!.byteLength > 0) known.set(unknown[i]!, decoder.decode(dtypes[i]!))
          }
        })
      })

    const prepare = (paths: ReadonlyArray<Key.Path>, values: ReadonlyArray<TypedArray>) =>
      Effect.suspend(() => {
        const bytes = new Array<Uint8Array>(values.length)
        const incoming = new Map<Key.Path, string>()
        for (let i = 0; i < values.length; i++) {
          const path = paths[i]!
          const dtype = dtypeOf(values[i])
          if (dtype === undefined) {
            return Effect.fail(codecError("Encode", path, `expected a TypedArray, got ${typeof values[i]}`))
          }
          const held = known.get(path) ?? incoming.get(path)
          if (held !== undefined && held !== dtype) {
            return Effect.fail(codecError("Encode", path, `the key holds ${held} items; cannot append ${dtype}`))
          }
          incoming.set(path, dtype)
          bytes[i] = toBytes(values[i]!, parseDtypeOrThrow(dtype).kind.itemsize)
        }
        return Effect.succeed({ bytes, incoming })
      })

    const setDtypes = (incoming: ReadonlyMap<Key.Path, string>) =>
      Effect.forEach(
        [...incoming].filter(([path]) => !known.has(path)),
        ([path, dtype]) =>
          Effect.map(inner.iset(dtypePath(path), encoder.encode(dtype)), () => {
            known.set(path, dtype)
          }),
        { discard: true }
      )

    return yield* Encode.makeTyped<TypedArray, TypedArray>(CODEC, {
      append: (paths, values, id) =>
        learn(paths).pipe(
          Effect.andThen(prepare(paths, values)),
          Effect.tap(({ incoming }) => setDtypes(incoming)),
          Effect.flatMap(({ bytes }) => backend.append(paths, bytes, id))
        ),
      stream: (path, chunkBytes) =>
        Stream.unwrap(
          Effect.flatMap(backend.get([dtypePath(path)]), ([dtypeBytes]) => {
            if (dtypeBytes!.byteLength === 0) {
              // No dtype: a key that holds nothing, or bytes nobody can read.
              return Effect.map(backend.size([path]), ([size]) =>
                size === 0
                  ? Stream.empty
                  : Stream.fail(codecError("Decode", path, `no dtype in ${dtypePath(path)} for ${size} bytes`))
              )
            }
            const dtype = decoder.decode(dtypeBytes)
            const parsed = parseDtype(dtype)
            if (typeof parsed === "string") return Effect.succeed(Stream.fail(codecError("Decode", path, parsed)))
            return Effect.succeed(streamItems(path, dtype, parsed, backend.stream(path, chunkBytes)))
          })
        ),
      keys: Stream.filter(backend.keys, (path) => !path.endsWith(".dtype")),
      size: (paths) => backend.size(paths),
      get: (paths) =>
        Effect.flatMap(backend.get([...paths, ...paths.map(dtypePath)]), (stored) =>
          decodeArrays(paths, stored, known)
        ),
      iset: (path, value) =>
        Effect.flatMap(prepare([path], [value]), ({ bytes, incoming }) => {
          const dtype = incoming.get(path)!
          return inner.iset(dtypePath(path), encoder.encode(dtype)).pipe(
            Effect.andThen(inner.iset(path, bytes[0]!.slice())),
            Effect.andThen(
              Effect.sync(() => {
                known.set(path, dtype)
              })
            )
          )
        }),
      delete: (paths) =>
        Effect.map(inner.delete([...paths, ...paths.map(dtypePath)]), () => {
          for (const path of paths) known.delete(path)
        }),
      drop: Effect.map(inner.drop, () => known.clear())
    })
  })

/**
 * The arrays stored under `paths`: `stored` holds each path's bytes, then
 * each path's dtype. Records every dtype read in `known`.
 */
const decodeArrays = (
  paths: ReadonlyArray<Key.Path>,
  stored: ReadonlyArray<Uint8Array>,
  known: Map<Key.Path, string>
): Effect.Effect<ReadonlyArray<TypedArray>, Encode.CodecError> => {
  const out = new Array<TypedArray>(paths.length)
  for (let i = 0; i < paths.length; i++) {
    const path = paths[i]!
    const data = stored[i]!
    const dtypeBytes = stored[paths.length + i]!
    if (dtypeBytes.byteLength === 0) {
      if (data.byteLength === 0) {
        out[i] = new Uint8Array(0)
        continue
      }
      return Effect.fail(codecError("Decode", path, `no dtype in ${dtypePath(path)} for ${data.byteLength} bytes`))
    }
    const dtype = decoder.decode(dtypeBytes)
    const parsed = parseDtype(dtype)
    if (typeof parsed === "string") return Effect.fail(codecError("Decode", path, parsed))
    known.set(path, dtype)
    const itemsize = parsed.kind.itemsize
    const whole = data.byteLength - (data.byteLength % itemsize)
    if (whole !== data.byteLength) {
      return Effect.fail(
        codecError(
          "TornFrame",
          path,
          `${data.byteLength} bytes is not a whole number of ${dtype} items: the last append was cut short`,
          { recovered: fromBytes(parsed, data.subarray(0, whole)), validBytes: whole }
        )
      )
    }
    out[i] = fromBytes(parsed, data)
  }
  return Effect.succeed(out)
}

/**
 * The arrays of a key's bytes read as pieces: the whole items of each piece
 * (a partial item waits for the next piece), then `TornFrame` if the bytes
 * end inside an item.
 */
const streamItems = <E>(
  path: Key.Path,
  dtype: string,
  parsed: Parsed,
  pieces: Stream.Stream<Uint8Array, E>
): Stream.Stream<TypedArray, E | Encode.CodecError> => {
  const itemsize = parsed.kind.itemsize
  return Framing.transformBatches<Uint8Array, TypedArray, E, never, Encode.CodecError>(pieces, () => {
    let carry: Uint8Array | undefined
    let whole = 0
    return {
      step: (batch) => {
        const out: Array<TypedArray> = []
        for (let i = 0; i < batch.length; i++) {
          let bytes = batch[i]!
          if (carry !== undefined) {
            const joined = new Uint8Array(carry.byteLength + bytes.byteLength)
            joined.set(carry)
            joined.set(bytes, carry.byteLength)
            bytes = joined
            carry = undefined
          }
          const cut = bytes.byteLength - (bytes.byteLength % itemsize)
          if (cut < bytes.byteLength) carry = bytes.slice(cut)
          if (cut > 0) {
            out.push(fromBytes(parsed, bytes.subarray(0, cut)))
            whole += cut
          }
        }
        return out
      },
      end: () => ({
        out: [],
        error:
          carry === undefined
            ? undefined
            : codecError(
                "TornFrame",
                path,
                `${whole + carry.byteLength} bytes is not a whole number of ${dtype} items: the last append was cut short`,
                { validBytes: whole }
              )
      })
    }
  })
}

const parseDtypeOrThrow = (dtype: string): Parsed => {
  const parsed = parseDtype(dtype)
  if (typeof parsed === "string") throw new TypeError(parsed)
  return parsed
}

/**
 * The typed-array store bound to your own service, over the `Store` in
 * context: `class Arrays extends Encode.Tag<Arrays, TypedArray>()("app/Arrays") {}`,
 * then `TypedArrays.layer(Arrays)`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <Self>(tag: Context.Key<Self, TypedArrayStore>): Layer.Layer<Self, never, Store.Store> =>
  Layer.effect(tag, Effect.flatMap(Store.Store, make))
