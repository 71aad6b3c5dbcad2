/**
 * Brotli, from node:zlib.
 *
 * The format carries no checksum of its content, so a corrupt frame may
 * decode to other bytes; the decoder stops at `maxDecodedBytes`.
 *
 * @since 0.1.0
 */
import * as zlib from "node:zlib"
import { Effect } from "effect"
import { byteCodec, type Common, checkRange, type Definition, overBound } from "./Algorithm.ts"
import { compressChunk, decompressChunk } from "./Deflate.ts"

/**
 * Options for brotli.
 *
 * @since 0.1.0
 * @category models
 */
export interface BrotliOptions extends Common {
  /**
   * 0 to 11. Default 4: brotli's own default, 11, is about thirty times
   * slower on shuffle-sized chunks for a few percent of size.
   */
  readonly quality?: number
  /** 10 to 24: log2 of the window. */
  readonly lgwin?: number
  /** `BROTLI_MODE_GENERIC`, `BROTLI_MODE_TEXT` or `BROTLI_MODE_FONT`. */
  readonly mode?: number
}

/**
 * brotli.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const definition: Definition<BrotliOptions> = (options, { name, maxDecodedBytes }) => {
  const params: Record<number, number> = { [zlib.constants.BROTLI_PARAM_QUALITY]: options.quality ?? 4 }
  if (options.lgwin !== undefined) params[zlib.constants.BROTLI_PARAM_LGWIN] = options.lgwin
  if (options.mode !== undefined) params[zlib.constants.BROTLI_PARAM_MODE] = options.mode
  return Effect.as(
    Effect.all([
      checkRange("brotli", "quality", options.quality, 0, 11),
      checkRange("brotli", "lgwin", options.lgwin, 10, 24)
    ]),
    byteCodec(
      name,
      (v) =>
        zlib.brotliCompressSync(v, {
          chunkSize: compressChunk(v),
          params: { ...params, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: v.byteLength }
        }),
      (b) => {
        try {
          return zlib.brotliDecompressSync(b, { chunkSize: decompressChunk(b), maxOutputLength: maxDecodedBytes })
        } catch (cause) {
          throw overBound("brotli", maxDecodedBytes, cause)
        }
      }
    )
  )
}
