/**
 * Observe: a store's calls as spans and metrics.
 *
 * `backend(name, backend)` wraps a `Store.Backend` so that each operation is a
 * span named `partd.<name>.<operation>` (`partd.File.append`,
 * `partd.Buffer.get`, …) with attributes `partd.store`, `partd.keys` (the
 * keys the call names; an append counts a key once per chunk) and
 * `partd.bytes` (the bytes appended, set or read), and counts the call in the
 * metrics of `Metrics` (`partd_calls_total` by operation and outcome, bytes and
 * chunks appended, bytes read), all with the attribute `store: name`. Every
 * store built with `Store.make` names itself this way, so wrapping stores and
 * their inner stores each show up: a Buffer(Dict, File) append is a
 * `partd.Buffer.append` span with, later, the `partd.File.append` spans of its
 * spills.
 *
 * Spans follow Effect's tracer: with `@effect/opentelemetry` (or any
 * `Tracer` layer) they are exported; with `References.TracerEnabled` set to
 * `false` they are no-op spans and cost almost nothing. No stack trace is
 * captured per span (that would cost more than a Dict append). The wrapper
 * keeps every other field of the backend (`getChunks`, …) as it is; an
 * `appendChunks` is observed as an `append`.
 *
 * @since 0.1.0
 */
import { Cause, Effect, type Exit, type Fiber, Metric, type Scope, Stream, type Tracer } from "effect"
import type * as Key from "./Key.ts"
import * as Metrics from "./Metrics.ts"
import * as Store from "./Store.ts"

/** The pre-tagged metrics and span names of one store name. */
interface Observed {
  readonly store: string
  readonly calls: Map<string, Metric.Metric<number, unknown>>
  readonly appendedBytes: Metric.Metric<number, unknown>
  readonly appendedChunks: Metric.Metric<number, unknown>
  readonly readBytes: Metric.Metric<number, unknown>
  readonly spans: Map<string, string>
}

const observedOf = (store: string): Observed => ({
  store,
  calls: new Map(),
  appendedBytes: Metrics.tagged(Metrics.appendedBytes, store),
  appendedChunks: Metrics.tagged(Metrics.appendedChunks, store),
  readBytes: Metrics.tagged(Metrics.readBytes, store),
  spans: new Map()
})

const spanName = (o: Observed, operation: string): string => {
  let name = o.spans.get(operation)
  if (name === undefined) {
    name = `partd.${o.store}.${operation}`
    o.spans.set(operation, name)
  }
  return name
}

/** `ok`, the `StoreError`'s reason, `interrupted` or `defect`. */
const outcomeOf = (exit: Exit.Exit<unknown, unknown>): string => {
  if (exit._tag === "Success") return "ok"
  if (Cause.hasInterruptsOnly(exit.cause)) return "interrupted"
  for (const reason of exit.cause.reasons) {
    if (reason._tag === "Fail") {
      const error = reason.error as { readonly reason?: unknown }
      return typeof error?.reason === "string" ? error.reason : "failure"
    }
  }
  return "defect"
}

const countCall = (o: Observed, operation: string, outcome: string, fiber: Fiber.Fiber<unknown, unknown>): void => {
  const key = `${operation}\u0000${outcome}`
  let metric = o.calls.get(key)
  if (metric === undefined) {
    metric = Metrics.tagged(Metrics.calls, o.store, { operation, outcome })
    o.calls.set(key, metric)
  }
  metric.updateUnsafe(1, fiber.context)
}

const noStackTrace: Tracer.TraceOptions = { captureStackTrace: false }

/**
 * Runs `effect` in a span for `operation`, and counts it when it ends;
 * `onSuccess` records what the call moved (and may annotate the span).
 */
const observe = <A>(
  o: Observed,
  operation: string,
  keys: number,
  bytes: number | undefined,
  effect: Effect.Effect<A, Store.StoreError>,
  onSuccess?: (value: A, span: Tracer.Span, fiber: Fiber.Fiber<unknown, unknown>) => void
): Effect.Effect<A, Store.StoreError> =>
  Effect.useSpan(
    spanName(o, operation),
    {
      attributes:
        bytes === undefined
          ? { "partd.store": o.store, "partd.keys": keys }
          : { "partd.store": o.store, "partd.keys": keys, "partd.bytes": bytes }
    },
    (span) =>
      Effect.onExit(Effect.withParentSpan(effect, span, noStackTrace), (exit) =>
        Effect.withFiber((fiber) => {
          countCall(o, operation, outcomeOf(exit), fiber)
          if (exit._tag === "Success" && onSuccess !== undefined) onSuccess(exit.value, span, fiber)
          return Effect.void
        })
      )
  )

const totalLength = (values: ReadonlyArray<Uint8Array>): number => {
  let bytes = 0
  for (let i = 0; i < values.length; i++) bytes += values[i]!.byteLength
  return bytes
}

const sum = (numbers: ReadonlyArray<number>): number => {
  let total = 0
  for (let i = 0; i < numbers.length; i++) total += numbers[i]!
  return total
}

/** A stream observed as one call: a span over its whole run, its pieces' bytes counted when it ends. */
const observeStream = <A>(
  o: Observed,
  operation: string,
  stream: Stream.Stream<A, Store.StoreError>,
  measure: (a: A) => number,
  attribute: "partd.bytes" | "partd.keys"
): Stream.Stream<A, Store.StoreError> =>
  Stream.suspend(() => {
    let total = 0
    return stream.pipe(
      Stream.map((a) => {
        total += measure(a)
        return a
      }),
      Stream.onExit((exit) =>
        Effect.withFiber((fiber) => {
          countCall(o, operation, outcomeOf(exit), fiber)
          if (attribute === "partd.bytes") o.readBytes.updateUnsafe(total, fiber.context)
          return Effect.annotateCurrentSpan(attribute, total)
        })
      ),
      Stream.withSpan(spanName(o, operation), {
        attributes: { "partd.store": o.store },
        captureStackTrace: false
      })
    )
  })

/**
 * `backend` with every operation observed under the store name `store` (see
 * the module's description). Call it once per store instance, around the
 * backend given to `Store.make`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const backend = (store: string, inner: Store.Backend): Store.Backend => {
  const o = observedOf(store)
  const recordAppend = (bytes: number, chunks: number, fiber: Fiber.Fiber<unknown, unknown>) => {
    o.appendedBytes.updateUnsafe(bytes, fiber.context)
    o.appendedChunks.updateUnsafe(chunks, fiber.context)
  }
  const recordRead = (values: ReadonlyArray<Uint8Array>, span: Tracer.Span, fiber: Fiber.Fiber<unknown, unknown>) => {
    const bytes = totalLength(values)
    span.attribute("partd.bytes", bytes)
    o.readBytes.updateUnsafe(bytes, fiber.context)
  }
  const { stream, keys, size, appendChunks } = inner
  return {
    ...inner,
    append: (paths, values, id) => {
      const bytes = totalLength(values)
      return observe(o, "append", paths.length, bytes, inner.append(paths, values, id), (_, __, fiber) =>
        recordAppend(bytes, values.length, fiber)
      )
    },
    get: (paths) => observe(o, "get", paths.length, undefined, inner.get(paths), recordRead),
    iset: (path, value) => observe(o, "iset", 1, value.byteLength, inner.iset(path, value)),
    delete: (paths) => observe(o, "delete", paths.length, undefined, inner.delete(paths)),
    drop: Effect.suspend(() => observe(o, "drop", 0, undefined, inner.drop)),
    ...(stream === undefined
      ? {}
      : {
          stream: (path: Key.Path, chunkBytes: number) =>
            observeStream(o, "stream", stream(path, chunkBytes), (piece) => piece.byteLength, "partd.bytes")
        }),
    ...(keys === undefined ? {} : { keys: observeStream(o, "keys", keys, () => 1, "partd.keys") }),
    ...(size === undefined
      ? {}
      : {
          size: (paths: ReadonlyArray<Key.Path>) =>
            observe(o, "size", paths.length, undefined, size(paths), (sizes, span) =>
              span.attribute("partd.bytes", sum(sizes))
            )
        }),
    ...(appendChunks === undefined
      ? {}
      : {
          appendChunks: (
            paths: ReadonlyArray<Key.Path>,
            chunks: ReadonlyArray<ReadonlyArray<Uint8Array>>,
            lengths: ReadonlyArray<number>
          ) => {
            const bytes = sum(lengths)
            let count = 0
            for (let i = 0; i < chunks.length; i++) count += chunks[i]!.length
            return observe(o, "append", paths.length, bytes, appendChunks(paths, chunks, lengths), (_, __, fiber) =>
              recordAppend(bytes, count, fiber)
            )
          }
        })
  }
}

/**
 * Reads one counter or gauge back, summed over every series whose attributes
 * include `attributes` (for tests and the CLI; exporters read all series).
 *
 * @since 0.1.0
 * @category accessors
 */
export const metricValue = (name: string, attributes: Readonly<Record<string, string>>): Effect.Effect<number> =>
  Effect.map(Metric.snapshot, (snapshots) => {
    let total = 0
    for (const snapshot of snapshots) {
      if (snapshot.id !== name || !matches(snapshot.attributes, attributes)) continue
      const state = snapshot.state as { readonly count?: unknown; readonly value?: unknown }
      const value = state.count ?? state.value
      if (typeof value === "number") total += value
    }
    return total
  })

const matches = (
  have: Readonly<Record<string, unknown>> | undefined,
  want: Readonly<Record<string, string>>
): boolean => {
  for (const key in want) if (have?.[key] !== want[key]) return false
  return true
}

/**
 * `Store.make` over `backend` observed under the name `store`: how every
 * store names itself (`Observe.make("File", backend)`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  store: string,
  inner: Store.Backend,
  options?: { readonly forwardEmpty?: boolean | undefined }
): Effect.Effect<Store.Shape, never, Scope.Scope> => Store.make(backend(store, inner), options)
