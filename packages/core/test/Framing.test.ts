import { describe, expect, it } from "@effect/vitest"
import { Framing, Pieces } from "@partd/core"
import { Effect, Exit, Stream } from "effect"
import * as fc from "fast-check"

/** Several payloads framed one after the other: what a value holds after appending each in turn. */
const frameAll = (payloads: ReadonlyArray<Uint8Array>): Uint8Array =>
  new Uint8Array(globalThis.Buffer.concat(payloads.map((payload) => Framing.frame(payload))))

describe("Framing", () => {
  it("frames are an 8-byte little-endian length then the payload, as partd's struct.pack('Q')", () => {
    const framed = Framing.frame(Uint8Array.of(7, 8, 9))
    expect(Array.from(framed)).toEqual([3, 0, 0, 0, 0, 0, 0, 0, 7, 8, 9])
    const header = new Uint8Array(8)
    Framing.writeHeader(header, 0, 2 ** 40 + 5)
    expect(Array.from(header)).toEqual([5, 0, 0, 0, 0, 1, 0, 0])
    expect(Framing.readHeader(header, 0)).toBe(2 ** 40 + 5)
  })

  it("split inverts frameAll for any payloads", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 10 }), (payloads) => {
        const { frames, torn } = Framing.split(frameAll(payloads))
        expect(torn).toBeUndefined()
        expect(frames.map((f) => Array.from(f))).toEqual(payloads.map((p) => Array.from(p)))
      })
    )
  })

  it("any cut inside the last frame is reported as torn, with every complete frame before it", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 20 }), { minLength: 1, maxLength: 6 }),
        fc.nat(),
        (payloads, at) => {
          const whole = frameAll(payloads)
          const lastStart = whole.byteLength - 8 - payloads[payloads.length - 1]!.byteLength
          const cut = lastStart + 1 + (at % (whole.byteLength - lastStart - 1 || 1))
          if (cut >= whole.byteLength) return
          const { frames, torn } = Framing.split(whole.subarray(0, cut))
          expect(frames.length).toBe(payloads.length - 1)
          expect(torn?.offset).toBe(lastStart)
          expect(torn?.available).toBe(cut - lastStart)
          expect(Framing.describeTorn(torn!)).toMatch(/torn trailing frame/)
        }
      )
    )
  })

  it("a header that announces more than any buffer holds is torn, not a huge allocation", () => {
    const bad = new Uint8Array(16).fill(0xff)
    const { frames, torn } = Framing.split(bad)
    expect(frames).toEqual([])
    expect(torn?.declared).toBeGreaterThan(Number.MAX_SAFE_INTEGER)
  })
})

/** `bytes` cut at the given offsets into pieces, as a store's stream would yield it. */
const cutAt = (bytes: Uint8Array, sizes: ReadonlyArray<number>): Array<Uint8Array> => {
  const pieces: Array<Uint8Array> = []
  let offset = 0
  let s = 0
  while (offset < bytes.byteLength) {
    const size = Math.max(1, sizes.length === 0 ? bytes.byteLength : sizes[s++ % sizes.length]!)
    pieces.push(bytes.slice(offset, offset + size))
    offset += size
  }
  return pieces
}

const hexes = (arrays: ReadonlyArray<Uint8Array>) => arrays.map((a) => Buffer.from(a).toString("hex"))

describe("Framing.frames: frames read from a stream of pieces", () => {
  it.effect("yields every payload whatever the pieces, as split does", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 10 }),
          fc.array(fc.integer({ min: 1, max: 30 }), { maxLength: 5 }),
          async (payloads, sizes) => {
            const pieces = cutAt(frameAll(payloads), sizes)
            const frames = await Effect.runPromise(
              Stream.runCollect(Framing.frames(Stream.fromIterable(pieces), () => "torn" as const))
            )
            expect(hexes(frames)).toEqual(hexes(payloads))
          }
        )
      )
    )
  )

  it.effect("a torn tail fails after every complete frame, with where it starts", () =>
    Effect.gen(function* () {
      const payloads = [Uint8Array.of(1, 2, 3), new Uint8Array(0), Uint8Array.of(4)]
      const whole = frameAll(payloads)
      for (const tail of [Uint8Array.of(9, 0, 0), Framing.frame(new Uint8Array(50)).subarray(0, 20)]) {
        const value = new Uint8Array([...whole, ...tail])
        const seen: Array<Uint8Array> = []
        const exit = yield* Effect.exit(
          Stream.runForEach(
            Framing.frames(Stream.fromIterable(cutAt(value, [5])), (torn) => torn),
            (frame) => Effect.sync(() => seen.push(frame))
          )
        )
        expect(hexes(seen)).toEqual(hexes(payloads))
        expect(Exit.isFailure(exit) && Exit.findErrorOption(exit)).toMatchObject({
          _tag: "Some",
          value: { offset: whole.byteLength, available: tail.byteLength }
        })
      }
    })
  )

  it.effect("a header announcing more than any buffer holds waits for bytes, then is torn at the end", () =>
    Effect.gen(function* () {
      const pieces = cutAt(new Uint8Array(64).fill(0xff), [7])
      const exit = yield* Effect.exit(
        Stream.runCollect(Framing.frames(Stream.fromIterable(pieces), (torn) => torn.declared))
      )
      expect(Exit.isFailure(exit)).toBe(true)
    })
  )

  it.effect("an input failure comes after the frames complete before it", () =>
    Effect.gen(function* () {
      const input = Stream.concat(Stream.fromIterable(cutAt(frameAll([Uint8Array.of(7)]), [3])), Stream.fail("disk"))
      const seen: Array<Uint8Array> = []
      const exit = yield* Effect.exit(
        Stream.runForEach(
          Framing.frames(input, () => "torn"),
          (frame) => Effect.sync(() => seen.push(frame))
        )
      )
      expect(hexes(seen)).toEqual(["07"])
      expect(Exit.isFailure(exit) && Exit.findErrorOption(exit)).toMatchObject({ _tag: "Some", value: "disk" })
    })
  )
})

describe("Pieces", () => {
  it.effect("fromChunks, cut and takeBytes give pieces of at most chunkBytes that join to the input", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(fc.uint8Array({ maxLength: 50 }), { maxLength: 8 }),
          fc.integer({ min: 1, max: 40 }),
          fc.nat({ max: 400 }),
          async (chunks, chunkBytes, take) => {
            const whole = Buffer.concat(chunks)
            const check = (pieces: ReadonlyArray<Uint8Array>, expected: Uint8Array) => {
              expect(pieces.every((p) => p.byteLength <= chunkBytes)).toBe(true)
              expect(Buffer.concat(pieces).toString("hex")).toBe(Buffer.from(expected).toString("hex"))
            }
            const run = <E>(stream: Stream.Stream<Uint8Array, E>) =>
              Effect.runPromise(Stream.runCollect(stream) as unknown as Effect.Effect<ReadonlyArray<Uint8Array>>)
            const fromChunks = await run(Pieces.fromChunks(chunks, whole.byteLength, chunkBytes))
            check(fromChunks, whole)
            // Every piece but the last is full.
            expect(fromChunks.slice(0, -1).every((p) => p.byteLength === chunkBytes)).toBe(true)
            check(await run(Pieces.cut(Stream.fromIterable(chunks), chunkBytes)), whole)
            check(
              await run(Pieces.takeBytes(Pieces.fromChunks(chunks, whole.byteLength, chunkBytes), take)),
              whole.subarray(0, take)
            )
          }
        )
      )
    )
  )

  it.effect("cut yields what it holds before an input failure", () =>
    Effect.gen(function* () {
      const seen: Array<Uint8Array> = []
      const input = Stream.concat(Stream.make(Uint8Array.of(1, 2), Uint8Array.of(3)), Stream.fail("late"))
      const exit = yield* Effect.exit(
        Stream.runForEach(Pieces.cut(input, 16), (piece) => Effect.sync(() => seen.push(piece)))
      )
      expect(hexes(seen)).toEqual(["010203"])
      expect(Exit.isFailure(exit)).toBe(true)
    })
  )
})
