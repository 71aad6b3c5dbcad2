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
 * @since 0.1.0
 */

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
