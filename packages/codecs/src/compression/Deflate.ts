/**
 * Deflate: zlib (RFC 1950, Python's `zlib.compress`, partd's `ZLib`) and
 * gzip (RFC 1952), from node:zlib.
 *
 * Both formats end in a checksum of the content (Adler-32, CRC-32) that
 * node:zlib verifies, so a corrupt frame fails. Deflate cannot expand more
 * than 1032 times, so a frame's output is bounded by its own length as well
 * as by `maxDecodedBytes`, whichever is smaller.
 *
 * @since 0.1.0
 */
import * as zlib from "node:zlib"
import { Effect } from "effect"
import { byteCodec, type Common, checkRange, type Definition, overBound } from "./Algorithm.ts"

/**
 * Options for zlib and gzip (node:zlib's deflate options).
 *
 * @since 0.1.0
 * @category models
 */
export interface DeflateOptions extends Common {
  /** 0 (none) to 9 (best); default 6, as Python's `zlib.compress`. */
  readonly level?: number
  /** 1 to 9: memory for the match finder (default 8). */
  readonly memLevel?: number
  /** `Z_FILTERED`, `Z_HUFFMAN_ONLY`, `Z_RLE`, `Z_FIXED` or `Z_DEFAULT_STRATEGY`. */
  readonly strategy?: number
  /** 9 to 15: the window (default 15). */
  readonly windowBits?: number
}

// Deflate's densest code: a 258-byte match in under two bits.
const MAX_DEFLATE_RATIO = 1032

/**
 * node:zlib's one-shot functions allocate a `chunkSize` output buffer per
 * call (16 KiB by default): sized to the chunk, a shuffle's small chunks do
 * not churn the garbage collector.
 *
 * @since 0.1.0
 * @category utils
 */
export const compressChunk = (input: Uint8Array): number =>
  Math.max(64, input.byteLength + (input.byteLength >>> 7) + 64)

/**
 * The output buffer size for decompressing `input`.
 *
 * @since 0.1.0
 * @category utils
 */
export const decompressChunk = (input: Uint8Array): number => Math.min(Math.max(input.byteLength * 4, 1024), 256 * 1024)

const deflateOptions = (options: DeflateOptions): zlib.ZlibOptions => ({
  ...(options.level === undefined ? {} : { level: options.level }),
  ...(options.memLevel === undefined ? {} : { memLevel: options.memLevel }),
  ...(options.strategy === undefined ? {} : { strategy: options.strategy }),
  ...(options.windowBits === undefined ? {} : { windowBits: options.windowBits })
})

const definition =
  (format: "zlib" | "gzip"): Definition<DeflateOptions> =>
  (options, { name, maxDecodedBytes }) => {
    const zo = deflateOptions(options)
    const compress = format === "zlib" ? zlib.deflateSync : zlib.gzipSync
    const decompress = format === "zlib" ? zlib.inflateSync : zlib.gunzipSync
    return Effect.as(
      Effect.all([
        checkRange(format, "level", options.level, -1, 9),
        checkRange(format, "memLevel", options.memLevel, 1, 9),
        checkRange(format, "windowBits", options.windowBits, 9, 15)
      ]),
      byteCodec(
        name,
        (v) => compress(v, { ...zo, chunkSize: compressChunk(v) }),
        (b) => {
          const limit = Math.min(maxDecodedBytes, MAX_DEFLATE_RATIO * b.byteLength + 1024)
          try {
            return decompress(b, { chunkSize: decompressChunk(b), maxOutputLength: Math.max(limit, 1) })
          } catch (cause) {
            throw overBound(format, limit, cause)
          }
        }
      )
    )
  }

/**
 * zlib: partd's `ZLib`.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const zlibDefinition: Definition<DeflateOptions> = definition("zlib")

/**
 * gzip.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const gzipDefinition: Definition<DeflateOptions> = definition("gzip")
