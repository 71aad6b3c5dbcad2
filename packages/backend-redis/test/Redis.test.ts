/**
 * The Redis store on one throwaway redis-server: the conformance suite, then
 * what is specific to Redis (key layout, prefixes, binary safety, drop's
 * reach, the three ways to build the Layer).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Redis, Resp } from "@partd/backend-redis"
import { Store } from "@partd/core"
import * as RedisServer from "@partd/test/RedisServer"
import { suite } from "@partd/test/StoreSuite"
import { Cause, Config, ConfigProvider, Effect, Exit, Layer, Redacted } from "effect"
import { Command, Redis as IORedis } from "ioredis"
import { bytes, text } from "./Helpers.ts"

const server = RedisServer.shared({ beforeAll, afterAll }, RedisServer.start())

const storeLayer = Layer.suspend(() => Redis.layer({ port: server().port }))

suite("Redis", storeLayer, { maxValueBytes: 64 * 1024 * 1024, propertyRuns: 25 })

/** A raw ioredis client on the shared server, closed with the test's scope. */
const raw = Effect.acquireRelease(
  Effect.sync(() => new IORedis({ port: server().port, lazyConnect: false })),
  (c) => Effect.promise(() => c.quit())
)

const reasonOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit)
    ? (exit.cause.reasons.find((r) => r._tag === "Fail") as { error: Store.StoreError })?.error?.reason
    : undefined

describe("Redis specifics", () => {
  it("Resp.evalWithId over Resp.keyBlock encodes byte for byte what ioredis encodes for the same EVAL", () => {
    const script = Buffer.from("return 1")
    const prefix = Buffer.from("pré/")
    const paths = ["a", "ключ/🔑", "x".repeat(300), "k9"]
    const values = [Uint8Array.of(), Uint8Array.of(0, 13, 10, 255), new Uint8Array(1000).fill(7), Uint8Array.of(42)]
    for (const [start, end] of [
      [0, 4],
      [1, 3],
      [3, 4]
    ] as const) {
      const idKey = "pré/./calls/{a}0/ид"
      const ours = Resp.evalWithId(script, idKey, "3600", Resp.keyBlock(prefix, paths, start, end), values, start, end)
      const args = [
        script,
        "1",
        Buffer.from(idKey),
        "3600",
        ...paths.slice(start, end).map((p) => Buffer.from(`pré/${p}`)),
        ...values.slice(start, end).map((v) => Buffer.from(v))
      ]
      const theirs = new Command("EVAL", args).toWritable({})
      expect(Buffer.compare(ours, Buffer.from(theirs)), `keys ${start}..${end}`).toBe(0)
    }
  })

  it.live("a key set appended to in columns, across script chunks of changing bounds, keeps every byte in order", () =>
    Effect.gen(function* () {
      const n = 2500
      const names = Array.from({ length: n }, (_, i) => (i % 7 === 0 ? ["t", i, "ü"] : `col-${i}`))
      const expected = names.map(() => [] as Array<number>)
      yield* Effect.provide(
        Effect.gen(function* () {
          const keys = yield* Store.keySet(names)
          // value sizes change the 1 MiB script boundaries from call to call
          for (const size of [1, 700, 3, 1500, 0, 2]) {
            const values = names.map((_, i) => new Uint8Array(size).fill((i + size) & 0xff))
            yield* Store.append(Store.columns(keys, values))
            for (let i = 0; i < n; i++) expected[i]!.push(...values[i]!)
          }
          const got = yield* Store.get(names)
          got.forEach((v, i) => {
            expect(v.byteLength, `key ${i}`).toBe(expected[i]!.length)
            expect(Buffer.from(v).equals(Buffer.from(expected[i]!)), `key ${i}`).toBe(true)
          })
          yield* Store.drop
        }),
        Redis.layer({ port: server().port, prefix: "columns" })
      )
    })
  )

  it.live("keys live under <prefix>/<path>, tuples as '/'-joined paths", () =>
    Effect.gen(function* () {
      const client = yield* raw
      yield* Effect.provide(
        Effect.gen(function* () {
          yield* Store.append([
            [["a", 1, "b"], bytes("t")],
            ["plain", bytes("p")]
          ])
          yield* Store.iset("set", bytes("s"))
        }),
        Redis.layer({ port: server().port, prefix: "layout-test" })
      )
      expect(yield* Effect.promise(() => client.get("layout-test/a/1/b"))).toBe("t")
      expect(yield* Effect.promise(() => client.get("layout-test/plain"))).toBe("p")
      expect(yield* Effect.promise(() => client.get("layout-test/set"))).toBe("s")
      yield* Effect.promise(() => client.unlink("layout-test/a/1/b", "layout-test/plain", "layout-test/set"))
    })
  )

  it.live("values are binary-safe Uint8Arrays both ways (no stringified arrays)", () =>
    Effect.gen(function* () {
      const client = yield* raw
      const value = Uint8Array.from([0, 255, 44, 50, 13, 10, 0x80, 0xc3])
      yield* Effect.provide(
        Effect.gen(function* () {
          yield* Store.append({ bin: value.subarray(0, 3) })
          yield* Store.append({ bin: value.subarray(3) })
          const got = yield* Store.getOne("bin")
          expect(got).toBeInstanceOf(Uint8Array)
          expect(Array.from(got)).toEqual(Array.from(value))
        }),
        Redis.layer({ port: server().port, prefix: "binary-test" })
      )
      const stored = yield* Effect.promise(() => client.getBuffer("binary-test/bin"))
      expect(Array.from(stored!)).toEqual(Array.from(value))
      yield* Effect.promise(() => client.unlink("binary-test/bin"))
    })
  )

  it.live("drop removes only its own prefix, never other keys in the database", () =>
    Effect.gen(function* () {
      const client = yield* raw
      yield* Effect.promise(() => client.mset("other", "1", "mine-not/x", "2", "mine-notreally", "3", "mine*/x", "4"))
      // more keys than one SCAN step returns
      const many = Array.from({ length: 2500 }, (_, i) => [`k${i}`, bytes("v")] as const)
      yield* Effect.provide(
        Effect.gen(function* () {
          yield* Store.append(many)
          yield* Store.drop
          expect((yield* Store.get(["k0", "k2499"])).map((v) => v.byteLength)).toEqual([0, 0])
        }),
        Redis.layer({ port: server().port, prefix: "mine" })
      )
      const [, keys] = yield* Effect.promise(() => client.scan("0", "MATCH", "mine/*", "COUNT", 10000))
      // only the call ids are left: they outlive drop (see "call ids outlive delete and drop")
      expect(keys.filter((k) => !k.startsWith("mine/./calls/"))).toEqual([])
      yield* Effect.promise(() => (keys.length > 0 ? client.unlink(...keys) : Promise.resolve(0)))
      expect(yield* Effect.promise(() => client.mget("other", "mine-not/x", "mine-notreally", "mine*/x"))).toEqual([
        "1",
        "2",
        "3",
        "4"
      ])
      // a prefix with glob characters matches itself only
      yield* Effect.promise(() => client.set("mineZ/x", "5"))
      yield* Effect.provide(
        Effect.gen(function* () {
          yield* Store.append({ y: bytes("y") })
          yield* Store.drop
        }),
        Redis.layer({ port: server().port, prefix: "mine*" })
      )
      expect(yield* Effect.promise(() => client.get("mine*/x"))).toBe(null) // its own key
      expect(yield* Effect.promise(() => client.get("mineZ/x"))).toBe("5")
      expect(yield* Effect.promise(() => client.get("mine-not/x"))).toBe("2")
      yield* Effect.promise(() => client.unlink("other", "mine-not/x", "mine-notreally", "mineZ/x"))
    })
  )

  it.live("two stores with different prefixes never see each other's keys", () =>
    Effect.gen(function* () {
      const a = Redis.layer({ port: server().port, prefix: "pa" })
      const b = Redis.layer({ port: server().port, prefix: "pa-b" })
      yield* Effect.provide(Store.append([[["x"], bytes("A")]]), a)
      yield* Effect.provide(Store.append([[["x"], bytes("B")]]), b)
      expect(text(yield* Effect.provide(Store.getOne("x"), a))).toBe("A")
      expect(text(yield* Effect.provide(Store.getOne("x"), b))).toBe("B")
      yield* Effect.provide(Store.drop, a)
      expect(text(yield* Effect.provide(Store.getOne("x"), b))).toBe("B")
      yield* Effect.provide(Store.drop, b)
    })
  )

  it.live("a prefix with '/', braces or nothing in it is refused", () =>
    Effect.gen(function* () {
      for (const prefix of ["", "a/b", "{tag}", "nul\u0000"]) {
        const exit = yield* Effect.exit(Effect.provide(Store.getOne("x"), Redis.layer({ port: server().port, prefix })))
        expect(reasonOf(exit), JSON.stringify(prefix)).toBe("BadKey")
      }
    })
  )

  it.live("a random prefix is dropped when the scope closes; a given prefix is kept", () =>
    Effect.gen(function* () {
      const client = yield* raw
      const before = yield* Effect.promise(() => client.dbsize())
      yield* Effect.provide(Store.append({ r1: bytes("1"), r2: bytes("2") }), Redis.layer({ port: server().port }))
      expect(yield* Effect.promise(() => client.dbsize())).toBe(before)
      yield* Effect.provide(Store.append({ kept: bytes("1") }), Redis.layer({ port: server().port, prefix: "kept" }))
      expect(yield* Effect.promise(() => client.get("kept/kept"))).toBe("1")
      yield* Effect.promise(() => client.unlink("kept/kept"))
    })
  )

  it.live("the connection is quit when the scope closes", () =>
    Effect.gen(function* () {
      const client = yield* raw
      const count = () =>
        Effect.promise(async () => ((await client.call("CLIENT", "LIST")) as string).trim().split("\n").length)
      const before = yield* count()
      yield* Effect.provide(
        Effect.gen(function* () {
          yield* Store.getOne("x")
          expect(yield* count()).toBe(before + 1)
        }),
        Redis.layer({ port: server().port, prefix: "quit-test" })
      )
      // the server notices the QUIT asynchronously
      let after = yield* count()
      for (let i = 0; i < 50 && after !== before; i++) {
        yield* Effect.sleep("20 millis")
        after = yield* count()
      }
      expect(after).toBe(before)
    })
  )

  it.live("layerFromClient uses the caller's client and leaves it open", () =>
    Effect.gen(function* () {
      const client = new IORedis({ port: server().port, autoResendUnfulfilledCommands: false })
      yield* Effect.provide(
        Effect.gen(function* () {
          yield* Store.append({ f: bytes("from client") })
          expect(text(yield* Store.getOne("f"))).toBe("from client")
          yield* Store.drop
        }),
        Redis.layerFromClient(client, { prefix: "from-client" })
      )
      expect(client.status).toBe("ready")
      expect(yield* Effect.promise(() => client.ping())).toBe("PONG")
      yield* Effect.promise(() => client.quit())
    })
  )

  it.live("layerFromClient refuses a client with ioredis's keyPrefix", () =>
    Effect.gen(function* () {
      const client = new IORedis({ port: server().port, keyPrefix: "x:", lazyConnect: true })
      const exit = yield* Effect.exit(Effect.provide(Store.getOne("a"), Redis.layerFromClient(client)))
      expect(reasonOf(exit)).toBe("BadKey")
      client.disconnect()
    })
  )

  it.live("layerConfig reads the URL and prefix from effect's Config", () =>
    Effect.gen(function* () {
      const layer = Redis.layerConfig({
        url: Config.Redacted("REDIS_URL"),
        prefix: Config.String("PARTD_PREFIX")
      }).pipe(
        Layer.provide(
          ConfigProvider.layer(
            ConfigProvider.fromUnknown({
              REDIS_URL: `redis://127.0.0.1:${server().port}/0`,
              PARTD_PREFIX: "from-config"
            })
          )
        )
      )
      yield* Effect.provide(Store.append({ c: bytes("configured") }), layer)
      const client = yield* raw
      expect(yield* Effect.promise(() => client.get("from-config/c"))).toBe("configured")
      yield* Effect.provide(Store.drop, layer)
      expect(yield* Effect.promise(() => client.get("from-config/c"))).toBe(null)
    })
  )

  it.live(
    "layerConfig takes every store option (useScripts, requestTimeout) and fails a bad URL with a typed error",
    () =>
      Effect.gen(function* () {
        const client = yield* raw
        const evals = Effect.promise(async () => {
          const info = (await client.info("commandstats")) as string
          return Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0)
        })
        const before = yield* evals
        yield* Effect.provide(
          Effect.gen(function* () {
            yield* Store.append({ p: bytes("piped") })
            yield* Store.drop
          }),
          Redis.layerConfig({
            url: Config.succeed(`redis://127.0.0.1:${server().port}`),
            prefix: Config.succeed("config-pipe"),
            useScripts: Config.succeed(false),
            requestTimeout: Config.Duration("REQUEST_TIMEOUT")
          }).pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ REQUEST_TIMEOUT: "2 seconds" }))))
        )
        expect(yield* evals).toBe(before)
        for (const url of ["not a url", "http://127.0.0.1:1/", "redis://127.0.0.1:1/x", "a,b"]) {
          for (const cluster of [false, true]) {
            const exit = yield* Effect.exit(
              Effect.provide(
                Store.getOne("a"),
                Redis.layerConfig({ url: Config.succeed(Redacted.make(url)), cluster: Config.succeed(cluster) })
              )
            )
            const error = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : undefined
            expect(error?._tag, `${url} cluster=${cluster}`).toBe("Some")
            const storeError = (error as { value: Store.StoreError }).value
            expect(storeError).toBeInstanceOf(Store.StoreError)
            expect(storeError.reason).toBe("Unavailable")
            expect(storeError.method).toBe("Redis.make")
          }
        }
      })
  )

  it.live("errors of building a store name the method Redis.make, as File's name File.make", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(RedisServer.freePort)
      const exits = [
        yield* Effect.exit(Effect.provide(Store.getOne("a"), Redis.layer({ port, readyTimeout: "200 millis" }))),
        yield* Effect.exit(Effect.provide(Store.getOne("a"), Redis.layer({ port: server().port, prefix: "a/b" })))
      ]
      for (const exit of exits) {
        const error = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : undefined
        expect((error as { value: Store.StoreError } | undefined)?.value.method).toBe("Redis.make")
      }
    })
  )

  it.live("useScripts: false appends by pipeline: no EVAL reaches the server", () =>
    Effect.gen(function* () {
      const client = yield* raw
      const evals = Effect.promise(async () => {
        const info = (await client.info("commandstats")) as string
        return Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0)
      })
      yield* Effect.provide(
        Effect.gen(function* () {
          const before = yield* evals
          yield* Store.append([
            ["k", bytes("1")],
            ["j", bytes("a")],
            ["k", bytes("2")]
          ])
          expect((yield* Store.get(["k", "j"])).map(text)).toEqual(["12", "a"])
          expect(yield* evals).toBe(before)
          yield* Store.drop
        }),
        Redis.layer({ port: server().port, prefix: "no-scripts", useScripts: false })
      )
      // and the default does use the script
      const before = yield* evals
      yield* Effect.provide(Store.append({ s: bytes("1") }), Redis.layer({ port: server().port }))
      expect(yield* evals).toBe(before + 1)
    })
  )

  it.live("a value of the wrong type in Redis fails with Io, not as missing", () =>
    Effect.gen(function* () {
      const client = yield* raw
      yield* Effect.promise(() => client.rpush("wrongtype/list", "x"))
      const layer = Redis.layer({ port: server().port, prefix: "wrongtype" })
      const appended = yield* Effect.exit(Effect.provide(Store.append({ list: bytes("y") }), layer))
      expect(reasonOf(appended)).toBe("Io")
      yield* Effect.promise(() => client.unlink("wrongtype/list"))
    })
  )
})
