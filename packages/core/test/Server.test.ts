import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as nodePath from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Client, Dict, Pipelined, Server, Store, Buffer as StoreBuffer, Wire } from "@partd/core"
import * as Handshake from "@partd/core/Handshake"
import { emptyBackend } from "@partd/test/EmptyBackend"
import { pattern, suite } from "@partd/test/StoreSuite"
import { Context, Effect, Exit, Fiber, Layer, Schedule, Scope } from "effect"

let socketCounter = 0
/** A fresh Unix socket path (short: socket paths are limited to ~100 bytes). */
const socketPath = (): string => nodePath.join(os.tmpdir(), `partd-t-${process.pid}-${socketCounter++}.sock`)

/** A client of a server (over `store`) that lives as long as the client. */
const served = <E>(
  store: Layer.Layer<Store.Store, E>,
  address: () => Server.Address,
  options: { readonly maxFrameBytes?: number } = {}
): Layer.Layer<Store.Store, E | Store.StoreError> =>
  Layer.unwrap(
    Effect.sync(() =>
      Layer.unwrap(Effect.map(Server.Server, (server) => Client.layer({ address: server.address, ...options }))).pipe(
        Layer.provide(Server.layer({ address: address(), ...options }).pipe(Layer.provide(Layer.fresh(store))))
      )
    )
  )

suite(
  "Client→Server(Dict) over a Unix socket",
  served(Dict.layer, () => ({ path: socketPath() })),
  {
    propertyRuns: 10
  }
)

suite(
  "Client→Server(Buffer(Dict, Dict)) over TCP",
  served(StoreBuffer.layer({ fast: Dict.layer, slow: Dict.layer, availableMemory: 8 * 1024 * 1024 }), () => ({
    port: 0
  })),
  { propertyRuns: 10 }
)

// A client that does not wait for its appends' answers: the server must still
// apply them in order, also when the Buffer it serves makes appends wait for room.
suite(
  "Pipelined(Client→Server(Buffer(Dict, Dict))) over a Unix socket",
  Pipelined.layer({ maxPending: 8 }).pipe(
    Layer.provide(
      served(StoreBuffer.layer({ fast: Dict.layer, slow: Dict.layer, availableMemory: 1024 }), () => ({
        path: socketPath()
      }))
    )
  ),
  { propertyRuns: 10 }
)

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (u: Uint8Array): string => new TextDecoder().decode(u)

/** Starts a server over a fresh Dict in the test's scope; returns where it listens. */
const startServer = (address: Server.Address, options: Omit<Server.Options, "address"> = {}) =>
  Effect.map(
    Layer.build(Server.layer({ address, ...options }).pipe(Layer.provide(Layer.fresh(Dict.layer)))),
    (context) => Context.get(context, Server.Server).address
  )

/** A client store in a scope of its own, closed with `close`. */
const openClient = (address: Server.Address, options: Omit<Client.Options, "address"> = {}) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const store = yield* Client.make({ address, ...options }).pipe(Scope.provide(scope))
    return { store, close: Scope.close(scope, Exit.void) }
  })

const connectOptions = (address: Server.Address) =>
  "path" in address ? { path: address.path } : { host: address.host ?? "127.0.0.1", port: address.port }

/**
 * A raw connection that writes `frames` (with a pause between them), optionally
 * half-closes, and reports whether the server closed the connection within
 * `waitMs`.
 */
const rawSession = (
  address: Server.Address,
  frames: ReadonlyArray<Uint8Array>,
  options: { readonly end?: boolean; readonly destroy?: boolean; readonly waitMs?: number } = {}
) =>
  Effect.promise(
    () =>
      new Promise<"closed by server" | "still open" | "destroyed">((resolve) => {
        const socket = net.createConnection(connectOptions(address))
        socket.on("error", () => {})
        socket.on("data", () => {})
        let timer: ReturnType<typeof setTimeout> | undefined
        socket.on("close", () => {
          if (timer !== undefined) clearTimeout(timer)
          resolve(options.destroy ? "destroyed" : "closed by server")
        })
        socket.on("connect", async () => {
          socket.write(Handshake.clientHello())
          for (const frame of frames) {
            socket.write(frame)
            await new Promise((r) => setTimeout(r, 5))
          }
          if (options.destroy) {
            socket.destroy()
            return
          }
          if (options.end) socket.end()
          timer = setTimeout(() => {
            socket.destroy()
            resolve("still open")
          }, options.waitMs ?? 2000)
        })
      })
  )

/**
 * Writes `messages` as request frames in one go over a raw connection, then
 * reads the replies until there is one per request.
 */
const rawRequests = (address: Server.Address, messages: ReadonlyArray<object>) =>
  Effect.promise(
    () =>
      new Promise<Array<Wire.Reply>>((resolve, reject) => {
        const parser = Wire.makeParser()
        const socket = net.createConnection(connectOptions(address))
        const replies: Array<Wire.Reply> = []
        socket.on("error", reject)
        socket.on("close", () => reject(new Error(`closed after ${replies.length} replies`)))
        socket.on("data", (chunk: Uint8Array) => {
          for (const message of parser.decode(chunk)) {
            if ((message as { _tag?: unknown })._tag === "Hello") continue
            const reply = Wire.toReply(message)
            if (reply === undefined) return reject(new Error("not a reply"))
            replies.push(reply)
          }
          if (replies.length === messages.length) {
            socket.removeAllListeners("close")
            socket.destroy()
            resolve(replies)
          }
        })
        socket.write(globalThis.Buffer.concat([Handshake.clientHello(), ...messages.map((m) => Wire.encode(m))]))
      })
  )

const u32 = (n: number): Uint8Array => {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, n, true)
  return out
}
const fiberDone = (fiber: Fiber.Fiber<unknown, unknown>): boolean => fiber.pollUnsafe() !== undefined
const concat = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => new Uint8Array(globalThis.Buffer.concat(parts))

/**
 * Good clients append numbered records to their own keys concurrently while
 * `attack` runs; afterwards each key holds every record exactly once, in
 * order, and a new client is served.
 */
const withGoodClients = <A, E>(address: Server.Address, attack: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const clients = 4
    const rounds = 60
    const good = Effect.forEach(
      Array.from({ length: clients }, (_, c) => c),
      (c) =>
        Effect.gen(function* () {
          const { store, close } = yield* openClient(address)
          for (let r = 0; r < rounds; r++) {
            yield* store.append({ [`good-${c}`]: pattern(100, r) })
            if (r % 10 === 0) yield* Effect.sleep(2)
          }
          yield* close
        }),
      { concurrency: "unbounded", discard: true }
    )
    const [, result] = yield* Effect.all([good, attack], { concurrency: "unbounded" })
    const { store, close } = yield* openClient(address)
    const values = yield* store.get(Array.from({ length: clients }, (_, c) => `good-${c}`))
    for (const value of values) {
      expect(value.byteLength).toBe(rounds * 100)
      for (let r = 0; r < rounds; r++) {
        expect(globalThis.Buffer.from(value.subarray(r * 100, (r + 1) * 100)).equals(pattern(100, r))).toBe(true)
      }
    }
    yield* close
    return result
  })

describe("Server safety", () => {
  it.live("a connection that sends a request before greeting is closed, and nothing it sent is applied", () =>
    Effect.gen(function* () {
      const address = yield* startServer({ path: socketPath() })
      const outcome = yield* Effect.promise(
        () =>
          new Promise<"closed" | "open">((resolve) => {
            const socket = net.createConnection(connectOptions(address))
            const timer = setTimeout(() => {
              socket.destroy()
              resolve("open")
            }, 3000)
            socket.on("error", () => {})
            socket.on("data", () => {})
            socket.on("close", () => {
              clearTimeout(timer)
              resolve("closed")
            })
            socket.write(Wire.encode({ _tag: "Append", id: 0, paths: "ungreeted", values: [bytes("x")] }))
          })
      )
      expect(outcome).toBe("closed")
      const { store, close } = yield* openClient(address)
      expect((yield* store.get(["ungreeted"]))[0]!.byteLength).toBe(0)
      yield* close
    })
  )

  it.live("a TCP server binds loopback by default", () =>
    Effect.gen(function* () {
      const address = yield* startServer({ port: 0 })
      expect(address).toMatchObject({ host: "127.0.0.1" })
      expect("port" in address && address.port > 0).toBe(true)
    })
  )

  it.live("a Unix socket is owner-only and removed when the scope closes", () =>
    Effect.gen(function* () {
      const path = socketPath()
      const scope = yield* Scope.make()
      yield* startServer({ path }).pipe(Scope.provide(scope))
      const stat = fs.statSync(path)
      expect(stat.isSocket()).toBe(true)
      expect(stat.mode & 0o777).toBe(0o600)
      yield* Scope.close(scope, Exit.void)
      expect(fs.existsSync(path)).toBe(false)
    })
  )

  it.live("a stale socket file is replaced; a live one is not taken over", () =>
    Effect.gen(function* () {
      const path = socketPath()
      // A process that dies while listening leaves its socket file behind.
      const died = spawnSync(process.execPath, [
        "-e",
        "require('net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))",
        path
      ])
      expect(died.signal).toBe("SIGKILL")
      expect(fs.statSync(path).isSocket()).toBe(true)
      const address = yield* startServer({ path })
      const { store, close } = yield* openClient(address)
      yield* store.append({ a: bytes("served") })
      expect(text((yield* store.get(["a"]))[0]!)).toBe("served")
      yield* close
      const second = yield* Effect.exit(startServer({ path }))
      expect(String(second)).toContain("already listens")
      // The first server still owns the path.
      const again = yield* openClient(address)
      expect(text((yield* again.store.get(["a"]))[0]!)).toBe("served")
      yield* again.close
    })
  )

  it.live("garbage bytes close that connection only", () =>
    Effect.gen(function* () {
      const address = yield* startServer({ path: socketPath() }, { maxFrameBytes: 1024 * 1024 })
      const garbage = new Uint8Array(4096).map((_, i) => (i * 7919 + 13) & 0xff)
      const outcomes = yield* withGoodClients(
        address,
        Effect.all(
          [
            // A plausible length, then bytes that are not MessagePack.
            rawSession(address, [concat(u32(16), new Uint8Array(16).fill(0xc1))]),
            // MessagePack that is not an RPC message.
            rawSession(address, [concat(u32(9), u32(1), Uint8Array.of(0x2a), new Uint8Array(4))]),
            // Noise whose first bytes read as an absurd length.
            rawSession(address, [garbage])
          ],
          { concurrency: "unbounded" }
        )
      )
      expect(outcomes).toEqual(["closed by server", "closed by server", "closed by server"])
    })
  )

  it.live("an oversize frame closes that connection; the client that sent it gets Io (sent, fate unknown)", () =>
    Effect.gen(function* () {
      const address = yield* startServer({ path: socketPath() }, { maxFrameBytes: 1024 * 1024 })
      const outcome = yield* withGoodClients(
        address,
        Effect.gen(function* () {
          const raw = yield* rawSession(address, [concat(u32(0xfffffff0), new Uint8Array(64))])
          // A client that believes frames may be larger than the server accepts.
          const { store, close } = yield* openClient(address, { maxFrameBytes: 8 * 1024 * 1024 })
          const exit = yield* Effect.exit(store.append({ big: new Uint8Array(2 * 1024 * 1024) }))
          // The same client reconnects (a request racing the reset may fail too).
          yield* store.append({ small: bytes("ok") }).pipe(Effect.retry({ times: 5, schedule: Schedule.spaced(50) }))
          const [small] = yield* store.get(["small"])
          yield* close
          return { raw, exit, small: text(small!) }
        })
      )
      expect(outcome.raw).toBe("closed by server")
      expect(Exit.isFailure(outcome.exit) && String(outcome.exit.cause)).toContain("Io")
      expect(Exit.isFailure(outcome.exit) && String(outcome.exit.cause)).toContain("may have been applied")
      expect(outcome.small).toBe("ok")
    })
  )

  it.live("truncated frames and clients that vanish mid-frame affect nobody else", () =>
    Effect.gen(function* () {
      const address = yield* startServer({ port: 0 }, { maxFrameBytes: 1024 * 1024 })
      const outcomes = yield* withGoodClients(
        address,
        Effect.all(
          [
            // Half a frame, then a half-close: the rest never comes.
            rawSession(address, [concat(u32(1000), new Uint8Array(100))], { end: true }),
            // Half a frame, then gone.
            rawSession(address, [concat(u32(100_000), new Uint8Array(50_000))], { destroy: true }),
            // A frame header cut in two, then gone.
            rawSession(address, [Uint8Array.of(0x10, 0x00)], { destroy: true })
          ],
          { concurrency: "unbounded" }
        )
      )
      expect(outcomes).toEqual(["closed by server", "destroyed", "destroyed"])
    })
  )

  it.live("clients that vanish mid-request (big reads, appends in flight) affect nobody else", () =>
    Effect.gen(function* () {
      const address = yield* startServer({ path: socketPath() })
      const { store: setup, close: closeSetup } = yield* openClient(address)
      yield* setup.append({ large: new Uint8Array(8 * 1024 * 1024).fill(7) })
      yield* closeSetup
      yield* withGoodClients(
        address,
        Effect.forEach(
          [0, 1, 2],
          (i) =>
            Effect.gen(function* () {
              const { store, close } = yield* openClient(address)
              // Requests in flight when the connection goes away.
              yield* Effect.forkChild(store.get(["large"]))
              yield* Effect.forkChild(store.append({ [`vanished-${i}`]: new Uint8Array(256 * 1024).fill(i) }))
              yield* Effect.sleep(i)
              yield* close
            }),
          { concurrency: "unbounded", discard: true }
        )
      )
      // Whatever of the vanished appends arrived, arrived whole.
      const { store, close } = yield* openClient(address)
      const vanished = yield* store.get(["vanished-0", "vanished-1", "vanished-2"])
      for (const value of vanished) expect([0, 256 * 1024]).toContain(value.byteLength)
      expect((yield* store.get(["large"]))[0]!.byteLength).toBe(8 * 1024 * 1024)
      yield* close
    })
  )
})

describe("Server limits per connection, in bytes", () => {
  it.live(
    "a client that sends far more than the server applies makes it hold at most maxQueuedBytes of its requests",
    () =>
      Effect.gen(function* () {
        const maxQueuedBytes = 4 * 1024 * 1024
        const address = yield* startServer({ path: socketPath() }, { maxQueuedBytes, maxUnreadBytes: 1024 * 1024 })
        const { store, close } = yield* openClient(address)
        yield* store.append({ big: new Uint8Array(2 * 1024 * 1024) })
        // Gets whose 2 MiB replies it never reads (more than the kernel's socket buffers take), then
        // 40 appends of 1 MiB: far more bytes than requests (the server's earlier limit was 64 requests).
        const frames = [
          ...Array.from({ length: 10 }, (_, i) => Wire.encode({ _tag: "Get", id: i, paths: "big", count: 1 })),
          ...Array.from({ length: 40 }, (_, i) =>
            Wire.encode({ _tag: "Append", id: 10 + i, paths: "flood", values: [new Uint8Array(1024 * 1024)] })
          )
        ]
        const written = frames.reduce((n, f) => n + f.byteLength, 0)
        const accepted = yield* Effect.promise(
          () =>
            new Promise<number>((resolve) => {
              const socket = net.createConnection(connectOptions(address))
              socket.on("error", () => {})
              socket.pause()
              socket.write(Handshake.clientHello())
              for (const frame of frames) socket.write(frame)
              // What left this process (read by the server, or in the kernel's socket buffers), once
              // it stops growing: the server has stopped reading.
              let last = -1
              let steady = 0
              const timer = setInterval(() => {
                const out = written - socket.writableLength
                steady = out === last ? steady + 1 : 0
                last = out
                if (steady < 5 && out < written) return
                clearInterval(timer)
                socket.destroy()
                resolve(out)
              }, 200)
            })
        )
        // The queue's limit, the frame that crossed it and the one being received, and the kernel's buffers.
        expect(accepted).toBeLessThan(maxQueuedBytes + 2 * 1024 * 1024 + 2 * 1024 * 1024)
        // The connection did not stop the server: another client is served.
        expect((yield* store.get(["big"]))[0]!.byteLength).toBe(2 * 1024 * 1024)
        yield* close
      })
  )
})

describe("Client and Server", () => {
  it.live("errors raised by the served store reach the client typed", () =>
    Effect.gen(function* () {
      const failing = Layer.effect(
        Store.Store,
        Store.make(
          emptyBackend({
            append: () =>
              Effect.fail(new Store.StoreError({ reason: "Io", method: "append", description: "disk full" }))
          })
        )
      )
      const context = yield* Layer.build(Server.layer({ address: { port: 0 } }).pipe(Layer.provide(failing)))
      const address = Context.get(context, Server.Server).address
      const { store, close } = yield* openClient(address)
      const exit = yield* Effect.exit(store.append({ a: bytes("x") }))
      yield* close
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
        expect(reason?._tag === "Fail" && reason.error).toBeInstanceOf(Store.StoreError)
        expect(reason?._tag === "Fail" && reason.error).toMatchObject({
          reason: "Io",
          method: "append",
          description: "disk full"
        })
      }
    })
  )

  it.live("the server validates keys and requests itself: a raw client cannot escape with '..'", () =>
    Effect.gen(function* () {
      const address = yield* startServer({ path: socketPath() })
      const replies = yield* rawRequests(address, [
        { _tag: "Append", id: 1, paths: "../escape", values: [bytes("x")] },
        { _tag: "Append", id: 2, paths: "a\u0000b", values: [bytes("x")] },
        { _tag: "Append", id: 3, paths: "a", values: "not bytes" },
        { _tag: "Rename", id: 4 },
        { _tag: "Append", id: 5, paths: "ok", values: [bytes("y")] }
      ])
      expect(replies.map((r) => [r._tag, r.id])).toEqual([
        ["Failed", 1],
        ["Failed", 2],
        ["Failed", 3],
        ["Failed", 4],
        ["Done", 5]
      ])
      const reasons = replies.slice(0, 4).map((r) => (r._tag === "Failed" ? Wire.decodeError(r.error).reason : r._tag))
      expect(reasons).toEqual(["BadKey", "Protocol", "Protocol", "Protocol"])
      const { store, close } = yield* openClient(address)
      expect((yield* store.get(["a", "b", "escape", "ok"])).map(text)).toEqual(["", "", "", "y"])
      yield* close
    })
  )

  it.live("a message without a request number closes that connection", () =>
    Effect.gen(function* () {
      const address = yield* startServer({ path: socketPath() })
      const outcome = yield* rawSession(address, [Wire.encode({ _tag: "Drop" })])
      expect(outcome).toBe("closed by server")
    })
  )

  it.live("a client that sends far more than it reads is paused, and every request is still answered in order", () =>
    Effect.gen(function* () {
      const address = yield* startServer({ path: socketPath() })
      const count = 2000
      const requests = Array.from({ length: count }, (_, i) => ({
        _tag: "Append",
        id: i,
        paths: "flood",
        values: [pattern(1000, i)]
      }))
      const replies = yield* rawRequests(address, requests)
      expect(replies.map((r) => r.id)).toEqual(requests.map((r) => r.id))
      expect(replies.every((r) => r._tag === "Done")).toBe(true)
      const { store, close } = yield* openClient(address)
      const [flood] = yield* store.get(["flood"])
      expect(flood!.byteLength).toBe(count * 1000)
      for (let i = 0; i < count; i += 97) {
        expect(globalThis.Buffer.from(flood!.subarray(i * 1000, (i + 1) * 1000)).equals(pattern(1000, i))).toBe(true)
      }
      yield* close
    })
  )

  it.live("a request whose caller is interrupted is dropped by the client, which carries on", () =>
    Effect.gen(function* () {
      const address = yield* startServer({ path: socketPath() })
      const { store, close } = yield* openClient(address)
      yield* store.append({ big: new Uint8Array(16 * 1024 * 1024).fill(1) })
      // Interrupted while the reply is on its way.
      const fiber = yield* Effect.forkChild(store.get(["big"]))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      yield* store.append({ after: bytes("fine") })
      expect((yield* store.get(["after"])).map(text)).toEqual(["fine"])
      yield* close
    })
  )

  it.live("a client of a server that is not there tries again until requestTimeout, then fails with Unavailable", () =>
    Effect.gen(function* () {
      const { store, close } = yield* openClient({ path: socketPath() }, { requestTimeout: "400 millis" })
      const started = Date.now()
      const exit = yield* Effect.exit(store.get(["a"]))
      const took = Date.now() - started
      yield* close
      expect(String(exit)).toContain("Unavailable")
      expect(took).toBeGreaterThanOrEqual(350)
      expect(took).toBeLessThan(3000)
    })
  )

  it.live("an append larger than a frame is split; a chunk larger than a frame is BadValue", () =>
    Effect.gen(function* () {
      const maxFrameBytes = 1024 * 1024
      const address = yield* startServer({ path: socketPath() }, { maxFrameBytes })
      const { store, close } = yield* openClient(address, { maxFrameBytes })
      const pieces = Array.from({ length: 24 }, (_, i) => [`k${i % 3}`, pattern(100 * 1024, i)] as const)
      yield* store.append(pieces)
      for (let k = 0; k < 3; k++) {
        const [value] = yield* store.get([`k${k}`])
        const expected = globalThis.Buffer.concat(pieces.filter(([key]) => key === `k${k}`).map(([, v]) => v))
        expect(globalThis.Buffer.from(value!).equals(expected)).toBe(true)
      }
      const tooBig = yield* Effect.exit(store.append({ huge: new Uint8Array(2 * maxFrameBytes) }))
      expect(String(tooBig)).toContain("BadValue")
      // The answer to this get would exceed a frame: a typed error, and the connection stays usable.
      const tooMuch = yield* Effect.exit(store.get(["k0", "k1", "k2"]))
      expect(String(tooMuch)).toContain("Protocol")
      expect((yield* store.get(["k0"]))[0]!.byteLength).toBe(8 * 100 * 1024)
      yield* close
    })
  )

  it.live("an append sent in parts lands whole or not at all, and nothing comes between its parts", () =>
    Effect.gen(function* () {
      const maxFrameBytes = 1024 * 1024
      const address = yield* startServer({ path: socketPath() }, { maxFrameBytes })
      const writer = yield* openClient(address, { maxFrameBytes })
      const reader = yield* openClient(address, { maxFrameBytes })
      // 3.6 MiB over 36 keys: four parts. Another client reading meanwhile sees all of it or none.
      const pieces = Array.from({ length: 36 }, (_, i) => [`big-${i}`, pattern(100 * 1024, i)] as const)
      const seen = new Set<string>()
      const firstAndLast = Effect.map(
        reader.store.get(["big-0", "big-35"]),
        ([a, b]) => `${a!.byteLength}/${b!.byteLength}`
      )
      const appended = yield* Effect.forkChild(writer.store.append(pieces))
      while (!fiberDone(appended)) seen.add(yield* firstAndLast)
      yield* Fiber.join(appended)
      seen.add(yield* firstAndLast)
      expect([...seen].filter((s) => s !== "0/0" && s !== "102400/102400")).toEqual([])
      expect(seen.has("102400/102400")).toBe(true)
      // Behind Pipelined, the next append lands after the whole of it.
      const pipelined = yield* Pipelined.make(writer.store, { maxPending: 4 })
      yield* pipelined.append(pieces.map(([key, v]) => [`o${key}`, v] as const))
      yield* pipelined.append({ "obig-35": bytes("end") })
      // Waits for both appends' replies.
      yield* pipelined.get([])
      const [last] = yield* reader.store.get(["obig-35"])
      expect(last!.byteLength).toBe(100 * 1024 + 3)
      expect(text(last!.subarray(100 * 1024))).toBe("end")
      yield* writer.close
      yield* reader.close
    })
  )

  it.live("parts of an append that never see their last part, or that exceed maxAppendBytes, leave nothing", () =>
    Effect.gen(function* () {
      // Each part of one 400-byte chunk holds 400 + Wire.chunkOverheadBytes (128) = 528 bytes: two fit, three do not.
      const address = yield* startServer({ path: socketPath() }, { maxAppendBytes: 1500 })
      const part = (id: number, key: string, more: boolean) => ({
        _tag: "Append",
        id,
        paths: key,
        values: [new Uint8Array(400).fill(id)],
        ...(more ? { more: true } : {})
      })
      // A client that vanishes after two parts.
      const vanished = yield* rawSession(
        address,
        [Wire.encode(part(1, "gone", true)), Wire.encode(part(2, "gone", true))],
        {
          destroy: true
        }
      )
      expect(vanished).toBe("destroyed")
      // Three parts exceed 1500: the third and the last fail, nothing lands.
      const tooBig = yield* rawRequests(address, [
        part(1, "big", true),
        part(2, "big", true),
        part(3, "big", true),
        part(4, "big", false)
      ])
      expect(tooBig.map((r) => r._tag)).toEqual(["Done", "Done", "Failed", "Failed"])
      // Another request between the parts fails, and so does that append.
      const cut = yield* rawRequests(address, [
        part(1, "cut", true),
        { _tag: "Get", id: 2, paths: "cut", count: 1 },
        part(3, "cut", false)
      ])
      expect(cut.map((r) => r._tag)).toEqual(["Done", "Failed", "Failed"])
      const reasons = [tooBig[3]!, cut[1]!].map((r) =>
        r._tag === "Failed" ? Wire.decodeError(r.error).reason : r._tag
      )
      expect(reasons).toEqual(["BadValue", "Protocol"])
      const { store, close } = yield* openClient(address)
      expect((yield* store.get(["gone", "big", "cut"])).map((v) => v.byteLength)).toEqual([0, 0, 0])
      // The connection that broke the protocol was not closed; a whole append in two parts lands.
      const whole = yield* rawRequests(address, [part(1, "whole", true), part(2, "whole", false)])
      expect(whole.map((r) => r._tag)).toEqual(["Done", "Done"])
      expect((yield* store.get(["whole"]))[0]!.byteLength).toBe(800)
      yield* close
    })
  )

  it("parses addresses", () => {
    expect(Server.parseAddress("unix:/tmp/x.sock")).toEqual({ path: "/tmp/x.sock" })
    expect(Server.parseAddress("/tmp/x.sock")).toEqual({ path: "/tmp/x.sock" })
    expect(Server.parseAddress("tcp://127.0.0.1:5000")).toEqual({ host: "127.0.0.1", port: 5000 })
    expect(Server.parseAddress("[::1]:5000")).toEqual({ host: "::1", port: 5000 })
    expect(Server.parseAddress("5000")).toEqual({ port: 5000 })
    expect(Server.parseAddress("localhost:99999")).toBeUndefined()
    expect(Server.parseAddress("nonsense")).toBeUndefined()
  })

  it.live("appends go through the served store's own checks: a closed store fails them with Closed", () =>
    Effect.gen(function* () {
      const storeScope = yield* Scope.make()
      const closed = yield* Dict.make.pipe(Scope.provide(storeScope))
      yield* Scope.close(storeScope, Exit.void)
      const info = yield* Server.make(closed, { address: { path: socketPath() } })
      const { store, close } = yield* openClient(info.address)
      const appended = yield* Effect.exit(store.append({ a: bytes("x") }))
      const got = yield* Effect.exit(store.get(["a"]))
      yield* close
      expect(String(appended)).toContain("Closed")
      expect(String(got)).toContain("Closed")
    })
  )

  it.live(
    "maxChunksPerFrame: a client that knows it splits; a frame over it gets a Protocol error and a new connection",
    () =>
      Effect.gen(function* () {
        const address = yield* startServer({ path: socketPath() }, { maxChunksPerFrame: 100 })
        const keys = Array.from({ length: 350 }, (_, i) => `c${i}`)
        // Told the bound: appends go in parts (one append still), gets in several requests.
        const { store, close } = yield* openClient(address, { maxChunksPerFrame: 100 })
        yield* store.append(keys.map((key, i) => [key, pattern(10, i)] as const))
        const values = yield* store.get(keys)
        expect(values.map((v, i) => globalThis.Buffer.from(v).equals(pattern(10, i)))).toEqual(keys.map(() => true))
        yield* close
        // Not told: the server refuses the frame with a typed error, and the client carries on on a new connection.
        const other = yield* openClient(address)
        const refused = yield* Effect.exit(other.store.append(keys.map((key) => [key, bytes("!")] as const)))
        expect(String(refused)).toContain("Protocol")
        expect(String(refused)).toContain("exceeds the limit of 100")
        yield* other.store.append({ c0: bytes("+") }).pipe(Effect.retry({ times: 5, schedule: Schedule.spaced(50) }))
        expect((yield* other.store.get(["c0"]))[0]!.byteLength).toBe(11)
        yield* other.close
      })
  )
})
