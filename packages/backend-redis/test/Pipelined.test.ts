/**
 * Pipelined appends over a real redis-server: the conformance suite, then
 * what pipelining promises (order, read-your-writes, errors that surface on
 * the next operation, nothing left behind when the scope closes).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Redis } from "@partd/backend-redis"
import { Pipelined, Store } from "@partd/core"
import * as RedisServer from "@partd/test/RedisServer"
import { suite } from "@partd/test/StoreSuite"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { Redis as IORedis } from "ioredis"
import { bytes, text } from "./Helpers.ts"

const server = RedisServer.shared({ beforeAll, afterAll }, RedisServer.start())

const pipelined = (options: Redis.Options = {}, maxPending = 4) =>
  Pipelined.layer({ maxPending }).pipe(
    Layer.provide(Layer.suspend(() => Redis.layer({ port: server().port, ...options })))
  )

suite("Pipelined(Redis)", pipelined(), { propertyRuns: 25 })

const failureOf = (exit: Exit.Exit<unknown, Store.StoreError>): Store.StoreError | undefined =>
  Exit.isFailure(exit)
    ? (exit.cause.reasons.find((r) => r._tag === "Fail") as { error: Store.StoreError } | undefined)?.error
    : undefined

/** A raw ioredis client on the shared server, closed with the test's scope. */
const raw = Effect.acquireRelease(
  Effect.sync(() => new IORedis({ port: server().port, lazyConnect: false })),
  (c) => Effect.promise(() => c.quit())
)

describe("Pipelined over Redis", () => {
  it.live("appends land in call order, and get waits for the ones still on their way", () =>
    Effect.gen(function* () {
      const store = yield* Store.Store
      const expected: Array<string> = []
      for (let i = 0; i < 2000; i++) {
        yield* store.append({ order: bytes(`${i},`), [`k${i % 7}`]: bytes(`${i};`) })
        expected.push(`${i},`)
      }
      const [order, k3] = yield* store.get(["order", "k3"])
      expect(text(order!)).toBe(expected.join(""))
      expect(text(k3!).split(";").filter(Boolean).map(Number)).toEqual(
        Array.from({ length: 2000 }, (_, i) => i).filter((i) => i % 7 === 3)
      )
      yield* store.drop
    }).pipe(Effect.provide(pipelined({ prefix: "pipelined-order" }, 8)))
  )

  it.live("a bad key fails its own call; a later failure fails the next operation, once", () =>
    Effect.gen(function* () {
      const client = yield* raw
      yield* Effect.promise(() => client.rpush("pipelined-late/list", "x"))
      const store = yield* Store.Store
      const badKey = failureOf(yield* Effect.exit(store.append({ "": bytes("x") })))
      expect(badKey?.reason).toBe("BadKey")
      // Redis refuses to APPEND to a list, but it answers after the call has returned.
      const appended = yield* Effect.exit(store.append({ list: bytes("y") }))
      expect(Exit.isSuccess(appended)).toBe(true)
      const failure = failureOf(yield* Effect.exit(store.get(["fine"])))
      expect(failure?.reason).toBe("Io")
      expect(failure?.method).toBe("append")
      // Reported once: the store goes on working.
      yield* store.append({ fine: bytes("ok") })
      const [fine] = yield* store.get(["fine"])
      expect(text(fine!)).toBe("ok")
      yield* Effect.promise(() => client.unlink("pipelined-late/list"))
      yield* store.drop
    }).pipe(Effect.provide(pipelined({ prefix: "pipelined-late" })))
  )

  it.live("several appends that fail before the caller hears of any arrive as one error carrying them all", () =>
    Effect.gen(function* () {
      const client = yield* raw
      yield* Effect.promise(() => client.rpush("pipelined-many/a", "x"))
      yield* Effect.promise(() => client.rpush("pipelined-many/b", "x"))
      const store = yield* Store.Store
      yield* store.append({ a: bytes("1") })
      yield* store.append({ b: bytes("2") })
      const failure = failureOf(yield* Effect.exit(store.get(["a"])))
      expect(failure?.reason).toBe("Io")
      expect(failure?.description).toMatch(/^2 pipelined appends failed/)
      const each = (failure?.cause ?? []) as ReadonlyArray<Store.StoreError>
      expect(each.map((e) => [e.reason, e.method])).toEqual([
        ["Io", "append"],
        ["Io", "append"]
      ])
      yield* Effect.promise(() => client.unlink("pipelined-many/a", "pipelined-many/b"))
    }).pipe(Effect.provide(pipelined({ prefix: "pipelined-many" })))
  )

  it.live(
    "a server restarted under pipelined appends: the calls in flight are sent again in call order and land once",
    () =>
      Effect.gen(function* () {
        const own = yield* RedisServer.start()
        const scope = yield* Scope.make()
        const store = Context.get(
          yield* Layer.buildWithScope(
            Pipelined.layer({ maxPending: 4 }).pipe(
              Layer.provide(Redis.layer({ port: own.port, prefix: "in-order", retryStrategy: () => 50 }))
            ),
            scope
          ),
          Store.Store
        )
        const admin = new IORedis({ port: own.port, lazyConnect: true, retryStrategy: () => null })
        admin.on("error", () => {})
        yield* Effect.promise(() => admin.connect())
        // Every command waits on the server, so four calls are in flight when it dies.
        yield* Effect.promise(() => admin.call("CLIENT", "PAUSE", "10000", "ALL"))
        for (let i = 0; i < 4; i++) yield* store.append({ k: bytes(`${i};`) })
        yield* Effect.sleep("100 millis")
        yield* own.restart
        admin.disconnect()
        yield* store.append({ k: bytes("4;") })
        // On the empty restarted server: each call once, in call order.
        const [k] = yield* store.get(["k"])
        expect(text(k!)).toBe("0;1;2;3;4;")
        yield* Scope.close(scope, Exit.void)
      }),
    30_000
  )

  it.live("closing the scope waits for the appends still on their way", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const store = Context.get(
        yield* Layer.buildWithScope(pipelined({ prefix: "pipelined-close" }, 16), scope),
        Store.Store
      )
      const chunk = new Uint8Array(64 * 1024).fill(7)
      for (let i = 0; i < 64; i++) yield* store.append({ big: chunk })
      yield* Scope.close(scope, Exit.void)
      const client = yield* raw
      const length = yield* Effect.promise(() => client.strlen("pipelined-close/big"))
      expect(length).toBe(64 * chunk.byteLength)
      yield* Effect.promise(() => client.unlink("pipelined-close/big"))
    })
  )
})
