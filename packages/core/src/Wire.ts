/**
 * The wire protocol between `Client` and `Server`: an `effect/rpc` group with
 * one procedure per store operation, and the packing of key lists and byte
 * chunks into few, large fields.
 *
 * A shuffle's append call carries hundreds or thousands of small chunks. Sent
 * as an array of `{ path, bytes }` records, each chunk would cost a schema
 * step on both sides; instead a request carries the paths as one string
 * (joined with NUL, which no valid path contains), the chunk sizes as one
 * array of little-endian uint32, and the chunks concatenated into one byte
 * array. Encoding and decoding is then a handful of `memcpy`s per call, not
 * per key. `get` answers the same way.
 *
 * Every procedure fails with `Store.StoreError`, a schema class, so the
 * server's errors reach the client typed and intact.
 *
 * The server does not trust what it decodes: paths are validated again by
 * the served store, and {@link unpack} rejects a request whose parts do not
 * agree with each other.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { Rpc, RpcGroup } from "effect/rpc"
import type * as Key from "./Key.ts"
import * as Store from "./Store.ts"

/**
 * Paths, sizes and bytes of a batch of chunks, packed.
 *
 * @since 0.1.0
 * @category models
 */
export const Packed = Schema.Struct({
  /** The paths, joined with NUL. */
  paths: Schema.String,
  /** One little-endian uint32 per chunk: its length in `data`. */
  sizes: Schema.Uint8Array,
  /** The chunks, concatenated. */
  data: Schema.Uint8Array
})

/**
 * @since 0.1.0
 * @category models
 */
export type Packed = typeof Packed.Type

/**
 * Appends packed chunks.
 *
 * @since 0.1.0
 * @category procedures
 */
export const Append = Rpc.make("Append", { payload: Packed, error: Store.StoreError })

/**
 * Gets NUL-joined paths; answers with their values packed (the paths field of
 * the answer is empty).
 *
 * @since 0.1.0
 * @category procedures
 */
export const Get = Rpc.make("Get", {
  payload: { paths: Schema.String, count: Schema.Number },
  success: Packed,
  error: Store.StoreError
})

/**
 * Sets a key once.
 *
 * @since 0.1.0
 * @category procedures
 */
export const Iset = Rpc.make("Iset", {
  payload: { path: Schema.String, value: Schema.Uint8Array },
  error: Store.StoreError
})

/**
 * Deletes NUL-joined paths.
 *
 * @since 0.1.0
 * @category procedures
 */
export const Delete = Rpc.make("Delete", {
  payload: { paths: Schema.String, count: Schema.Number },
  error: Store.StoreError
})

/**
 * Drops everything.
 *
 * @since 0.1.0
 * @category procedures
 */
export const Drop = Rpc.make("Drop", { error: Store.StoreError })

/**
 * The protocol: every store operation as a procedure.
 *
 * @since 0.1.0
 * @category procedures
 */
export class Procedures extends RpcGroup.make(Append, Get, Iset, Delete, Drop) {}

/**
 * Joins paths for the wire. No valid path contains NUL, so the join is
 * injective.
 *
 * @since 0.1.0
 * @category encoding
 */
export const joinPaths = (paths: ReadonlyArray<Key.Path>): string => paths.join("\u0000")

/**
 * Splits joined paths, checking that there are `count` of them.
 *
 * @since 0.1.0
 * @category decoding
 */
export const splitPaths = (method: string, joined: string, count: number): Array<string> | Store.StoreError => {
  if (count === 0 && joined === "") return []
  const paths = joined.split("\u0000")
  return paths.length === count ? paths : protocolError(method, `expected ${count} paths, got ${paths.length}`)
}

const protocolError = (method: string, description: string) =>
  new Store.StoreError({ reason: "Protocol", method, description })

/**
 * Packs chunks (and optionally their paths) for the wire: one copy of the
 * bytes.
 *
 * @since 0.1.0
 * @category encoding
 */
export const pack = (paths: ReadonlyArray<Key.Path>, values: ReadonlyArray<Uint8Array>): Packed => {
  const n = values.length
  const sizes = new Uint8Array(n * 4)
  const sizeView = new DataView(sizes.buffer)
  let total = 0
  for (let i = 0; i < n; i++) {
    const length = values[i]!.byteLength
    sizeView.setUint32(i * 4, length, true)
    total += length
  }
  const data = new Uint8Array(total)
  let offset = 0
  for (let i = 0; i < n; i++) {
    const value = values[i]!
    data.set(value, offset)
    offset += value.byteLength
  }
  return { paths: joinPaths(paths), sizes, data }
}

/**
 * The total size of chunks, as `pack` would send them.
 *
 * @since 0.1.0
 * @category encoding
 */
export const packedBytes = (paths: ReadonlyArray<Key.Path>, values: ReadonlyArray<Uint8Array>): number => {
  let total = 0
  for (let i = 0; i < values.length; i++) total += values[i]!.byteLength + paths[i]!.length * 3 + 5
  return total
}

/**
 * Unpacks chunks: views into `data`, one per size, after checking that the
 * sizes add up to the bytes received. The views share `data`'s buffer; the
 * caller copies them if it must not.
 *
 * @since 0.1.0
 * @category decoding
 */
export const unpack = (method: string, packed: Packed): Array<Uint8Array> | Store.StoreError => {
  const { sizes, data } = packed
  if (sizes.byteLength % 4 !== 0) return protocolError(method, "chunk sizes are not a multiple of 4 bytes")
  const n = sizes.byteLength / 4
  const view = new DataView(sizes.buffer, sizes.byteOffset, sizes.byteLength)
  const out = new Array<Uint8Array>(n)
  let offset = 0
  for (let i = 0; i < n; i++) {
    const length = view.getUint32(i * 4, true)
    if (offset + length > data.byteLength) return protocolError(method, "chunk sizes exceed the bytes sent")
    out[i] = data.subarray(offset, offset + length)
    offset += length
  }
  if (offset !== data.byteLength) return protocolError(method, "bytes sent exceed the chunk sizes")
  return out
}
