/**
 * The Store conformance suite: every backend runs it by calling
 * `suite(name, layer, capabilities)` from its own test file, with
 * backend-specific checks next to the call.
 *
 * Each case builds the Layer afresh, so cases never see each other's data.
 */

import { describe, expect, it } from "@effect/vitest"
import { Key, Store } from "@partd/core"
import { Context, Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import * as fc from "fast-check"

/**
 * What a backend can do, where backends legitimately differ.
 */
export interface Capabilities {
  /** The largest single value the backend is asked to hold (default 64 MiB). */
  readonly maxValueBytes?: number
  /** Per-case timeout in milliseconds for the heavy cases (default 60 s). */
  readonly timeout?: number
  /** How many property-test runs (default 25). */
  readonly propertyRuns?: number
  /**
   * `size` counts the encoded bytes the store keeps (a compression), not the
   * bytes `get` returns, so it cannot equal `get(...).byteLength`: the size
   * cases then check that it is positive exactly for the keys holding bytes.
   * Every appended value is kept as a frame, an empty one too, so for such a
   * store a key appended only empty values holds bytes (and `keys` lists it).
   */
  readonly sizeIsEncoded?: boolean
}

const encoder = new TextEncoder()
const bytes = (s: string): Uint8Array => encoder.encode(s)
const text = (u: Uint8Array): string => new TextDecoder().decode(u)

/** Bytes `[start, start+1, …]` modulo 256, length `n`. */
export const pattern = (n: number, start = 0): Uint8Array => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (start + i) & 0xff
  return out
}

const expectBytes = (actual: Uint8Array | undefined, expected: Uint8Array): void => {
  expect(actual).toBeInstanceOf(Uint8Array)
  expect(actual!.byteLength).toBe(expected.byteLength)
  expect(Buffer.from(actual!).equals(Buffer.from(expected))).toBe(true)
}

/** The reason a failed effect's StoreError carries. */
const failureReason = <A>(exit: Exit.Exit<A, Store.StoreError>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")
  return error?._tag === "Fail" ? (error.error as Store.StoreError).reason : "defect"
}

type Op =
  | { readonly op: "append"; readonly entries: ReadonlyArray<readonly [string, Uint8Array]> }
  | { readonly op: "get"; readonly keys: ReadonlyArray<string> }
  | { readonly op: "delete"; readonly keys: ReadonlyArray<string> }
  | { readonly op: "iset"; readonly key: string; readonly value: Uint8Array }
  | { readonly op: "drop" }
  | { readonly op: "stream"; readonly key: string; readonly chunkBytes: number }
  | { readonly op: "keys" }
  | { readonly op: "size"; readonly keys: ReadonlyArray<string> }

const keyArb = fc.constantFrom("a", "b", "c", "d/e", "x.y", "ü")
const valueArb = fc.uint8Array({ maxLength: 24 })
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant("append" as const),
      entries: fc.array(fc.tuple(keyArb, valueArb), { maxLength: 4 })
    })
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("get" as const), keys: fc.array(keyArb, { maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("delete" as const), keys: fc.array(keyArb, { maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("iset" as const), key: keyArb, value: valueArb }) },
  { weight: 1, arbitrary: fc.constant({ op: "drop" as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("stream" as const),
      key: keyArb,
      chunkBytes: fc.integer({ min: 1, max: 9 })
    })
  },
  { weight: 1, arbitrary: fc.constant({ op: "keys" as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("size" as const), keys: fc.array(keyArb, { maxLength: 4 }) }) }
)

/** Runs ops against the store and a Map model; fails on the first divergence. */
const runModel = (ops: ReadonlyArray<Op>, sizeIsEncoded: boolean) =>
  Effect.gen(function* () {
    const store = yield* Store.Store
    const model = new Map<string, Uint8Array>()
    const isetSeen = new Set<string>()
    // The keys written to since their last delete or drop: what an encoding store holds frames for.
    const written = new Set<string>()
    /** Whether the store holds bytes for `key`: encoded frames, or else bytes of its value. */
    const holds = (key: string): boolean => (sizeIsEncoded ? written.has(key) : (model.get(key)?.byteLength ?? 0) > 0)
    for (const op of ops) {
      switch (op.op) {
        case "append": {
          yield* store.append(op.entries)
          for (const [k, v] of op.entries) {
            model.set(k, Buffer.concat([model.get(k) ?? new Uint8Array(0), v]))
            written.add(k)
          }
          break
        }
        case "get": {
          const values = yield* store.get(op.keys)
          op.keys.forEach((k, i) => {
            expectBytes(values[i], model.get(k) ?? new Uint8Array(0))
          })
          break
        }
        case "delete": {
          yield* store.delete(op.keys)
          for (const k of op.keys) {
            model.delete(k)
            isetSeen.delete(k)
            written.delete(k)
          }
          break
        }
        case "iset": {
          yield* store.iset(op.key, op.value)
          if (!isetSeen.has(op.key)) {
            model.set(op.key, op.value)
            isetSeen.add(op.key)
            written.add(op.key)
          }
          break
        }
        case "drop": {
          yield* store.drop
          model.clear()
          isetSeen.clear()
          written.clear()
          break
        }
        case "stream": {
          const pieces = yield* Stream.runCollect(store.stream(op.key, { chunkBytes: op.chunkBytes }))
          expect(pieces.every((piece) => piece.byteLength <= op.chunkBytes)).toBe(true)
          expectBytes(Buffer.concat(pieces), model.get(op.key) ?? new Uint8Array(0))
          break
        }
        case "keys": {
          const held = Array.from(model.keys()).filter(holds)
          expect((yield* Stream.runCollect(store.keys)).slice().sort()).toEqual(held.sort())
          break
        }
        case "size": {
          const sizes = yield* store.size(op.keys)
          const expected = op.keys.map((k) => model.get(k)?.byteLength ?? 0)
          if (sizeIsEncoded) expect(sizes.map((n) => n > 0)).toEqual(op.keys.map(holds))
          else expect(sizes).toEqual(expected)
          break
        }
      }
    }
    const keys = Array.from(model, ([key]) => key)
    const values = yield* store.get(keys)
    keys.forEach((k, i) => {
      expectBytes(values[i], model.get(k)!)
    })
    return true
  })

/**
 * Registers the conformance cases for a store Layer.
 */
export const suite = <E>(name: string, layer: Layer.Layer<Store.Store, E>, capabilities: Capabilities = {}): void => {
  const timeout = capabilities.timeout ?? 60_000
  const maxValueBytes = capabilities.maxValueBytes ?? 64 * 1024 * 1024
  const fresh = <A, E2>(effect: Effect.Effect<A, E2, Store.Store>) =>
    Effect.provide(effect, Layer.fresh(layer)) as Effect.Effect<A, E | E2>

  describe(`Store conformance: ${name}`, () => {
    it.live("appends concatenate", () =>
      fresh(
        Effect.gen(function* () {
          yield* Store.append({ x: bytes("Hello, "), y: bytes("abc") })
          yield* Store.append({ x: bytes("world!") })
          yield* Store.append([["y", bytes("def")]])
          const [x, y] = yield* Store.get(["x", "y"])
          expect(text(x!)).toBe("Hello, world!")
          expect(text(y!)).toBe("abcdef")
        })
      )
    )

    it.live("a record appends its own keys, not ones it inherits", () =>
      fresh(
        Effect.gen(function* () {
          const record = Object.create({ inherited: bytes("no") }) as Record<string, Uint8Array>
          record.own = bytes("yes")
          yield* Store.append(record)
          expect((yield* Store.get(["own", "inherited"])).map(text)).toEqual(["yes", ""])
        })
      )
    )

    it.live("a key repeated in one append call keeps call order", () =>
      fresh(
        Effect.gen(function* () {
          yield* Store.append([
            ["k", bytes("1")],
            ["j", bytes("a")],
            ["k", bytes("2")],
            ["k", bytes("3")]
          ])
          expect(text(yield* Store.getOne("k"))).toBe("123")
          yield* Store.append(new Map([["k", bytes("4")]]))
          expect(text(yield* Store.getOne("k"))).toBe("1234")
        })
      )
    )

    it.live("appends in columns to a key set validated once", () =>
      fresh(
        Effect.gen(function* () {
          const store = yield* Store.Store
          const keys = yield* Store.keySet(["c1", ["c", 2], "c3"])
          yield* store.append(Store.columns(keys, [bytes("a"), bytes("b"), bytes("c")]))
          yield* store.append(Store.columns(keys, [bytes("A"), new Uint8Array(0), bytes("C")]))
          expect((yield* store.get(["c1", "c/2", "c3"])).map(text)).toEqual(["aA", "b", "cC"])
          // What a backend resolved per key set must not outlive deletes and drops.
          yield* store.delete(["c1"])
          yield* store.append(Store.columns(keys, [bytes("x"), bytes("y"), bytes("z")]))
          expect((yield* store.get(["c1", "c/2", "c3"])).map(text)).toEqual(["x", "by", "cCz"])
          yield* store.iset("c3", bytes("set"))
          yield* store.append(Store.columns(keys, [bytes("1"), bytes("2"), bytes("3")]))
          expect((yield* store.get(["c1", "c/2", "c3"])).map(text)).toEqual(["x1", "by2", "set3"])
          yield* store.drop
          yield* store.append(Store.columns(keys, [bytes("p"), bytes("q"), bytes("r")]))
          yield* store.append({ c1: bytes("s") })
          expect((yield* store.get(["c1", "c/2", "c3"])).map(text)).toEqual(["ps", "q", "r"])
          // Wrong shapes are typed errors that write nothing.
          expect(failureReason(yield* Effect.exit(store.append(Store.columns(keys, [bytes("1")]))))).toBe("BadValue")
          expect(
            failureReason(
              yield* Effect.exit(
                store.append(Store.columns(keys, [bytes("1"), "2" as unknown as Uint8Array, bytes("3")]))
              )
            )
          ).toBe("BadValue")
          expect(failureReason(yield* Effect.exit(Store.keySet(["ok", "../no"])))).toBe("BadKey")
          expect((yield* store.get(["c1"])).map(text)).toEqual(["ps"])
        })
      )
    )

    it.live("a missing key reads as empty bytes", () =>
      fresh(
        Effect.gen(function* () {
          const value = yield* Store.getOne("nothing-here")
          expect(value).toBeInstanceOf(Uint8Array)
          expect(value.byteLength).toBe(0)
          expect(yield* Store.get([])).toEqual([])
        })
      )
    )

    it.live("a multi-key get keeps the order of the keys", () =>
      fresh(
        Effect.gen(function* () {
          const keys = Array.from({ length: 50 }, (_, i) => `key-${i}`)
          yield* Store.append(keys.map((k) => [k, bytes(k)] as const))
          const order = [...keys].reverse().concat(["missing", "key-7", "key-7"])
          const values = yield* Store.get(order)
          expect(values.map(text)).toEqual([...keys].reverse().concat(["", "key-7", "key-7"]))
        })
      )
    )

    it.live("nested get returns nested lists", () =>
      fresh(
        Effect.gen(function* () {
          yield* Store.append({ x: bytes("X"), y: bytes("Y"), z: bytes("Z") })
          yield* Store.append([[["t", 1], bytes("T")]])
          const result = yield* Store.getNested(["x", ["y", "z", [Key.tuple("t", 1)]], []])
          expect(text(result[0] as Uint8Array)).toBe("X")
          const inner = result[1] as ReadonlyArray<unknown>
          expect(text(inner[0] as Uint8Array)).toBe("Y")
          expect(text(inner[1] as Uint8Array)).toBe("Z")
          expect(text((inner[2] as ReadonlyArray<Uint8Array>)[0]!)).toBe("T")
          expect(result[2]).toEqual([])
          expect(text(yield* Store.getNested("x"))).toBe("X")
        })
      )
    )

    it.live("iset writes only the first time for a key", () =>
      fresh(
        Effect.gen(function* () {
          yield* Store.iset("i", bytes("first"))
          yield* Store.iset("i", bytes("second"))
          expect(text(yield* Store.getOne("i"))).toBe("first")
          yield* Store.append({ i: bytes("+more") })
          yield* Store.iset("i", bytes("third"))
          expect(text(yield* Store.getOne("i"))).toBe("first+more")
          // iset replaces what append wrote before it
          yield* Store.append({ j: bytes("old") })
          yield* Store.iset("j", bytes("new"))
          expect(text(yield* Store.getOne("j"))).toBe("new")
          // after delete the key can be set again
          yield* Store.delete(["i"])
          yield* Store.iset("i", bytes("again"))
          expect(text(yield* Store.getOne("i"))).toBe("again")
        })
      )
    )

    it.live("delete removes keys and ignores missing ones", () =>
      fresh(
        Effect.gen(function* () {
          yield* Store.append({ a: bytes("1"), b: bytes("2"), c: bytes("3") })
          yield* Store.delete(["a", "never-written", "c"])
          yield* Store.delete([])
          const values = yield* Store.get(["a", "b", "c"])
          expect(values.map(text)).toEqual(["", "2", ""])
          yield* Store.append({ a: bytes("new") })
          expect(text(yield* Store.getOne("a"))).toBe("new")
        })
      )
    )

    it.live("drop removes everything and the store stays usable", () =>
      fresh(
        Effect.gen(function* () {
          yield* Store.append({ a: bytes("1"), b: bytes("2") })
          yield* Store.append([[["t", "u"], bytes("3")]])
          yield* Store.iset("s", bytes("set"))
          yield* Store.drop
          expect((yield* Store.get(["a", "b", ["t", "u"], "s"])).map((v) => v.byteLength)).toEqual([0, 0, 0, 0])
          yield* Store.append({ a: bytes("again") })
          yield* Store.iset("s", bytes("set again"))
          expect((yield* Store.get(["a", "s"])).map(text)).toEqual(["again", "set again"])
          yield* Store.drop
          yield* Store.drop
        })
      )
    )

    it.live("empty values are stored and read back as empty", () =>
      fresh(
        Effect.gen(function* () {
          yield* Store.append({ e: new Uint8Array(0) })
          expect((yield* Store.getOne("e")).byteLength).toBe(0)
          yield* Store.append({ e: bytes("x"), f: new Uint8Array(0) })
          yield* Store.append({ e: new Uint8Array(0) })
          expect(text(yield* Store.getOne("e"))).toBe("x")
          yield* Store.iset("g", new Uint8Array(0))
          expect((yield* Store.getOne("g")).byteLength).toBe(0)
        })
      )
    )

    it.live("all 256 byte values survive", () =>
      fresh(
        Effect.gen(function* () {
          const all = pattern(256)
          yield* Store.append({ bin: all.subarray(0, 100) })
          yield* Store.append({ bin: all.subarray(100) })
          yield* Store.iset("binset", all)
          const [bin, binset] = yield* Store.get(["bin", "binset"])
          expectBytes(bin, all)
          expectBytes(binset, all)
        })
      )
    )

    it.live("values returned by get belong to the caller", () =>
      fresh(
        Effect.gen(function* () {
          yield* Store.append({ own: bytes("abc") })
          const first = yield* Store.getOne("own")
          expect(text(first)).toBe("abc")
          first.fill(0)
          expect(text(yield* Store.getOne("own"))).toBe("abc")
        })
      )
    )

    it.live(
      `one large value (${maxValueBytes >> 20} MiB) appended in pieces`,
      () =>
        fresh(
          Effect.gen(function* () {
            const big = pattern(maxValueBytes, 7)
            const piece = Math.ceil(maxValueBytes / 4)
            for (let offset = 0; offset < maxValueBytes; offset += piece) {
              yield* Store.append({ big: big.subarray(offset, Math.min(offset + piece, maxValueBytes)) })
            }
            expectBytes(yield* Store.getOne("big"), big)
            yield* Store.delete(["big"])
            yield* Store.append({ big2: big })
            expect((yield* Store.getOne("big2")).byteLength).toBe(maxValueBytes)
          })
        ),
      timeout
    )

    it.live(
      "100k tiny appends keep per-key order",
      () =>
        fresh(
          Effect.gen(function* () {
            const keys = 100
            const perKey = 1000
            yield* Effect.forEach(
              Array.from({ length: keys }, (_, k) => k),
              (k) =>
                Effect.gen(function* () {
                  for (let i = 0; i < perKey; i++) {
                    yield* Store.append({ [`tiny-${k}`]: Uint8Array.of((k + i) & 0xff) })
                  }
                }),
              { concurrency: "unbounded", discard: true }
            )
            const values = yield* Store.get(Array.from({ length: keys }, (_, k) => `tiny-${k}`))
            values.forEach((value, k) => {
              expectBytes(value, pattern(perKey, k))
            })
          })
        ),
      timeout
    )

    it.live(
      "1000 concurrent fibers: every byte present exactly once, each fiber's appends in order",
      () =>
        fresh(
          Effect.gen(function* () {
            const fibers = 1000
            const rounds = 8
            yield* Effect.forEach(
              Array.from({ length: fibers }, (_, f) => f),
              (f) =>
                Effect.gen(function* () {
                  for (let r = 0; r < rounds; r++) {
                    const record = new Uint8Array(4)
                    new DataView(record.buffer).setUint16(0, f)
                    new DataView(record.buffer).setUint16(2, r)
                    yield* Store.append([
                      ["shared", record],
                      [`own-${f}`, Uint8Array.of(r)]
                    ])
                  }
                }),
              { concurrency: "unbounded", discard: true }
            )
            const shared = yield* Store.getOne("shared")
            expect(shared.byteLength).toBe(fibers * rounds * 4)
            const view = new DataView(shared.buffer, shared.byteOffset, shared.byteLength)
            const next = new Array<number>(fibers).fill(0)
            for (let o = 0; o < shared.byteLength; o += 4) {
              const f = view.getUint16(o)
              const r = view.getUint16(o + 2)
              expect(r).toBe(next[f])
              next[f] = r + 1
            }
            expect(next.every((n) => n === rounds)).toBe(true)
            const own = yield* Store.get(Array.from({ length: fibers }, (_, f) => `own-${f}`))
            for (const value of own) expectBytes(value, pattern(rounds))
          })
        ),
      timeout
    )

    it.live("tuple keys are nested paths, the same as their '/'-joined string", () =>
      fresh(
        Effect.gen(function* () {
          yield* Store.append([[["a", "b"], bytes("1")]])
          yield* Store.append({ "a/b": bytes("2") })
          yield* Store.append([[["a", 1, 2.5], bytes("n")]])
          yield* Store.append([[["a"], bytes("not a/b")]])
          const [ab, num, a] = yield* Store.get([["a", "b"], "a/1/2.5", "a"])
          expect(text(ab!)).toBe("12")
          expect(text(num!)).toBe("n")
          expect(text(a!)).toBe("not a/b")
          yield* Store.delete([["a", "b"]])
          expect((yield* Store.getOne("a/b")).byteLength).toBe(0)
          expect(text(yield* Store.getOne("a"))).toBe("not a/b")
        })
      )
    )

    it.live("unicode and punctuation keys are distinct keys", () =>
      fresh(
        Effect.gen(function* () {
          const keys = [
            "ключ",
            "キー",
            "🔑",
            "café",
            "cafe\u0301",
            "a b",
            "a:b",
            "a\\b",
            "A",
            "a",
            "%41",
            "x?y*z",
            "..a",
            "a.."
          ]
          yield* Store.append(keys.map((k) => [k, bytes(`<${k}>`)] as const))
          const values = yield* Store.get(keys)
          expect(values.map(text)).toEqual(keys.map((k) => `<${k}>`))
        })
      )
    )

    it.live("bad keys fail with BadKey and write nothing", () =>
      fresh(
        Effect.gen(function* () {
          const bad: ReadonlyArray<unknown> = [
            "",
            ".",
            "..",
            "../escape",
            "a/../../b",
            "/abs",
            "a//b",
            "a/",
            "nul\u0000byte",
            [],
            ["a", "b/c"],
            ["a", ".."],
            ["a", ""],
            Number.NaN,
            null,
            {}
          ]
          for (const key of bad) {
            const appended = yield* Effect.exit(
              Store.append([
                ["good", bytes("x")],
                [key as string, bytes("y")]
              ])
            )
            expect(failureReason(appended), `append ${Key.show(key)}`).toBe("BadKey")
            expect(failureReason(yield* Effect.exit(Store.get([key as string]))), `get ${Key.show(key)}`).toBe("BadKey")
            expect(failureReason(yield* Effect.exit(Store.iset(key as string, bytes("y"))))).toBe("BadKey")
            expect(failureReason(yield* Effect.exit(Store.delete([key as string])))).toBe("BadKey")
          }
          expect((yield* Store.getOne("good")).byteLength).toBe(0)
        })
      )
    )

    it.live("bad values fail with BadValue and write nothing", () =>
      fresh(
        Effect.gen(function* () {
          const exit = yield* Effect.exit(Store.append({ good: bytes("x"), bad: "not bytes" as unknown as Uint8Array }))
          expect(failureReason(exit)).toBe("BadValue")
          expect(failureReason(yield* Effect.exit(Store.append([["k"]] as unknown as Store.AppendInput)))).toBe(
            "BadValue"
          )
          expect(failureReason(yield* Effect.exit(Store.iset("k", [1, 2] as unknown as Uint8Array)))).toBe("BadValue")
          expect((yield* Store.getOne("good")).byteLength).toBe(0)
        })
      )
    )

    it.live("a store used after its scope closed fails with Closed", () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Layer.fresh(layer), scope)
        const store = Context.get(context, Store.Store)
        yield* store.append({ a: bytes("1") })
        yield* Scope.close(scope, Exit.void)
        expect(failureReason(yield* Effect.exit(store.get(["a"])))).toBe("Closed")
        expect(failureReason(yield* Effect.exit(store.append({ a: bytes("2") })))).toBe("Closed")
        expect(failureReason(yield* Effect.exit(store.drop))).toBe("Closed")
        expect(failureReason(yield* Effect.exit(Stream.runCollect(store.stream("a"))))).toBe("Closed")
        expect(failureReason(yield* Effect.exit(Stream.runCollect(store.keys)))).toBe("Closed")
        expect(failureReason(yield* Effect.exit(store.size(["a"])))).toBe("Closed")
      })
    )

    it.live(
      "random append/get/delete/iset/drop/stream/keys/size sequences match a model",
      () =>
        Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(fc.array(opArb, { maxLength: 30 }), (ops) =>
              Effect.runPromise(
                fresh(runModel(ops, capabilities.sizeIsEncoded === true)) as Effect.Effect<boolean, unknown>
              )
            ),
            { numRuns: capabilities.propertyRuns ?? 25 }
          )
        ),
      timeout
    )

    repeatedKeyCases(fresh)
    streamCases(fresh, maxValueBytes, timeout, capabilities.sizeIsEncoded === true)
    callIdCases(fresh)
  })
}

/** Runs `stream` to its end, checking each piece against `expected` as it arrives (nothing is collected). */
const expectStreamed = (
  stream: Stream.Stream<Uint8Array, Store.StoreError>,
  expected: Uint8Array,
  chunkBytes: number
): Effect.Effect<number, Store.StoreError> =>
  Effect.gen(function* () {
    let offset = 0
    let mismatch: string | undefined
    yield* Stream.runForEach(stream, (piece) =>
      Effect.sync(() => {
        if (mismatch !== undefined) return
        if (!(piece instanceof Uint8Array)) mismatch = `piece at ${offset} is not a Uint8Array`
        else if (piece.byteLength > chunkBytes)
          mismatch = `piece at ${offset} has ${piece.byteLength} > ${chunkBytes} bytes`
        else if (offset + piece.byteLength > expected.byteLength) mismatch = `more than ${expected.byteLength} bytes`
        else if (!Buffer.from(piece).equals(Buffer.from(expected.subarray(offset, offset + piece.byteLength)))) {
          mismatch = `bytes differ in the piece at ${offset}`
        }
        offset += piece.byteLength
      })
    )
    expect(mismatch).toBeUndefined()
    expect(offset).toBe(expected.byteLength)
    return offset
  })

/** The keys a store lists, sorted. */
const listedKeys = Effect.flatMap(Store.Store, (store) => Stream.runCollect(store.keys)).pipe(
  Effect.map((keys) => keys.slice().sort())
)

/**
 * stream, keys and size (issue #17): every store's, checked against `get`.
 */
const streamCases = (
  fresh: <A, E2>(effect: Effect.Effect<A, E2, Store.Store>) => Effect.Effect<A, unknown>,
  maxValueBytes: number,
  timeout: number,
  sizeIsEncoded: boolean
): void => {
  it.live(
    `stream: a ${maxValueBytes >> 20} MiB value in 1 MiB pieces, concatenated, equals get`,
    () =>
      fresh(
        Effect.gen(function* () {
          const store = yield* Store.Store
          const big = pattern(maxValueBytes, 3)
          // Pieces that do not fall on MiB boundaries.
          const piece = Math.ceil(maxValueBytes / 5) + 17
          for (let offset = 0; offset < maxValueBytes; offset += piece) {
            yield* store.append({ big: big.subarray(offset, Math.min(offset + piece, maxValueBytes)) })
          }
          const got = yield* Store.getOneFrom(store, "big")
          expectBytes(got, big)
          expect(yield* expectStreamed(store.stream("big", { chunkBytes: 1 << 20 }), got, 1 << 20)).toBe(maxValueBytes)
          // The default piece is 1 MiB too.
          yield* expectStreamed(store.stream("big"), got, Store.defaultChunkBytes)
          if (!sizeIsEncoded) expect(yield* store.size(["big"])).toEqual([maxValueBytes])
        })
      ),
    timeout
  )

  it.live("stream: pieces of any size, tuple keys, missing keys, and pieces that belong to the caller", () =>
    fresh(
      Effect.gen(function* () {
        const store = yield* Store.Store
        const chunks = [bytes("Hello, "), new Uint8Array(0), pattern(300, 9), bytes("!")]
        for (const chunk of chunks) yield* store.append([[["s", 1], chunk]])
        const value = Buffer.concat(chunks)
        for (const chunkBytes of [1, 7, 64, 1000, 1 << 20]) {
          yield* expectStreamed(store.stream(["s", 1], { chunkBytes }), value, chunkBytes)
          yield* expectStreamed(store.stream("s/1", { chunkBytes }), value, chunkBytes)
        }
        expect(yield* Stream.runCollect(store.stream("missing"))).toEqual([])
        yield* store.append({ empty: new Uint8Array(0) })
        expect((yield* Stream.runCollect(store.stream("empty"))).every((p) => p.byteLength === 0)).toBe(true)
        // A piece is the caller's: changing it changes nothing in the store.
        const pieces = yield* Stream.runCollect(store.stream("s/1", { chunkBytes: 16 }))
        for (const p of pieces) p.fill(0)
        expectBytes(yield* Store.getOneFrom(store, "s/1"), value)
        yield* store.iset("set", bytes("once"))
        yield* expectStreamed(store.stream("set", { chunkBytes: 3 }), bytes("once"), 3)
        yield* store.delete(["s/1"])
        expect(yield* Stream.runCollect(store.stream(["s", 1]))).toEqual([])
      })
    )
  )

  it.live("stream: a stream started before a concurrent append yields the value as it stood, never a torn piece", () =>
    fresh(
      Effect.gen(function* () {
        const store = yield* Store.Store
        const record = (i: number) => {
          const out = pattern(1000, i)
          new DataView(out.buffer).setUint32(0, i)
          return out
        }
        for (let i = 0; i < 64; i++) yield* store.append({ grow: record(i) })
        const before = yield* Store.getOneFrom(store, "grow")
        // Started (first piece pulled), then appended to, then read to the end: only what was there at the start.
        const seen = yield* Effect.scoped(
          Effect.gen(function* () {
            const pull = yield* Stream.toPull(store.stream("grow", { chunkBytes: 4096 }))
            const parts: Array<Uint8Array> = [...(yield* pull)]
            for (let i = 64; i < 96; i++) yield* store.append({ grow: record(i) })
            while (true) {
              const next = yield* Effect.exit(pull)
              if (Exit.isFailure(next)) break
              parts.push(...next.value)
            }
            return Buffer.concat(parts)
          })
        )
        expectBytes(seen, before)
        // Appends racing streams from another fiber: each stream is a prefix of whole records of the final value.
        const appender = yield* Effect.forkChild(
          Effect.forEach(
            Array.from({ length: 200 }, (_, i) => 96 + i),
            (i) => store.append({ grow: record(i) }),
            {
              discard: true
            }
          )
        )
        const lengths: Array<number> = []
        const streamed: Array<Uint8Array> = []
        for (let round = 0; round < 5; round++) {
          const value = Buffer.concat(yield* Stream.runCollect(store.stream("grow", { chunkBytes: 3000 })))
          lengths.push(value.byteLength)
          streamed.push(value)
        }
        yield* Fiber.join(appender)
        const final = yield* Store.getOneFrom(store, "grow")
        expect(final.byteLength).toBe(296 * 1000)
        for (const value of streamed) {
          expect(value.byteLength % 1000).toBe(0)
          expect(value.byteLength).toBeGreaterThanOrEqual(96 * 1000)
          expect(Buffer.from(final.subarray(0, value.byteLength)).equals(value)).toBe(true)
        }
      })
    )
  )

  it.live("keys: exactly the keys that hold bytes, each once, after tuples, escapes, deletes, isets and drops", () =>
    fresh(
      Effect.gen(function* () {
        const store = yield* Store.Store
        expect(yield* listedKeys).toEqual([])
        const odd = ["ключ", "🔑", "a b", "a:b", "a\\b", "%41", "x?y*z", "..a", "a..", "A", "a", "x.lock", "self%"]
        yield* store.append(odd.map((k) => [k, bytes(`<${k}>`)] as const))
        yield* store.append([
          [["t", 1], bytes("t1")],
          [["t", "u", 2.5], bytes("tu")],
          [7, bytes("seven")],
          ["d/e/f", bytes("def")],
          ["gone", bytes("soon gone")],
          ["a", bytes("again")]
        ])
        yield* store.iset("set", bytes("s"))
        yield* store.delete(["gone", "never-written"])
        const expected = [...odd, "t/1", "t/u/2.5", "7", "d/e/f", "set"].sort()
        expect(yield* listedKeys).toEqual(expected)
        // Every listed key is a key that `get` reads bytes from.
        const values = yield* store.get(yield* listedKeys)
        expect(values.every((v) => v.byteLength > 0)).toBe(true)
        yield* store.drop
        expect(yield* listedKeys).toEqual([])
        yield* store.append({ after: bytes("drop") })
        expect(yield* listedKeys).toEqual(["after"])
      })
    )
  )

  it.live("size: the bytes each key holds, equal to get(...).byteLength", () =>
    fresh(
      Effect.gen(function* () {
        const store = yield* Store.Store
        yield* store.append({ a: pattern(1000), b: bytes("bb") })
        yield* store.append([
          ["a", pattern(24)],
          [["t", 1], pattern(70_000)]
        ])
        yield* store.iset("set", bytes("12345"))
        yield* store.append({ del: bytes("x") })
        yield* store.delete(["del"])
        const keys: ReadonlyArray<Key.Key> = ["a", "b", ["t", 1], "t/1", "set", "del", "missing", "a"]
        const sizes = yield* store.size(keys)
        const values = yield* store.get(keys)
        if (sizeIsEncoded) {
          expect(sizes.map((size) => size > 0)).toEqual(values.map((v) => v.byteLength > 0))
        } else {
          expect(sizes).toEqual(values.map((v) => v.byteLength))
          expect(sizes).toEqual([1024, 2, 70_000, 70_000, 5, 0, 0, 1024])
        }
        expect(sizes[1]).toBe(sizes[7] === sizes[0] ? sizes[1] : -1)
        expect(yield* store.size([])).toEqual([])
      })
    )
  )

  it.live("stream, keys and size reject bad keys and bad chunkBytes with typed errors", () =>
    fresh(
      Effect.gen(function* () {
        const store = yield* Store.Store
        yield* store.append({ k: bytes("value") })
        for (const chunkBytes of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "8" as unknown as number]) {
          const exit = yield* Effect.exit(Stream.runCollect(store.stream("k", { chunkBytes })))
          expect(failureReason(exit), `chunkBytes ${String(chunkBytes)}`).toBe("BadValue")
        }
        for (const key of ["", "../escape", "a//b", ["a", "b/c"], null] as ReadonlyArray<unknown>) {
          expect(failureReason(yield* Effect.exit(Stream.runCollect(store.stream(key as string))))).toBe("BadKey")
          expect(failureReason(yield* Effect.exit(store.size(["k", key as string])))).toBe("BadKey")
        }
        expect(text(yield* Store.getOneFrom(store, "k"))).toBe("value")
      })
    )
  )
}

/**
 * Append call ids (issue #20): a call sent again with the same id applies
 * once, on every store.
 */
const callIdCases = (fresh: <A, E2>(effect: Effect.Effect<A, E2, Store.Store>) => Effect.Effect<A, unknown>): void => {
  it.live("an append repeated with the same id applies once; other ids and calls without one apply", () =>
    fresh(
      Effect.gen(function* () {
        const store = yield* Store.Store
        const id = `call-${Math.random().toString(36).slice(2)}`
        yield* store.append({ x: bytes("1"), y: bytes("a") }, { id })
        yield* store.append({ x: bytes("1"), y: bytes("a") }, { id })
        // The id decides, not the data: a different call under a seen id is a repeat too.
        yield* store.append({ x: bytes("!") }, { id })
        yield* store.append({ x: bytes("2") }, { id: `${id}-2` })
        yield* store.append({ x: bytes("3") })
        yield* store.append({ x: bytes("3") })
        expect((yield* store.get(["x", "y"])).map(text)).toEqual(["1233", "a"])
        // Sent several times at once, as retries racing the original: still once.
        const raced = `${id}-raced`
        yield* Effect.all(
          Array.from({ length: 4 }, () => store.append([["r", bytes("r")]], { id: raced })),
          { concurrency: "unbounded" }
        )
        expect(text(yield* Store.getOneFrom(store, "r"))).toBe("r")
        // Columns over a key set carry ids too.
        const keys = yield* Store.keySet(["c1", "c2"])
        yield* store.append(Store.columns(keys, [bytes("p"), bytes("q")]), { id: `${id}-columns` })
        yield* store.append(Store.columns(keys, [bytes("p"), bytes("q")]), { id: `${id}-columns` })
        expect((yield* store.get(["c1", "c2"])).map(text)).toEqual(["p", "q"])
      })
    )
  )

  it.live("bad call ids fail with BadValue and write nothing", () =>
    fresh(
      Effect.gen(function* () {
        const store = yield* Store.Store
        for (const id of ["", "x".repeat(129), 42, null] as ReadonlyArray<unknown>) {
          const exit = yield* Effect.exit(store.append({ bad: bytes("no") }, { id: id as string }))
          expect(failureReason(exit), `id ${String(id)}`).toBe("BadValue")
        }
        // The longest id is fine.
        yield* store.append({ ok: bytes("yes") }, { id: "y".repeat(128) })
        expect((yield* store.get(["bad", "ok"])).map(text)).toEqual(["", "yes"])
      })
    )
  )
}

/**
 * Appends whose keys repeat call after call, as a shuffle's do: validation
 * remembers recent key lists and key strings (`Key.toPathList`), and backends
 * cache what they resolve per list. Whatever is remembered, the rules stay:
 * a bad key or value fails and writes nothing, inherited keys are ignored,
 * and deletes and drops are seen.
 */
const repeatedKeyCases = (
  fresh: <A, E2>(effect: Effect.Effect<A, E2, Store.Store>) => Effect.Effect<A, unknown>
): void => {
  const record = (suffix: string): Record<string, Uint8Array> => ({
    "rk-a": bytes(`a${suffix}`),
    "rk-b": bytes(`b${suffix}`),
    "rk-c": bytes(`c${suffix}`)
  })
  const readAll = Store.get(["rk-a", "rk-b", "rk-c"]).pipe(Effect.map((values) => values.map(text)))

  it.live("records appended to the same keys call after call see deletes, isets and drops", () =>
    fresh(
      Effect.gen(function* () {
        for (let i = 0; i < 4; i++) yield* Store.append(record(`${i}`))
        expect(yield* readAll).toEqual(["a0a1a2a3", "b0b1b2b3", "c0c1c2c3"])
        yield* Store.delete(["rk-b"])
        yield* Store.append(record("x"))
        expect(yield* readAll).toEqual(["a0a1a2a3ax", "bx", "c0c1c2c3cx"])
        yield* Store.iset("rk-c", bytes("set"))
        yield* Store.append(record("y"))
        expect(yield* readAll).toEqual(["a0a1a2a3axay", "bxby", "setcy"])
        yield* Store.drop
        yield* Store.append(record("z"))
        yield* Store.append(record("w"))
        expect(yield* readAll).toEqual(["azaw", "bzbw", "czcw"])
      })
    )
  )

  it.live("a bad key or value through warm key caches fails and writes nothing", () =>
    fresh(
      Effect.gen(function* () {
        for (let i = 0; i < 3; i++) yield* Store.append(record(`${i}`))
        const before = ["a0a1a2", "b0b1b2", "c0c1c2"]
        const bad: ReadonlyArray<Store.AppendInput> = [
          // The same length and first keys as the warm list, one key bad.
          { "rk-a": bytes("!"), "rk-b": bytes("!"), "../rk-c": bytes("!") },
          { "rk-a": bytes("!"), "rk-b": bytes("!"), "rk-c": bytes("!"), "rk-d/": bytes("!") },
          new Map([
            ["rk-a", bytes("!")],
            ["rk-b", bytes("!")],
            ["rk-c/..", bytes("!")]
          ]),
          [
            ["rk-a", bytes("!")],
            ["rk-b", bytes("!")],
            [["rk-c", ".."], bytes("!")]
          ],
          [
            ["rk-a", bytes("!")],
            ["rk-b", bytes("!")],
            [Number.NaN, bytes("!")]
          ]
        ]
        for (const data of bad) expect(failureReason(yield* Effect.exit(Store.append(data)))).toBe("BadKey")
        const badValue = { ...record("!"), "rk-c": "not bytes" as unknown as Uint8Array }
        expect(failureReason(yield* Effect.exit(Store.append(badValue)))).toBe("BadValue")
        expect(
          failureReason(
            yield* Effect.exit(
              Store.append([
                ["rk-a", bytes("!")],
                ["rk-b", bytes("!")],
                ["rk-c", null as unknown as Uint8Array]
              ])
            )
          )
        ).toBe("BadValue")
        expect(yield* readAll).toEqual(before)
        // The warm list still works after the failures.
        yield* Store.append(record("3"))
        expect(yield* readAll).toEqual(["a0a1a2a3", "b0b1b2b3", "c0c1c2c3"])
      })
    )
  )

  it.live("a record inheriting a warm list's keys appends only its own", () =>
    fresh(
      Effect.gen(function* () {
        for (let i = 0; i < 3; i++) yield* Store.append(record(`${i}`))
        const inheriting = Object.create(record("inherited")) as Record<string, Uint8Array>
        inheriting["rk-a"] = bytes("own")
        yield* Store.append(inheriting)
        expect(yield* readAll).toEqual(["a0a1a2own", "b0b1b2", "c0c1c2"])
      })
    )
  )

  it.live("Maps and pair lists over repeated keys, also numbers, tuples and repeats", () =>
    fresh(
      Effect.gen(function* () {
        for (let i = 0; i < 3; i++) {
          yield* Store.append(
            new Map<Key.Key, Uint8Array>([
              ["rk-a", bytes(`${i}`)],
              [7, bytes(`${i}`)],
              [["rk-t", 1], bytes(`${i}`)]
            ])
          )
          yield* Store.append([
            ["rk-b", bytes(`${i}`)],
            ["rk-c", bytes(`${i}`)],
            ["rk-b", bytes(`${i}!`)]
          ])
        }
        expect((yield* Store.get(["rk-a", "7", "rk-t/1", "rk-b", "rk-c"])).map(text)).toEqual([
          "012",
          "012",
          "012",
          "00!11!22!",
          "012"
        ])
        // Any other iterable of pairs, read lazily; bytes given by mistake are not pairs.
        function* generated() {
          yield ["rk-a", bytes("g")] as const
          yield ["rk-a", bytes("h")] as const
        }
        yield* Store.append(generated())
        expect(text(yield* Store.getOne("rk-a"))).toBe("012gh")
        const mistaken = new Uint8Array(1 << 20) as unknown as Store.AppendInput
        expect(failureReason(yield* Effect.exit(Store.append(mistaken)))).toBe("BadValue")
      })
    )
  )

  it.live("more key lists than are remembered, in turns, all land where they belong", () =>
    fresh(
      Effect.gen(function* () {
        // Twelve lists, more than the few remembered: each turn evicts another.
        const lists = Array.from({ length: 12 }, (_, l) => Array.from({ length: 3 }, (_, k) => `rk-${l}-${k}`))
        for (let turn = 0; turn < 3; turn++) {
          for (const list of lists) {
            yield* Store.append(Object.fromEntries(list.map((key) => [key, bytes(`${turn}`)])))
          }
        }
        const all = lists.flat()
        expect((yield* Store.get(all)).map(text)).toEqual(all.map(() => "012"))
      })
    )
  )
}
