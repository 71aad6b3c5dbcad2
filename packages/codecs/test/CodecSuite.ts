/**
 * The codec suite: every codec runs it over every backend given, with
 * round-trip property tests (append values in random calls and keys, get the
 * join), the empty value, iset/delete/drop, rejected values, and a torn
 * trailing write that must fail typed while recovering the complete part.
 */
import { describe, expect, it } from "@effect/vitest"
import { Encode, Framing, Store } from "@partd/core"
import { Context, Effect, Exit, Layer, type Scope, Stream } from "effect"
import * as fc from "fast-check"

/** A backend to run codecs over: a fresh store per call. */
export interface Backend {
  readonly name: string
  readonly layer: () => Layer.Layer<Store.Store, unknown>
}

/** What the suite needs to know about one codec. */
export interface CodecCase<A, J, S> {
  readonly name: string
  /** The typed store over a byte store. */
  readonly make: (inner: Store.Shape) => Effect.Effect<Encode.EncodedStore<A, J, S>, never, Scope.Scope>
  /** What `stream` yields, joined into what `get` returns (e.g. Msgpack's elements into one list). */
  readonly joinStreamed: (items: ReadonlyArray<S>) => J
  /** Random values to append. */
  readonly arbitrary: fc.Arbitrary<A>
  /** The model: what `get` must return for these appended values, normalized. */
  readonly expected: (values: ReadonlyArray<A>) => unknown
  /** Normalizes what `get` returns for comparison with `toEqual` (default: itself). */
  readonly normalize?: (value: J) => unknown
  /** Values `append` must reject with an `Encode` CodecError (or BadValue). */
  readonly invalid?: ReadonlyArray<unknown>
  /**
   * Writes the raw bytes of a torn append of `value` to `inner` (default: a
   * frame header that promises more bytes than follow).
   */
  readonly tearAppend?: (inner: Store.Shape, key: string, value: A) => Effect.Effect<void, unknown>
  /** Whether an append can be torn at all (1-byte items cannot; default true). */
  readonly tearable?: boolean
  /** Property runs (default 20). */
  readonly runs?: number
}

/** A byte store seen as a typed store of bytes, so compressions run the same suite. */
export const fromByteStore = (store: Store.Shape): Encode.EncodedStore<Uint8Array> => ({
  codec: "bytes-store",
  append: (data, options) => store.append(data, options),
  stream: (key, options) => store.stream(key, options),
  keys: store.keys,
  size: (keys) => store.size(keys),
  get: (keys) => store.get(keys),
  getOne: (key) => Store.getOneFrom(store, key),
  iset: (key, value) => store.iset(key, value),
  delete: (keys) => store.delete(keys),
  drop: store.drop
})

class Inner extends Context.Service<Inner, Store.Shape>()("test/CodecSuite/Inner") {}

const defaultTear = (inner: Store.Shape, key: string) => {
  const torn = new Uint8Array(Framing.HEADER_BYTES + 3)
  Framing.writeHeader(torn, 0, 1000)
  return inner.append({ [key]: torn })
}

const failureOf = <A, E>(exit: Exit.Exit<A, E>): unknown => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return reason?._tag === "Fail" ? reason.error : "defect"
}

export const codecSuite = <A, J, S>(codec: CodecCase<A, J, S>, backends: ReadonlyArray<Backend>): void => {
  const normalize = codec.normalize ?? ((j: J): unknown => j)
  const model = codec.expected
  for (const backend of backends) {
    /** Runs `body` with the typed store and the byte store under it, on a fresh backend. */
    const withStores = <X>(
      body: (store: Encode.EncodedStore<A, J, S>, inner: Store.Shape) => Effect.Effect<X, unknown, Scope.Scope>
    ) =>
      Effect.scoped(
        Effect.gen(function* () {
          const inner = yield* Inner
          const store = yield* codec.make(inner)
          return yield* body(store, inner)
        })
      ).pipe(Effect.provide(Layer.effect(Inner, Store.Store).pipe(Layer.provide(Layer.fresh(backend.layer())))))

    describe(`codec ${codec.name} over ${backend.name}`, () => {
      it.live("round trip: values appended in random calls and keys get back as their join", () =>
        Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(
              fc.array(fc.tuple(fc.constantFrom("a", "b", "c/d"), codec.arbitrary), { maxLength: 12 }),
              fc.integer({ min: 1, max: 4 }),
              (entries, perCall) =>
                Effect.runPromise(
                  withStores((store) =>
                    Effect.gen(function* () {
                      for (let i = 0; i < entries.length; i += perCall) {
                        yield* store.append(entries.slice(i, i + perCall))
                      }
                      const keys = ["a", "b", "c/d", "missing"]
                      const got = yield* store.get(keys)
                      for (let k = 0; k < keys.length; k++) {
                        const values = entries.filter(([key]) => key === keys[k]).map(([, v]) => v)
                        expect(normalize(got[k]!), keys[k]).toEqual(model(values))
                      }
                      return true
                    })
                  ) as Effect.Effect<boolean>
                )
            ),
            { numRuns: codec.runs ?? 20 }
          )
        )
      )

      it.live("append N values one call each, get their join", () =>
        withStores((store) =>
          Effect.gen(function* () {
            const values = fc.sample(codec.arbitrary, { numRuns: 25, seed: 42 })
            for (const value of values) yield* store.append([["k", value]])
            expect(normalize(yield* store.getOne("k"))).toEqual(model(values))
            expect(normalize(yield* store.getOne("nothing"))).toEqual(model([]))
          })
        )
      )

      it.live("stream yields the appended values frame by frame, in pieces of any size; keys and size", () =>
        withStores((store, inner) =>
          Effect.gen(function* () {
            const values = fc.sample(codec.arbitrary, { numRuns: 30, seed: 5 })
            for (let i = 0; i < values.length; i += 3) {
              yield* store.append(values.slice(i, i + 3).map((value) => ["k", value] as const))
            }
            yield* store.append([[["t", 1], values[0]!]])
            // Pieces smaller than a frame header, and larger than the whole value.
            for (const chunkBytes of [3, 64, 1 << 20]) {
              const items = yield* Stream.runCollect(store.stream("k", { chunkBytes }))
              expect(normalize(codec.joinStreamed(items)), `chunkBytes ${chunkBytes}`).toEqual(model(values))
            }
            expect(yield* Stream.runCollect(store.stream("missing"))).toEqual([])
            const keys = (yield* Stream.runCollect(store.keys)).slice().sort()
            expect(keys.filter((key) => !key.endsWith(".dtype"))).toEqual(["k", "t/1"])
            const [size, missing] = yield* store.size(["k", "missing"])
            expect(size).toBe((yield* Store.getOneFrom(inner, "k")).byteLength)
            expect(missing).toBe(0)
          })
        )
      )

      it.live("iset sets once; delete and drop remove", () =>
        withStores((store) =>
          Effect.gen(function* () {
            const [v1, v2] = fc.sample(codec.arbitrary, { numRuns: 2, seed: 7 })
            yield* store.iset("s", v1!)
            yield* store.iset("s", v2!)
            expect(normalize(yield* store.getOne("s"))).toEqual(model([v1!]))
            yield* store.append([["t", v2!]])
            yield* store.delete(["s"])
            expect(normalize(yield* store.getOne("s"))).toEqual(model([]))
            expect(normalize(yield* store.getOne("t"))).toEqual(model([v2!]))
            yield* store.drop
            expect(normalize(yield* store.getOne("t"))).toEqual(model([]))
          })
        )
      )

      if (codec.invalid !== undefined && codec.invalid.length > 0) {
        it.live("values the codec cannot encode fail typed and write nothing", () =>
          withStores((store) =>
            Effect.gen(function* () {
              const [good] = fc.sample(codec.arbitrary, { numRuns: 1, seed: 3 })
              for (const bad of codec.invalid!) {
                const exit = yield* Effect.exit(
                  store.append([
                    ["good", good!],
                    ["bad", bad as A]
                  ])
                )
                const error = failureOf(exit)
                const codecError = Encode.codecErrorOf(error)
                const ok =
                  codecError?.reason === "Encode" || (error instanceof Store.StoreError && error.reason === "BadValue")
                expect(ok, `${String(bad)} gave ${String(error)}`).toBe(true)
              }
              expect(normalize(yield* store.getOne("good"))).toEqual(model([]))
            })
          )
        )
      }

      if (codec.tearable === false) return
      it.live("a torn trailing append fails typed and recovers the complete values", () =>
        withStores((store, inner) =>
          Effect.gen(function* () {
            const values = fc.sample(codec.arbitrary, { numRuns: 3, seed: 11 })
            for (const value of values) yield* store.append([["k", value]])
            yield* (codec.tearAppend ?? defaultTear)(inner, "k", values[0]!)
            const error = failureOf(yield* Effect.exit(store.getOne("k")))
            const codecError = Encode.codecErrorOf(error)
            expect(codecError?.reason, String(error)).toBe("TornFrame")
            expect(codecError?.key).toBe("k")
            expect(normalize(codecError!.recovered as J)).toEqual(model(values))
            // Streamed: every complete value first, then the same typed error.
            const items: Array<S> = []
            const streamed = yield* Effect.exit(
              Stream.runForEach(store.stream("k", { chunkBytes: 5 }), (item) => Effect.sync(() => items.push(item)))
            )
            const streamError = Encode.codecErrorOf(failureOf(streamed))
            expect(streamError?.reason, String(failureOf(streamed))).toBe("TornFrame")
            expect(streamError?.key).toBe("k")
            expect(normalize(codec.joinStreamed(items))).toEqual(model(values))
          })
        )
      )
    })
  }
}
