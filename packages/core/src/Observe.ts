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
 * `Tracer` installed) they are exported; with no tracer installed (Effect's
 * native tracer, which keeps spans nowhere) or `References.TracerEnabled`
 * set to `false`, an operation makes no span at all. No stack trace is captured per span (that
 * would cost more than a Dict append). The counters are plain additions to
 * cells the metric registry reads when the metrics are read (see
 * `Metrics.cell`): they go to the registry of the fiber that made the store.
 * The wrapper keeps every other field of the backend (`getChunks`, …) as it
 * is; an `appendChunks` is observed as an `append`.
 *
 * @since 0.1.0
 */
import {
  Cause,
  type Context,
  Effect,
  type Exit,
  type Fiber,
  Metric,
  References,
  type Scope,
  Stream,
  Tracer
} from "effect"
import type * as Key from "./Key.ts"
import * as Metrics from "./Metrics.ts"
import * as Store from "./Store.ts"

/** One operation of one store: its span name and its call counters by outcome. */
interface Operation {
  readonly store: string
  readonly span: string
  readonly ok: Metrics.Cell
  readonly outcome: (outcome: string) => Metrics.Cell
}

/** What a store's observed operations share: its name, its byte and chunk counters. */
interface Observed {
  readonly store: string
  readonly context: Context.Context<never>
  readonly appendedBytes: Metrics.Cell
  readonly appendedChunks: Metrics.Cell
  readonly readBytes: Metrics.Cell
}

const observedOf = (store: string, context: Context.Context<never>): Observed => ({
  store,
  context,
  appendedBytes: Metrics.cell(Metrics.tagged(Metrics.appendedBytes, store), context),
  appendedChunks: Metrics.cell(Metrics.tagged(Metrics.appendedChunks, store), context),
  readBytes: Metrics.cell(Metrics.tagged(Metrics.readBytes, store), context)
})

const operationOf = (o: Observed, operation: string): Operation => {
  const byOutcome = new Map<string, Metrics.Cell>()
  const outcome = (name: string): Metrics.Cell => {
    let found = byOutcome.get(name)
    if (found === undefined) {
      found = Metrics.cell(Metrics.tagged(Metrics.calls, o.store, { operation, outcome: name }), o.context)
      byOutcome.set(name, found)
    }
    return found
  }
  return { store: o.store, span: `partd.${o.store}.${operation}`, ok: outcome("ok"), outcome }
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

const countExit = (op: Operation, exit: Exit.Exit<unknown, unknown>): void => {
  if (exit._tag === "Success") op.ok.value++
  else op.outcome(outcomeOf(exit)).value++
}

const noStackTrace: Tracer.TraceOptions = { captureStackTrace: false }

/** Whether spans go anywhere: tracing is on and a tracer other than Effect's native one (which keeps none) is installed. */
const tracing = (fiber: Fiber.Fiber<unknown, unknown>): boolean =>
  fiber.getRef(References.TracerEnabled) && fiber.getRef(Tracer.Tracer) !== Tracer.nativeTracer

/**
 * Runs `effect` in a span for `op`, and counts it when it ends. No span is
 * made when tracing is off, or when no tracer is installed (Effect's native
 * tracer keeps its spans nowhere: making them would cost every call several
 * microseconds for nothing); `onSuccess` records what the call moved (and may annotate the
 * span, when there is one).
 */
const observe = <A>(
  op: Operation,
  keys: number,
  bytes: number | undefined,
  effect: Effect.Effect<A, Store.StoreError>,
  onSuccess?: (value: A, span: Tracer.Span | undefined) => void
): Effect.Effect<A, Store.StoreError> =>
  Effect.withFiber((fiber: Fiber.Fiber<unknown, unknown>) => {
    if (!tracing(fiber)) {
      return Effect.onExit(effect, (exit) => {
        countExit(op, exit)
        if (exit._tag === "Success" && onSuccess !== undefined) onSuccess(exit.value, undefined)
        return Effect.void
      })
    }
    const attributes: Record<string, unknown> = { "partd.store": op.store, "partd.keys": keys }
    if (bytes !== undefined) attributes["partd.bytes"] = bytes
    return Effect.useSpan(op.span, { attributes }, (span) =>
      Effect.onExit(Effect.withParentSpan(effect, span, noStackTrace), (exit) => {
        countExit(op, exit)
        if (exit._tag === "Success" && onSuccess !== undefined) onSuccess(exit.value, span)
        return Effect.void
      })
    )
  })

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
  op: Operation,
  stream: Stream.Stream<A, Store.StoreError>,
  measure: (a: A) => number,
  attribute: "partd.bytes" | "partd.keys",
  onEnd: (total: number) => void
): Stream.Stream<A, Store.StoreError> =>
  Stream.unwrap(
    Effect.withFiber((fiber: Fiber.Fiber<unknown, unknown>) => {
      const traced = tracing(fiber)
      let total = 0
      const counted = stream.pipe(
        Stream.map((a) => {
          total += measure(a)
          return a
        }),
        Stream.onExit((exit) => {
          countExit(op, exit)
          onEnd(total)
          return traced ? Effect.annotateCurrentSpan(attribute, total) : Effect.void
        })
      )
      return Effect.succeed(
        traced
          ? Stream.withSpan(counted, op.span, { attributes: { "partd.store": op.store }, captureStackTrace: false })
          : counted
      )
    })
  )

/** `inner`'s optional operations, observed. */
const optional = (o: Observed, inner: Store.Backend): Partial<Store.Backend> => {
  const { stream, keys, size, appendChunks } = inner
  const out: {
    -readonly [K in "stream" | "keys" | "size" | "appendChunks"]?: Store.Backend[K]
  } = {}
  if (stream !== undefined) {
    const op = operationOf(o, "stream")
    out.stream = (path: Key.Path, chunkBytes: number) =>
      observeStream(
        op,
        stream(path, chunkBytes),
        (piece) => piece.byteLength,
        "partd.bytes",
        (total) => {
          o.readBytes.value += total
        }
      )
  }
  if (keys !== undefined)
    out.keys = observeStream(
      operationOf(o, "keys"),
      keys,
      () => 1,
      "partd.keys",
      () => {}
    )
  if (size !== undefined) {
    const op = operationOf(o, "size")
    out.size = (paths) =>
      observe(op, paths.length, undefined, size(paths), (sizes, span) => span?.attribute("partd.bytes", sum(sizes)))
  }
  if (appendChunks !== undefined) {
    const op = operationOf(o, "append")
    out.appendChunks = (paths, chunks, lengths) => {
      const bytes = sum(lengths)
      let count = 0
      for (let i = 0; i < chunks.length; i++) count += chunks[i]!.length
      return observe(op, paths.length, bytes, appendChunks(paths, chunks, lengths), () => {
        o.appendedBytes.value += bytes
        o.appendedChunks.value += count
      })
    }
  }
  return out
}

/**
 * `backend` with every operation observed under the store name `store` (see
 * the module's description), counted in the metric registry of the fiber
 * that calls it. Once per store instance, around the backend given to
 * `Store.make`: {@link make} does both.
 *
 * @since 0.1.0
 * @category constructors
 */
export const backend = (store: string, inner: Store.Backend): Effect.Effect<Store.Backend> =>
  Effect.map(Effect.context<never>(), (context) => {
    const o = observedOf(store, context)
    const append = operationOf(o, "append")
    const get = operationOf(o, "get")
    const iset = operationOf(o, "iset")
    const del = operationOf(o, "delete")
    const drop = operationOf(o, "drop")
    const recordRead = (values: ReadonlyArray<Uint8Array>, span: Tracer.Span | undefined) => {
      const bytes = totalLength(values)
      span?.attribute("partd.bytes", bytes)
      o.readBytes.value += bytes
    }
    return {
      ...inner,
      append: (paths, values, id, given) => {
        // Measured once by the shell above; read from the chunks only when a caller did not.
        const sizes = given ?? Store.sizesOf(values)
        return observe(append, paths.length, sizes.bytes, inner.append(paths, values, id, sizes), () => {
          o.appendedBytes.value += sizes.bytes
          o.appendedChunks.value += values.length
        })
      },
      get: (paths) => observe(get, paths.length, undefined, inner.get(paths), recordRead),
      iset: (path, value) => observe(iset, 1, value.byteLength, inner.iset(path, value)),
      delete: (paths) => observe(del, paths.length, undefined, inner.delete(paths)),
      drop: Effect.suspend(() => observe(drop, 0, undefined, inner.drop)),
      ...optional(o, inner)
    }
  })

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
 * store names itself (`Observe.make("File", backend)` in place of
 * `Store.make(backend)`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  store: string,
  inner: Store.Backend,
  options?: { readonly forwardEmpty?: boolean | undefined }
): Effect.Effect<Store.Shape, never, Scope.Scope> =>
  Effect.flatMap(backend(store, inner), (observed) => Store.make(observed, options))
