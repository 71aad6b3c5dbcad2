/**
 * Faults and authentication against real servers: a server that is not there
 * (or never answers) fails the Layer with `Unavailable` within `readyTimeout`;
 * a server restarted under a call fails that call with a typed error and the
 * store carries on after ioredis reconnects; passwords and ACL users pass
 * through to ioredis.
 */
import * as net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Redis } from "@partd/backend-redis"
import { Store } from "@partd/core"
import * as RedisServer from "@partd/test/RedisServer"
import { Effect, Exit, Fiber } from "effect"
import { Redis as IORedis } from "ioredis"
import { build, bytes, errorOf, text } from "./Helpers.ts"

describe("Redis faults", () => {
  it.live("an unreachable server fails the Layer with Unavailable within readyTimeout", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(RedisServer.freePort)
      const started = Date.now()
      const exit = yield* Effect.exit(build(Redis.layer({ port, readyTimeout: "300 millis" })))
      const elapsed = Date.now() - started
      const error = errorOf(exit)
      expect(error).toBeInstanceOf(Store.StoreError)
      expect(error?.reason).toBe("Unavailable")
      expect(error?.description).toContain("ECONNREFUSED")
      expect(elapsed).toBeLessThan(3000)
    })
  )

  it.live("an unreachable cluster fails the Layer with Unavailable within readyTimeout", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(RedisServer.freePort)
      const started = Date.now()
      const exit = yield* Effect.exit(
        build(Redis.layerCluster({ nodes: [{ host: "127.0.0.1", port }], readyTimeout: "300 millis" }))
      )
      expect(errorOf(exit)?.reason).toBe("Unavailable")
      expect(Date.now() - started).toBeLessThan(3000)
    })
  )

  it.live("a server that accepts but never answers fails the Layer within readyTimeout (no hang)", () =>
    Effect.gen(function* () {
      const sockets = new Set<net.Socket>()
      const silent = net.createServer((socket) => {
        sockets.add(socket)
        socket.on("error", () => {})
      })
      yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))),
        () =>
          Effect.promise(() => {
            for (const s of sockets) s.destroy()
            return new Promise<void>((resolve) => silent.close(() => resolve()))
          })
      )
      const port = (silent.address() as net.AddressInfo).port
      const started = Date.now()
      const exit = yield* Effect.exit(build(Redis.layer({ port, readyTimeout: "500 millis" })))
      const elapsed = Date.now() - started
      expect(errorOf(exit)?.reason).toBe("Unavailable")
      expect(errorOf(exit)?.description).toContain("not ready within")
      expect(elapsed).toBeGreaterThanOrEqual(450)
      expect(elapsed).toBeLessThan(3000)
    })
  )

  it.live(
    "a server restarted mid-run: calls in flight are sent again after the reconnect and applied once",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const store = yield* build(Redis.layer({ port: server.port, prefix: "restart", retryStrategy: () => 50 }))
        yield* store.append({ before: bytes("lost with the restart") })
        const admin = new IORedis({ port: server.port, lazyConnect: true, retryStrategy: () => null })
        admin.on("error", () => {})
        yield* Effect.promise(() => admin.connect())
        // Hold every command on the server, so that the store's calls are in flight when it dies.
        yield* Effect.promise(() => admin.call("CLIENT", "PAUSE", "10000", "ALL"))
        const append = yield* Effect.forkChild(Effect.exit(store.append({ k: bytes("in flight;") })))
        const get = yield* Effect.forkChild(Effect.exit(store.get(["before"])))
        yield* Effect.sleep("100 millis")
        yield* server.restart
        admin.disconnect()
        const appended = yield* Fiber.join(append)
        const got = yield* Fiber.join(get)
        // The restarted server is empty: the append reached it once, after the reconnect.
        expect(errorOf(appended)).toBeUndefined()
        expect(errorOf(got)).toBeUndefined()
        expect(Exit.isSuccess(got) && got.value[0]!.byteLength).toBe(0)
        yield* store.append({ k: bytes("after") })
        const [k, before] = yield* store.get(["k", "before"])
        expect(text(k!)).toBe("in flight;after")
        expect(before!.byteLength).toBe(0)
      }),
    30_000
  )

  it.live(
    "a call in flight whose server stays away past requestTimeout fails with Io naming its id; sent again with it, it applies once",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const store = yield* build(
          Redis.layer({ port: server.port, prefix: "late", requestTimeout: "600 millis", retryStrategy: () => 50 })
        )
        yield* store.append({ k: bytes("a;") })
        const pid = yield* pidOf(server.port)
        process.kill(pid, "SIGSTOP")
        const { exit, elapsed } = yield* timed(store.append({ k: bytes("b;") }))
        process.kill(pid, "SIGCONT")
        const error = errorOf(exit)
        expect(error?.reason).toBe("Io")
        expect(elapsed).toBeLessThan(2000)
        const id = /with id "([^"]+)"/.exec(error?.description ?? "")?.[1]
        expect(id, error?.description).toBeDefined()
        // The first send was applied when the server resumed; the caller's retry with the id is not applied again.
        yield* store.append({ k: bytes("b;") }, { id: id! })
        yield* store.append({ k: bytes("c") })
        expect(text((yield* store.get(["k"]))[0]!)).toBe("a;b;c")
      }),
    30_000
  )

  it.live(
    "a server that goes away for good fails calls with Unavailable once requestTimeout has passed, not a hang",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const store = yield* build(
          Redis.layer({
            port: server.port,
            prefix: "gone",
            retryStrategy: () => 20,
            maxRetriesPerRequest: 2,
            requestTimeout: "1 second"
          })
        )
        yield* store.append({ a: bytes("1") })
        yield* server.kill
        // the first call may be caught in flight (Io); once ioredis knows, calls fail as Unavailable
        yield* Effect.exit(store.append({ a: bytes("2") }))
        const { exit, elapsed } = yield* timed(store.get(["a"]))
        expect(errorOf(exit)?.reason).toBe("Unavailable")
        // sent again while the deadline allowed, then given up
        expect(errorOf(exit)?.description).toMatch(/after \d+ attempts/)
        expect(elapsed).toBeGreaterThanOrEqual(900)
        expect(elapsed).toBeLessThan(2500)
      })
  )
})

/** The pid of a throwaway server, from its INFO. */
const pidOf = (port: number) =>
  Effect.promise(async () => Number(/process_id:(\d+)/.exec(await RedisServer.command(port, "INFO server"))?.[1]))

/** Builds a store, runs `call` on it, and reports how long it took and how it ended (bounded: no hang). */
const timed = <A>(call: Effect.Effect<A, Store.StoreError>) =>
  Effect.gen(function* () {
    const started = Date.now()
    const exit = yield* Effect.exit(call.pipe(Effect.timeout("5 seconds")))
    return { exit, elapsed: Date.now() - started }
  })

describe("Redis: bounded waits, no ghost writes", () => {
  it.live(
    "while the server is down a call fails with Unavailable within requestTimeout, and is never applied",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const store = yield* build(
          Redis.layer({ port: server.port, prefix: "down", requestTimeout: "500 millis", retryStrategy: () => 50 })
        )
        yield* store.append({ k: bytes("before;") })
        yield* server.kill
        yield* Effect.sleep("100 millis")
        const { exit, elapsed } = yield* timed(store.append({ k: bytes("ghost;") }))
        expect(errorOf(exit)?.reason).toBe("Unavailable")
        expect(errorOf(exit)?.description).toContain("not sent")
        expect(elapsed).toBeGreaterThanOrEqual(400)
        expect(elapsed).toBeLessThan(2000)
        // The server comes back (empty): the failed call never reaches it.
        yield* server.restart
        yield* Effect.sleep("300 millis")
        yield* store.append({ k: bytes("after") })
        expect(text((yield* store.get(["k"]))[0]!)).toBe("after")
      }),
    30_000
  )

  it.live("a caller that stops waiting while the server is down: its call is never sent, also once it is back", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.start()
      const store = yield* build(Redis.layer({ port: server.port, prefix: "gave-up", retryStrategy: () => 50 }))
      yield* server.kill
      yield* Effect.sleep("100 millis")
      const gaveUp = yield* Effect.exit(store.append({ k: bytes("given up;") }).pipe(Effect.timeout("300 millis")))
      expect(Exit.isFailure(gaveUp)).toBe(true)
      expect(errorOf(gaveUp)).not.toBeInstanceOf(Store.StoreError)
      yield* server.restart
      yield* Effect.sleep("300 millis")
      // A retrying caller appends once more: the first try must not land too.
      yield* store.append({ k: bytes("retried") })
      yield* Effect.sleep("100 millis")
      expect(text((yield* store.get(["k"]))[0]!)).toBe("retried")
    })
  )

  it.live(
    "a server that stops answering (SIGSTOP): a sent call fails with Io within requestTimeout; it may apply later",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const store = yield* build(Redis.layer({ port: server.port, prefix: "paused", requestTimeout: "500 millis" }))
        yield* store.append({ k: bytes("a;") })
        const pid = yield* pidOf(server.port)
        expect(pid).toBeGreaterThan(0)
        yield* Effect.acquireRelease(
          Effect.sync(() => process.kill(pid, "SIGSTOP")),
          () => Effect.sync(() => process.kill(pid, "SIGCONT"))
        )
        const { exit, elapsed } = yield* timed(store.append({ k: bytes("maybe;") }))
        expect(errorOf(exit)?.reason).toBe("Io")
        expect(errorOf(exit)?.description).toContain("may or may not have been applied")
        expect(errorOf(exit)?.description).toContain("send it again with id")
        expect(elapsed).toBeLessThan(2000)
        process.kill(pid, "SIGCONT")
        // It had been written to the socket: the server applies it when it resumes, as the error said it might.
        yield* store.append({ k: bytes("b") })
        expect(text((yield* store.get(["k"]))[0]!)).toBe("a;maybe;b")
      }),
    30_000
  )
})

describe("Redis authentication", () => {
  it.live("password (requirepass) and ACL users pass through; a wrong password fails with Unavailable", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.start({ args: ["--requirepass", "s3cret"], auth: "s3cret" })
      const withPassword = yield* build(Redis.layer({ port: server.port, password: "s3cret", prefix: "auth" }))
      yield* withPassword.append({ a: bytes("password ok") })
      expect(text((yield* withPassword.get(["a"]))[0]!)).toBe("password ok")

      const admin = new IORedis({ port: server.port, password: "s3cret" })
      // the least an ACL user needs (INFO is ioredis's ready check), on the store's keys only
      yield* Effect.promise(() =>
        admin.call(
          "ACL",
          "SETUSER",
          "partd",
          "on",
          ">userpw",
          "~auth/*",
          "+append",
          "+get",
          "+mget",
          "+set",
          "+unlink",
          "+scan",
          "+eval",
          "+info"
        )
      )
      yield* Effect.promise(() => admin.quit())
      const asUser = yield* build(
        Redis.layer({ port: server.port, username: "partd", password: "userpw", prefix: "auth" })
      )
      yield* asUser.append({ a: bytes(" / acl user ok") })
      expect(text((yield* asUser.get(["a"]))[0]!)).toBe("password ok / acl user ok")
      yield* asUser.delete(["a"])
      yield* asUser.iset("b", bytes("set"))
      yield* asUser.drop
      expect((yield* withPassword.get(["a", "b"])).map((v) => v.byteLength)).toEqual([0, 0])
      // the ACL confines the user to ~auth/*: another prefix is refused by the server
      const elsewhere = yield* build(
        Redis.layer({ port: server.port, username: "partd", password: "userpw", prefix: "other" })
      )
      const denied = errorOf(yield* Effect.exit(elsewhere.append({ x: bytes("no") })))
      expect(denied?.reason).toBe("Io")
      expect(denied?.description).toContain("NOPERM")

      const wrong = yield* Effect.exit(
        build(Redis.layer({ port: server.port, password: "wrong", readyTimeout: "500 millis" }))
      )
      expect(errorOf(wrong)?.reason).toBe("Unavailable")
      expect(errorOf(wrong)?.description).toMatch(/WRONGPASS|invalid/i)
    })
  )
})
