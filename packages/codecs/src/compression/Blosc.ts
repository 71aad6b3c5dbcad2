/**
 * Blosc 1 frames (python-blosc's `blosc.compress`, partd's `Blosc`):
 * written by numcodecs (c-blosc 1.x in WASM) and sealed with a checksum of
 * their content, read by `BloscFrame`.
 *
 * numcodecs' decoder ignores c-blosc's errors, so it is not used to read:
 * `BloscFrame` checks a frame's header against its length and
 * `maxDecodedBytes` before allocating, fails on every error c-blosc's own
 * decoder would report, and verifies the checksum of a sealed frame (one this
 * package wrote; Python reads sealed frames as any other). Its snappy splits
 * go to the snappy package and its zstd splits to node:zlib, each bounded by
 * the split's size.
 *
 * @since 0.1.0
 */
import * as zlib from "node:zlib"
import { Store } from "@partd/core"
import { Effect } from "effect"
import { byteCodec, type Common, checkRange, type Definition } from "./Algorithm.ts"
import * as BloscFrame from "./BloscFrame.ts"
import { checkBlock } from "./Snappy.ts"

/**
 * Options for blosc, with python-blosc's `blosc.compress` defaults.
 *
 * @since 0.1.0
 * @category models
 */
export interface BloscOptions extends Common {
  /** 0 to 9; default 9. */
  readonly clevel?: number
  /** `blosclz` (default), `lz4`, `lz4hc`, `snappy`, `zlib` or `zstd`. */
  readonly cname?: "blosclz" | "lz4" | "lz4hc" | "snappy" | "zlib" | "zstd"
  /** 0 none, 1 byte shuffle (default), 2 bit shuffle, -1 auto. */
  readonly shuffle?: -1 | 0 | 1 | 2
  /** Bytes per block; 0 (default) lets blosc choose. */
  readonly blocksize?: number
}

interface BloscEncoder {
  encode(data: Uint8Array): Promise<Uint8Array>
}

const configure = (options: BloscOptions, Blosc: { fromConfig(config: object): unknown }) =>
  Effect.try({
    try: () =>
      Blosc.fromConfig({
        id: "blosc",
        clevel: options.clevel ?? 9,
        cname: options.cname ?? "blosclz",
        shuffle: options.shuffle ?? 1,
        blocksize: options.blocksize ?? 0
      }) as BloscEncoder,
    catch: (cause) => new RangeError(`blosc: ${Store.describeCause(cause)}`, { cause })
  }).pipe(Effect.orDie)

/**
 * blosc.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const definition: Definition<BloscOptions> = (options, { name, maxDecodedBytes }) =>
  Effect.andThen(
    checkRange("blosc", "clevel", options.clevel, 0, 9),
    Effect.flatMap(
      Effect.promise(() => Promise.all([import("numcodecs/blosc"), import("snappy")])),
      ([{ default: Blosc }, snappy]) =>
        Effect.map(configure(options, Blosc), (encoder) => {
          const inner: BloscFrame.InnerDecoders = {
            snappy: (split, size) => {
              checkBlock(split, size)
              return snappy.uncompressSync(split, { asBuffer: true }) as Buffer
            },
            zstd: (split, size) => zlib.zstdDecompressSync(split, { maxOutputLength: Math.max(size, 1) })
          }
          return byteCodec(
            name,
            (v) => encoder.encode(v).then((frame) => BloscFrame.seal(frame, v)),
            (b) => BloscFrame.decode(b, maxDecodedBytes, inner)
          )
        })
    )
  )
