/**
 * WireFrame: the frame layout of the `Wire` protocol, and its two directions
 * ({@link encode}, and {@link makeParser} to decode).
 *
 *     u32 LE frame length | u32 LE envelope length | envelope | byte arrays
 *
 * The envelope is the message in MessagePack (msgpackr), with its byte arrays
 * replaced by markers; the arrays follow, in order. A list of byte arrays (an
 * append's chunks, a get's values) is one marker and a table of uint32
 * lengths, not one MessagePack value per chunk, so that a shuffle's thousands
 * of small chunks cost a copy into the frame when sent and a view into the
 * socket's reads when received.
 *
 * A frame comes from a peer that is not trusted, so the parser checks what a
 * frame claims before it builds anything from it: the frame length against
 * `maxFrameBytes`; the envelope's MessagePack structure against a bound on
 * its items (MessagePack spends one byte on an empty map that costs dozens
 * once decoded); the number of byte arrays in a list against
 * `maxChunksPerFrame`; and the lengths in a list's table against the bytes
 * the frame has left. Input that fails a check throws a {@link FrameError};
 * the connection has no frame boundary left to resynchronise on, and is
 * closed.
 *
 * @since 0.1.0
 */
import { Packr, Unpackr } from "msgpackr"
import * as Bytes from "./Bytes.ts"

/**
 * Input a peer cannot take: a frame over a limit, bytes that do not decode, a
 * message that is not a message of this protocol. The connection it arrived
 * on is closed; `id` is the request number of the message, when it was read
 * before the fault, so that the request can be answered with a typed error.
 *
 * @since 0.1.0
 * @category errors
 */
export class FrameError extends Error {
  override readonly name = "FrameError"
  readonly id: number | undefined
  constructor(message: string, options?: { readonly cause?: unknown; readonly id?: number | undefined }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.id = options?.id
  }
}

/**
 * The default frame size limit: 128 MiB, so that a 64 MiB value fits in one
 * request or reply with room to spare.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxFrameBytes = 128 * 1024 * 1024

/**
 * The default bound on the byte arrays one frame may carry: an append of
 * this many chunks or more is sent in parts, a get of more keys in several
 * requests.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxChunksPerFrame = 65_536

/**
 * What a received byte array costs besides its bytes (the view object and
 * its slot), for the server's per-connection accounting.
 *
 * @since 0.1.0
 * @category constants
 */
export const chunkOverheadBytes = 128

/** The most MessagePack items an envelope may hold: a request has about ten, an error's reply a few dozen. */
const maxEnvelopeItems = 4096

const frameHeaderBytes = 4

/** Marks where one byte array was taken out of a message: `{ "\u0000": byteLength }`. */
const blobKey = "\u0000"
/**
 * Marks where a list of byte arrays was taken out: `{ "\u0001": count }`. Their
 * lengths follow in the frame's tail as `count` little-endian uint32, then
 * their bytes.
 */
const listKey = "\u0001"

/**
 * Whether a value is a list of byte arrays.
 *
 * @since 0.1.0
 * @category guards
 */
export const isChunks = (u: unknown): u is ReadonlyArray<Uint8Array> => {
  if (!Array.isArray(u)) return false
  for (let i = 0; i < u.length; i++) if (!(u[i] instanceof Uint8Array)) return false
  return true
}

const isCount = (u: unknown): u is number => typeof u === "number" && Number.isInteger(u) && u >= 0

const isId = (u: unknown): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

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

// One packer for every frame: `pack` is synchronous, and its output is copied into the frame at once.
const packr = new Packr({ useRecords: false, moreTypes: false })

const allocateFresh = (size: number): Uint8Array => globalThis.Buffer.allocUnsafe(size)

/**
 * One message as a frame, written into `allocate(size)` (a fresh buffer by
 * default; `Client` passes reused ones, see `BufferPool`). Every byte array
 * is copied once, into the frame.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (message: object, allocate: (size: number) => Uint8Array = allocateFresh): Uint8Array => {
  const taken: Taken = []
  const envelope = packr.pack(takeBlobs(message, taken))
  const total = frameHeaderBytes + 4 + envelope.byteLength + takenBytes(taken)
  const out = allocate(total)
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  view.setUint32(0, total - frameHeaderBytes, true)
  view.setUint32(frameHeaderBytes, envelope.byteLength, true)
  out.set(envelope, frameHeaderBytes + 4)
  writeTaken(taken, out, view, frameHeaderBytes + 4 + envelope.byteLength)
  return out
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

const unreadable = (description: string, cause?: unknown, id?: number): FrameError =>
  new FrameError(description, { cause, id })

/**
 * Checks an envelope's MessagePack structure without building anything:
 * every item is well-formed, there are at most {@link maxEnvelopeItems},
 * they make exactly one value that fills the envelope, and there are no
 * extension types (this protocol sends none; msgpackr gives some of them
 * meanings that build objects). `undefined`, which msgpackr writes as the
 * fixext 1 of type 0, is the one extension let through.
 */
const checkEnvelope = (bytes: Uint8Array): void => {
  const n = bytes.byteLength
  const view = new DataView(bytes.buffer, bytes.byteOffset, n)
  let pos = 0
  let pending = 1
  let items = 0
  const need = (k: number) => {
    if (pos + k > n) throw unreadable("a frame's envelope is cut short")
  }
  while (pending > 0) {
    if (++items > maxEnvelopeItems) throw unreadable(`a frame's envelope has more than ${maxEnvelopeItems} items`)
    pending--
    need(1)
    const b = bytes[pos++]!
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) continue
    if (b <= 0x8f) pending += 2 * (b & 0x0f)
    else if (b <= 0x9f) pending += b & 0x0f
    else if (b <= 0xbf) pos += b & 0x1f
    else if (b === 0xc4 || b === 0xd9) {
      need(1)
      pos += 1 + bytes[pos]!
    } else if (b === 0xc5 || b === 0xda) {
      need(2)
      pos += 2 + view.getUint16(pos)
    } else if (b === 0xc6 || b === 0xdb) {
      need(4)
      pos += 4 + view.getUint32(pos)
    } else if (b === 0xca || b === 0xce || b === 0xd2) pos += 4
    else if (b === 0xcb || b === 0xcf || b === 0xd3) pos += 8
    else if (b === 0xcc || b === 0xd0) pos += 1
    else if (b === 0xcd || b === 0xd1) pos += 2
    else if (b === 0xdc || b === 0xde) {
      need(2)
      pending += (b === 0xde ? 2 : 1) * view.getUint16(pos)
      pos += 2
    } else if (b === 0xdd || b === 0xdf) {
      need(4)
      pending += (b === 0xdf ? 2 : 1) * view.getUint32(pos)
      pos += 4
    } else if (b === 0xd4 && pos + 2 <= n && bytes[pos] === 0) pos += 2
    else
      throw unreadable(`a frame's envelope holds a MessagePack type this protocol does not use (0x${b.toString(16)})`)
    if (pos > n) throw unreadable("a frame's envelope is cut short")
  }
  if (pos !== n) throw unreadable("a frame's envelope has bytes past its message")
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
  remaining: number
  constructor(pieces: ReadonlyArray<Uint8Array>, length: number) {
    this.pieces = pieces
    this.remaining = length
  }

  take(length: number, what: string, id?: number): Uint8Array {
    if (length > this.remaining) throw unreadable(`a frame's ${what} exceeds the frame`, undefined, id)
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

/** What decoding one frame found besides its message: how many byte arrays it carried. */
interface Tally {
  chunks: number
}

/**
 * Puts the byte arrays back, in the same depth-first order, as views into the
 * frame's tail. A list's count and lengths are checked against the frame
 * before any of its views is made.
 */
const putBlobs = (value: unknown, cursor: Cursor, maxChunks: number, tally: Tally, id?: number): unknown => {
  if (typeof value !== "object" || value === null) return value
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = putBlobs(value[i], cursor, maxChunks, tally, id)
    return value
  }
  const record = value as Record<string, unknown>
  const length = record[blobKey]
  if (length !== undefined) {
    if (!isCount(length)) throw unreadable("a frame has a bad byte array marker", undefined, id)
    if (++tally.chunks > maxChunks) throw tooManyChunks(tally.chunks, maxChunks, id)
    return cursor.take(length, "byte arrays", id)
  }
  const count = record[listKey]
  if (count !== undefined) {
    if (!isCount(count)) throw unreadable("a frame has a bad byte array list", undefined, id)
    tally.chunks += count
    if (tally.chunks > maxChunks) throw tooManyChunks(tally.chunks, maxChunks, id)
    const table = cursor.take(4 * count, "byte array list", id)
    const lengths = new DataView(table.buffer, table.byteOffset, table.byteLength)
    let total = 0
    for (let i = 0; i < count; i++) total += lengths.getUint32(4 * i, true)
    if (total > cursor.remaining) throw unreadable("a frame's byte array list exceeds the frame", undefined, id)
    const chunks = new Array<Uint8Array>(count)
    for (let i = 0; i < count; i++) chunks[i] = cursor.take(lengths.getUint32(4 * i, true), "byte arrays", id)
    return chunks
  }
  for (const key in record) record[key] = putBlobs(record[key], cursor, maxChunks, tally, id)
  return record
}

const tooManyChunks = (count: number, maxChunks: number, id?: number) =>
  unreadable(`a frame of ${count} or more byte arrays exceeds the limit of ${maxChunks}`, undefined, id)

/**
 * The limits a parser holds incoming frames to.
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits {
  /** The largest frame accepted, in bytes (default {@link defaultMaxFrameBytes}). */
  readonly maxFrameBytes?: number
  /** The most byte arrays one frame may carry (default {@link defaultMaxChunksPerFrame}). */
  readonly maxChunksPerFrame?: number
}

/**
 * One side of a connection's incoming frames.
 *
 * @since 0.1.0
 * @category models
 */
export interface Parser {
  /**
   * The messages completed by `chunk`, bytes just read from the socket (the
   * parser may keep views into it). With `costs`, pushes for each message
   * what it holds in memory: its frame's bytes and
   * {@link chunkOverheadBytes} per byte array. Throws a {@link FrameError}
   * on input it cannot take.
   */
  readonly decode: (chunk: Uint8Array, costs?: Array<number>) => Array<unknown>
  /**
   * Where the socket's next read should go, for Node's `onread` (see
   * {@link Parser.decodeRead}): free room in a buffer of the parser's own,
   * never written twice, so that views handed out stay valid.
   */
  readonly readBuffer: () => Uint8Array
  /** {@link Parser.decode} of the `bytes` just read into {@link Parser.readBuffer}'s buffer. */
  readonly decodeRead: (bytes: number, costs?: Array<number>) => Array<unknown>
  /** The bytes of the frame being received, so far (held until it is complete). */
  readonly partialBytes: () => number
}

/** The least free room a read is given: with less left in a segment, the next read gets a new one. */
const minReadBytes = 16 * 1024

/** A read segment between frames, and the smallest one a frame gets. */
const segmentBytes = 64 * 1024

/**
 * A parser of incoming frames, one per connection. Decoding hands out views
 * into the socket reads a frame arrived in (see `Cursor`; only a byte array
 * that straddles two reads is copied), so the store keeps appended chunks
 * without a copy.
 *
 * Given the reads' memory (`readBuffer`, for Node's `onread`), it reads a
 * large frame into segments of its own that grow with the frame: each at
 * most as large as what the frame has sent so far (or 64 KiB), so a peer
 * that announces a large frame and sends nothing makes it hold nothing
 * more, and a frame of many megabytes takes a few reads and a few segments,
 * and only the byte arrays that straddle two segments are copied.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeParser = (limits: Limits = {}): Parser => {
  const maxFrameBytes = limits.maxFrameBytes ?? defaultMaxFrameBytes
  const maxChunks = limits.maxChunksPerFrame ?? defaultMaxChunksPerFrame
  const unpackr = new Unpackr({ useRecords: false, moreTypes: false })
  const header = new Uint8Array(frameHeaderBytes)
  let headerFilled = 0
  /** The frame being received: its length, and its pieces so far (views into socket reads). */
  let frameBytes = -1
  let pieces: Array<Uint8Array> = []
  let filled = 0
  const tally: Tally = { chunks: 0 }
  const decodeFrame = (frame: ReadonlyArray<Uint8Array>, length: number): unknown => {
    const cursor = new Cursor(frame, length)
    const lengthBytes = cursor.take(4, "envelope length")
    const envelopeBytes = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 4).getUint32(0, true)
    const envelope = cursor.take(envelopeBytes, "envelope")
    checkEnvelope(envelope)
    let message: unknown
    try {
      message = unpackr.unpack(envelope)
    } catch (cause) {
      throw unreadable("a frame does not decode as MessagePack", cause)
    }
    if (typeof message !== "object" || message === null || typeof (message as { _tag?: unknown })._tag !== "string") {
      throw unreadable("a frame is not a message of this protocol")
    }
    const id = (message as { id?: unknown }).id
    tally.chunks = 0
    putBlobs(message, cursor, maxChunks, tally, isId(id) ? id : undefined)
    if (cursor.remaining !== 0) throw unreadable("a frame has bytes past its byte arrays")
    return message
  }
  /**
   * Adds a frame's bytes to its pieces; bytes read right after the last
   * piece in the same memory (consecutive reads into one segment) extend it.
   */
  const addPiece = (chunk: Uint8Array, pos: number, length: number): void => {
    const last = pieces[pieces.length - 1]
    if (
      last !== undefined &&
      last.buffer === chunk.buffer &&
      last.byteOffset + last.byteLength === chunk.byteOffset + pos
    ) {
      pieces[pieces.length - 1] = new Uint8Array(last.buffer, last.byteOffset, last.byteLength + length)
    } else {
      pieces.push(chunk.subarray(pos, pos + length))
    }
  }
  const decode = (chunk: Uint8Array, costs?: Array<number>): Array<unknown> => {
    const out: Array<unknown> = []
    let pos = 0
    while (pos < chunk.byteLength) {
      if (frameBytes === -1) {
        while (headerFilled < frameHeaderBytes && pos < chunk.byteLength) header[headerFilled++] = chunk[pos++]!
        if (headerFilled < frameHeaderBytes) break
        headerFilled = 0
        const length = (header[0]! | (header[1]! << 8) | (header[2]! << 16) | (header[3]! << 24)) >>> 0
        if (length > maxFrameBytes) throw unreadable(`a frame of ${length} bytes exceeds the limit of ${maxFrameBytes}`)
        frameBytes = length
        filled = 0
      }
      // Socket reads are fresh buffers, never reused: the frame's views into them stay valid.
      const take = Math.min(frameBytes - filled, chunk.byteLength - pos)
      if (take > 0) addPiece(chunk, pos, take)
      filled += take
      pos += take
      if (filled === frameBytes) {
        const frame = pieces
        const length = frameBytes
        pieces = []
        frameBytes = -1
        out.push(decodeFrame(frame, length))
        costs?.push(frameHeaderBytes + length + tally.chunks * chunkOverheadBytes)
      }
    }
    return out
  }
  let segment: Uint8Array | undefined
  let segmentUsed = 0
  const readBuffer = (): Uint8Array => {
    if (segment === undefined || segment.byteLength - segmentUsed < minReadBytes) {
      const needed = frameBytes === -1 ? 0 : frameBytes - filled
      segment = Bytes.allocUninitialized(
        needed > segmentBytes ? Math.min(needed, Math.max(segmentBytes, filled)) : segmentBytes
      )
      segmentUsed = 0
    }
    return segment.subarray(segmentUsed)
  }
  return {
    decode,
    readBuffer,
    decodeRead: (bytes, costs) => {
      const chunk = segment!.subarray(segmentUsed, segmentUsed + bytes)
      segmentUsed += bytes
      return decode(chunk, costs)
    },
    partialBytes: () => (frameBytes === -1 ? headerFilled : filled)
  }
}
