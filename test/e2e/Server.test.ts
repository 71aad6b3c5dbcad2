/**
 * Client and Server across processes: the conformance suite over
 * Buffer(Dict, File), worker processes appending concurrently to one server
 * (one of them killed mid-flight), and the standalone `partd-server` process
 * stopped by signals.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { File } from "@partd/backend-file"
import { Client, Dict, Server, Buffer as StoreBuffer } from "@partd/core"
import * as Child from "@partd/test/Child"
import { suite } from "@partd/test/StoreSuite"
import { Context, Effect, Exit, Layer, Scope } from "effect"

const here = nodePath.dirname(fileURLToPath(import.meta.url))
const appender = nodePath.join(here, "fixtures", "appender.ts")
const serverMain = createRequire(import.meta.url).resolve("@partd/backend-file/partd-server")

suite(
  "Client→Server(Buffer(Dict, File)) over a Unix socket",
  Layer.unwrap(
    Effect.sync(() => {
      const path = nodePath.join(os.tmpdir(), `partd-e2e-${process.pid}-${Math.random().toString(36).slice(2)}.sock`)
      const served = Server.layer({ address: { path } }).pipe(
        Layer.provide(StoreBuffer.layer({ fast: Dict.layer, slow: File.layer(), availableMemory: 8 * 1024 * 1024 }))
      )
      return Client.layer({ address: { path } }).pipe(Layer.provide(served))
    })
  ),
  { propertyRuns: 10 }
)

describe("many processes, one server", () => {
  it.live(
    "worker processes append concurrently: every byte exactly once, each worker's order kept",
    () =>
      Effect.gen(function* () {
        const path = nodePath.join(os.tmpdir(), `partd-mp-${process.pid}.sock`)
        // A small buffer, so that the workers' appends spill to files while they run.
        const context = yield* Layer.build(
          Server.layer({ address: { path } }).pipe(
            Layer.provide(StoreBuffer.layer({ fast: Dict.layer, slow: File.layer(), availableMemory: 256 * 1024 }))
          )
        )
        const address = Server.showAddress(Context.get(context, Server.Server).address)
        const workers = 4
        const records = 300
        const chunkBytes = 64
        const children = yield* Effect.forEach(
          Array.from({ length: workers }, (_, w) => w),
          (w) => Child.start([appender, address, String(w), String(records), String(chunkBytes)], /started/),
          { concurrency: "unbounded" }
        )
        // A fifth worker that dies mid-flight, with big appends on the wire.
        const doomed = yield* Child.start([appender, address, "9", "100000", String(256 * 1024)], /started/)
        yield* Effect.sleep(50)
        doomed.child.kill("SIGKILL")
        const codes = yield* Effect.forEach(children, ({ child }) => Child.exitOf(child), { concurrency: "unbounded" })
        expect(codes, children.map((c) => c.output()).join("\n")).toEqual(Array(workers).fill(0))
        expect(yield* Child.exitOf(doomed.child)).toBe("SIGKILL")

        const scope = yield* Scope.make()
        const store = yield* Client.make({ address }).pipe(Scope.provide(scope))
        const [shared, ...own] = yield* store.get(["shared", ...Array.from({ length: workers }, (_, w) => `own-${w}`)])
        const [doomedOwn] = yield* store.get(["own-9"])
        yield* Scope.close(scope, Exit.void)

        // The shared key: each worker's records exactly once, in its order.
        const next = new Array<number>(workers).fill(0)
        const view = new DataView(shared!.buffer, shared!.byteOffset, shared!.byteLength)
        let doomedRecords = 0
        for (let o = 0; o < shared!.byteLength; o += 6) {
          const w = view.getUint16(o)
          const r = view.getUint32(o + 2)
          if (w === 9) {
            expect(r).toBe(doomedRecords++)
            continue
          }
          expect(r).toBe(next[w])
          next[w] = r + 1
        }
        expect(next).toEqual(Array(workers).fill(records))
        expect(shared!.byteLength).toBe((workers * records + doomedRecords) * 6)
        // Each worker's own key: every chunk, in order.
        own.forEach((value, w) => {
          expect(value.byteLength).toBe(records * chunkBytes)
          for (let r = 0; r < records; r++) {
            for (let i = 0; i < chunkBytes; i += 13) {
              expect(value[r * chunkBytes + i]).toBe((w * 31 + r + i) & 0xff)
            }
          }
        })
        // The killed worker's appends landed whole or not at all, together with their shared record.
        expect(doomedRecords).toBeGreaterThan(0)
        expect(doomedOwn!.byteLength).toBe(doomedRecords * 256 * 1024)
      }),
    60_000
  )
})

describe("partd-server", () => {
  const runServer = (signal: "SIGINT" | "SIGTERM", store: "buffer" | "file", listen: (dir: string) => string) =>
    Effect.gen(function* () {
      const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-bin-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(base, { recursive: true, force: true })))
      const dir = nodePath.join(base, "data")
      const { child, output } = yield* Child.start(
        [serverMain, "--listen", listen(base), "--dir", dir, "--store", store],
        /listening on (\S+)/
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
      const address = /listening on (\S+)/.exec(output())![1]!
      const scope = yield* Scope.make()
      const client = yield* Client.make({ address }).pipe(Scope.provide(scope))
      const encoder = new TextEncoder()
      for (let i = 0; i < 50; i++) {
        yield* client.append([
          ["x", encoder.encode(`x${i};`)],
          [["nested", "y"], encoder.encode(`y${i};`)]
        ])
      }
      yield* Scope.close(scope, Exit.void)
      child.kill(signal)
      const code = yield* Child.exitOf(child)
      expect(code, output()).toBe(0)
      expect(output()).toContain("partd-server stopped")
      const expected = (p: string) => Array.from({ length: 50 }, (_, i) => `${p}${i};`).join("")
      // Flushed: the directory is a File store holding every byte.
      expect(fs.readFileSync(nodePath.join(dir, "x"), "utf8")).toBe(expected("x"))
      expect(fs.readFileSync(nodePath.join(dir, "nested", "y"), "utf8")).toBe(expected("y"))
      return { address, base }
    })

  it.live("serves a Buffer(Dict, File) on a Unix socket and flushes everything on SIGTERM", () =>
    Effect.gen(function* () {
      const { address, base } = yield* runServer("SIGTERM", "buffer", (base) => `unix:${nodePath.join(base, "s.sock")}`)
      expect(address).toBe(`unix:${nodePath.join(base, "s.sock")}`)
      expect(fs.existsSync(nodePath.join(base, "s.sock"))).toBe(false)
    })
  )

  it.live("serves a File store on loopback TCP and stops cleanly on SIGINT", () =>
    Effect.gen(function* () {
      const { address } = yield* runServer("SIGINT", "file", () => "0")
      expect(address).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/)
    })
  )
})
