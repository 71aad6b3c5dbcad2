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
 * Each algorithm comes from a maintained library, node:zlib where it has
 * the algorithm, except zstd: node:zlib's one-shot zstd builds a fresh
 * context for every chunk, which costs 3× the compression itself on a
 * shuffle's small chunks, so zstd comes from zstd-napi's bindings to
 * libzstd, which keep one context per codec:
 *
 * | algorithm | library | format | readable by |
 * | --- | --- | --- | --- |
 * | `zlib` | node:zlib | zlib (RFC 1950) | partd `ZLib` (`zlib.compress`) |
 * | `gzip` | node:zlib | gzip (RFC 1952) | `gzip.decompress` |
 * | `brotli` | node:zlib | brotli | `brotli.decompress` |
 * | `zstd` | zstd-napi (libzstd) | zstd frame | `zstandard.decompress` |
 * | `bz2` | @ledgerhq/compressjs (optional peer, GPL) | bzip2 stream | partd `BZ2` (`bz2.compress`) |
 * | `snappy` | snappy (napi-rs) | raw snappy block | partd `Snappy` (python-snappy) |
 * | `lz4` | lz4-wasm-nodejs (lz4_flex); frames: lz4-napi | size-prefixed block, or LZ4 frame | `lz4.block` (store_size) / `lz4.frame` |
 * | `blosc` | numcodecs (c-blosc 1.x in WASM) | blosc 1 | partd `Blosc` (python-blosc) |
 *
 * Libraries other than node:zlib are loaded when the layer is built, so an
 * application pays only for the algorithms it uses.
 *
 * Every algorithm also takes `workers`: with `workers: n`, a call's chunks
 * (when they add up to at least `parallelFrom` bytes) are compressed and
 * decompressed by the calling thread and `n` worker threads, each taking a
 * contiguous share of the call, so a shuffle uses `n + 1` cores where partd,
 * single-threaded, uses one. The bytes are the same either way.
 *
 * @since 0.1.0
 */
import { Worker } from "node:worker_threads"
import * as zlib from "node:zlib"
import { Encode, Store } from "@partd/core"
import { Effect, Layer, type Scope } from "effect"
import type { Reply, Request } from "./CompressionWorker.ts"

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
}

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
 * Options for zstd.
 *
 * @since 0.1.0
 * @category models
 */
export interface ZstdOptions extends Common {
  /** Negative (fastest) to 22 (best); default 3, zstd's default. */
  readonly level?: number
  /** Append a checksum of the content to each frame. */
  readonly checksum?: boolean
}

/**
 * Options for bz2.
 *
 * @since 0.1.0
 * @category models
 */
export interface Bz2Options extends Common {
  /** 1 to 9: the block size in units of 100 kB; default 9, as Python's `bz2.compress`. */
  readonly level?: number
}

/**
 * Options for lz4.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lz4Options extends Common {
  /**
   * `"block"` (default): an LZ4 block prefixed with its uncompressed size as
   * a little-endian uint32, python-lz4's `lz4.block.compress(store_size=True)`
   * layout, the fastest. `"frame"`: the standard LZ4 frame format.
   */
  readonly format?: "block" | "frame"
  /** Frame format only: append a checksum of the content. */
  readonly contentChecksum?: boolean
}

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

/**
 * Options for snappy (it has none).
 *
 * @since 0.1.0
 * @category models
 */
export type SnappyOptions = Common

/**
 * Every algorithm and its options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly zlib: DeflateOptions
  readonly gzip: DeflateOptions
  readonly brotli: BrotliOptions
  readonly zstd: ZstdOptions
  readonly bz2: Bz2Options
  readonly snappy: SnappyOptions
  readonly lz4: Lz4Options
  readonly blosc: BloscOptions
}

/**
 * A compression algorithm's name.
 *
 * @since 0.1.0
 * @category models
 */
export type Algorithm = keyof Options

/**
 * Every algorithm, for suites and benchmarks.
 *
 * @since 0.1.0
 * @category constants
 */
export const algorithms: ReadonlyArray<Algorithm> = ["zlib", "gzip", "brotli", "zstd", "bz2", "snappy", "lz4", "blosc"]

// An LZ4 sequence's length bytes add at most 255 output bytes each: no block decompresses to more.
const MAX_LZ4_EXPANSION = 255

const bytesOf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength)

const deflateOptions = (options: DeflateOptions): zlib.ZlibOptions => ({
  ...(options.level === undefined ? {} : { level: options.level }),
  ...(options.memLevel === undefined ? {} : { memLevel: options.memLevel }),
  ...(options.strategy === undefined ? {} : { strategy: options.strategy }),
  ...(options.windowBits === undefined ? {} : { windowBits: options.windowBits })
})

// node:zlib's one-shot functions allocate a `chunkSize` output buffer per call (16 KiB by default): sized
// to the chunk, a shuffle's small chunks do not churn the garbage collector.
const compressChunk = (input: Uint8Array): number => Math.max(64, input.byteLength + (input.byteLength >>> 7) + 64)
const decompressChunk = (input: Uint8Array): number => Math.min(Math.max(input.byteLength * 4, 1024), 256 * 1024)

const codecName = (algorithm: Algorithm, options: object): string => {
  const entries = Object.entries(options).filter(([k, v]) => v !== undefined && k !== "workers" && k !== "parallelFrom")
  return entries.length === 0 ? algorithm : `${algorithm}(${entries.map(([k, v]) => `${k}=${v}`).join(",")})`
}

const byteCodec = (
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

interface CompressJs {
  readonly Bzip2: {
    compressFile(input: Uint8Array, output: null, blockSizeLevel: number): Uint8Array | Array<number>
    decompressFile(input: Uint8Array): Uint8Array | Array<number>
  }
}

interface BloscCodec {
  encode(data: Uint8Array): Promise<Uint8Array>
  decode(data: Uint8Array): Promise<Uint8Array>
}

// Untyped CommonJS package, and an optional peer dependency (its GPL license stays out of installs that
// do not use bz2): imported by a non-literal name so the type checker does not look for types.
const COMPRESSJS: string = "@ledgerhq/compressjs"

const asBytes = (u: Uint8Array | Array<number>): Uint8Array => (u instanceof Uint8Array ? u : Uint8Array.from(u))

const invalid = (algorithm: string, description: string) => Effect.die(new RangeError(`${algorithm}: ${description}`))

const checkRange = (algorithm: string, name: string, value: number | undefined, min: number, max: number) =>
  value === undefined || (Number.isInteger(value) && value >= min && value <= max)
    ? Effect.void
    : invalid(algorithm, `${name} must be an integer from ${min} to ${max}, got ${value}`)

/** The codec for an algorithm on the calling thread. */
const inline = <K extends Algorithm>(algorithm: K, options?: Options[K]): Effect.Effect<Encode.Codec<Uint8Array>> =>
  Effect.suspend((): Effect.Effect<Encode.Codec<Uint8Array>> => {
    const opts = (options ?? {}) as Options[Algorithm]
    const name = codecName(algorithm, opts)
    switch (algorithm) {
      case "zlib":
      case "gzip": {
        const o = opts as DeflateOptions
        const zo = deflateOptions(o)
        return Effect.as(
          Effect.all([
            checkRange(algorithm, "level", o.level, -1, 9),
            checkRange(algorithm, "memLevel", o.memLevel, 1, 9),
            checkRange(algorithm, "windowBits", o.windowBits, 9, 15)
          ]),
          algorithm === "zlib"
            ? byteCodec(
                name,
                (v) => zlib.deflateSync(v, { ...zo, chunkSize: compressChunk(v) }),
                (b) => zlib.inflateSync(b, { chunkSize: decompressChunk(b) })
              )
            : byteCodec(
                name,
                (v) => zlib.gzipSync(v, { ...zo, chunkSize: compressChunk(v) }),
                (b) => zlib.gunzipSync(b, { chunkSize: decompressChunk(b) })
              )
        )
      }
      case "brotli": {
        const o = opts as BrotliOptions
        const params: Record<number, number> = { [zlib.constants.BROTLI_PARAM_QUALITY]: o.quality ?? 4 }
        if (o.lgwin !== undefined) params[zlib.constants.BROTLI_PARAM_LGWIN] = o.lgwin
        if (o.mode !== undefined) params[zlib.constants.BROTLI_PARAM_MODE] = o.mode
        return Effect.as(
          Effect.all([
            checkRange(algorithm, "quality", o.quality, 0, 11),
            checkRange(algorithm, "lgwin", o.lgwin, 10, 24)
          ]),
          byteCodec(
            name,
            (v) =>
              zlib.brotliCompressSync(v, {
                chunkSize: compressChunk(v),
                params: { ...params, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: v.byteLength }
              }),
            (b) => zlib.brotliDecompressSync(b, { chunkSize: decompressChunk(b) })
          )
        )
      }
      case "zstd": {
        const o = opts as ZstdOptions
        return Effect.andThen(
          checkRange(algorithm, "level", o.level, -131072, 22),
          Effect.map(
            Effect.promise(() => import("zstd-napi")),
            (zstd) => {
              // One context each way for the codec's life: building a context is most of what a
              // small chunk costs (node:zlib's `zstdCompressSync` builds one per call: ~21 µs per
              // 1 KiB chunk at level 3, against ~6 µs here).
              const compressor = new zstd.Compressor()
              compressor.setParameters({ compressionLevel: o.level ?? 3, checksumFlag: o.checksum === true })
              const decompressor = new zstd.Decompressor()
              return byteCodec(
                name,
                (v) => compressor.compress(bytesOf(v)),
                (b) => decompressor.decompress(bytesOf(b))
              )
            }
          )
        )
      }
      case "bz2": {
        const o = opts as Bz2Options
        return Effect.andThen(
          checkRange(algorithm, "level", o.level, 1, 9),
          Effect.map(
            Effect.tryPromise((): Promise<unknown> => import(COMPRESSJS)).pipe(
              Effect.orElseSucceed(() => undefined),
              Effect.flatMap((module) =>
                module === undefined
                  ? invalid(
                      "bz2",
                      "needs the optional peer dependency @ledgerhq/compressjs (GPL-licensed): npm install @ledgerhq/compressjs"
                    )
                  : Effect.succeed(module)
              )
            ),
            (module) => {
              const { Bzip2 } = ((module as { default?: CompressJs }).default ?? module) as CompressJs
              const level = o.level ?? 9
              return byteCodec(
                name,
                (v) => asBytes(Bzip2.compressFile(v, null, level)),
                (b) => asBytes(Bzip2.decompressFile(b))
              )
            }
          )
        )
      }
      case "snappy":
        return Effect.map(
          Effect.promise(() => import("snappy")),
          (snappy) =>
            byteCodec(
              name,
              (v) => snappy.compressSync(v),
              (b) => snappy.uncompressSync(b, { asBuffer: true }) as Buffer
            )
        )
      case "lz4": {
        const o = opts as Lz4Options
        if (o.format === "frame") {
          return Effect.map(
            Effect.promise(() => import("lz4-napi")),
            (lz4) => {
              const frameOptions = o.contentChecksum === undefined ? undefined : { contentChecksum: o.contentChecksum }
              return byteCodec(
                name,
                (v) => lz4.compressFrameSync(bytesOf(v), frameOptions),
                (b) => lz4.decompressFrameSync(bytesOf(b))
              )
            }
          )
        }
        // Blocks come from lz4_flex compiled to WASM by its author: the same bytes as lz4-napi's
        // (also lz4_flex), at 2.2 µs per 1 KiB chunk against 3–5 µs through Node-API's external
        // buffers; lz4(File) W1 append 168 -> 243 MB/s measured back to back.
        return Effect.map(
          Effect.promise(() => import("lz4-wasm-nodejs")),
          (lz4) =>
            byteCodec(
              name,
              (v) => lz4.compress(v),
              (b) => {
                // The size prefix is checked here, not by the library: WASM memory never shrinks, so a
                // corrupt prefix must not grow it to the 4 GiB it claims.
                const declared = b.byteLength < 4 ? 0 : bytesOf(b).readUInt32LE(0)
                if (declared > MAX_LZ4_EXPANSION * b.byteLength + 64) {
                  throw new RangeError(`lz4: a block of ${b.byteLength} bytes cannot hold the ${declared} it declares`)
                }
                try {
                  return lz4.decompress(b)
                } catch (cause) {
                  // The library throws strings.
                  throw cause instanceof Error ? cause : new Error(`lz4: ${String(cause)}`)
                }
              }
            )
        )
      }
      case "blosc": {
        const o = opts as BloscOptions
        return Effect.andThen(
          checkRange(algorithm, "clevel", o.clevel, 0, 9),
          Effect.flatMap(
            Effect.promise(() => import("numcodecs/blosc")),
            ({ default: Blosc }) =>
              Effect.try({
                try: () => {
                  const blosc = Blosc.fromConfig({
                    id: "blosc",
                    clevel: o.clevel ?? 9,
                    cname: o.cname ?? "blosclz",
                    shuffle: o.shuffle ?? 1,
                    blocksize: o.blocksize ?? 0
                  }) as unknown as BloscCodec
                  return byteCodec(
                    name,
                    (v) => blosc.encode(v),
                    (b) => blosc.decode(b)
                  )
                },
                catch: (cause) => new RangeError(`blosc: ${cause instanceof Error ? cause.message : String(cause)}`)
              }).pipe(Effect.orDie)
          )
        )
      }
    }
    return invalid(String(algorithm), "unknown algorithm")
  })

interface Pending {
  readonly resolve: (reply: Reply) => void
  readonly reject: (error: unknown) => void
}

interface PoolWorker {
  readonly worker: Worker
  readonly pending: Map<number, Pending>
}

/** Starts `n` workers that build the codec, and waits until each is ready. */
const startWorkers = (n: number, algorithm: Algorithm, options: object): Promise<Array<PoolWorker>> =>
  Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<PoolWorker>((resolve, reject) => {
          const worker = new Worker(new URL("./CompressionWorker.ts", import.meta.url), {
            workerData: { algorithm, options }
          })
          const entry: PoolWorker = { worker, pending: new Map() }
          const failAll = (error: unknown) => {
            for (const p of entry.pending.values()) p.reject(error)
            entry.pending.clear()
            reject(error)
          }
          worker.on("error", failAll)
          worker.on("exit", (code) => failAll(new Error(`${algorithm} worker exited with code ${code}`)))
          worker.on("message", (message: Reply | { readonly ready: true }) => {
            if ("ready" in message) {
              // Idle workers do not keep the process alive; a worker with work in flight does.
              worker.unref()
              resolve(entry)
              return
            }
            const p = entry.pending.get(message.id)
            if (p === undefined) return
            entry.pending.delete(message.id)
            if (entry.pending.size === 0) worker.unref()
            p.resolve(message)
          })
        })
    )
  )

/**
 * Runs one call's chunks on the workers and on the calling thread:
 * contiguous shares balanced by bytes, one transferred buffer each way per
 * worker. The calling thread takes the first share itself while the
 * workers run, so `workers: 1` already keeps two cores busy.
 */
const dispatch = (
  pool: ReadonlyArray<PoolWorker>,
  nextId: () => number,
  op: Request["op"],
  here: (chunk: Uint8Array) => Uint8Array | PromiseLike<Uint8Array>,
  chunks: ReadonlyArray<Uint8Array>,
  total: number
): Promise<Array<Uint8Array>> => {
  const shares: Array<readonly [number, number]> = []
  const parties = pool.length + 1
  const unit = total / parties
  let bound = unit
  let start = 0
  let bytes = 0
  for (let i = 0; i < chunks.length; i++) {
    bytes += chunks[i]!.byteLength
    if (bytes >= bound && shares.length < parties - 1) {
      shares.push([start, i + 1])
      start = i + 1
      bound += unit
    }
  }
  if (start < chunks.length) shares.push([start, chunks.length])
  const [mine, ...theirs] = shares
  const remote = theirs.map(([from, to], w) => {
    const lengths = new Array<number>(to - from)
    let size = 0
    for (let i = from; i < to; i++) {
      lengths[i - from] = chunks[i]!.byteLength
      size += chunks[i]!.byteLength
    }
    const data = new Uint8Array(size)
    let offset = 0
    for (let i = from; i < to; i++) {
      data.set(chunks[i]!, offset)
      offset += chunks[i]!.byteLength
    }
    const { worker, pending } = pool[w]!
    const id = nextId()
    return new Promise<Reply>((resolve, reject) => {
      pending.set(id, { resolve, reject })
      worker.ref()
      worker.postMessage({ id, op, data: data.buffer, lengths } satisfies Request, [data.buffer])
    }).then((reply) => {
      if ("error" in reply) throw Object.assign(new Error(reply.error), { index: from + reply.index })
      const out = new Uint8Array(reply.data)
      const results = new Array<Uint8Array>(reply.lengths.length)
      let at = 0
      for (let i = 0; i < reply.lengths.length; i++) {
        results[i] = out.subarray(at, at + reply.lengths[i]!)
        at += reply.lengths[i]!
      }
      return results
    })
  })
  // The calling thread's share, while the workers run theirs.
  let local: Promise<Array<Uint8Array>>
  try {
    const [from, to] = mine ?? [0, 0]
    const results: Array<Uint8Array | PromiseLike<Uint8Array>> = []
    for (let i = from; i < to; i++) {
      try {
        results.push(here(chunks[i]!))
      } catch (cause) {
        throw Object.assign(cause instanceof Error ? cause : new Error(String(cause)), { index: i })
      }
    }
    local = Promise.all(results)
  } catch (error) {
    local = Promise.reject(error)
  }
  return Promise.all([local, ...remote]).then((parts) => parts.flat())
}

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
    const base = yield* inline(algorithm, options)
    const workers = options?.workers ?? 0
    yield* checkRange(algorithm, "workers", workers, 0, 256)
    if (workers === 0) return base
    const parallelFrom = options?.parallelFrom ?? 64 * 1024
    const pool = yield* Effect.acquireRelease(
      Effect.promise(() => startWorkers(workers, algorithm, { ...options, workers: 0 })),
      (pool) => Effect.promise(() => Promise.all(pool.map(({ worker }) => worker.terminate())))
    )
    let id = 0
    const nextId = () => id++
    return Encode.make({
      ...base,
      encodeAll: (values) => {
        for (const value of values) if (!(value instanceof Uint8Array)) return undefined
        const total = totalBytes(values)
        return total < parallelFrom ? undefined : dispatch(pool, nextId, "encode", base.encode, values, total)
      },
      decodeAll: (frames) => {
        const total = totalBytes(frames)
        return total < parallelFrom ? undefined : dispatch(pool, nextId, "decode", base.decode, frames, total)
      }
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
