/**
 * Compression: byte→byte codecs as store transformers, partd's `ZLib`,
 * `BZ2`, `Snappy` and `Blosc`, plus gzip, brotli, zstd and lz4.
 *
 * `Compression.layer(algorithm, options)` is a `Layer<Store, never, Store>`:
 * the store it provides compresses every appended chunk into the store it
 * requires, framed as Python partd frames it (see `@partd/core/Framing`), so
 * compressions stack on every backend and on each other:
 *
 * ```ts
 * Compression.layer("zstd", { level: 3 }).pipe(Layer.provide(File.layer({ path })))
 * ```
 *
 * Each algorithm is a module of its own under `compression/`, registered
 * here by name; each comes from a maintained library, node:zlib where it has
 * the algorithm:
 *
 * | algorithm | library | format | readable by |
 * | --- | --- | --- | --- |
 * | `zlib` | node:zlib | zlib (RFC 1950) | partd `ZLib` (`zlib.compress`) |
 * | `gzip` | node:zlib | gzip (RFC 1952) | `gzip.decompress` |
 * | `brotli` | node:zlib | brotli | `brotli.decompress` |
 * | `zstd` | zstd-napi (libzstd) | zstd frame, with content checksum | `zstandard.decompress` |
 * | `bz2` | @ledgerhq/compressjs (optional peer, GPL) | bzip2 stream | partd `BZ2` (`bz2.compress`) |
 * | `snappy` | snappy (napi-rs) | raw snappy block | partd `Snappy` (python-snappy) |
 * | `lz4` | lz4-wasm-nodejs (lz4_flex); frames: lz4-napi | size-prefixed block, or LZ4 frame | `lz4.block` (store_size) / `lz4.frame` |
 * | `blosc` | numcodecs (c-blosc 1.x in WASM) to write, `BloscFrame` to read | blosc 1 | partd `Blosc` (python-blosc) |
 *
 * Libraries other than node:zlib are loaded when the layer is built, so an
 * application pays only for the algorithms it uses.
 *
 * A compressed store's `stream` decompresses frame by frame (one compressed
 * frame and its decoded bytes in memory at a time, so also bounded by
 * `maxDecodedBytes`), yielding pieces of at most `chunkBytes`; its `size` is
 * the compressed bytes the inner store keeps, frame headers included; its
 * `keys` are the inner store's; an append's call id goes to the inner store.
 *
 * A codec never returns wrong bytes as success where its format can tell:
 * zlib, gzip and bz2 check their own checksums, zstd and LZ4 frames carry
 * one by default, blosc frames are read by a decoder that checks every bound;
 * raw snappy, LZ4 blocks, brotli and blosc have no checksum (partd's formats
 * cannot gain one and stay readable by Python), so there a flipped literal
 * byte can still decode to other bytes. Every frame's decoded size is
 * bounded by `maxDecodedBytes`. A frame that fails is a `Decode` CodecError
 * (a `Protocol` StoreError through the store).
 *
 * Every algorithm also takes `workers`: with `workers: n`, a call's chunks
 * (when they add up to at least `parallelFrom` bytes) are compressed and
 * decompressed by the calling thread and `n` worker threads (see
 * `CompressionPool`), so a shuffle uses `n + 1` cores where partd,
 * single-threaded, uses one. The bytes are the same either way.
 *
 * @since 0.1.0
 */
import { Encode, Store } from "@partd/core"
import { Effect, Layer, type Scope } from "effect"
import * as CompressionPool from "./CompressionPool.ts"
import {
  type Common as AlgorithmCommon,
  type Context,
  checkRange,
  DEFAULT_MAX_DECODED_BYTES,
  type Definition,
  invalid
} from "./compression/Algorithm.ts"
import * as Blosc from "./compression/Blosc.ts"
import * as Brotli from "./compression/Brotli.ts"
import * as Bz2 from "./compression/Bz2.ts"
import * as Deflate from "./compression/Deflate.ts"
import * as Lz4 from "./compression/Lz4.ts"
import * as Snappy from "./compression/Snappy.ts"
import * as Zstd from "./compression/Zstd.ts"

// Each algorithm's options are declared (and documented) in its own module.
export type { Common } from "./compression/Algorithm.ts"
export type { BloscOptions } from "./compression/Blosc.ts"
export type { BrotliOptions } from "./compression/Brotli.ts"
export type { Bz2Options } from "./compression/Bz2.ts"
export type { DeflateOptions } from "./compression/Deflate.ts"
export type { Lz4Options } from "./compression/Lz4.ts"
export type { SnappyOptions } from "./compression/Snappy.ts"
export type { ZstdOptions } from "./compression/Zstd.ts"

/**
 * Every algorithm and its options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly zlib: Deflate.DeflateOptions
  readonly gzip: Deflate.DeflateOptions
  readonly brotli: Brotli.BrotliOptions
  readonly zstd: Zstd.ZstdOptions
  readonly bz2: Bz2.Bz2Options
  readonly snappy: Snappy.SnappyOptions
  readonly lz4: Lz4.Lz4Options
  readonly blosc: Blosc.BloscOptions
}

/**
 * A compression algorithm's name.
 *
 * @since 0.1.0
 * @category models
 */
export type Algorithm = keyof Options

/** The registry: each algorithm's module, by name. */
const registry: { readonly [K in Algorithm]: Definition<Options[K]> } = {
  zlib: Deflate.zlibDefinition,
  gzip: Deflate.gzipDefinition,
  brotli: Brotli.definition,
  zstd: Zstd.definition,
  bz2: Bz2.definition,
  snappy: Snappy.definition,
  lz4: Lz4.definition,
  blosc: Blosc.definition
}

/**
 * Every algorithm, for suites and benchmarks.
 *
 * @since 0.1.0
 * @category constants
 */
export const algorithms: ReadonlyArray<Algorithm> = ["zlib", "gzip", "brotli", "zstd", "bz2", "snappy", "lz4", "blosc"]

// Options that change how a codec runs, not the bytes it writes: left out of its name.
const RUNTIME_OPTIONS = new Set(["workers", "parallelFrom", "maxDecodedBytes"])

const codecName = (algorithm: Algorithm, options: object): string => {
  const entries = Object.entries(options).filter(([k, v]) => v !== undefined && !RUNTIME_OPTIONS.has(k))
  return entries.length === 0 ? algorithm : `${algorithm}(${entries.map(([k, v]) => `${k}=${v}`).join(",")})`
}

/** The codec for an algorithm on the calling thread. */
const inline = <K extends Algorithm>(algorithm: K, options: Options[K]): Effect.Effect<Encode.Codec<Uint8Array>> =>
  Effect.suspend(() => {
    const definition = registry[algorithm] as Definition<AlgorithmCommon> | undefined
    if (definition === undefined) return invalid(String(algorithm), "unknown algorithm")
    const context: Context = {
      name: codecName(algorithm, options),
      maxDecodedBytes: options.maxDecodedBytes ?? DEFAULT_MAX_DECODED_BYTES
    }
    return Effect.andThen(
      checkRange(algorithm, "maxDecodedBytes", options.maxDecodedBytes, 1, Number.MAX_SAFE_INTEGER),
      definition(options, context)
    )
  })

const totalBytes = (chunks: ReadonlyArray<Uint8Array>): number => {
  let total = 0
  for (let i = 0; i < chunks.length; i++) total += chunks[i]!.byteLength
  return total
}

/**
 * The codec for an algorithm, loading its library; with `workers`, the
 * worker threads live in the scope. Options outside their range are a
 * defect (a programming error), reported when the codec or layer is built.
 *
 * @since 0.1.0
 * @category constructors
 */
export const codec = <K extends Algorithm>(
  algorithm: K,
  options?: Options[K]
): Effect.Effect<Encode.Codec<Uint8Array>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const opts = (options ?? {}) as Options[K]
    const base = yield* inline(algorithm, opts)
    const workers = opts.workers ?? 0
    yield* checkRange(algorithm, "workers", workers, 0, 256)
    if (workers === 0) return base
    const parallelFrom = opts.parallelFrom ?? 64 * 1024
    const pool = yield* CompressionPool.make(workers, { algorithm, options: { ...opts, workers: 0 } })
    return Encode.make({
      ...base,
      encodeAll: (values) => {
        for (const value of values) if (!(value instanceof Uint8Array)) return undefined
        return totalBytes(values) < parallelFrom ? undefined : pool.run("encode", base.encode, values)
      },
      decodeAll: (frames) => (totalBytes(frames) < parallelFrom ? undefined : pool.run("decode", base.decode, frames))
    })
  })

/**
 * A compressed store over the `Store` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <K extends Algorithm>(
  algorithm: K,
  options?: Options[K]
): Layer.Layer<Store.Store, never, Store.Store> =>
  Layer.effect(
    Store.Store,
    Effect.gen(function* () {
      const c = yield* codec(algorithm, options)
      return yield* Encode.makeStore(c, yield* Store.Store)
    })
  )
