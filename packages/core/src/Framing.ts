/**
 * Framing: partd's way of keeping appended chunks apart inside one value.
 *
 * Python partd's `Encode` stores every appended chunk as a *frame*: the
 * chunk's length as an 8-byte little-endian unsigned integer
 * (`struct.pack('Q', len)` on the little-endian machines partd runs on),
 * then the chunk. A key's value is the concatenation of its frames, so
 * `get` can split it back into the chunks that were appended. This module
 * writes and splits exactly that layout, so values written here are read by
 * Python partd and the reverse.
 *
 * An append that was cut short (the process killed in the middle of a
 * write) can leave a *torn* trailing frame: a header that promises more
 * bytes than are there, or less than a header. Python partd silently returns
 * a truncated chunk there. {@link split} instead reports the torn tail next
 * to the complete frames before it, so callers can fail with a typed error
 * that still carries every complete frame, and never decode garbage.
 *
 * A value too large to hold whole is read as a stream of pieces
 * ({@link frames}): a {@link FrameReader} gathers the pieces and hands out
 * each frame once it is complete, holding at most one frame and one piece,
 * and reports a torn tail only after every complete frame.
 *
 * @since 0.1.0
 */
import { Cause, Effect, type Pull, Stream } from "effect"

/**
 * The size of a frame header: a little-endian uint64 length.
 *
 * @since 0.1.0
 * @category constants
 */
export const HEADER_BYTES = 8

/**
 * Writes the header for a payload of `length` bytes at `offset`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const writeHeader = (target: Uint8Array, offset: number, length: number): void => {
  // Two 32-bit halves: lengths above 2^32 are legal in partd's format.
  const low = length >>> 0
  const high = Math.floor(length / 0x1_0000_0000) >>> 0
  target[offset] = low & 0xff
  target[offset + 1] = (low >>> 8) & 0xff
  target[offset + 2] = (low >>> 16) & 0xff
  target[offset + 3] = low >>> 24
  target[offset + 4] = high & 0xff
  target[offset + 5] = (high >>> 8) & 0xff
  target[offset + 6] = (high >>> 16) & 0xff
  target[offset + 7] = high >>> 24
}

/**
 * Reads the length in the header at `offset` (the caller checks that 8
 * bytes are there). Lengths past `Number.MAX_SAFE_INTEGER` come back as a
 * number larger than any buffer, which {@link split} reports as torn.
 *
 * @since 0.1.0
 * @category decoding
 */
export const readHeader = (source: Uint8Array, offset: number): number => {
  const low =
    (source[offset]! | (source[offset + 1]! << 8) | (source[offset + 2]! << 16) | (source[offset + 3]! << 24)) >>> 0
  const high =
    (source[offset + 4]! | (source[offset + 5]! << 8) | (source[offset + 6]! << 16) | (source[offset + 7]! << 24)) >>> 0
  return high * 0x1_0000_0000 + low
}

/**
 * One frame: the header followed by a copy of `payload`, in one fresh array
 * (partd's `frame`).
 *
 * @since 0.1.0
 * @category encoding
 */
export const frame = (payload: Uint8Array): Uint8Array => {
  const out = new Uint8Array(HEADER_BYTES + payload.byteLength)
  writeHeader(out, 0, payload.byteLength)
  out.set(payload, HEADER_BYTES)
  return out
}

/**
 * A torn trailing frame: where it starts, what its header promised (when the
 * header itself is complete) and how many bytes follow its start.
 *
 * @since 0.1.0
 * @category models
 */
export interface Torn {
  /** Offset of the torn frame: the length of the complete prefix. */
  readonly offset: number
  /** The payload length the header announced, or `undefined` if the header is cut. */
  readonly declared: number | undefined
  /** Bytes present from `offset` to the end. */
  readonly available: number
}

/**
 * A value split into frames.
 *
 * @since 0.1.0
 * @category models
 */
export interface Split {
  /** The complete frames' payloads, in order: views into the input. */
  readonly frames: Array<Uint8Array>
  /** The torn trailing frame, if the value does not end on a frame boundary. */
  readonly torn: Torn | undefined
}

/**
 * Splits a value into its frames (partd's `framesplit`). The payloads are
 * views into `bytes`, not copies. A value that does not end on a frame
 * boundary yields its complete frames and a description of the torn tail.
 *
 * @since 0.1.0
 * @category decoding
 */
export const split = (bytes: Uint8Array): Split => {
  const frames: Array<Uint8Array> = []
  const n = bytes.byteLength
  let i = 0
  while (i < n) {
    if (n - i < HEADER_BYTES) return { frames, torn: { offset: i, declared: undefined, available: n - i } }
    const length = readHeader(bytes, i)
    const start = i + HEADER_BYTES
    if (length > n - start) return { frames, torn: { offset: i, declared: length, available: n - i } }
    frames.push(bytes.subarray(start, start + length))
    i = start + length
  }
  return { frames, torn: undefined }
}

/**
 * A human-readable account of a torn tail, for error messages.
 *
 * @since 0.1.0
 * @category destructors
 */
export const describeTorn = (torn: Torn): string =>
  torn.declared === undefined
    ? `torn trailing frame at byte ${torn.offset}: ${torn.available} of ${HEADER_BYTES} header bytes`
    : `torn trailing frame at byte ${torn.offset}: its header announces ${torn.declared} bytes, ` +
      `${torn.available - HEADER_BYTES} are there`

/**
 * Splits a value that arrives in pieces into its frames' payloads: `push`
 * each piece, take the frames completed so far with `frames`, and at the end
 * ask `torn` whether the value ended inside a frame. A frame that lies inside
 * one piece is a view into it; one that spans pieces is copied once.
 *
 * @since 0.1.0
 * @category decoding
 */
export class FrameReader {
  /** The pieces not yet consumed; the first from `offset`. */
  private pieces: Array<Uint8Array> = []
  private next = 0
  private offset = 0
  private buffered = 0
  /** The bytes of the complete frames handed out. */
  private consumed = 0
  private readonly header = new Uint8Array(HEADER_BYTES)

  /** Adds the next piece of the value (the reader keeps a reference to it). */
  push(piece: Uint8Array): void {
    if (piece.byteLength === 0) return
    this.pieces.push(piece)
    this.buffered += piece.byteLength
  }

  /** The payloads of the frames completed since the last call, in order. */
  frames(): Array<Uint8Array> {
    const out: Array<Uint8Array> = []
    while (this.buffered >= HEADER_BYTES) {
      this.copyOut(this.header, HEADER_BYTES)
      const length = readHeader(this.header, 0)
      if (length > this.buffered - HEADER_BYTES) break
      this.skip(HEADER_BYTES)
      out.push(this.take(length))
      this.consumed += HEADER_BYTES + length
    }
    if (this.next > 64) {
      this.pieces = this.pieces.slice(this.next)
      this.next = 0
    }
    return out
  }

  /** Once every piece is pushed and every frame taken: the torn tail, if the value ends inside a frame. */
  torn(): Torn | undefined {
    if (this.buffered === 0) return undefined
    if (this.buffered < HEADER_BYTES) return { offset: this.consumed, declared: undefined, available: this.buffered }
    this.copyOut(this.header, HEADER_BYTES)
    return { offset: this.consumed, declared: readHeader(this.header, 0), available: this.buffered }
  }

  /** Copies the next `n` buffered bytes into `target` without consuming them. */
  private copyOut(target: Uint8Array, n: number): void {
    let filled = 0
    let i = this.next
    let at = this.offset
    while (filled < n) {
      const piece = this.pieces[i]!
      const count = Math.min(piece.byteLength - at, n - filled)
      target.set(piece.subarray(at, at + count), filled)
      filled += count
      i++
      at = 0
    }
  }

  private skip(n: number): void {
    this.advance(n, undefined)
  }

  /** Consumes `n` bytes: a view when they lie in one piece, else a copy. */
  private take(n: number): Uint8Array {
    const first = this.pieces[this.next]
    if (n === 0) return new Uint8Array(0)
    if (first !== undefined && first.byteLength - this.offset >= n) {
      const view = first.subarray(this.offset, this.offset + n)
      this.advance(n, undefined)
      return view
    }
    const out = new Uint8Array(n)
    this.advance(n, out)
    return out
  }

  private advance(n: number, into: Uint8Array | undefined): void {
    let done = 0
    while (done < n) {
      const piece = this.pieces[this.next]!
      const count = Math.min(piece.byteLength - this.offset, n - done)
      if (into !== undefined) into.set(piece.subarray(this.offset, this.offset + count), done)
      done += count
      this.offset += count
      if (this.offset === piece.byteLength) {
        this.pieces[this.next] = undefined as unknown as Uint8Array
        this.next++
        this.offset = 0
      }
    }
    this.buffered -= n
  }
}

/**
 * The payloads of the frames of a value read as a stream of pieces, in
 * order, each as soon as it is complete. When the value ends inside a frame,
 * the stream fails with `onTorn`'s error after yielding every complete frame.
 *
 * @since 0.1.0
 * @category decoding
 */
export const frames = <E, R, E2>(
  pieces: Stream.Stream<Uint8Array, E, R>,
  onTorn: (torn: Torn) => E2
): Stream.Stream<Uint8Array, E | E2, R> =>
  transformBatches(pieces, () => {
    const reader = new FrameReader()
    return {
      step: (batch) => {
        for (let i = 0; i < batch.length; i++) reader.push(batch[i]!)
        return reader.frames()
      },
      end: () => {
        const torn = reader.torn()
        return { out: [], error: torn === undefined ? undefined : onTorn(torn) }
      }
    }
  })

/**
 * A stateful transformation of a stream batch by batch, for the plain loops
 * of byte readers: `step` turns each batch into outputs (maybe none), `end`
 * gives the last outputs and, optionally, the error to fail with after them.
 * When the input fails, `end`'s outputs are still yielded (what was complete
 * before the failure is not lost), then the input's error.
 *
 * @since 0.1.0
 * @category combinators
 */
export const transformBatches = <A, B, E, R, E2>(
  self: Stream.Stream<A, E, R>,
  make: () => {
    readonly step: (batch: ReadonlyArray<A>) => ReadonlyArray<B>
    readonly end: () => { readonly out: ReadonlyArray<B>; readonly error: E2 | undefined }
  }
): Stream.Stream<B, E | E2, R> =>
  Stream.transformPull(self, (pull) =>
    Effect.sync(() => {
      const state = make()
      let ended = false
      let failure: E | E2 | undefined
      const finish = (): Effect.Effect<never, E | E2 | Cause.Done> =>
        failure !== undefined ? Effect.fail(failure) : Cause.done()
      // The input's end or failure is caught on the input's pull alone, so `end` runs once.
      const endOf = (error: E | Cause.Done): Effect.Effect<ReadonlyArray<B>> =>
        Effect.sync(() => {
          ended = true
          const last = state.end()
          // The input's own failure wins over the end's (a torn tail after a failed read is no news).
          failure = Cause.isDone(error) ? last.error : error
          return last.out
        })
      const next = (): Pull.Pull<readonly [B, ...Array<B>], E | E2> =>
        ended
          ? finish()
          : Effect.flatMap(Effect.catch(pull, endOf), (batch) => {
              const out = ended ? (batch as ReadonlyArray<B>) : state.step(batch as ReadonlyArray<A>)
              if (out.length > 0) return Effect.succeed(out as readonly [B, ...Array<B>])
              return ended ? finish() : next()
            })
      return Effect.suspend(next)
    })
  )
