/**
 * Algorithm: what one compression algorithm's module gives `Compression`'s
 * registry, and the pieces those modules share.
 *
 * Each algorithm lives in its own module (`Deflate`, `Brotli`, `Zstd`, `Bz2`,
 * `Snappy`, `Lz4`, `Blosc`) as a {@link Definition}: a function from its
 * options to a byte codec on the calling thread. Everything that is the same
 * for every algorithm (worker threads, the codec's name, the store layer) is
 * `Compression`'s; what is here is the small vocabulary the modules speak:
 * the options every algorithm takes, option range checks (a defect when the
 * codec is built), and the bound on decoded bytes that every decoder
 * enforces before it allocates, where its format lets it.
 *
 * @since 0.1.0
 */
import { Encode } from "@partd/core"
import { Effect } from "effect"

/**
 * Options every algorithm takes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Common {
  /** Worker threads that compress and decompress large calls (default 0: on the calling thread). */
  readonly workers?: number
  /** The fewest bytes in one call for it to go to the workers (default 64 KiB). */
  readonly parallelFrom?: number
  /**
   * The most bytes one frame may decode to (default 1 GiB). A frame that
   * declares or produces more fails with a `Decode` CodecError; formats that
   * declare their size (zstd, lz4 blocks, snappy, blosc) fail before
   * allocating anything, the others stop at the bound.
   */
  readonly maxDecodedBytes?: number
}

/**
 * The default bound on the bytes one frame decodes to: 1 GiB, eight times
 * the largest frame `partd-server` accepts by default, and far above a
 * shuffle's chunks, so that only a corrupt or hostile frame reaches it.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_DECODED_BYTES = 1024 * 1024 * 1024

/**
 * What an algorithm's codec is built with, besides its own options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Context {
  /** The codec's name: the algorithm and the options that change its bytes. */
  readonly name: string
  /** The bound on the bytes one frame decodes to. */
  readonly maxDecodedBytes: number
}

/**
 * An algorithm: builds its byte codec on the calling thread (loading its
 * library), or dies with a `RangeError` for options out of range.
 *
 * @since 0.1.0
 * @category models
 */
export type Definition<O extends Common> = (options: O, context: Context) => Effect.Effect<Encode.Codec<Uint8Array>>

/**
 * A Node `Buffer` over the same memory, for libraries that want one.
 *
 * @since 0.1.0
 * @category utils
 */
export const bytesOf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength)

/**
 * A byte codec from an algorithm's encode and decode: values must be
 * `Uint8Array`s, a key's frames join by concatenation.
 *
 * @since 0.1.0
 * @category constructors
 */
export const byteCodec = (
  name: string,
  encode: (value: Uint8Array) => Uint8Array | PromiseLike<Uint8Array>,
  decode: (bytes: Uint8Array) => Uint8Array | PromiseLike<Uint8Array>
): Encode.Codec<Uint8Array> =>
  Encode.make({
    name,
    encode: (value) => {
      if (!(value instanceof Uint8Array)) throw new TypeError(`expected a Uint8Array, got ${typeof value}`)
      return encode(value)
    },
    decode,
    join: (values) => (values.length === 1 ? values[0]! : Encode.bytes.join(values)),
    empty: Encode.bytes.empty
  })

/**
 * A defect for options that cannot work: a programming error, reported when
 * the codec is built.
 *
 * @since 0.1.0
 * @category errors
 */
export const invalid = (algorithm: string, description: string): Effect.Effect<never> =>
  Effect.die(new RangeError(`${algorithm}: ${description}`))

/**
 * Checks that an optional integer option lies in `[min, max]`.
 *
 * @since 0.1.0
 * @category validation
 */
export const checkRange = (
  algorithm: string,
  name: string,
  value: number | undefined,
  min: number,
  max: number
): Effect.Effect<void> =>
  value === undefined || (Number.isInteger(value) && value >= min && value <= max)
    ? Effect.void
    : invalid(algorithm, `${name} must be an integer from ${min} to ${max}, got ${value}`)

/**
 * Throws when a frame declares (or has produced) more than the bound: the
 * decoder's error, which the store reports as a `Decode` CodecError.
 *
 * @since 0.1.0
 * @category validation
 */
export const checkDecodedSize = (algorithm: string, bytes: number, maxDecodedBytes: number): void => {
  if (bytes > maxDecodedBytes) {
    throw new RangeError(`${algorithm}: the frame decodes to ${bytes} bytes, over maxDecodedBytes (${maxDecodedBytes})`)
  }
}

/**
 * node:zlib's error for output past `maxOutputLength` (`limit`: the bound,
 * or less where the format cannot expand further), as the bound's error;
 * any other error as it is.
 *
 * @since 0.1.0
 * @category errors
 */
export const overBound = (algorithm: string, limit: number, cause: unknown): unknown =>
  (cause as { code?: unknown } | null)?.code === "ERR_BUFFER_TOO_LARGE"
    ? new RangeError(`${algorithm}: the frame decodes to more than ${limit} bytes`, { cause })
    : cause
