/**
 * What a corrupt, truncated, random or oversized frame gives each
 * compression: a `Decode` CodecError, never other bytes as success, and a
 * frame that decodes past `maxDecodedBytes` fails without the memory it
 * claims being allocated.
 */
import * as zlib from "node:zlib"
import { describe, expect, it } from "@effect/vitest"
import { Compression } from "@partd/codecs"
import { Encode, Framing } from "@partd/core"
import { Effect, Exit } from "effect"
import Blosc from "numcodecs/blosc"

const text = (s: string) => new TextEncoder().encode(s)
const hex = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString("hex")
const data = Buffer.concat([text("partd ".repeat(2000)), Uint8Array.from({ length: 5000 }, (_, i) => (i * 7919) % 251)])
const MiB = 1024 * 1024

/** Decodes one stored frame as `get` does: the decoded bytes, or the CodecError. */
const decodeFrame = (codec: Encode.Codec<Uint8Array>, frame: Uint8Array) =>
  Effect.map(Effect.exit(Encode.decodeValues(codec, ["k"], [Framing.frame(frame)])), (exit) =>
    Exit.isSuccess(exit)
      ? { bytes: exit.value[0]! }
      : { error: exit.cause.reasons.map((r) => (r._tag === "Fail" ? r.error : r._tag)).at(0) }
  )

const expectDecodeError = (result: { readonly bytes?: Uint8Array; readonly error?: unknown }, what: string) => {
  expect(result.bytes === undefined ? undefined : `${result.bytes.byteLength} bytes`, what).toBeUndefined()
  expect(result.error, what).toBeInstanceOf(Encode.CodecError)
  expect((result.error as Encode.CodecError).reason, what).toBe("Decode")
}

/** ArrayBuffer memory now, after a collection when the process allows one. */
const arrayBuffers = (): number => {
  ;(globalThis as { gc?: () => void }).gc?.()
  return process.memoryUsage().arrayBuffers
}

/** Runs `body` and checks that ArrayBuffer memory did not grow by `limit` bytes meanwhile. */
const withinMemory = <A, E, R>(limit: number, body: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const before = arrayBuffers()
    const result = yield* body
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(limit)
    return result
  })

/** 785 bytes of bzip2 that decode to 1 GiB of zeros: `bz2.compress(bytes(2**30))` from Python. */
const BZ2_BOMB = Buffer.from(
  "QlpoOTFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1lIfF/JAIpSyADAAAAEAAggADDMBSmmkSJDYUSJDxdyRThQkPaI5AI=",
  "base64"
)

/**
 * A 64 KiB zstd frame that decodes to 2 GiB: a header declaring 2^31 bytes,
 * then 16384 run-length blocks of 128 KiB (4 bytes each).
 */
const zstdBomb = (): Uint8Array => {
  const blocks = 2 ** 31 / 2 ** 17
  const out = Buffer.alloc(4 + 1 + 8 + 4 * blocks)
  out.writeUInt32LE(0xfd2fb528, 0)
  out[4] = 0xe0 // an 8-byte content size, single segment, no checksum
  out.writeBigUInt64LE(2n ** 31n, 5)
  for (let b = 0; b < blocks; b++) {
    const last = b === blocks - 1 ? 1 : 0
    out.writeUIntLE(last | (1 << 1) | ((2 ** 17) << 3), 13 + 4 * b, 3) // an RLE block of 128 KiB
    out[13 + 4 * b + 3] = 0
  }
  return out
}

describe("blosc never returns wrong bytes as success", () => {
  it.effect("every single-byte flip of a frame this codec wrote fails with Decode", () =>
    Effect.gen(function* () {
      const codec = yield* Compression.codec("blosc")
      const frame = yield* Effect.promise(async () => await codec.encode(data))
      expect(hex((yield* decodeFrame(codec, frame)).bytes!)).toBe(hex(data))
      for (let i = 0; i < frame.byteLength; i++) {
        for (const x of [0x01, 0xff]) {
          const flipped = frame.slice()
          flipped[i]! ^= x
          expectDecodeError(yield* decodeFrame(codec, flipped), `byte ${i} ^ ${x}`)
        }
      }
    })
  )

  it.effect("a frame as c-blosc writes it: flips in its header, block starts and split lengths fail with Decode", () =>
    Effect.gen(function* () {
      const codec = yield* Compression.codec("blosc")
      const writer = Blosc.fromConfig({ id: "blosc", clevel: 9, cname: "blosclz", shuffle: 1, blocksize: 0 })
      const frame = yield* Effect.promise(() => writer.encode(data) as Promise<Uint8Array>)
      expect(hex((yield* decodeFrame(codec, frame)).bytes!)).toBe(hex(data))
      const view = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength)
      // Byte 2's low bit (shuffle) is the one header bit whose flip leaves a valid frame: blosc 1 has no checksum.
      const positions = [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
      let split = view.readUInt32LE(16)
      for (let s = 0; s < 4; s++) {
        positions.push(split, split + 1, split + 2, split + 3)
        split += 4 + view.readUInt32LE(split)
      }
      for (const i of positions) {
        for (const x of [0x01, 0x80, 0xff]) {
          const flipped = frame.slice()
          flipped[i]! ^= x
          expectDecodeError(yield* decodeFrame(codec, flipped), `byte ${i} ^ ${x}`)
        }
      }
    })
  )

  it.effect("100 random bytes, a truncated frame and a frame with a byte too many fail with Decode", () =>
    Effect.gen(function* () {
      const codec = yield* Compression.codec("blosc")
      const frame = yield* Effect.promise(async () => await codec.encode(data))
      let seed = 7
      const random = Uint8Array.from({ length: 100 }, () => {
        seed = (seed * 1103515245 + 12345) >>> 0
        return seed >>> 24
      })
      expectDecodeError(yield* decodeFrame(codec, random), "random bytes")
      expectDecodeError(yield* decodeFrame(codec, frame.subarray(0, frame.byteLength - 50)), "truncated")
      expectDecodeError(yield* decodeFrame(codec, frame.subarray(0, 16)), "header only")
      expectDecodeError(yield* decodeFrame(codec, Buffer.concat([frame, Uint8Array.of(0)])), "a byte too many")
    })
  )

  it.live("a 216-byte frame claiming 1.9 GiB fails with Decode before allocating, whatever the bound", () =>
    Effect.gen(function* () {
      const frame = Buffer.alloc(216)
      frame.set([2, 1, 0, 1]) // version 2, blosclz, no shuffle, typesize 1
      frame.writeUInt32LE(0x7a000000, 4) // nbytes: 1.9 GiB
      frame.writeUInt32LE(0x7a000000, 8) // one block
      frame.writeUInt32LE(216, 12)
      frame.writeUInt32LE(20, 16) // the block starts after the table
      frame.writeUInt32LE(216 - 24, 20) // one split, to the end of the frame
      for (let i = 24; i < 216; i++) frame[i] = 0xe0 | (i & 31)
      for (const maxDecodedBytes of [undefined, 4 * 1024 * MiB]) {
        const codec = yield* Compression.codec("blosc", maxDecodedBytes === undefined ? {} : { maxDecodedBytes })
        expectDecodeError(yield* withinMemory(16 * MiB, decodeFrame(codec, frame)), `bound ${maxDecodedBytes}`)
      }
    })
  )
})

describe("maxDecodedBytes: a frame that decodes past the bound fails with Decode, without allocating it", () => {
  it.live("785 bytes of bz2 that decode to 1 GiB", () =>
    Effect.gen(function* () {
      const codec = yield* Compression.codec("bz2", { maxDecodedBytes: 8 * MiB })
      expectDecodeError(yield* withinMemory(64 * MiB, decodeFrame(codec, BZ2_BOMB)), "bz2 bomb")
    })
  )

  it.live("64 KiB of zstd that decode to 2 GiB, under the default bound", () =>
    Effect.gen(function* () {
      const codec = yield* Compression.codec("zstd")
      const result = yield* withinMemory(64 * MiB, decodeFrame(codec, zstdBomb()))
      expectDecodeError(result, "zstd bomb")
      expect(String((result.error as Encode.CodecError).description)).toContain("maxDecodedBytes")
    })
  )

  it.live("zstd frames that do not declare their size stop at the bound", () =>
    Effect.gen(function* () {
      const codec = yield* Compression.codec("zstd", { maxDecodedBytes: MiB })
      // node:zlib's streaming frames carry no content size.
      const frame = zlib.zstdCompressSync(Buffer.alloc(256 * MiB))
      expectDecodeError(yield* withinMemory(32 * MiB, decodeFrame(codec, frame)), "zstd without a size")
      const small = zlib.zstdCompressSync(data)
      expect(hex((yield* decodeFrame(codec, small)).bytes!)).toBe(hex(data))
    })
  )

  it.live("zlib, gzip and brotli stop at the bound", () =>
    Effect.gen(function* () {
      const zeros = Buffer.alloc(64 * MiB)
      const brotli = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } }
      const bombs = [
        ["zlib", zlib.deflateSync(zeros)],
        ["gzip", zlib.gzipSync(zeros)],
        ["brotli", zlib.brotliCompressSync(zeros, brotli)]
      ] as const
      for (const [algorithm, frame] of bombs) {
        const codec = yield* Compression.codec(algorithm, { maxDecodedBytes: MiB })
        expectDecodeError(yield* withinMemory(32 * MiB, decodeFrame(codec, frame)), algorithm)
      }
    })
  )

  it.effect("snappy, lz4 blocks and frames, and blosc refuse frames that decode past the bound", () =>
    Effect.gen(function* () {
      const big = Buffer.concat(Array.from({ length: 40 }, (_, i) => Buffer.concat([data, text(String(i))])))
      for (const [algorithm, options] of [
        ["snappy", {}],
        ["lz4", {}],
        ["lz4", { format: "frame" }],
        ["blosc", {}]
      ] as const) {
        const writer = yield* Compression.codec(algorithm, options)
        const frame = yield* Effect.promise(async () => await writer.encode(big))
        const bounded = yield* Compression.codec(algorithm, { ...options, maxDecodedBytes: big.byteLength - 1 })
        expectDecodeError(yield* decodeFrame(bounded, frame), `${algorithm} ${JSON.stringify(options)}`)
        const exact = yield* Compression.codec(algorithm, { ...options, maxDecodedBytes: big.byteLength })
        expect(hex((yield* decodeFrame(exact, frame)).bytes!)).toBe(hex(big))
      }
    })
  )

  it.live("the bound holds in worker threads too", () =>
    Effect.gen(function* () {
      const codec = yield* Compression.codec("zstd", { workers: 1, parallelFrom: 1, maxDecodedBytes: MiB })
      const frames = [zlib.zstdCompressSync(data), zstdBomb()]
      const failure = yield* Effect.promise(() =>
        Promise.resolve(codec.decodeAll!(frames)).then(
          () => undefined,
          (error: unknown) => error as { readonly index?: number; readonly message?: string }
        )
      )
      expect(failure?.index).toBe(1)
      expect(failure?.message).toContain("maxDecodedBytes")
    })
  )

  it.effect("a bound that is not a positive integer is a defect when the codec is built", () =>
    Effect.gen(function* () {
      for (const maxDecodedBytes of [0, -1, 1.5]) {
        const exit = yield* Effect.exit(Compression.codec("zlib", { maxDecodedBytes }))
        expect(Exit.isFailure(exit) && exit.cause.reasons.some((r) => r._tag === "Die")).toBe(true)
      }
    })
  )
})

describe("formats with a checksum carry one by default", () => {
  it.effect("zstd frames carry a content checksum, and a flipped byte fails with Decode", () =>
    Effect.gen(function* () {
      const codec = yield* Compression.codec("zstd")
      const frame = yield* Effect.promise(async () => await codec.encode(data))
      expect(frame[4]! & 0x04).toBe(0x04) // Frame_Header_Descriptor: Content_Checksum_flag
      for (let i = 6; i < frame.byteLength; i += 7) {
        const flipped = frame.slice()
        flipped[i]! ^= 0x01
        expectDecodeError(yield* decodeFrame(codec, flipped), `byte ${i}`)
      }
      const without = yield* Compression.codec("zstd", { checksum: false })
      expect((yield* Effect.promise(async () => await without.encode(data)))[4]! & 0x04).toBe(0)
    })
  )

  it.effect("LZ4 frames carry a content checksum, and a flipped byte fails with Decode", () =>
    Effect.gen(function* () {
      const codec = yield* Compression.codec("lz4", { format: "frame" })
      const frame = yield* Effect.promise(async () => await codec.encode(data))
      expect(frame[4]! & 0x04).toBe(0x04) // FLG: C.Checksum
      for (let i = 7; i < frame.byteLength; i += 7) {
        const flipped = frame.slice()
        flipped[i]! ^= 0x01
        expectDecodeError(yield* decodeFrame(codec, flipped), `byte ${i}`)
      }
    })
  )
})
