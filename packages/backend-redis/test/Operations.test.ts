/**
 * Redis's stream, keys, size and call ids, on one throwaway redis-server and
 * on a 3-master cluster: what each operation reads from Redis (GETRANGE
 * within the length taken at the start, SCAN of the prefix on every master,
 * STRLEN), that a call sent again with its id applies once (also when it is
 * split into several scripts, and across a cluster's masters), how long ids
 * are remembered, and `replicas` with a real replica.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Redis } from "@partd/backend-redis"
import * as RedisServer from "@partd/test/RedisServer"
import { pattern } from "@partd/test/StoreSuite"
import { Effect, Layer, Stream } from "effect"
import { Redis as IORedis } from "ioredis"
import { build, bytes, errorOf, text } from "./Helpers.ts"

const server = RedisServer.shared({ beforeAll, afterAll }, RedisServer.start())
const cluster = RedisServer.shared({ beforeAll, afterAll }, RedisServer.cluster(3))

const collect = <A, E>(stream: Stream.Stream<A, E>) => Stream.runCollect(stream)

const concat = (pieces: ReadonlyArray<Uint8Array>) => new Uint8Array(Buffer.concat(pieces))

const targets = [
  {
    name: "one server",
    layer: (options: Redis.StoreOptions = {}) => Layer.suspend(() => Redis.layer({ port: server().port, ...options }))
  },
  {
    name: "cluster",
    layer: (options: Redis.StoreOptions = {}) =>
      Layer.suspend(() => Redis.layerCluster({ nodes: cluster().nodes, ...options }))
  }
] as const

for (const target of targets) {
  describe(`Redis stream, keys, size, ids (${target.name})`, () => {
    it.live(
      "a 64 MiB value streams in pieces of at most chunkBytes whose concatenation is get; a missing key is empty",
      () =>
        Effect.gen(function* () {
          const store = yield* build(target.layer())
          const value = pattern(64 * 1024 * 1024 + 17, 3)
          for (let i = 0; i < value.byteLength; i += 1024 * 1024) {
            yield* store.append({ big: value.subarray(i, i + 1024 * 1024) })
          }
          const pieces = yield* collect(store.stream("big", { chunkBytes: 1024 * 1024 }))
          expect(pieces.length).toBe(65)
          expect(pieces.every((p) => p.byteLength <= 1024 * 1024)).toBe(true)
          expect(Buffer.from(concat(pieces)).equals(Buffer.from((yield* store.get(["big"]))[0]!))).toBe(true)
          expect(yield* collect(store.stream("missing"))).toEqual([])
          const small = yield* collect(store.stream("big", { chunkBytes: 1 }).pipe(Stream.take(5)))
          expect(small.map((p) => Array.from(p))).toEqual([[3], [4], [5], [6], [7]])
          const bad = yield* Effect.exit(collect(store.stream("big", { chunkBytes: 0 })))
          expect(errorOf(bad)?.reason).toBe("BadValue")
        })
    )

    it.live("a stream yields the value as it stood when it started, whatever is appended while it runs", () =>
      Effect.gen(function* () {
        const store = yield* build(target.layer())
        const first = pattern(300_000, 1)
        yield* store.append({ k: first })
        let appended = 0
        const pieces = yield* collect(
          store.stream("k", { chunkBytes: 64 * 1024 }).pipe(
            Stream.tap(() =>
              Effect.gen(function* () {
                appended++
                yield* store.append({ k: pattern(50_000, appended) })
              })
            )
          )
        )
        expect(appended).toBe(5)
        expect(Buffer.from(concat(pieces)).equals(Buffer.from(first))).toBe(true)
        expect((yield* store.size(["k"]))[0]).toBe(300_000 + 5 * 50_000)
      })
    )

    it.live("a key deleted while it streams fails the stream with Io, not a torn value", () =>
      Effect.gen(function* () {
        const store = yield* build(target.layer())
        yield* store.append({ k: pattern(200_000) })
        const exit = yield* Effect.exit(
          collect(store.stream("k", { chunkBytes: 50_000 }).pipe(Stream.tap(() => store.delete(["k"]))))
        )
        expect(errorOf(exit)?.reason).toBe("Io")
        expect(errorOf(exit)?.description).toContain("shrank")
      })
    )

    it.live("keys lists exactly the keys holding bytes, each once, over many SCAN pages; never a call id", () =>
      Effect.gen(function* () {
        const store = yield* build(target.layer())
        const many = Array.from({ length: 2500 }, (_, i) => [`k${i}`, bytes("v")] as const)
        yield* store.append(many)
        yield* store.append([
          [["t", 1, "ü"], bytes("tuple")],
          ["sp ace/🔑", bytes("escapes")],
          [".calls/x", bytes("looks like an id")],
          ["empty", new Uint8Array(0)],
          ["gone", bytes("deleted")]
        ])
        yield* store.iset("set", bytes("s"))
        yield* store.delete(["gone", "k7"])
        const listed = yield* collect(store.keys)
        const expected = [...many.map(([k]) => k).filter((k) => k !== "k7"), "t/1/ü", "sp ace/🔑", ".calls/x", "set"]
        expect(listed.length).toBe(expected.length)
        expect(new Set(listed)).toEqual(new Set(expected))
        const sizes = yield* store.size(listed)
        const values = yield* store.get(listed)
        expect(sizes).toEqual(values.map((v) => v.byteLength))
        expect(yield* store.size(["missing", "empty", ".calls/x"])).toEqual([0, 0, 16])
        yield* store.drop
        expect(yield* collect(store.keys)).toEqual([])
      })
    )

    it.live("an append sent again with its id applies once, also when split into several scripts", () =>
      Effect.gen(function* () {
        const store = yield* build(target.layer())
        // 3000 keys: three scripts per call on one server, several per master on a cluster
        const call = Array.from({ length: 3000 }, (_, i) => [`c${i}`, bytes(`${i};`)] as const)
        yield* store.append(call, { id: "map-7-attempt-0" })
        yield* store.append(call, { id: "map-7-attempt-0" })
        yield* store.append([["c0", bytes("x")]], { id: "another" })
        yield* store.append([["c0", bytes("y")]])
        yield* store.append([["c0", bytes("y")]])
        const [c0, c2999] = yield* store.get(["c0", "c2999"])
        expect(text(c0!)).toBe("0;xyy")
        expect(text(c2999!)).toBe("2999;")
      })
    )

    it.live("call ids outlive delete and drop: the same call sent again after them is still not applied", () =>
      Effect.gen(function* () {
        const store = yield* build(target.layer())
        yield* store.append({ a: bytes("1"), b: bytes("2") }, { id: "once" })
        yield* store.delete(["a"])
        yield* store.append({ a: bytes("1"), b: bytes("2") }, { id: "once" })
        expect((yield* store.get(["a", "b"])).map(text)).toEqual(["", "2"])
        yield* store.drop
        yield* store.append({ a: bytes("1"), b: bytes("2") }, { id: "once" })
        expect((yield* store.get(["a", "b"])).map(text)).toEqual(["", ""])
        yield* store.append({ a: bytes("1") }, { id: "twice" })
        expect((yield* store.get(["a"])).map(text)).toEqual(["1"])
      })
    )

    it.live("an id is remembered for callWindow, then forgotten", () =>
      Effect.gen(function* () {
        const store = yield* build(target.layer({ callWindow: "1 second" }))
        yield* store.append({ w: bytes("1") }, { id: "w" })
        yield* store.append({ w: bytes("1") }, { id: "w" })
        expect(text((yield* store.get(["w"]))[0]!)).toBe("1")
        yield* Effect.sleep("1200 millis")
        yield* store.append({ w: bytes("1") }, { id: "w" })
        expect(text((yield* store.get(["w"]))[0]!)).toBe("11")
      })
    )

    it.live("useScripts: false has no ids: an append given one fails with BadValue and writes nothing", () =>
      Effect.gen(function* () {
        const store = yield* build(target.layer({ useScripts: false }))
        const exit = yield* Effect.exit(store.append({ n: bytes("1") }, { id: "x" }))
        expect(errorOf(exit)?.reason).toBe("BadValue")
        yield* store.append({ n: bytes("2") })
        expect(text((yield* store.get(["n"]))[0]!)).toBe("2")
      })
    )
  })
}

describe("Redis cluster ids", () => {
  it.live("a call over every master records one id key per master, each on the master it names", () =>
    Effect.gen(function* () {
      const store = yield* build(Redis.layerCluster({ nodes: cluster().nodes, prefix: "ids-per-master" }))
      const keys = Array.from({ length: 90 }, (_, i) => `m${i}`)
      yield* store.append(
        keys.map((k) => [k, bytes(k)] as const),
        { id: "spread" }
      )
      const clients = cluster().nodes.map((n) => new IORedis({ host: n.host, port: n.port }))
      const ids = yield* Effect.promise(() =>
        Promise.all(clients.map((c) => c.keys("ids-per-master/./calls/*").finally(() => c.quit())))
      )
      expect(ids.map((list) => list.length)).toEqual([1, 1, 1])
      yield* store.drop
    })
  )
})

describe("Redis replicas", () => {
  it.live(
    "replicas: 1 acknowledges once a real replica has the append; asking for more fails typed, applied once",
    () =>
      Effect.gen(function* () {
        const master = yield* RedisServer.start()
        yield* RedisServer.start({ args: ["--replicaof", master.host, String(master.port)] })
        yield* RedisServer.awaitReplicas(master.port, 1)
        const store = yield* build(Redis.layer({ port: master.port, prefix: "replicated", replicas: 1 }))
        yield* store.append({ r: bytes("safe;") })
        expect(text((yield* store.get(["r"]))[0]!)).toBe("safe;")
        const greedy = yield* build(
          Redis.layer({
            port: master.port,
            prefix: "replicated",
            replicas: 2,
            replicaTimeout: "100 millis",
            requestTimeout: "700 millis"
          })
        )
        const started = Date.now()
        const exit = yield* Effect.exit(greedy.append({ r: bytes("once;") }))
        expect(Date.now() - started).toBeLessThan(2000)
        expect(errorOf(exit)?.reason).toBe("Io")
        expect(errorOf(exit)?.description).toContain("1 of 2 replicas confirmed")
        // sent again (the same id) until the deadline, applied once
        expect(text((yield* store.get(["r"]))[0]!)).toBe("safe;once;")
        const bad = yield* Effect.exit(build(Redis.layer({ port: master.port, replicas: -1 })))
        expect(errorOf(bad)?.reason).toBe("BadValue")
      })
  )
})
