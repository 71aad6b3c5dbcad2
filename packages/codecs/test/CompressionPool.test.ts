/**
 * The worker pool replaces a thread that exits: calls in flight when it
 * dies are redone on the calling thread, later calls complete, and the slot
 * gets a new thread.
 */
import { describe, expect, it } from "@effect/vitest"
import { Compression } from "@partd/codecs"
import * as CompressionPool from "@partd/codecs/CompressionPool"
import { Effect } from "effect"

const text = (s: string) => new TextEncoder().encode(s)
const hex = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString("hex")
const chunks = Array.from({ length: 40 }, (_, i) => text(`chunk ${i} `.repeat(200 + i)))

/** Waits (up to 20 s) until `condition` holds. */
const eventually = (condition: () => boolean, what: string): Effect.Effect<void> =>
  Effect.promise(async () => {
    for (let waited = 0; !condition(); waited += 50) {
      if (waited > 20_000) throw new Error(`${what}: not after 20 s`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  })

/** Fails instead of hanging when a call never settles. */
const settles = <A>(promise: Promise<A>, what: string): Effect.Effect<A> =>
  Effect.promise(() =>
    Promise.race([
      promise,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} never settled`)), 10_000).unref())
    ])
  )

describe("CompressionPool", () => {
  it.live("a worker that exits is replaced: later calls complete with the same bytes", () =>
    Effect.gen(function* () {
      const inline = yield* Compression.codec("zlib")
      const expected = chunks.map((c) => hex(inline.encode(c) as Uint8Array))
      const pool = yield* CompressionPool.make(2, { algorithm: "zlib", options: {} })
      expect(pool.threads()).toHaveLength(2)
      const [first] = pool.threads()
      yield* Effect.promise(() => first!.terminate())
      for (let call = 0; call < 3; call++) {
        const encoded = yield* settles(pool.run("encode", inline.encode, chunks), `call ${call}`)
        expect(encoded.map(hex)).toEqual(expected)
      }
      // The slot gets a thread again, not the one that exited, and calls go to it.
      yield* eventually(() => pool.threads().length === 2, "a replacement thread")
      expect(pool.threads()).not.toContain(first)
      const decoded = yield* settles(
        pool.run(
          "decode",
          inline.decode,
          chunks.map((c) => inline.encode(c) as Uint8Array)
        ),
        "decode"
      )
      expect(decoded.map(hex)).toEqual(chunks.map(hex))
    })
  )

  it.live("a call in flight when its worker exits completes on the calling thread", () =>
    Effect.gen(function* () {
      const inline = yield* Compression.codec("zstd")
      const pool = yield* CompressionPool.make(1, { algorithm: "zstd", options: {} })
      const [worker] = pool.threads()
      const call = pool.run("encode", inline.encode, chunks)
      yield* Effect.promise(() => worker!.terminate())
      const encoded = yield* settles(call, "the call in flight")
      const decoded = yield* Effect.promise(async () => await Promise.all(encoded.map((e) => inline.decode(e))))
      expect(decoded.map(hex)).toEqual(chunks.map(hex))
    })
  )

  it.live("every worker exiting at once leaves calls to the calling thread and new threads", () =>
    Effect.gen(function* () {
      const inline = yield* Compression.codec("lz4")
      const pool = yield* CompressionPool.make(2, { algorithm: "lz4", options: {} })
      yield* Effect.promise(() => Promise.all(pool.threads().map((w) => w.terminate())))
      expect(pool.threads()).toHaveLength(0)
      const encoded = yield* settles(pool.run("encode", inline.encode, chunks), "after every worker exited")
      expect(encoded.map(hex)).toEqual(chunks.map((c) => hex(inline.encode(c) as Uint8Array)))
      yield* eventually(() => pool.threads().length === 2, "replacement threads")
      const again = yield* settles(pool.run("encode", inline.encode, chunks), "with the replacements")
      expect(again.map(hex)).toEqual(encoded.map(hex))
    })
  )
})
