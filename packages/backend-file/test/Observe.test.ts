/**
 * File's calls as spans and metrics: a Buffer(Dict, File) workload traced
 * with a tracer that keeps its spans, and its counters read back from a
 * registry of its own.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { File } from "@partd/backend-file"
import { Buffer, Dict, Observe } from "@partd/core"
import { Effect, Metric, Option, Tracer } from "effect"

describe("File observed", () => {
  it.effect("appends and spills are partd.File.append spans under the Buffer's, counted as File's bytes", () =>
    Effect.gen(function* () {
      const spans: Array<Tracer.Span> = []
      const tracer = Tracer.make({
        span: (options) => {
          const span = Tracer.nativeTracer.span(options)
          spans.push(span)
          return span
        }
      })
      const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-observe-file-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const chunk = new Uint8Array(3000).fill(7)
      yield* Effect.gen(function* () {
        const file = yield* File.make({ path: dir })
        yield* file.append({ direct: chunk })
        const { store, control } = yield* Buffer.make({ fast: yield* Dict.make, slow: file, availableMemory: 4096 })
        // Each append fills the 4 KiB buffer past its high-water mark: the flusher lands keys in the File.
        for (let i = 0; i < 6; i++) yield* store.append({ [`k${i % 3}`]: chunk })
        yield* control.flush
        expect((yield* file.get(["k0"]))[0]!.byteLength).toBe(2 * chunk.byteLength)
        const bad = yield* Effect.flip(file.get(["a//b"]))
        expect(bad.reason).toBe("BadKey")
      }).pipe(Effect.withTracer(tracer), Effect.scoped)

      const fileAppends = spans.filter((span) => span.name === "partd.File.append")
      // One direct append, and the spills of six chunks of three keys (one call per key per spill).
      expect(fileAppends.length).toBeGreaterThanOrEqual(2)
      const direct = fileAppends[0]!
      expect(direct.attributes.get("partd.store")).toBe("File")
      expect(direct.attributes.get("partd.keys")).toBe(1)
      expect(direct.attributes.get("partd.bytes")).toBe(3000)
      expect(direct.status._tag).toBe("Ended")
      let spilled = 0
      for (const span of fileAppends.slice(1)) spilled += span.attributes.get("partd.bytes") as number
      expect(spilled).toBe(6 * chunk.byteLength)
      const get = spans.find((span) => span.name === "partd.File.get")!
      expect(get.attributes.get("partd.bytes")).toBe(6000)
      expect(Option.isNone(get.parent)).toBe(true)
      // A bad key never reaches the store: no span for it.
      expect(spans.filter((span) => span.name === "partd.File.get")).toHaveLength(1)
    }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("File counts its calls, bytes appended and bytes read in the registry of the fiber that made it", () =>
    Effect.gen(function* () {
      const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-observe-file-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const file = yield* File.make({ path: dir })
      yield* file.append([
        ["a", new Uint8Array(10)],
        ["b", new Uint8Array(20)],
        ["a", new Uint8Array(30)]
      ])
      yield* file.get(["a", "b"])
      yield* file.delete(["b"])
      yield* file.iset("c", new Uint8Array(5))
      const value = (name: string, attributes: Record<string, string>) =>
        Observe.metricValue(name, { store: "File", ...attributes })
      expect(yield* value("partd_appended_bytes_total", {})).toBe(60)
      expect(yield* value("partd_appended_chunks_total", {})).toBe(3)
      expect(yield* value("partd_read_bytes_total", {})).toBe(60)
      expect(yield* value("partd_calls_total", { operation: "append", outcome: "ok" })).toBe(1)
      expect(yield* value("partd_calls_total", { operation: "get", outcome: "ok" })).toBe(1)
      expect(yield* value("partd_calls_total", { operation: "delete", outcome: "ok" })).toBe(1)
      expect(yield* value("partd_calls_total", { operation: "iset", outcome: "ok" })).toBe(1)
      // The same figures as every exporter sees them: one series per attribute set.
      const snapshot = yield* Metric.snapshot
      const appended = snapshot.filter((s) => s.id === "partd_appended_bytes_total" && s.attributes?.store === "File")
      expect(appended).toHaveLength(1)
    }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})
