import { describe, expect, it } from "@effect/vitest"
import { Buffer, Dict, Store } from "@partd/core"
import { pattern, suite } from "@partd/test/StoreSuite"
import { Context, Effect, Exit, Layer, Scope, Stream } from "effect"

suite(
  "Buffer(Dict, Dict) with a 1 KiB bound",
  Buffer.layer({ fast: Dict.layer, slow: Dict.layer, availableMemory: 1024 })
)
suite(
  "Buffer(Dict, Dict) with a 1 MiB bound",
  Buffer.layer({ fast: Dict.layer, slow: Dict.layer, availableMemory: 1024 * 1024 })
)

/**
 * A store in front of another whose every call first waits (a slow disk or
 * network), to widen the windows in which spills and reads interleave.
 */
const sluggish = (store: Store.Shape, delay: Effect.Effect<void>): Effect.Effect<Store.Shape, never, Scope.Scope> => {
  const inner = Store.toBackend(store)
  return Store.make({
    append: (paths, values) => Effect.andThen(delay, inner.append(paths, values)),
    get: (paths) => Effect.andThen(delay, inner.get(paths)),
    iset: (path, value) => Effect.andThen(delay, inner.iset(path, value)),
    delete: (paths) => Effect.andThen(delay, inner.delete(paths)),
    drop: Effect.andThen(delay, inner.drop),
    stream: (path, chunkBytes) => Stream.unwrap(Effect.as(delay, inner.stream!(path, chunkBytes))),
    keys: Stream.unwrap(Effect.as(delay, inner.keys!)),
    size: (paths) => Effect.andThen(delay, inner.size!(paths))
  })
}

const sluggishDict = Layer.effect(
  Store.Store,
  Effect.flatMap(Dict.make, (dict) => sluggish(dict, Effect.sleep("1 millis")))
)

suite(
  "Buffer(Dict, slow Dict) with a 4 KiB bound",
  Buffer.layer({ fast: Dict.layer, slow: sluggishDict, availableMemory: 4096 }),
  { maxValueBytes: 8 * 1024 * 1024, propertyRuns: 10 }
)

/** A store whose writes fail while `broken.value` is true: a full disk, a dead server. */
const breakable = (store: Store.Shape, broken: { value: boolean }) => {
  const inner = Store.toBackend(store)
  return Store.make({
    append: (paths, values) =>
      broken.value
        ? Effect.fail(new Store.StoreError({ reason: "Io", method: "append", description: "disk full" }))
        : inner.append(paths, values),
    get: (paths) => inner.get(paths),
    iset: (path, value) => inner.iset(path, value),
    delete: (paths) => inner.delete(paths),
    drop: inner.drop,
    stream: inner.stream!,
    keys: inner.keys!,
    size: inner.size!
  })
}

const text = (u: Uint8Array) => new TextDecoder().decode(u)
const bytes = (s: string) => new TextEncoder().encode(s)

describe("Buffer", () => {
  it.effect("spills the largest keys to the slow store and keeps memory under the bound", () =>
    Effect.gen(function* () {
      const fast = yield* Dict.make
      const slow = yield* Dict.make
      const bound = 10_000
      const { store, control } = yield* Buffer.make({ fast, slow, availableMemory: bound })
      let peak = 0
      for (let round = 0; round < 50; round++) {
        yield* store.append({ big: pattern(500, round), small: Uint8Array.of(round) })
        peak = Math.max(peak, yield* control.memoryUsage)
      }
      expect(peak).toBeLessThanOrEqual(bound)
      const [bigInSlow] = yield* slow.get(["big"])
      expect(bigInSlow!.byteLength).toBeGreaterThan(0)
      const [big, small] = yield* store.get(["big", "small"])
      const expected = new Uint8Array(50 * 500)
      for (let round = 0; round < 50; round++) expected.set(pattern(500, round), round * 500)
      expect(Buffer_equals(big!, expected)).toBe(true)
      expect(Array.from(small!)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    })
  )

  it.live("appenders wait for room instead of overshooting the bound", () =>
    Effect.gen(function* () {
      const fast = yield* Dict.make
      const slow = yield* sluggish(yield* Dict.make, Effect.sleep("5 millis"))
      const bound = 64 * 1024
      const { store, control } = yield* Buffer.make({ fast, slow, availableMemory: bound })
      let peak = 0
      yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => i),
        (i) =>
          Effect.gen(function* () {
            yield* store.append({ [`k${i % 10}`]: pattern(4096, i) })
            peak = Math.max(peak, yield* control.memoryUsage)
          }),
        { concurrency: "unbounded", discard: true }
      )
      expect(peak).toBeLessThanOrEqual(bound)
      const values = yield* store.get(Array.from({ length: 10 }, (_, k) => `k${k}`))
      expect(values.reduce((n, v) => n + v.byteLength, 0)).toBe(200 * 4096)
    })
  )

  it.effect(
    "stream yields the slow part then the memory part, as get joins them; keys are the union, size the sum",
    () =>
      Effect.gen(function* () {
        const fast = yield* Dict.make
        const slow = yield* Dict.make
        const { store, control } = yield* Buffer.make({ fast, slow, availableMemory: 1 << 20 })
        yield* store.append({ a: bytes("slow-"), b: bytes("only slow") })
        yield* control.flush
        yield* store.append({ a: bytes("fast"), c: bytes("only fast") })
        const streamed = (key: string, chunkBytes: number) =>
          Effect.map(Stream.runCollect(store.stream(key, { chunkBytes })), (pieces) => {
            expect(pieces.every((piece) => piece.byteLength <= chunkBytes)).toBe(true)
            return text(globalThis.Buffer.concat(pieces))
          })
        for (const chunkBytes of [1, 3, 100]) {
          expect(yield* streamed("a", chunkBytes)).toBe("slow-fast")
          expect(yield* streamed("b", chunkBytes)).toBe("only slow")
          expect(yield* streamed("c", chunkBytes)).toBe("only fast")
        }
        expect((yield* Stream.runCollect(store.keys)).slice().sort()).toEqual(["a", "b", "c"])
        expect(yield* store.size(["a", "b", "c", "d"])).toEqual([9, 9, 9, 0])
        // A stream taken before a flush and read after it yields the value as it stood: the snapshot of the
        // memory part, and the slow part cut at its length then (the flush appends past it).
        const pull = yield* Stream.toPull(store.stream("a", { chunkBytes: 2 }))
        const parts = [...(yield* pull)]
        yield* store.append({ a: bytes("+later") })
        yield* control.flush
        expect(text((yield* slow.get(["a"]))[0]!)).toBe("slow-fast+later")
        while (true) {
          const next = yield* Effect.exit(pull)
          if (Exit.isFailure(next)) break
          parts.push(...next.value)
        }
        expect(text(globalThis.Buffer.concat(parts))).toBe("slow-fast")
        expect(yield* streamed("a", 4)).toBe("slow-fast+later")
      }).pipe(Effect.scoped)
  )

  it.effect("an append's call id is remembered after its bytes were spilled to the slow store", () =>
    Effect.gen(function* () {
      const fast = yield* Dict.make
      const slow = yield* Dict.make
      const { store, control } = yield* Buffer.make({ fast, slow, availableMemory: 1 << 20 })
      yield* store.append({ a: bytes("1") }, { id: "first" })
      yield* control.flush
      yield* store.append({ a: bytes("1") }, { id: "first" })
      yield* store.append({ a: bytes("2") }, { id: "second" })
      expect(text((yield* store.get(["a"]))[0]!)).toBe("12")
      expect(text((yield* slow.get(["a"]))[0]!)).toBe("1")
    })
  )

  it.effect("flush moves everything to the slow store", () =>
    Effect.gen(function* () {
      const fast = yield* Dict.make
      const slow = yield* Dict.make
      const { store, control } = yield* Buffer.make({ fast, slow, availableMemory: 1 << 20 })
      yield* store.append({ a: bytes("a1"), b: bytes("b1") })
      yield* control.flush
      yield* store.append({ a: bytes("a2") })
      yield* control.flush
      expect(yield* control.memoryUsage).toBe(0)
      expect((yield* fast.get(["a", "b"])).map(text)).toEqual(["", ""])
      expect((yield* slow.get(["a", "b"])).map(text)).toEqual(["a1a2", "b1"])
      expect((yield* store.get(["a", "b"])).map(text)).toEqual(["a1a2", "b1"])
    })
  )

  it.effect("closing the buffer's scope flushes to the slow store", () =>
    Effect.gen(function* () {
      const slow = yield* Dict.make
      const scope = yield* Scope.make()
      const { store } = yield* Buffer.make({ fast: yield* Dict.make, slow, availableMemory: 1 << 20 }).pipe(
        Scope.provide(scope)
      )
      yield* store.append({ kept: bytes("in memory") })
      expect((yield* slow.get(["kept"]))[0]!.byteLength).toBe(0)
      yield* Scope.close(scope, Exit.void)
      expect(text((yield* slow.get(["kept"]))[0]!)).toBe("in memory")
    })
  )

  it.effect("a failing slow store loses nothing: bytes stay readable and land in order once it recovers", () =>
    Effect.gen(function* () {
      const broken = { value: false }
      const fast = yield* Dict.make
      const slow = yield* breakable(yield* Dict.make, broken)
      const { store, control } = yield* Buffer.make({ fast, slow, availableMemory: 1000 })
      yield* store.append({ k: pattern(600, 0) })
      broken.value = true
      // Room runs out while the slow store is broken: the append that cannot
      // fit fails with the slow store's error, and nothing of it is written.
      const results: Array<Exit.Exit<void, Store.StoreError>> = []
      for (let i = 1; i <= 4; i++) results.push(yield* Effect.exit(store.append({ k: pattern(300, i) })))
      const failed = results.findIndex(Exit.isFailure)
      expect(failed).toBeGreaterThanOrEqual(0)
      const failure = results[failed]!
      expect(
        Exit.isFailure(failure) && failure.cause.reasons[0]?._tag === "Fail" && failure.cause.reasons[0].error.reason
      ).toBe("Io")
      expect(Exit.isFailure(yield* Effect.exit(control.flush))).toBe(true)
      // Everything appended successfully is still readable, in order.
      const expected = [pattern(600, 0), ...results.flatMap((r, i) => (Exit.isSuccess(r) ? [pattern(300, i + 1)] : []))]
      expect(Buffer_equals((yield* store.get(["k"]))[0]!, concatAll(expected))).toBe(true)
      broken.value = false
      yield* control.flush
      expect(yield* control.memoryUsage).toBe(0)
      yield* store.append({ k: bytes("tail") })
      expect(Buffer_equals((yield* store.get(["k"]))[0]!, concatAll([...expected, bytes("tail")]))).toBe(true)
      expect(Buffer_equals((yield* slow.get(["k"]))[0]!, concatAll(expected))).toBe(true)
    })
  )

  it.effect("Buffer.layer provides the Buffer service next to the Store", () =>
    Effect.gen(function* () {
      yield* Store.append({ x: bytes("1") })
      expect(yield* Buffer.Buffer.use((b) => b.memoryUsage)).toBe(1)
      yield* Buffer.flush
      expect(yield* Buffer.Buffer.use((b) => b.memoryUsage)).toBe(0)
      expect(text(yield* Store.getOne("x"))).toBe("1")
    }).pipe(Effect.provide(Buffer.layer({ fast: Dict.layer, slow: Dict.layer, availableMemory: 100 })))
  )

  it.effect("Buffer.layer builds two separate stores even from one Layer value", () =>
    Effect.gen(function* () {
      yield* Store.append({ x: bytes("1") })
      yield* Buffer.flush
      yield* Store.append({ x: bytes("2") })
      expect(text(yield* Store.getOne("x"))).toBe("12")
    }).pipe(Effect.provide(Buffer.layer({ fast: Dict.layer, slow: Dict.layer, availableMemory: 100 })))
  )

  it.effect("a non-positive bound is a typed error", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        Layer.build(Buffer.layer({ fast: Dict.layer, slow: Dict.layer, availableMemory: 0 }))
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const context = yield* Layer.build(Buffer.layer({ fast: Dict.layer, slow: Dict.layer, availableMemory: 1 }))
      expect(Context.get(context, Store.Store)).toBeDefined()
    })
  )
})

const concatAll = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.byteLength
  }
  return out
}

const Buffer_equals = (a: Uint8Array, b: Uint8Array): boolean =>
  globalThis.Buffer.from(a).equals(globalThis.Buffer.from(b))

describe("Buffer counts what it holds from the lengths measured once", () => {
  it.effect("through the shell and through its backend without sizes, its ledger, the fast store and reads agree", () =>
    Effect.gen(function* () {
      const fast = yield* Dict.make
      const slow = yield* Dict.make
      const { store, control } = yield* Buffer.make({ fast, slow, availableMemory: 1 << 20 })
      yield* store.append({ a: bytes("xyz"), b: bytes("pq") })
      yield* Store.toBackend(store).append(["a", "c", "a"], [bytes("1234"), bytes("5"), bytes("67")])
      expect(yield* control.memoryUsage).toBe(12)
      expect(yield* store.size(["a", "b", "c"])).toEqual([9, 2, 1])
      expect(yield* Store.toBackend(fast).size(["a", "b", "c"])).toEqual([9, 2, 1])
      yield* control.flush
      expect(yield* control.memoryUsage).toBe(0)
      expect((yield* store.get(["a", "b", "c"])).map(text)).toEqual(["xyz123467", "pq", "5"])
    }).pipe(Effect.scoped)
  )
})
