/**
 * The wire protocol between `Client` and `Server`: length-prefixed frames of
 * MessagePack (msgpackr), with the byte arrays kept out of the MessagePack.
 *
 * A client sends requests, one per store operation, each with a number of
 * its own; the server answers each request with a reply carrying the same
 * number, in the order the requests arrived:
 *
 * - `Append { id, paths, values, more? }`, `Get { id, paths, count }`,
 *   `Iset { id, path, value }`, `Delete { id, paths, count }`, `Drop { id }`;
 * - `Done { id, values? }` (values for `Get`), or `Failed { id, error }` with
 *   the `StoreError` in its schema's encoded form, so that errors reach the
 *   client typed and intact.
 *
 * A shuffle's append carries hundreds or thousands of small chunks, so the
 * cost per chunk is what matters:
 *
 * - the paths travel as one string, joined with NUL (which no valid path
 *   contains), not as a list of strings;
 * - the chunks travel as a table of uint32 lengths followed by their bytes,
 *   copied once into the outgoing frame, and arrive as views into the
 *   incoming frame: no MessagePack value and no copy per chunk;
 * - request frames are written from a few reused buffers (`BufferPool`),
 *   sparing a fresh 256 KiB allocation per append.
 *
 * Why not `effect/rpc` over `effect/socket`: this protocol first ran as an
 * `effect/rpc` group over `effect/socket`, with this same framing as its
 * serialization. Client→Server(Buffer(Dict, File)) in one process appended
 * W1 (256 keys × 400 calls × 1 KiB) in 122–138 ms at best, 3.6× partd-py's
 * zmq server, under the 5× the project asks for; its per-request machinery
 * (a fiber and a mailbox per request on each side, a pull per socket read,
 * and a copy of every byte read on Node 22) and the garbage it leaves
 * outweighed the store's own work. The same frames over `node:net` with one
 * `Effect.callback` per request on the client and one fiber per request on
 * the server took 70–74 ms (see `Client` and `Server`).
 *
 * Every peer trusts nothing it decodes: a frame over the limit, bytes that do
 * not decode, or markers that do not fit the frame throw a `FrameError`, and
 * the connection is closed (after such input the stream has no frame
 * boundary left to resynchronise on). A message that decodes but is not a
 * request (or reply) the peer knows fails that request with a `Protocol`
 * error; paths are validated again on the server.
 *
 * @since 0.1.0
 */
import { Option, Schema } from "effect"
import { Packr, Unpackr } from "msgpackr"
import * as BufferPool from "./BufferPool.ts"
import * as Bytes from "./Bytes.ts"
import type * as Key from "./Key.ts"
import * as Store from "./Store.ts"

const isChunks = (u: unknown): u is ReadonlyArray<Uint8Array> => {
  if (!Array.isArray(u)) return false
  for (let i = 0; i < u.length; i++) if (!(u[i] instanceof Uint8Array)) return false
  return true
}

/**
 * A request: one store operation. `id` is the client's own number for it;
 * the reply carries it back.
 *
 * @since 0.1.0
 * @category models
 */
export type Request =
  | {
      readonly _tag: "Append"
      readonly id: number
      /** NUL-joined paths; `values[i]` goes to the i-th. */
      readonly paths: string
      readonly values: ReadonlyArray<Uint8Array>
      /**
       * A part of an append too large for one frame, with more parts to
       * follow: the server holds it, and applies all the parts as one append
       * when the part without `more` arrives.
       */
      readonly more?: boolean
    }
  | { readonly _tag: "Get"; readonly id: number; readonly paths: string; readonly count: number }
  | { readonly _tag: "Iset"; readonly id: number; readonly path: string; readonly value: Uint8Array }
  | { readonly _tag: "Delete"; readonly id: number; readonly paths: string; readonly count: number }
  | { readonly _tag: "Drop"; readonly id: number }

/**
 * A reply to the request with the same `id`: done (with the values of a
 * `Get`), or failed with a `StoreError` in its encoded form (see
 * {@link encodeError}).
 *
 * @since 0.1.0
 * @category models
 */
export type Reply =
  | { readonly _tag: "Done"; readonly id: number; readonly values?: ReadonlyArray<Uint8Array> }
  | { readonly _tag: "Failed"; readonly id: number; readonly error: unknown }

const isId = (u: unknown): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0

const isCount = (u: unknown): u is number => typeof u === "number" && Number.isInteger(u) && u >= 0

/**
 * Reads a decoded message as a request. A message without a request number
 * cannot be answered: it throws a `FrameError`, and the server closes the
 * connection. A numbered message that is not a well-formed request gives a
 * `Protocol` error, which the server sends back as that request's reply.
 *
 * @since 0.1.0
 * @category decoding
 */
export const toRequest = (message: unknown): Request | { readonly id: number; readonly error: Store.StoreError } => {
  const m = message as Record<string, unknown>
  if (!isId(m.id)) throw new FrameError("a message without a request number")
  const bad = (what: string) => ({
    id: m.id as number,
    error: protocolError("request", `a ${String(m._tag)} request ${what}`)
  })
  switch (m._tag) {
    case "Append":
      if (typeof m.paths !== "string" || !isChunks(m.values) || (m.more !== undefined && typeof m.more !== "boolean")) {
        return bad("needs paths and a list of byte arrays")
      }
      return message as Request
    case "Get":
    case "Delete":
      if (typeof m.paths !== "string" || !isCount(m.count)) return bad("needs paths and their count")
      return message as Request
    case "Iset":
      if (typeof m.path !== "string" || !(m.value instanceof Uint8Array)) return bad("needs a path and a byte array")
      return message as Request
    case "Drop":
      return message as Request
    default:
      return bad("is not a request this server knows")
  }
}

/**
 * Reads a decoded message as a reply; `undefined` when it is not one (the
 * client then closes the connection).
 *
 * @since 0.1.0
 * @category decoding
 */
export const toReply = (message: unknown): Reply | undefined => {
  const m = message as Record<string, unknown>
  if (!isId(m.id)) return undefined
  if (m._tag === "Done") return m.values === undefined || isChunks(m.values) ? (message as Reply) : undefined
  if (m._tag === "Failed") return message as Reply
  return undefined
}

const encodeStoreError = Schema.encodeUnknownOption(Store.StoreError)
const decodeStoreError = Schema.decodeUnknownOption(Store.StoreError)

/**
 * A `StoreError` as it travels: its schema's encoded form. A cause that does
 * not encode is left out rather than losing the error.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeError = (error: Store.StoreError): unknown =>
  Option.getOrElse(encodeStoreError(error), () =>
    Option.getOrElse(
      encodeStoreError(
        new Store.StoreError({
          reason: error.reason,
          method: error.method,
          ...(error.key === undefined ? {} : { key: error.key }),
          ...(error.description === undefined ? {} : { description: error.description })
        })
      ),
      () => ({ _tag: "StoreError", reason: error.reason, method: error.method })
    )
  )

/**
 * The `StoreError` a `Failed` reply carries; a `Protocol` error when it is
 * not one.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeError = (encoded: unknown): Store.StoreError =>
  Option.getOrElse(decodeStoreError(encoded), () => protocolError("reply", "a failed reply without a StoreError"))

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
 * The default limit of an append sent in parts (see `Request`): 1 GiB held by
 * the server until the last part arrives.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxAppendBytes = 1024 * 1024 * 1024

/**
 * The default frame size limit: 128 MiB, so that a 64 MiB value fits in one
 * request or reply with room to spare.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxFrameBytes = 128 * 1024 * 1024

/**
 * Input a peer cannot take: a frame over the limit, bytes that do not
 * decode, a message that is not a message of this protocol. The connection
 * it arrived on is closed.
 *
 * @since 0.1.0
 * @category errors
 */
export class FrameError extends Error {
  override readonly name = "FrameError"
}

const unreadable = (description: string, cause?: unknown): FrameError =>
  new FrameError(description, cause === undefined ? undefined : { cause })

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

/**
 * Reads a frame that may lie in several pieces (the socket's reads, as they
 * came): bytes within one piece are handed out as views into it, bytes that
 * straddle two pieces are copied. A shuffle's 1 KiB chunks nearly all lie
 * within one 64 KiB read, so a frame costs no buffer of its own and no copy.
 */
class Cursor {
  private piece = 0
  private offset = 0
  private readonly pieces: ReadonlyArray<Uint8Array>
  private remaining: number
  constructor(pieces: ReadonlyArray<Uint8Array>, length: number) {
    this.pieces = pieces
    this.remaining = length
  }

  get done(): boolean {
    return this.remaining === 0
  }

  take(length: number, what: string): Uint8Array {
    if (length > this.remaining) throw unreadable(`a frame's ${what} exceeds the frame`)
    if (length === 0) return new Uint8Array(0)
    this.remaining -= length
    const first = this.pieces[this.piece]!
    if (this.offset + length <= first.byteLength) {
      // A plain Uint8Array view: a Node Buffer's `slice` would alias instead of copying.
      const view = new Uint8Array(first.buffer, first.byteOffset + this.offset, length)
      this.advance(length, first)
      return view
    }
    // Every byte is copied in below.
    const out = Bytes.allocUninitialized(length)
    let filled = 0
    while (filled < length) {
      const piece = this.pieces[this.piece]!
      const n = Math.min(length - filled, piece.byteLength - this.offset)
      out.set(piece.subarray(this.offset, this.offset + n), filled)
      filled += n
      this.advance(n, piece)
    }
    return out
  }

  private advance(n: number, piece: Uint8Array): void {
    this.offset += n
    if (this.offset === piece.byteLength) {
      this.piece++
      this.offset = 0
    }
  }
}

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
    return cursor.take(length, "byte arrays")
  }
  const count = record[listKey]
  if (count !== undefined) {
    if (!isCount(count)) throw unreadable("a frame has a bad byte array list")
    const table = cursor.take(4 * count, "byte array list")
    const lengths = new DataView(table.buffer, table.byteOffset, table.byteLength)
    const chunks = new Array<Uint8Array>(count)
    for (let i = 0; i < count; i++) chunks[i] = cursor.take(lengths.getUint32(4 * i, true), "byte arrays")
    return chunks
  }
  for (const key in record) record[key] = putBlobs(record[key], cursor)
  return record
}

/** Request frames larger than this are not reused (see `Parser.encode`). */
const maxPooledBytes = 8 * 1024 * 1024
const maxInFlightPooled = 64

/**
 * One side of a connection's frames.
 *
 * @since 0.1.0
 * @category models
 */
export interface Parser {
  /**
   * The messages completed by `chunk`, bytes just read from the socket (the
   * parser may keep views into it). Throws a `FrameError` on input it cannot
   * take.
   */
  readonly decode: (chunk: Uint8Array) => Array<unknown>
  /**
   * One message as a frame. With `pooled`, the frame is written into a
   * reused buffer, held for that request number until {@link release}.
   */
  readonly encode: (message: object, pooled?: number) => Uint8Array
  /** The reply to request `id` arrived: its frame's buffer may be reused. */
  readonly release: (id: number) => void
}

/**
 * Frames of MessagePack with the byte arrays kept out of it:
 *
 *     u32 LE frame length | u32 LE envelope length | envelope | byte arrays
 *
 * The envelope is the message in MessagePack (msgpackr), with byte arrays
 * replaced by markers; the arrays follow, in order. Encoding copies each array
 * once, into the frame. Decoding hands out views into the socket reads the
 * frame arrived in (see `Cursor`; only a byte array that straddles two reads
 * is copied), so the store keeps appended chunks without a copy.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeParser = (maxFrameBytes: number = defaultMaxFrameBytes): Parser => {
  const packr = new Packr({ useRecords: false, moreTypes: false })
  const unpackr = new Unpackr({ useRecords: false, moreTypes: false })
  const header = new Uint8Array(frameHeaderBytes)
  let headerFilled = 0
  /** The frame being received: its length, and its pieces so far (views into socket reads). */
  let frameBytes = -1
  let pieces: Array<Uint8Array> = []
  let filled = 0
  /**
   * Request frames are written from a few reused buffers (see `BufferPool`):
   * a request's buffer is free again once its reply arrives. (Replies are
   * never reused: they have no reply, and on the client they become the
   * caller's values.)
   */
  const pool = BufferPool.make({ spares: 4, minBytes: 64 * 1024, maxBytes: maxPooledBytes })
  const inFlight = new Map<number, Uint8Array>()
  const allocate = (size: number): Uint8Array => globalThis.Buffer.allocUnsafe(size)
  const reuse = (request: number, size: number): Uint8Array => {
    if (inFlight.size >= maxInFlightPooled) return allocate(size)
    const buffer = pool.take(size)
    inFlight.set(request, buffer)
    return buffer
  }
  const decodeFrame = (frame: ReadonlyArray<Uint8Array>, length: number): unknown => {
    const cursor = new Cursor(frame, length)
    const lengthBytes = cursor.take(4, "envelope length")
    const envelopeBytes = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 4).getUint32(0, true)
    const envelope = cursor.take(envelopeBytes, "envelope")
    let message: unknown
    try {
      message = unpackr.unpack(envelope)
    } catch (cause) {
      throw unreadable("a frame does not decode as MessagePack", cause)
    }
    if (typeof message !== "object" || message === null || typeof (message as { _tag?: unknown })._tag !== "string") {
      throw unreadable("a frame is not a message of this protocol")
    }
    putBlobs(message, cursor)
    if (!cursor.done) throw unreadable("a frame has bytes past its byte arrays")
    return message
  }
  return {
    decode: (chunk) => {
      const out: Array<unknown> = []
      let pos = 0
      while (pos < chunk.byteLength) {
        if (frameBytes === -1) {
          while (headerFilled < frameHeaderBytes && pos < chunk.byteLength) header[headerFilled++] = chunk[pos++]!
          if (headerFilled < frameHeaderBytes) break
          headerFilled = 0
          const length = (header[0]! | (header[1]! << 8) | (header[2]! << 16) | (header[3]! << 24)) >>> 0
          if (length > maxFrameBytes)
            throw unreadable(`a frame of ${length} bytes exceeds the limit of ${maxFrameBytes}`)
          frameBytes = length
          filled = 0
        }
        // Socket reads are fresh buffers, never reused: the frame's views into them stay valid.
        const take = Math.min(frameBytes - filled, chunk.byteLength - pos)
        if (take > 0) pieces.push(chunk.subarray(pos, pos + take))
        filled += take
        pos += take
        if (filled === frameBytes) {
          const frame = pieces
          const length = frameBytes
          pieces = []
          frameBytes = -1
          out.push(decodeFrame(frame, length))
        }
      }
      return out
    },
    encode: (message, pooled) => {
      const taken: Taken = []
      const envelope = packr.pack(takeBlobs(message, taken))
      const total = frameHeaderBytes + 4 + envelope.byteLength + takenBytes(taken)
      const out = pooled === undefined ? allocate(total) : reuse(pooled, total)
      const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
      view.setUint32(0, total - frameHeaderBytes, true)
      view.setUint32(frameHeaderBytes, envelope.byteLength, true)
      out.set(envelope, frameHeaderBytes + 4)
      writeTaken(taken, out, view, frameHeaderBytes + 4 + envelope.byteLength)
      return out
    },
    release: (id) => {
      const buffer = inFlight.get(id)
      if (buffer === undefined) return
      inFlight.delete(id)
      pool.give(buffer)
    }
  }
}
