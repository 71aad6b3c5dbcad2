/**
 * The Redis store on a real 3-master Redis Cluster started by the test on
 * loopback ports: the conformance suite (one cluster for all cases), then
 * checks that keys spread over the masters and that drop reaches every one.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Redis, Slot } from "@partd/backend-redis"
import { Pipelined, Store } from "@partd/core"
import * as RedisServer from "@partd/test/RedisServer"
import { suite } from "@partd/test/StoreSuite"
import { Config, ConfigProvider, Effect, Layer } from "effect"
import { Redis as IORedis } from "ioredis"
import { bytes } from "./Helpers.ts"

const cluster = RedisServer.shared({ beforeAll, afterAll }, RedisServer.cluster(3))

const storeLayer = Layer.suspend(() => Redis.layerCluster({ nodes: cluster().nodes }))

suite("Redis Cluster", storeLayer, { maxValueBytes: 64 * 1024 * 1024, propertyRuns: 25 })

/** A plain client on every master, closed with the test's scope. */
const masters = Effect.acquireRelease(
  Effect.sync(() => cluster().nodes.map((n) => new IORedis({ host: n.host, port: n.port }))),
  (clients) => Effect.promise(() => Promise.all(clients.map((c) => c.quit())))
)

/** How many of the store's keys (not its call ids) a master holds. */
const keysOn = (client: IORedis, prefix: string) =>
  client.keys(`${prefix}/*`).then((keys) => keys.filter((k) => !k.startsWith(`${prefix}/./`)).length)

describe("Redis Cluster specifics", () => {
  it("Slot.of matches the cluster's CLUSTER KEYSLOT, hash tags and UTF-8 included", () =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const [client] = yield* masters
          for (const key of [
            "",
            "a",
            "p/key-1",
            "{user1000}.following",
            "x{}y",
            "x{a}{b}",
            "ü/ключ/🔑",
            "\ud800x",
            "{"
          ]) {
            const slot = (yield* Effect.promise(() => client!.call("CLUSTER", "KEYSLOT", key))) as number
            expect(Slot.of(key), JSON.stringify(key)).toBe(slot)
          }
        })
      )
    ))

  it.live("keys spread over every master; multi-key calls and drop span them all", () =>
    Effect.gen(function* () {
      const clients = yield* masters
      const keys = Array.from({ length: 300 }, (_, i) => `spread-${i}`)
      yield* Effect.provide(
        Effect.gen(function* () {
          yield* Store.append(keys.map((k) => [k, bytes(k)] as const))
          yield* Store.append(keys.map((k) => [k, bytes("+")] as const))
          const counts = yield* Effect.promise(() => Promise.all(clients.map((c) => keysOn(c, "spread"))))
          expect(
            counts.every((n) => n > 50),
            `per-master key counts ${counts}`
          ).toBe(true)
          expect(counts.reduce((a, b) => a + b, 0)).toBe(300)
          const values = yield* Store.get(keys)
          expect(values.map((v) => new TextDecoder().decode(v))).toEqual(keys.map((k) => `${k}+`))
          yield* Store.delete(keys.slice(0, 100))
          expect(
            (yield* Effect.promise(() => Promise.all(clients.map((c) => keysOn(c, "spread"))))).reduce(
              (a, b) => a + b,
              0
            )
          ).toBe(200)
          yield* Store.drop
          expect(yield* Effect.promise(() => Promise.all(clients.map((c) => keysOn(c, "spread"))))).toEqual([0, 0, 0])
        }),
        Redis.layerCluster({ nodes: cluster().nodes, prefix: "spread" })
      )
    })
  )

  it.live("Pipelined over a fresh cluster store keeps every key's chunks in call order from the first call", () =>
    Effect.gen(function* () {
      const keys = Array.from({ length: 64 }, (_, i) => `ordered-${i}`)
      yield* Effect.provide(
        Effect.gen(function* () {
          for (let call = 0; call < 200; call++) {
            yield* Store.append(keys.map((k) => [k, bytes(`${call};`)] as const))
          }
          const expected = Array.from({ length: 200 }, (_, call) => `${call};`).join("")
          const values = yield* Store.get(keys)
          for (const value of values) expect(new TextDecoder().decode(value)).toBe(expected)
          yield* Store.drop
        }),
        Pipelined.layer({ maxPending: 8 }).pipe(
          Layer.provide(Redis.layerCluster({ nodes: cluster().nodes, prefix: "ordered" }))
        )
      )
    })
  )

  it.live("layerConfig with cluster: true takes a comma-separated list of node URLs", () =>
    Effect.gen(function* () {
      const urls = cluster()
        .nodes.map((n) => `redis://${n.host}:${n.port}`)
        .join(",")
      const layer = Redis.layerConfig({
        url: Config.String("URLS"),
        cluster: Config.Boolean("CLUSTER"),
        prefix: Config.String("PREFIX")
      }).pipe(
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ URLS: urls, CLUSTER: "true", PREFIX: "cfg" })))
      )
      const clients = yield* masters
      yield* Effect.provide(
        Effect.gen(function* () {
          const keys = Array.from({ length: 60 }, (_, i) => `c${i}`)
          yield* Store.append(keys.map((k) => [k, bytes(k)] as const))
          const counts = yield* Effect.promise(() => Promise.all(clients.map((c) => keysOn(c, "cfg"))))
          expect(counts.filter((n) => n > 0).length).toBe(3)
          yield* Store.drop
        }),
        layer
      )
    })
  )
})
