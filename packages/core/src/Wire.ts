/**
 * The wire protocol between `Client` and `Server`: an `effect/rpc` group with
 * one procedure per store operation, over length-prefixed MessagePack frames
 * (msgpackr) with the byte arrays kept out of the MessagePack.
 *
 * A shuffle's append call carries hundreds or thousands of small chunks, so
 * the cost per chunk is what matters:
 *
 * - the paths travel as one string, joined with NUL (which no valid path
 *   contains), not as a list of strings;
 * - the chunks travel as a table of uint32 lengths followed by their bytes,
 *   copied once into the outgoing frame, and arrive as views into the
 *   incoming frame: no MessagePack value, no schema step and no copy per chunk;
 * - the list is checked with one plain loop (`Chunks`), not a schema per item;
 * - request frames are written from a few reused buffers (a request's buffer
 *   is free once its answer arrives), sparing a fresh 256 KiB allocation per
 *   append.
 *
 * Why msgpackr and not Effect's binary schema serialization
 * (`RpcSerialization.layerSchemaBinary`): measured on the same protocol
 * (paths joined, chunks packed into one byte array), Client→Server(Buffer)
 * in one process, 3 passes, best of each: schema-binary 130–142 MB/s append on
 * W1 and 76–84 MB/s on W2, msgpackr framing 270–300 and 111–117. Schema-binary
 * copies a byte field several times (arena growth, frame assembly, a copy on
 * decode); this framing copies once each way.
 *
 * Every procedure fails with `Store.StoreError`, a schema class, so the
 * server's errors reach the client typed and intact.
 *
 * The server trusts nothing it decodes: a frame over the limit, bytes that do
 * not decode, or markers that do not fit the frame close that connection;
 * paths are validated again on the server.
 *
 * @since 0.1.0
 */
import { Layer, Schema } from "effect"
import { Rpc, RpcGroup, RpcSerialization } from "effect/rpc"
import { Packr, Unpackr } from "msgpackr"
import type * as Key from "./Key.ts"
import * as Store from "./Store.ts"

const isChunks = (u: unknown): u is ReadonlyArray<Uint8Array> => {
  if (!Array.isArray(u)) return false
  for (let i = 0; i < u.length; i++) if (!(u[i] instanceof Uint8Array)) return false
  return true
}

/**
 * A list of byte arrays, checked in one plain loop (a schema step per chunk
 * would cost more than the chunk).
 *
 * @since 0.1.0
 * @category models
 */
export const Chunks = Schema.declare(isChunks, { expected: "an array of Uint8Array" })

/**
 * Appends chunks: `values[i]` to the i-th of the NUL-joined `paths`.
 *
 * @since 0.1.0
 * @category procedures
 */
export const Append = Rpc.make("Append", {
  payload: { paths: Schema.String, values: Chunks },
  error: Store.StoreError
})

/**
 * Gets the values of NUL-joined paths, in order.
 *
 * @since 0.1.0
 * @category procedures
 */
export const Get = Rpc.make("Get", {
  payload: { paths: Schema.String, count: Schema.Number },
  success: Chunks,
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

const joinedFrozen = new WeakMap<ReadonlyArray<Key.Path>, string>()

/**
 * Joins paths for the wire. No valid path contains NUL, so the join is
 * injective.
 *
 * @since 0.1.0
 * @category encoding
 */
export const joinPaths = (paths: ReadonlyArray<Key.Path>): string => {
  // A frozen list (a key set's, see `Store.columns`) is joined once.
  if (!Object.isFrozen(paths)) return paths.join("\u0000")
  let joined = joinedFrozen.get(paths)
  if (joined === undefined) {
    joined = paths.join("\u0000")
    joinedFrozen.set(paths, joined)
  }
  return joined
}

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
 * Roughly how many bytes chunks take in a frame, to keep a request under the
 * frame limit.
 *
 * @since 0.1.0
 * @category encoding
 */
export const framedBytes = (paths: ReadonlyArray<Key.Path>, values: ReadonlyArray<Uint8Array>): number => {
  let total = 0
  for (let i = 0; i < values.length; i++) total += values[i]!.byteLength + paths[i]!.length * 3 + 8
  return total
}

/**
 * The default frame size limit: 128 MiB, so that a 64 MiB value fits in one
 * request or answer with room to spare.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxFrameBytes = 128 * 1024 * 1024

/**
 * Thrown by a parser for input it cannot take (a frame over the limit, bytes
 * that do not decode). The RPC server closes the connection on errors tagged
 * `MaxBufferSizeExceeded`: after such input the stream has no frame boundary
 * left to resynchronise on.
 */
const unreadable = (description: string, cause?: unknown): Error =>
  Object.assign(new Error(description), { _tag: "MaxBufferSizeExceeded", cause })

const frameHeaderBytes = 4

/** Marks where one byte array was taken out of a message: `{ "\u0000": byteLength }`. */
const blobKey = "\u0000"
/**
 * Marks where a list of byte arrays was taken out: `{ "\u0001": count }`. Their
 * lengths follow in the frame's tail as `count` little-endian uint32, then
 * their bytes: a list of thousands of chunks costs one marker and a table, not
 * thousands of MessagePack values.
 */
const listKey = "\u0001"

/** What was taken out of a message, in order: byte arrays and lists of them. */
type Taken = Array<Uint8Array | ReadonlyArray<Uint8Array>>

const isPlainObject = (u: object): u is Record<string, unknown> => {
  const proto = Object.getPrototypeOf(u)
  return proto === Object.prototype || proto === null
}

/**
 * Replaces byte arrays, and lists of them, with markers, collecting them in
 * depth-first order. Copies only the containers on the way to a byte array:
 * the message itself is not modified.
 */
const takeBlobs = (value: unknown, taken: Taken): unknown => {
  if (typeof value !== "object" || value === null) return value
  if (value instanceof Uint8Array) {
    taken.push(value)
    return { [blobKey]: value.byteLength }
  }
  if (Array.isArray(value)) {
    if (value.length > 0 && isChunks(value)) {
      taken.push(value)
      return { [listKey]: value.length }
    }
    let out: Array<unknown> | undefined
    for (let i = 0; i < value.length; i++) {
      const item = value[i]
      const replaced = takeBlobs(item, taken)
      if (replaced !== item) {
        out ??= value.slice()
        out[i] = replaced
      }
    }
    return out ?? value
  }
  if (!isPlainObject(value)) return value
  let out: Record<string, unknown> | undefined
  for (const key in value) {
    const item = value[key]
    const replaced = takeBlobs(item, taken)
    if (replaced !== item) {
      out ??= { ...value }
      out[key] = replaced
    }
  }
  return out ?? value
}

/** The bytes `taken` occupies in a frame's tail. */
const takenBytes = (taken: Taken): number => {
  let total = 0
  for (const item of taken) {
    if (item instanceof Uint8Array) {
      total += item.byteLength
    } else {
      total += 4 * item.length
      for (let i = 0; i < item.length; i++) total += item[i]!.byteLength
    }
  }
  return total
}

/** Writes `taken` into `out` at `offset`; returns the offset after it. */
const writeTaken = (taken: Taken, out: Uint8Array, view: DataView, offset: number): number => {
  for (const item of taken) {
    if (item instanceof Uint8Array) {
      out.set(item, offset)
      offset += item.byteLength
      continue
    }
    for (let i = 0; i < item.length; i++) view.setUint32(offset + 4 * i, item[i]!.byteLength, true)
    offset += 4 * item.length
    for (let i = 0; i < item.length; i++) {
      const chunk = item[i]!
      out.set(chunk, offset)
      offset += chunk.byteLength
    }
  }
  return offset
}

interface Cursor {
  readonly frame: Uint8Array
  readonly view: DataView
  offset: number
}

const takeView = (cursor: Cursor, length: number): Uint8Array => {
  if (cursor.offset + length > cursor.frame.byteLength) throw unreadable("a frame's byte arrays exceed the frame")
  // Plain Uint8Array views: a Node Buffer's `slice` would alias instead of copying.
  const view = new Uint8Array(cursor.frame.buffer, cursor.frame.byteOffset + cursor.offset, length)
  cursor.offset += length
  return view
}

const isCount = (u: unknown): u is number => typeof u === "number" && Number.isInteger(u) && u >= 0

/**
 * Puts the byte arrays back, in the same depth-first order, as views into the
 * frame's tail.
 */
const putBlobs = (value: unknown, cursor: Cursor): unknown => {
  if (typeof value !== "object" || value === null) return value
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = putBlobs(value[i], cursor)
    return value
  }
  const record = value as Record<string, unknown>
  const length = record[blobKey]
  if (length !== undefined) {
    if (!isCount(length)) throw unreadable("a frame has a bad byte array marker")
    return takeView(cursor, length)
  }
  const count = record[listKey]
  if (count !== undefined) {
    if (!isCount(count) || cursor.offset + 4 * count > cursor.frame.byteLength) {
      throw unreadable("a frame has a bad byte array list")
    }
    const table = cursor.offset
    cursor.offset += 4 * count
    const chunks = new Array<Uint8Array>(count)
    for (let i = 0; i < count; i++) chunks[i] = takeView(cursor, cursor.view.getUint32(table + 4 * i, true))
    return chunks
  }
  for (const key in record) record[key] = putBlobs(record[key], cursor)
  return record
}

/** Request frames larger than this are not reused (see `reuse`). */
const maxPooledBytes = 8 * 1024 * 1024
const maxFreePooled = 4
const maxInFlightPooled = 64

/** The id of an RPC request message, as answers refer to it. */
const requestIdOf = (message: unknown): unknown =>
  typeof message === "object" && message !== null && (message as { _tag?: unknown })._tag === "Request"
    ? (message as { id?: unknown }).id
    : undefined

/**
 * Frames of MessagePack with the byte arrays kept out of it:
 *
 *     u32 LE frame length | u32 LE envelope length | envelope | byte arrays
 *
 * The envelope is the RPC message in MessagePack (msgpackr), with byte arrays
 * replaced by markers; the arrays follow, in order. Encoding copies each array
 * once, into the frame. Decoding hands out views into the frame: into the
 * chunk read from the socket when the frame arrived whole in it, else into a
 * buffer of exactly the frame's size (allocated after checking the length
 * against the limit), so the store keeps appended chunks without a copy.
 */
const makeMsgpackParser = (maxFrameBytes: number): RpcSerialization.Parser => {
  const packr = new Packr({ useRecords: false, moreTypes: false })
  const unpackr = new Unpackr({ useRecords: false, moreTypes: false })
  const header = new Uint8Array(frameHeaderBytes)
  let headerFilled = 0
  let frame: Uint8Array | undefined
  let filled = 0
  /**
   * Request frames are written from a few reused buffers: a fresh 256 KiB
   * buffer per append costs more in page faults and garbage collection than
   * filling it. A request's buffer is free again once the answer to that
   * request arrives, because the peer answers only after reading the whole
   * frame, so the socket is done with it. (Answers are never reused: they
   * have no answer, and on the client they become the caller's values.)
   */
  const free: Array<Uint8Array> = []
  const inFlight = new Map<unknown, Uint8Array>()
  const allocate = (size: number): Uint8Array => globalThis.Buffer.allocUnsafe(size)
  const reuse = (request: unknown, size: number): Uint8Array => {
    if (size > maxPooledBytes || inFlight.size >= maxInFlightPooled) return allocate(size)
    let index = -1
    for (let i = 0; i < free.length; i++) {
      if (free[i]!.byteLength >= size && (index === -1 || free[i]!.byteLength < free[index]!.byteLength)) index = i
    }
    // Uninitialised memory: every byte of the frame is written by `encode`.
    const buffer = index === -1 ? allocate(Math.max(size, 64 * 1024)) : free.splice(index, 1)[0]!
    inFlight.set(request, buffer)
    return buffer.subarray(0, size)
  }
  const released = (message: unknown): unknown => {
    if (inFlight.size > 0) {
      const request =
        (message as { _tag: string; requestId?: unknown })._tag === "Exit"
          ? (message as { requestId?: unknown }).requestId
          : undefined
      const buffer = request === undefined ? undefined : inFlight.get(request)
      if (buffer !== undefined) {
        inFlight.delete(request)
        if (free.length < maxFreePooled) free.push(buffer)
      }
    }
    return message
  }
  const decodeFrame = (bytes: Uint8Array): unknown => {
    if (bytes.byteLength < 4) throw unreadable("a frame is too short")
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const envelopeBytes = view.getUint32(0, true)
    if (4 + envelopeBytes > bytes.byteLength) throw unreadable("a frame's envelope exceeds the frame")
    let message: unknown
    try {
      message = unpackr.unpack(bytes.subarray(4, 4 + envelopeBytes))
    } catch (cause) {
      throw unreadable("a frame does not decode as MessagePack", cause)
    }
    if (typeof message !== "object" || message === null || typeof (message as { _tag?: unknown })._tag !== "string") {
      throw unreadable("a frame is not an RPC message")
    }
    const cursor: Cursor = { frame: bytes, view, offset: 4 + envelopeBytes }
    putBlobs(message, cursor)
    if (cursor.offset !== bytes.byteLength) throw unreadable("a frame has bytes past its byte arrays")
    return message
  }
  return {
    decode: (data) => {
      const chunk = typeof data === "string" ? new TextEncoder().encode(data) : data
      const out: Array<unknown> = []
      let pos = 0
      while (pos < chunk.byteLength) {
        if (frame === undefined) {
          while (headerFilled < frameHeaderBytes && pos < chunk.byteLength) header[headerFilled++] = chunk[pos++]!
          if (headerFilled < frameHeaderBytes) break
          headerFilled = 0
          const length = (header[0]! | (header[1]! << 8) | (header[2]! << 16) | (header[3]! << 24)) >>> 0
          if (length > maxFrameBytes)
            throw unreadable(`a frame of ${length} bytes exceeds the limit of ${maxFrameBytes}`)
          if (chunk.byteLength - pos >= length) {
            // The whole frame is in this chunk, which is fresh from the socket: decode in place.
            out.push(released(decodeFrame(chunk.subarray(pos, pos + length))))
            pos += length
            continue
          }
          // Uninitialised: the frame is used only once every byte has been copied in.
          frame = globalThis.Buffer.allocUnsafe(length)
          filled = 0
        }
        const take = Math.min(frame.byteLength - filled, chunk.byteLength - pos)
        frame.set(chunk.subarray(pos, pos + take), filled)
        filled += take
        pos += take
        if (filled === frame.byteLength) {
          const complete = frame
          frame = undefined
          out.push(released(decodeFrame(complete)))
        }
      }
      return out
    },
    encode: (message) => {
      const messages = Array.isArray(message) ? message : [message]
      if (messages.length === 0) return undefined
      const frames = messages.map((m) => {
        const taken: Taken = []
        const envelope = packr.pack(takeBlobs(m, taken))
        return { envelope, taken }
      })
      let total = 0
      for (const { envelope, taken } of frames) total += frameHeaderBytes + 4 + envelope.byteLength + takenBytes(taken)
      const request = messages.length === 1 ? requestIdOf(messages[0]) : undefined
      const out = request === undefined ? allocate(total) : reuse(request, total)
      const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
      let offset = 0
      for (const { envelope, taken } of frames) {
        const start = offset
        offset += frameHeaderBytes
        view.setUint32(offset, envelope.byteLength, true)
        out.set(envelope, offset + 4)
        offset = writeTaken(taken, out, view, offset + 4 + envelope.byteLength)
        view.setUint32(start, offset - start - frameHeaderBytes, true)
      }
      return out
    }
  }
}

/**
 * The MessagePack serialization (msgpackr), with a frame limit. Payloads are
 * encoded by their schemas to their encoded form, which for this protocol is
 * strings, numbers and byte arrays that MessagePack carries as they are.
 *
 * @since 0.1.0
 * @category serialization
 */
export const msgpack = (maxFrameBytes: number = defaultMaxFrameBytes): Layer.Layer<RpcSerialization.RpcSerialization> =>
  Layer.succeed(RpcSerialization.RpcSerialization)(
    RpcSerialization.RpcSerialization.of({
      contentType: "application/vnd.partd.rpc+msgpack",
      includesFraming: true,
      codecFor: Schema.toCodecIso as unknown as RpcSerialization.CodecFor,
      makeUnsafe: () => makeMsgpackParser(maxFrameBytes)
    })
  )

/**
 * The serialization client and server speak: {@link msgpack}.
 *
 * @since 0.1.0
 * @category serialization
 */
export const serialization = (
  maxFrameBytes: number = defaultMaxFrameBytes
): Layer.Layer<RpcSerialization.RpcSerialization> => msgpack(maxFrameBytes)
