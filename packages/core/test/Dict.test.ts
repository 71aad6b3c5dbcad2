import { describe, expect, it } from "@effect/vitest"
import { CallIds, Dict, Key, Observe, Store } from "@partd/core"
import { suite } from "@partd/test/StoreSuite"
import { Effect, Metric } from "effect"

suite("Dict", Dict.layer)

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (u: Uint8Array): string => new TextDecoder().decode(u)

describe("Dict.appendChunks (how Buffer spills into memory)", () => {
  it.effect("appends each list in order, interleaved with plain appends, and copies the lists", () =>
    Effect.gen(function* () {
      const store = yield* Dict.make
      const backend = Store.toBackend(store)
      yield* store.append({ a: bytes("1") })
      const list = [bytes("2"), bytes("3")]
      yield* backend.appendChunks!(["a", "b", "c"], [list, [bytes("x")], []], [2, 1, 0])
      // The store keeps its own copy of the list.
      list.push(bytes("!"))
      yield* store.append({ a: bytes("4"), b: bytes("y") })
      yield* backend.appendChunks!(["a"], [[bytes("5")]], [1])
      // Exact values: `get` sizes its result by the lengths given, not by reading the chunks.
      expect((yield* store.get(["a", "b", "c"])).map(text)).toEqual(["12345", "xy", ""])
      expect((yield* backend.getChunks!(["a"]))[0]!.map(text)).toEqual(["1", "2", "3", "4", "5"])
    })
  )
})

describe("Key validation: which rule rejects a segment", () => {
  it("NUL anywhere, `/` inside a tuple element, and empty, `.` or `..` segments are each rejected with their reason", () => {
    const problem = (key: unknown) => {
      const path = Key.toPath(key)
      return path instanceof Key.Invalid ? path.problem : undefined
    }
    expect(problem("a/b\u0000c")).toBe("key contains a NUL character")
    expect(problem(["a", "b\u0000c"])).toBe("key contains a NUL character")
    expect(problem(["a", "b/c"])).toBe('tuple element "b/c" contains "/"')
    expect(problem("a//b")).toBe("empty segment")
    expect(problem(["a", ".."])).toBe('segment ".." is not allowed')
    expect(problem("a/./b")).toBe('segment "." is not allowed')
    expect(problem(["a", "b", 1])).toBeUndefined()
  })
})

describe("CallIds: the window of ids an in-memory store remembers", () => {
  it("remembers the last `capacity` ids and forgets the oldest first", () => {
    const ids = new CallIds.CallIds(3)
    for (const id of ["a", "b", "c"]) ids.add(id)
    ids.add("a")
    expect(ids.size).toBe(3)
    ids.add("d")
    expect(["a", "b", "c", "d"].map((id) => ids.has(id))).toEqual([false, true, true, true])
    expect(new CallIds.CallIds().capacity).toBe(65_536)
  })

  it.effect("a Dict applies a call again once its id has left the window of 65,536", () =>
    Effect.gen(function* () {
      const store = yield* Dict.make
      yield* store.append({ k: bytes("x") }, { id: "old" })
      for (let i = 0; i < CallIds.defaultCapacity; i++)
        yield* store.append({ other: new Uint8Array(0) }, { id: `n${i}` })
      yield* store.append({ k: bytes("x") }, { id: "old" })
      expect(text(yield* Store.getOneFrom(store, "k"))).toBe("xx")
    }).pipe(Effect.scoped)
  )
})

describe("Sizes: an append's chunk lengths, measured once by the shell", () => {
  it("toBatch measures records, Maps, pairs and columns: each value's length, in call order, and their total", () => {
    const keys = Key.toKeySet(["a", "b"]) as Key.KeySet
    const view = new Uint8Array(10).subarray(2, 5)
    const node = globalThis.Buffer.from("four")
    const inputs: Array<Store.AppendInput> = [
      { a: view, b: node },
      new Map([
        ["a", view],
        ["b", node]
      ]),
      [
        ["a", view],
        ["b", node]
      ],
      Store.columns(keys, [view, node])
    ]
    for (const input of inputs) {
      const batch = Store.toBatch(input) as Store.Batch
      expect(batch.sizes).toEqual({ lengths: [3, 4], bytes: 7 })
      expect(batch.bytes).toBe(7)
    }
    expect(Store.sizesOf([view, node, new Uint8Array(0)])).toEqual({ lengths: [3, 4, 0], bytes: 7 })
  })

  it.effect("a Dict's backend called without sizes measures the chunks itself, and counts them", () =>
    Effect.gen(function* () {
      const store = yield* Dict.make
      const backend = Store.toBackend(store)
      yield* backend.append(["a", "b", "a"], [bytes("xyz"), bytes("pq"), bytes("1234")])
      yield* store.append({ b: bytes("r") })
      expect(yield* store.size(["a", "b"])).toEqual([7, 3])
      expect((yield* store.get(["a", "b"])).map(text)).toEqual(["xyz1234", "pqr"])
      expect(yield* Observe.metricValue("partd_appended_bytes_total", { store: "Dict" })).toBe(10)
    }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})
