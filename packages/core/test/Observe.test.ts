/**
 * Metrics and spans of the in-memory stores, Buffer and Server, read back:
 * a workload runs in a fresh metric registry, then the counters, gauges and
 * histograms it recorded are checked against what it did; a tracer that
 * keeps every span checks the spans' names, attributes and nesting.
 */

import * as os from "node:os"
import * as nodePath from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Buffer, Client, Dict, Metrics, Observe, Server, Store } from "@partd/core"
import { emptyBackend } from "@partd/test/EmptyBackend"
import { Effect, Fiber, Latch, Metric, Option, References, Stream, Tracer } from "effect"

const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill)

/** A registry of its own, so that counts are this test's alone. */
const isolated = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, Metric.MetricRegistry, new Map())

const value = (name: string, attributes: Record<string, string>) => Observe.metricValue(name, attributes)

/** A tracer that keeps every span it makes (Effect's own spans, kept in a list). */
const recording = () => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = Tracer.nativeTracer.span(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer }
}

describe("metrics", () => {
  it.effect("Dict counts calls by operation and outcome, bytes and chunks appended, bytes read", () =>
    isolated(
      Effect.gen(function* () {
        const store = yield* Dict.make
        yield* store.append({ a: bytes(10), b: bytes(5) })
        yield* store.append([
          ["a", bytes(1)],
          ["a", bytes(2)]
        ])
        const [a] = yield* store.get(["a", "missing"])
        expect(a!.byteLength).toBe(13)
        yield* store.delete(["b"])
        yield* store.drop
        // Rejected by the shell: never reaches the store, not counted.
        const bad = yield* Effect.flip(store.append({ "": bytes(1) }))
        expect(bad.reason).toBe("BadKey")

        const dict = { store: "Dict" }
        expect(yield* value("partd_appended_bytes_total", dict)).toBe(18)
        expect(yield* value("partd_appended_chunks_total", dict)).toBe(4)
        expect(yield* value("partd_read_bytes_total", dict)).toBe(13)
        expect(yield* value("partd_calls_total", { ...dict, operation: "append", outcome: "ok" })).toBe(2)
        expect(yield* value("partd_calls_total", { ...dict, operation: "get", outcome: "ok" })).toBe(1)
        expect(yield* value("partd_calls_total", { ...dict, operation: "delete", outcome: "ok" })).toBe(1)
        expect(yield* value("partd_calls_total", { ...dict, operation: "drop", outcome: "ok" })).toBe(1)
        expect(yield* value("partd_calls_total", { ...dict, operation: "append" })).toBe(2)
      }).pipe(Effect.scoped)
    )
  )

  it.effect("a failed call is counted with its error's reason", () =>
    isolated(
      Effect.gen(function* () {
        const failing = yield* Observe.make(
          "Failing",
          emptyBackend({
            append: () => Effect.fail(Store.ioError("append", new Error("disk on fire")))
          })
        )
        const error = yield* Effect.flip(failing.append({ k: bytes(3) }))
        expect(error.reason).toBe("Io")
        const store = { store: "Failing", operation: "append" }
        expect(yield* value("partd_calls_total", { ...store, outcome: "Io" })).toBe(1)
        expect(yield* value("partd_calls_total", { ...store, outcome: "ok" })).toBe(0)
        // A failed append appended nothing.
        expect(yield* value("partd_appended_bytes_total", { store: "Failing" })).toBe(0)
      }).pipe(Effect.scoped)
    )
  )

  it.live("Buffer reports bytes held, bytes spilled, spill batches and their duration, and appends that waited", () =>
    isolated(
      Effect.gen(function* () {
        const { store, control } = yield* Buffer.make({
          fast: yield* Dict.make,
          slow: yield* Dict.make,
          availableMemory: 4096
        })
        // Held in memory, under the bound: the gauge reads what the buffer holds.
        yield* store.append({ a: bytes(1000) })
        expect(yield* value("partd_buffer_held_bytes", { store: "Buffer" })).toBe(1000)
        // Forty appends of 1 KiB into a 4 KiB buffer: it spills, and appends wait for room.
        yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) => store.append({ [`k${i % 8}`]: bytes(1024) }),
          { concurrency: 8 }
        )
        yield* control.flush
        const buffer = { store: "Buffer" }
        expect(yield* value("partd_buffer_held_bytes", buffer)).toBe(0)
        expect(yield* value("partd_buffer_spilled_bytes_total", buffer)).toBe(1000 + 40 * 1024)
        const batches = yield* value("partd_buffer_spill_batches_total", buffer)
        expect(batches).toBeGreaterThanOrEqual(2)
        expect(yield* value("partd_buffer_waits_total", buffer)).toBeGreaterThan(0)
        const histogram = (yield* Metric.value(Metrics.tagged(Metrics.bufferSpillSeconds, "Buffer"))) as {
          readonly count: number
          readonly sum: number
        }
        expect(histogram.count).toBe(batches)
        expect(histogram.sum).toBeGreaterThan(0)
        // The Buffer's appends, and the Dict (slow) appends its spills made, each under its own name.
        expect(yield* value("partd_appended_bytes_total", buffer)).toBe(1000 + 40 * 1024)
        expect(yield* value("partd_calls_total", { ...buffer, operation: "append", outcome: "ok" })).toBe(41)
        // Both Dicts (fast and slow) count under "Dict": each byte went into fast once and slow once.
        expect(yield* value("partd_appended_bytes_total", { store: "Dict" })).toBe(2 * (1000 + 40 * 1024))
      }).pipe(Effect.scoped)
    )
  )

  it.live("Server reports open connections and requests in flight", () =>
    isolated(
      Effect.gen(function* () {
        const path = nodePath.join(os.tmpdir(), `partd-observe-${process.pid}-${Date.now()}.sock`)
        const gate = yield* Latch.make()
        const slow = yield* Observe.make(
          "Gated",
          emptyBackend({
            append: () => gate.await
          })
        )
        yield* Server.make(slow, { address: { path } })
        const server = { store: "Server" }
        expect(yield* value("partd_server_connections", server)).toBe(0)
        const clients = yield* Effect.forEach([1, 2], () => Client.make({ address: `unix:${path}` }))
        const appending = yield* Effect.forEach(clients, (client) => Effect.forkChild(client.append({ k: bytes(8) })))
        // Both connected, both appends held in the store.
        yield* Effect.gen(function* () {
          while ((yield* value("partd_server_requests_in_flight", server)) < 2) yield* Effect.sleep("5 millis")
        }).pipe(Effect.timeout("5 seconds"))
        expect(yield* value("partd_server_connections", server)).toBe(2)
        yield* gate.open
        yield* Effect.forEach(appending, (fiber) => Fiber.join(fiber))
        yield* Effect.gen(function* () {
          while ((yield* value("partd_server_requests_in_flight", server)) > 0) yield* Effect.sleep("5 millis")
        }).pipe(Effect.timeout("5 seconds"))
        expect(yield* value("partd_calls_total", { store: "Gated", operation: "append", outcome: "ok" })).toBe(2)
      }).pipe(Effect.scoped)
    )
  )
})

describe("spans", () => {
  it.effect(
    "each store operation is a span partd.<Store>.<operation> with keys and bytes, nested as the calls are",
    () =>
      Effect.gen(function* () {
        const { spans, tracer } = recording()
        yield* Effect.gen(function* () {
          const { store, control } = yield* Buffer.make({
            fast: yield* Dict.make,
            slow: yield* Dict.make,
            availableMemory: 1 << 20
          })
          yield* store.append([
            ["a", bytes(3)],
            ["b", bytes(4)],
            ["a", bytes(5)]
          ])
          yield* store.get(["a", "b"])
          yield* control.flush
        }).pipe(Effect.withTracer(tracer), Effect.scoped)

        const named = (name: string) => spans.filter((span) => span.name === name)
        const [append] = named("partd.Buffer.append")
        expect(append, spans.map((span) => span.name).join(", ")).toBeDefined()
        expect(append!.attributes.get("partd.store")).toBe("Buffer")
        expect(append!.attributes.get("partd.keys")).toBe(3)
        expect(append!.attributes.get("partd.bytes")).toBe(12)
        expect(append!.status._tag).toBe("Ended")
        // The Buffer's append into its fast Dict is a child span.
        const inner = named("partd.Dict.append").find(
          (span) => Option.getOrUndefined(span.parent)?.spanId === append!.spanId
        )
        expect(inner).toBeDefined()
        expect(inner!.attributes.get("partd.bytes")).toBe(12)
        const [get] = named("partd.Buffer.get")
        expect(get!.attributes.get("partd.keys")).toBe(2)
        expect(get!.attributes.get("partd.bytes")).toBe(12)
      })
  )

  it.effect("a failed call's span ends with its failure", () =>
    Effect.gen(function* () {
      const { spans, tracer } = recording()
      yield* Effect.gen(function* () {
        const failing = yield* Observe.make(
          "Failing",
          emptyBackend({
            append: () => Effect.fail(Store.ioError("append", new Error("disk on fire")))
          })
        )
        yield* Effect.flip(failing.append({ k: bytes(1) }))
      }).pipe(Effect.withTracer(tracer), Effect.scoped)
      const span = spans.find((s) => s.name === "partd.Failing.append")!
      expect(span.status._tag).toBe("Ended")
      const exit = span.status._tag === "Ended" ? span.status.exit : undefined
      expect(exit?._tag).toBe("Failure")
    })
  )

  it.effect("with no tracer installed an operation makes no span; with one, the backend runs inside its span", () =>
    Effect.gen(function* () {
      let seen: string | undefined = "not called"
      const probe = yield* Observe.make(
        "Probe",
        emptyBackend({
          append: () =>
            Effect.map(Effect.option(Effect.currentSpan), (span) => {
              seen = Option.isSome(span) ? span.value.name : undefined
            })
        })
      )
      yield* probe.append({ k: bytes(1) })
      expect(seen).toBeUndefined()
      const { tracer } = recording()
      yield* probe.append({ k: bytes(1) }).pipe(Effect.withTracer(tracer))
      expect(seen).toBe("partd.Probe.append")
    }).pipe(Effect.scoped)
  )

  it.effect("with the tracer disabled, no span reaches the tracer and the calls still work and count", () =>
    isolated(
      Effect.gen(function* () {
        const { spans, tracer } = recording()
        yield* Effect.gen(function* () {
          const store = yield* Dict.make
          yield* store.append({ a: bytes(2) })
          expect((yield* store.get(["a"]))[0]!.byteLength).toBe(2)
        }).pipe(Effect.withTracer(tracer), Effect.provideService(References.TracerEnabled, false), Effect.scoped)
        expect(spans).toEqual([])
        expect(yield* value("partd_appended_bytes_total", { store: "Dict" })).toBe(2)
      })
    )
  )
})

describe("streams", () => {
  it.effect("stream and keys are one span each, counted when they end, the bytes streamed counted as read", () =>
    isolated(
      Effect.gen(function* () {
        const { spans, tracer } = recording()
        const none = (paths: ReadonlyArray<string>) => Effect.succeed(paths.map(() => new Uint8Array(0)))
        yield* Effect.gen(function* () {
          const store = yield* Observe.make("Streamy", {
            append: () => Effect.void,
            get: none,
            iset: () => Effect.void,
            delete: () => Effect.void,
            drop: Effect.void,
            stream: () => Stream.make(bytes(3), bytes(4)),
            keys: Stream.make("a", "b", "c"),
            size: (paths) => Effect.succeed(paths.map(() => 7))
          })
          const pieces = yield* Stream.runCollect(store.stream("k", { chunkBytes: 4 }))
          expect(pieces.map((piece) => piece.byteLength)).toEqual([3, 4])
          expect(yield* Stream.runCollect(store.keys)).toEqual(["a", "b", "c"])
          expect(yield* store.size(["a", "b"])).toEqual([7, 7])
        }).pipe(Effect.withTracer(tracer), Effect.scoped)
        const streamy = { store: "Streamy" }
        expect(yield* value("partd_read_bytes_total", streamy)).toBe(7)
        expect(yield* value("partd_calls_total", { ...streamy, operation: "stream", outcome: "ok" })).toBe(1)
        expect(yield* value("partd_calls_total", { ...streamy, operation: "keys", outcome: "ok" })).toBe(1)
        expect(yield* value("partd_calls_total", { ...streamy, operation: "size", outcome: "ok" })).toBe(1)
        const stream = spans.find((span) => span.name === "partd.Streamy.stream")!
        expect(stream.attributes.get("partd.bytes")).toBe(7)
        expect(stream.status._tag).toBe("Ended")
        expect(spans.find((span) => span.name === "partd.Streamy.keys")!.attributes.get("partd.keys")).toBe(3)
        expect(spans.find((span) => span.name === "partd.Streamy.size")!.attributes.get("partd.bytes")).toBe(14)
      })
    )
  )
})
