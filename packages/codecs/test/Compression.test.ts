import * as zlib from "node:zlib"
import { describe, expect, it } from "@effect/vitest"
import { Compression } from "@partd/codecs"
import { Bytes, Dict, Encode, Framing, Store } from "@partd/core"
import { suite } from "@partd/test/StoreSuite"
import { Effect, Exit, Layer, type Scope } from "effect"
import * as fc from "fast-check"
import { backends } from "./Backends.ts"
import { codecSuite, fromByteStore } from "./CodecSuite.ts"

const hex = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString("hex")

/** Random bytes, and runs of repeated bytes that actually compress. */
const chunkArb = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc
    .tuple(fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 400 }))
    .map(([unit, times]) => Bytes.concat(Array.from({ length: times }, () => unit)))
)

for (const algorithm of Compression.algorithms) {
  codecSuite(
    {
      name: algorithm,
      make: (inner) =>
        Effect.map(
          Effect.flatMap(Compression.codec(algorithm), (codec) => Encode.makeStore(codec, inner)),
          fromByteStore
        ),
      joinStreamed: (pieces) => Bytes.concat(pieces),
      arbitrary: chunkArb,
      expected: (values) => hex(Bytes.concat(values)),
      normalize: hex,
      invalid: ["not bytes", 42],
      runs: algorithm === "bz2" ? 8 : 20
    },
    backends
  )
}

// With worker threads: every call of two or more bytes goes to the workers, so the suite runs the pool's path.
for (const algorithm of ["zlib", "lz4", "blosc"] as const) {
  codecSuite(
    {
      name: `${algorithm} with 2 workers`,
      make: (inner) =>
        Effect.map(
          Effect.flatMap(Compression.codec(algorithm, { workers: 2, parallelFrom: 2 }), (codec) =>
            Encode.makeStore(codec, inner)
          ),
          fromByteStore
        ),
      joinStreamed: (pieces) => Bytes.concat(pieces),
      arbitrary: chunkArb,
      expected: (values) => hex(Bytes.concat(values)),
      normalize: hex,
      invalid: ["not bytes"],
      runs: 5
    },
    backends.slice(0, 1)
  )
}

// A compressed store is a Store: it passes the conformance suite. One algorithm per way of calling a library
// (node:zlib, napi-rs bindings, an async WASM module) keeps the run short; the codec suite covers every algorithm.
for (const algorithm of ["zlib", "snappy", "lz4", "blosc"] as const) {
  suite(`Compression ${algorithm} over Dict`, Compression.layer(algorithm).pipe(Layer.provide(Dict.layer)), {
    maxValueBytes: 4 * 1024 * 1024,
    propertyRuns: 10,
    sizeIsEncoded: true
  })
}

const text = (s: string) => new TextEncoder().encode(s)
const compressible = text("partd ".repeat(2000))

describe("Compression", () => {
  it.effect("workers produce the bytes the calling thread does, and report which chunk failed", () =>
    Effect.gen(function* () {
      const inline = yield* Compression.codec("zstd", { level: 5 })
      const pooled = yield* Compression.codec("zstd", { level: 5, workers: 2, parallelFrom: 1 })
      const chunks = Array.from({ length: 50 }, (_, i) => text(`chunk ${i} `.repeat(i + 1)))
      const viaPool = yield* Effect.promise(async () => (await pooled.encodeAll!(chunks))!)
      expect(viaPool.map(hex)).toEqual(chunks.map((c) => hex(inline.encode(c) as Uint8Array)))
      const back = yield* Effect.promise(async () => (await pooled.decodeAll!(viaPool))!)
      expect(back.map(hex)).toEqual(chunks.map(hex))
      const bad = [...viaPool.slice(0, 30), text("not zstd"), ...viaPool.slice(30)]
      const failure = yield* Effect.promise(() =>
        Promise.resolve(pooled.decodeAll!(bad)).then(
          () => undefined,
          (e: unknown) => e as { index?: number }
        )
      )
      expect(failure?.index).toBe(30)
    })
  )

  it.effect("stacks: zstd over zlib over Dict round-trips and each layer frames its own chunks", () =>
    Effect.gen(function* () {
      yield* Store.append({ x: compressible })
      yield* Store.append({ x: text("tail") })
      expect(hex(yield* Store.getOne("x"))).toBe(hex(Bytes.concat([compressible, text("tail")])))
    }).pipe(
      Effect.provide(
        Compression.layer("zstd").pipe(Layer.provide(Compression.layer("zlib")), Layer.provide(Dict.layer))
      )
    )
  )

  it.effect("levels and options are applied: a higher level is smaller, and every variant reads back", () =>
    Effect.gen(function* () {
      const sizes: Record<string, number> = {}
      const variants: ReadonlyArray<readonly [string, Effect.Effect<Encode.Codec<Uint8Array>, never, Scope.Scope>]> = [
        ["zlib 1", Compression.codec("zlib", { level: 1 })],
        ["zlib 9", Compression.codec("zlib", { level: 9, memLevel: 9 })],
        ["gzip 9", Compression.codec("gzip", { level: 9 })],
        ["brotli 0", Compression.codec("brotli", { quality: 0 })],
        ["brotli 11", Compression.codec("brotli", { quality: 11, lgwin: 22 })],
        ["zstd -5", Compression.codec("zstd", { level: -5 })],
        ["zstd 19", Compression.codec("zstd", { level: 19, checksum: true })],
        ["bz2 1", Compression.codec("bz2", { level: 1 })],
        ["lz4 frame", Compression.codec("lz4", { format: "frame", contentChecksum: true })],
        ["blosc lz4 bitshuffle", Compression.codec("blosc", { cname: "lz4", clevel: 5, shuffle: 2 })],
        ["blosc zstd", Compression.codec("blosc", { cname: "zstd" })]
      ]
      const data = Bytes.concat([compressible, Uint8Array.from({ length: 5000 }, (_, i) => (i * 7919) % 251)])
      for (const [name, make] of variants) {
        const codec = yield* make
        const encoded = yield* Effect.promise(async () => await codec.encode(data))
        sizes[name] = encoded.byteLength
        const decoded = yield* Effect.promise(async () => await codec.decode(encoded))
        expect(hex(decoded), name).toBe(hex(data))
      }
      expect(sizes["zlib 9"]).toBeLessThanOrEqual(sizes["zlib 1"]!)
      expect(sizes["brotli 11"]).toBeLessThan(sizes["brotli 0"]!)
    })
  )

  it.effect("the lz4 block format is python-lz4's store_size layout: uint32 LE length, then the block", () =>
    Effect.gen(function* () {
      const codec = yield* Compression.codec("lz4")
      const encoded = (yield* Effect.promise(async () => await codec.encode(compressible))) as Uint8Array
      expect(Framing.readHeader(Bytes.concat([encoded.subarray(0, 4), new Uint8Array(4)]), 0)).toBe(
        compressible.byteLength
      )
    })
  )

  it.effect("out-of-range options are defects when the codec is built", () =>
    Effect.gen(function* () {
      for (const bad of [
        Compression.codec("zlib", { level: 12 }),
        Compression.codec("brotli", { quality: 12 }),
        Compression.codec("zstd", { level: 23 }),
        Compression.codec("bz2", { level: 0 }),
        Compression.codec("blosc", { clevel: 10 })
      ]) {
        const exit = yield* Effect.exit(bad)
        expect(Exit.isFailure(exit) && exit.cause.reasons.some((r) => r._tag === "Die")).toBe(true)
      }
    })
  )

  it.effect("corrupt compressed bytes fail get with a Protocol StoreError carrying a Decode CodecError", () =>
    Effect.gen(function* () {
      const inner = yield* Store.Store
      const codec = yield* Compression.codec("zlib")
      const store = yield* Encode.makeStore(codec, inner)
      yield* inner.append({ k: Framing.frame(text("definitely not zlib")) })
      const exit = yield* Effect.exit(store.get(["k"]))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
      const storeError = error?._tag === "Fail" ? error.error : undefined
      expect(storeError?.reason).toBe("Protocol")
      expect(Encode.codecErrorOf(storeError)?.reason).toBe("Decode")
    }).pipe(Effect.provide(Dict.layer))
  )

  it.effect("zstd frames are standard both ways, and one claiming a huge size fails typed", () =>
    Effect.gen(function* () {
      const inner = yield* Store.Store
      const store = yield* Encode.makeStore(yield* Compression.codec("zstd", { checksum: true }), inner)
      yield* store.append({ ours: compressible })
      // node:zlib's streaming frames carry no content size (what this codec wrote before it used zstd-napi).
      yield* inner.append({ theirs: Framing.frame(zlib.zstdCompressSync(compressible)) })
      const [ours, theirs] = yield* store.get(["ours", "theirs"])
      expect(hex(theirs!)).toBe(hex(compressible))
      const [raw] = yield* inner.get(["ours"])
      expect(hex(zlib.zstdDecompressSync(Framing.split(raw!).frames[0]!))).toBe(hex(ours!))
      // A frame header (single segment, 8-byte content size) claiming 2^50 bytes, then one empty raw block.
      const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0])
      yield* inner.append({ bomb: Framing.frame(header) })
      const exit = yield* Effect.exit(store.get(["bomb"]))
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
      const storeError = error?._tag === "Fail" ? error.error : undefined
      expect(storeError?.reason).toBe("Protocol")
      expect(Encode.codecErrorOf(storeError)?.reason).toBe("Decode")
      // The codec's one decompression context is not left mid-frame by the failure.
      yield* inner.append({ torn: Framing.frame(zlib.zstdCompressSync(compressible).subarray(0, 20)) })
      expect(Exit.isFailure(yield* Effect.exit(store.get(["torn"])))).toBe(true)
      const [again] = yield* store.get(["theirs"])
      expect(hex(again!)).toBe(hex(compressible))
    }).pipe(Effect.provide(Dict.layer))
  )

  it.effect("lz4 blocks are lz4-napi's both ways, and a corrupt size prefix fails typed", () =>
    Effect.gen(function* () {
      const napi = yield* Effect.promise(() => import("lz4-napi"))
      const inner = yield* Store.Store
      const store = yield* Encode.makeStore(yield* Compression.codec("lz4"), inner)
      yield* store.append({ ours: compressible })
      // lz4-napi wrote this codec's blocks before lz4-wasm-nodejs did.
      yield* inner.append({ theirs: Framing.frame(napi.compressSync(Buffer.from(compressible))) })
      const [ours, theirs] = yield* store.get(["ours", "theirs"])
      expect(hex(theirs!)).toBe(hex(compressible))
      const [raw] = yield* inner.get(["ours"])
      expect(hex(napi.uncompressSync(Buffer.from(Framing.split(raw!).frames[0]!)))).toBe(hex(ours!))
      for (const prefix of [
        [0xff, 0xff, 0xff, 0xff],
        [0xff, 0xff, 0xff, 0x7f],
        [5, 0, 0, 0]
      ]) {
        const block = Bytes.concat([Uint8Array.from(prefix), napi.compressSync(Buffer.from(compressible)).subarray(4)])
        yield* inner.delete(["bad"])
        yield* inner.append({ bad: Framing.frame(block) })
        const exit = yield* Effect.exit(store.get(["bad"]))
        const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
        const storeError = error?._tag === "Fail" ? error.error : undefined
        expect(storeError?.reason, `prefix ${prefix}`).toBe("Protocol")
        const codecError = Encode.codecErrorOf(storeError)
        expect(codecError?.reason).toBe("Decode")
        // Refused before the library sees it: WASM memory grown to a claimed size would never shrink back.
        if (prefix[0] === 0xff) expect(String(codecError?.cause)).toContain("cannot hold")
      }
      const [again] = yield* store.get(["theirs"])
      expect(hex(again!)).toBe(hex(compressible))
    }).pipe(Effect.provide(Dict.layer))
  )

  it.effect("a torn frame under a byte store is an Io StoreError whose CodecError recovers the complete chunks", () =>
    Effect.gen(function* () {
      const inner = yield* Store.Store
      const store = yield* Encode.makeStore(yield* Compression.codec("snappy"), inner)
      yield* store.append({ k: text("complete ") })
      yield* store.append({ k: text("chunks") })
      yield* inner.append({ k: new Uint8Array([5, 0, 0]) }) // 3 of 8 header bytes
      const exit = yield* Effect.exit(store.get(["k"]))
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
      const storeError = error?._tag === "Fail" ? error.error : undefined
      expect(storeError?.reason).toBe("Io")
      const codecError = Encode.codecErrorOf(storeError)!
      expect(codecError.reason).toBe("TornFrame")
      expect(new TextDecoder().decode(codecError.recovered as Uint8Array)).toBe("complete chunks")
    }).pipe(Effect.provide(Dict.layer))
  )
})
