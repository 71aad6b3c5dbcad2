/**
 * Client → a server process on a File store, killed with SIGKILL and
 * restarted mid-shuffle, twice: once by itself right after applying an
 * append and before replying (fixtures/dying-server.ts), once from outside
 * (`partd-server`), as issue 20's bars ask of Client/Server:
 * every call succeeds or fails typed after `requestTimeout`; every
 * acknowledged call's chunks are in the store exactly once; no chunk of a
 * failed call is there twice; each call landed whole or not at all. The
 * client sends each call again with the same id after its connection is
 * lost, and the File store, which records ids durably in the step that
 * commits an append, applies a repeat no more.
 *
 * A kill from outside rarely lands between an append's commit and its
 * reply, hence the server that kills itself there: without call ids its
 * last call is in the store twice. A proxy between client and server that
 * swallows replies or drops connections forces the other cases: the call
 * applied and its reply lost, resent by the client (or by the caller, with
 * the id its error names), and calls resent in their order.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as nodePath from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { File } from "@partd/backend-file"
import { Client, Pipelined, Server, Store } from "@partd/core"
import * as Child from "@partd/test/Child"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"

const serverMain = nodePath.resolve(import.meta.dirname, "../../packages/backend-file/src/partd-server.ts")
const dyingServer = nodePath.resolve(import.meta.dirname, "fixtures/dying-server.ts")

const keys = Array.from({ length: 16 }, (_, k) => `part-${k}`)
const recordBytes = 64

/** Call `c` of worker `w`'s record for key `k`: who, which call, which key, then filler. */
const record = (w: number, c: number, k: number): Uint8Array => {
  const out = new Uint8Array(recordBytes)
  const view = new DataView(out.buffer)
  view.setUint16(0, w)
  view.setUint32(2, c)
  view.setUint16(6, k)
  out.fill((w * 7 + c + k) & 0xff, 8)
  return out
}

/**
 * A Unix socket proxy to `target`. While `swallow` is on, a reply from the
 * server (anything after its greeting) is dropped and the connection closed,
 * as a network that fails after the server applied a call.
 */
/** A Server on a File store in a fresh directory, removed with the test's scope: the directory and the socket's path. */
const servedFile = (prefix: string) =>
  Effect.gen(function* () {
    const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), prefix))
    yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(base, { recursive: true, force: true })))
    const serverPath = nodePath.join(base, "s.sock")
    yield* Layer.build(
      Server.layer({ address: { path: serverPath } }).pipe(
        Layer.provide(File.layer({ path: nodePath.join(base, "d") }))
      )
    )
    return { base, serverPath }
  })

const proxy = (path: string, target: string) =>
  Effect.acquireRelease(
    Effect.callback<{
      swallow: boolean
      swallowed: number
      server: net.Server
      readonly cut: () => void
      readonly outage: (ms: number) => void
    }>((resume) => {
      const open = new Set<net.Socket>()
      let down = false
      const state = {
        swallow: false,
        swallowed: 0,
        server: undefined as unknown as net.Server,
        // Every connection lost at once, whatever it was carrying.
        cut: () => {
          for (const socket of open) socket.destroy()
        },
        // Every connection lost, and nothing listening for `ms` (a server restarting); once at a time.
        outage: (ms: number) => {
          if (down) return
          down = true
          state.cut()
          state.server.close()
          setTimeout(() => {
            state.server = relay()
            state.server.listen(path, () => {
              down = false
            })
          }, ms)
        }
      }
      const relay = () =>
        net.createServer((downstream) => {
          const upstream = net.createConnection({ path: target })
          open.add(downstream)
          downstream.on("close", () => open.delete(downstream))
          let greeted = false
          downstream.on("error", () => upstream.destroy())
          upstream.on("error", () => downstream.destroy())
          downstream.on("close", () => upstream.destroy())
          upstream.on("close", () => downstream.destroy())
          downstream.on("data", (chunk: Uint8Array) => upstream.write(chunk))
          upstream.on("data", (chunk: Uint8Array) => {
            if (greeted && state.swallow) {
              state.swallowed++
              upstream.destroy()
              downstream.destroy()
              return
            }
            greeted = true
            downstream.write(chunk)
          })
        })
      state.server = relay()
      state.server.listen(path, () => resume(Effect.succeed(state)))
    }),
    (state) => Effect.sync(() => state.server.close())
  )

describe("Client → partd-server killed and restarted mid-shuffle", () => {
  it.live(
    "every acknowledged call exactly once, no failed call's chunks twice, each call whole or not at all",
    () =>
      Effect.gen(function* () {
        const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-restart-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(base, { recursive: true, force: true })))
        const socket = nodePath.join(base, "s.sock")
        const dir = nodePath.join(base, "d")
        const args = [serverMain, "--listen", `unix:${socket}`, "--dir", dir, "--store", "file"]
        // First a server that kills itself right after applying its 100th append, before the reply leaves.
        let server = yield* Child.start([dyingServer, socket, dir, "100"], /listening/)
        const address = `unix:${socket}`

        const scope = yield* Scope.make()
        const client = yield* Client.make({ address, requestTimeout: "20 seconds" }).pipe(Scope.provide(scope))
        const workers = 4
        const calls = 150
        const acked: Array<Set<number>> = Array.from({ length: workers }, () => new Set())
        const failed: Array<Map<number, Store.StoreError>> = Array.from({ length: workers }, () => new Map())
        let done = 0
        const shuffle = Effect.forEach(
          Array.from({ length: workers }, (_, w) => w),
          (w) =>
            Effect.gen(function* () {
              for (let c = 0; c < calls; c++) {
                const exit = yield* Effect.exit(client.append(keys.map((key, k) => [key, record(w, c, k)] as const)))
                if (Exit.isSuccess(exit)) acked[w]!.add(c)
                else {
                  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
                  expect(reason?._tag === "Fail" && reason.error).toBeInstanceOf(Store.StoreError)
                  if (reason?._tag === "Fail") failed[w]!.set(c, reason.error)
                }
                done++
              }
            }),
          { concurrency: "unbounded", discard: true }
        )
        const running = yield* Effect.forkChild(shuffle)
        const killed: Array<number> = []
        expect(yield* Child.exitOf(server.child)).toBe("SIGKILL")
        killed.push(done)
        yield* Effect.sleep(300)
        server = yield* Child.start(args, /listening on/)
        // Then partd-server, killed from outside mid-shuffle.
        while (done < 350) yield* Effect.sleep(5)
        server.child.kill("SIGKILL")
        expect(yield* Child.exitOf(server.child)).toBe("SIGKILL")
        killed.push(done)
        yield* Effect.sleep(300)
        server = yield* Child.start(args, /listening on/)
        yield* Fiber.join(running)
        yield* Scope.close(scope, Exit.void)

        // Read back in this process, from the directory itself.
        const store = yield* Layer.build(File.layer({ path: dir })).pipe(Effect.map(Context.get(Store.Store)))
        const values = yield* store.get(keys)
        const seen = new Map<string, number>()
        values.forEach((value, k) => {
          expect(value.byteLength % recordBytes).toBe(0)
          for (let o = 0; o < value.byteLength; o += recordBytes) {
            const piece = value.subarray(o, o + recordBytes)
            const view = new DataView(piece.buffer, piece.byteOffset, recordBytes)
            const w = view.getUint16(0)
            const c = view.getUint32(2)
            expect(view.getUint16(6)).toBe(k)
            expect(globalThis.Buffer.from(piece).equals(record(w, c, k))).toBe(true)
            const id = `${w}/${c}/${k}`
            seen.set(id, (seen.get(id) ?? 0) + 1)
          }
        })
        const failures = failed.flatMap((m) => [...m.values()].map(String))
        for (let w = 0; w < workers; w++) {
          for (let c = 0; c < calls; c++) {
            const counts = keys.map((_, k) => seen.get(`${w}/${c}/${k}`) ?? 0)
            if (acked[w]!.has(c)) expect(counts, `acknowledged call ${w}/${c}`).toEqual(keys.map(() => 1))
            else {
              // A failed call: at most once, and whole or not at all.
              expect(Math.max(...counts), `failed call ${w}/${c}`).toBeLessThanOrEqual(1)
              expect(new Set(counts).size, `failed call ${w}/${c}`).toBe(1)
            }
          }
        }
        expect(killed).toHaveLength(2)
        // Within the deadline the restarts are invisible to the caller: every call succeeded.
        expect(failures, failures.join("\n")).toEqual([])
        expect(acked.reduce((n, s) => n + s.size, 0)).toBe(workers * calls)
      }),
    90_000
  )

  it.live("an append sent again with the caller's id, through a server, is applied once", () =>
    Effect.gen(function* () {
      const { serverPath } = yield* servedFile("partd-id-")
      const scope = yield* Scope.make()
      const client = yield* Client.make({ address: serverPath }).pipe(Scope.provide(scope))
      const chunk = new TextEncoder().encode("once;")
      yield* client.append({ k: chunk }, { id: "map-task-7-attempt-1" })
      yield* client.append({ k: chunk }, { id: "map-task-7-attempt-1" })
      yield* client.append({ k: chunk }, { id: "map-task-7-attempt-2" })
      expect(new TextDecoder().decode((yield* client.get(["k"]))[0])).toBe("once;once;")
      yield* Scope.close(scope, Exit.void)
    })
  )

  it.live("a call applied whose reply is lost is sent again with its id and not applied twice", () =>
    Effect.gen(function* () {
      const { base, serverPath } = yield* servedFile("partd-lost-reply-")
      const relay = yield* proxy(nodePath.join(base, "p.sock"), serverPath)
      const scope = yield* Scope.make()
      const client = yield* Client.make({ address: nodePath.join(base, "p.sock"), requestTimeout: "5 seconds" }).pipe(
        Scope.provide(scope)
      )
      const chunk = (s: string) => new TextEncoder().encode(s)
      yield* client.append({ k: chunk("a;") })
      // The next reply is lost after the server applied the call: the client sends it again, with its id.
      relay.swallow = true
      const resent = yield* Effect.forkChild(client.append({ k: chunk("b;"), other: chunk("b;") }))
      while (relay.swallowed === 0) yield* Effect.sleep(2)
      relay.swallow = false
      yield* Fiber.join(resent)
      expect(relay.swallowed).toBe(1)
      const [k, other] = yield* client.get(["k", "other"])
      expect(new TextDecoder().decode(k)).toBe("a;b;")
      expect(new TextDecoder().decode(other)).toBe("b;")
      yield* Scope.close(scope, Exit.void)
    })
  )

  it.live(
    "a call whose every reply is lost ends with Io naming its id; sending it again with that id applies it once",
    () =>
      Effect.gen(function* () {
        const { base, serverPath } = yield* servedFile("partd-deadline-")
        const relay = yield* proxy(nodePath.join(base, "p.sock"), serverPath)
        const scope = yield* Scope.make()
        const client = yield* Client.make({ address: nodePath.join(base, "p.sock"), requestTimeout: "1 second" }).pipe(
          Scope.provide(scope)
        )
        const chunk = new TextEncoder().encode("c;")
        yield* client.get(["k"])
        // Every reply lost: each try is applied or not, never answered, until the deadline.
        relay.swallow = true
        const exit = yield* Effect.exit(client.append({ k: chunk }))
        relay.swallow = false
        const reason = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
        const error = reason?._tag === "Fail" ? reason.error : undefined
        expect(error?.reason).toBe("Io")
        const id = /append again with \{ id: "([^"]+)" \}/.exec(error?.message ?? "")?.[1]
        expect(id, error?.message).toBeDefined()
        expect(relay.swallowed).toBeGreaterThanOrEqual(2)
        yield* client.append({ k: chunk }, { id: id! })
        expect(new TextDecoder().decode((yield* client.get(["k"]))[0])).toBe("c;")
        yield* Scope.close(scope, Exit.void)
      })
  )

  it.live("Pipelined over a Client: calls resent after lost connections land once each, in their order", () =>
    Effect.gen(function* () {
      const { base, serverPath } = yield* servedFile("partd-order-")
      const relay = yield* proxy(nodePath.join(base, "p.sock"), serverPath)
      const scope = yield* Scope.make()
      const client = yield* Client.make({ address: nodePath.join(base, "p.sock") }).pipe(Scope.provide(scope))
      const store = yield* Pipelined.make(client, { maxPending: 1000 }).pipe(Scope.provide(scope))
      const calls = 600
      for (let i = 0; i < calls; i++) {
        const chunk = new Uint8Array(256)
        new DataView(chunk.buffer).setUint32(0, i)
        yield* store.append({ ordered: chunk })
        // Lost connections with calls on them (some applied and unanswered, some not yet read), then nobody
        // listening for a while, during which new calls keep coming.
        if (i % 150 === 75) relay.outage(150)
        if (i % 10 === 0) yield* Effect.sleep(2)
      }
      const [value] = yield* store.get(["ordered"])
      const order: Array<number> = []
      for (let o = 0; o < value!.byteLength; o += 256)
        order.push(new DataView(value!.buffer, value!.byteOffset + o).getUint32(0))
      expect(order).toEqual(Array.from({ length: calls }, (_, i) => i))
      yield* Scope.close(scope, Exit.void)
    })
  )
})
