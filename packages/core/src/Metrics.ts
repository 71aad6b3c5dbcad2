/**
 * The metrics every store records, as Effect `Metric`s: their names (all
 * `partd_…`), what they count, and the few helpers the stores call to update
 * them.
 *
 * Every metric carries a `store` attribute naming the store that recorded it
 * (`Dict`, `File`, `Buffer`, `Redis`, `Client`, `Pipelined`, …). Store
 * operations are counted by `Observe.backend`, which every store built with
 * `Store.make` wraps its backend in; Buffer and Server add their own:
 *
 * | metric | kind | attributes | what |
 * | --- | --- | --- | --- |
 * | `partd_calls_total` | counter | store, operation, outcome | calls that reached the store; outcome `ok`, a `StoreError` reason, `interrupted` or `defect` |
 * | `partd_appended_bytes_total` | counter | store | bytes appended by calls that succeeded |
 * | `partd_appended_chunks_total` | counter | store | chunks appended by calls that succeeded |
 * | `partd_read_bytes_total` | counter | store | bytes returned by `get` and `stream` |
 * | `partd_buffer_held_bytes` | gauge | store | bytes a Buffer holds in memory, read when the metrics are read |
 * | `partd_buffer_spilled_bytes_total` | counter | store | bytes landed in the slow store |
 * | `partd_buffer_spill_batches_total` | counter | store | spill batches landed (or failed) |
 * | `partd_buffer_spill_seconds` | histogram | store | how long each spill batch took to land |
 * | `partd_buffer_waits_total` | counter | store | times an append waited for room |
 * | `partd_server_connections` | gauge | store=Server | open connections |
 * | `partd_server_requests_in_flight` | gauge | store=Server | requests being applied |
 *
 * The metrics live in the `Metric.MetricRegistry` of the fiber that made the
 * store, Buffer or Server (Effect's default registry unless the program
 * provides its own), as series registered once with a `get` hook over a plain
 * JavaScript cell (see {@link cell}): an exporter (`effect/observability`'s
 * Prometheus or OTLP exporters, `@effect/opentelemetry`) reads them there, and
 * so does `Metric.snapshot`. Stores with the same name in one registry add up
 * in one series (a Buffer(Dict, Dict) counts both Dicts under `Dict`).
 *
 * A call rejected by the store's shell before it reaches the store (a bad key
 * or value, a closed store) is not counted: it did no work.
 *
 * @since 0.1.0
 */
import { Context, Effect, type Fiber, Metric, type Scope } from "effect"

/** The buckets of this module's histograms (durations in seconds): 0.1 ms to 26 s by factors of 4. */
const spillSecondsBoundaries = Metric.exponentialBoundaries({ start: 0.0001, factor: 4, count: 10 })

/**
 * Calls that reached a store, by `store`, `operation` and `outcome`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const calls = Metric.counter("partd_calls_total", {
  description: "store calls, by store, operation and outcome (ok, a StoreError reason, interrupted, defect)",
  incremental: true
})

/**
 * Bytes appended by calls that succeeded.
 *
 * @since 0.1.0
 * @category metrics
 */
export const appendedBytes = Metric.counter("partd_appended_bytes_total", {
  description: "bytes appended by calls that succeeded",
  incremental: true
})

/**
 * Chunks appended by calls that succeeded.
 *
 * @since 0.1.0
 * @category metrics
 */
export const appendedChunks = Metric.counter("partd_appended_chunks_total", {
  description: "chunks appended by calls that succeeded",
  incremental: true
})

/**
 * Bytes returned by `get` and `stream`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const readBytes = Metric.counter("partd_read_bytes_total", {
  description: "bytes returned by get and stream",
  incremental: true
})

/**
 * The bytes a Buffer holds in memory (its fast store and stranded bytes).
 *
 * @since 0.1.0
 * @category metrics
 */
export const bufferHeldBytes = Metric.gauge("partd_buffer_held_bytes", {
  description: "bytes a Buffer holds in memory"
})

/**
 * Bytes a Buffer landed in its slow store.
 *
 * @since 0.1.0
 * @category metrics
 */
export const bufferSpilledBytes = Metric.counter("partd_buffer_spilled_bytes_total", {
  description: "bytes a Buffer landed in its slow store",
  incremental: true
})

/**
 * Spill batches a Buffer landed, or tried to.
 *
 * @since 0.1.0
 * @category metrics
 */
export const bufferSpillBatches = Metric.counter("partd_buffer_spill_batches_total", {
  description: "spill batches a Buffer landed or tried to land",
  incremental: true
})

/**
 * How long each spill batch took, in seconds.
 *
 * @since 0.1.0
 * @category metrics
 */
export const bufferSpillSeconds = Metric.histogram("partd_buffer_spill_seconds", {
  description: "how long each Buffer spill batch took to land, in seconds",
  boundaries: spillSecondsBoundaries
})

/**
 * Times an append to a Buffer waited for room.
 *
 * @since 0.1.0
 * @category metrics
 */
export const bufferWaits = Metric.counter("partd_buffer_waits_total", {
  description: "times an append to a Buffer waited for room (backpressure)",
  incremental: true
})

/**
 * A server's open connections.
 *
 * @since 0.1.0
 * @category metrics
 */
export const serverConnections = Metric.gauge("partd_server_connections", {
  description: "a server's open connections"
})

/**
 * A server's requests being applied.
 *
 * @since 0.1.0
 * @category metrics
 */
export const serverRequestsInFlight = Metric.gauge("partd_server_requests_in_flight", {
  description: "a server's requests being applied to its store"
})

/**
 * One of this module's metrics with the `store` attribute (and any others)
 * set: a metric of its own with the same name, whose series key is computed
 * once (`Metric.withAttributes` would compute it on every update).
 *
 * @since 0.1.0
 * @category combinators
 */
export const tagged = <I, S>(
  metric: Metric.Metric<I, S>,
  store: string,
  attributes?: Readonly<Record<string, string>>
): Metric.Metric<I, S> => {
  const all = { ...metric.attributes, store, ...attributes }
  const options = { description: metric.description, attributes: all }
  switch (metric.type) {
    case "Counter":
      return Metric.counter(metric.id, { ...options, incremental: true }) as unknown as Metric.Metric<I, S>
    case "Gauge":
      return Metric.gauge(metric.id, options) as unknown as Metric.Metric<I, S>
    case "Histogram":
      return Metric.histogram(metric.id, {
        ...options,
        boundaries: spillSecondsBoundaries
      }) as unknown as Metric.Metric<I, S>
    default:
      return Metric.withAttributes(metric, all)
  }
}

/**
 * A series' value, kept in plain JavaScript and read by the metric registry
 * when the metrics are read (the series is registered once per registry with
 * a `get` hook): updating it is an addition, with no lookup in the registry,
 * which matters on the append path. Every store instance with the same
 * attributes in the same registry shares the cell, so the series counts them
 * all. A gauge cell adds the values of its `readers` (one per live Buffer,
 * say) to its own.
 *
 * @since 0.1.0
 * @category models
 */
export interface Cell {
  value: number
  readonly readers: Set<() => number>
}

const cells = new WeakMap<Metric.MetricRegistry, Map<string, Cell>>()

const seriesKey = (metric: Metric.Metric<never, unknown>): string => {
  const attributes = metric.attributes ?? {}
  const names = Object.keys(attributes).sort()
  return `${metric.id}\u0000${names.map((name) => `${name}=${attributes[name]}`).join("\u0000")}`
}

const cellValue = (cell: Cell): number => {
  let value = cell.value
  for (const read of cell.readers) value += read()
  return value
}

/**
 * The cell of `metric`'s series (a counter or gauge made by {@link tagged}) in
 * the registry of `context`, registering it the first time.
 *
 * @since 0.1.0
 * @category constructors
 */
export const cell = (metric: Metric.Metric<number, unknown>, context: Context.Context<never>): Cell => {
  const registry = Context.get(context, Metric.MetricRegistry)
  let inRegistry = cells.get(registry)
  if (inRegistry === undefined) {
    inRegistry = new Map()
    cells.set(registry, inRegistry)
  }
  const key = seriesKey(metric)
  let found = inRegistry.get(key)
  if (found === undefined) {
    const made: Cell = { value: 0, readers: new Set() }
    const get =
      metric.type === "Counter"
        ? () => ({ count: cellValue(made), incremental: true })
        : () => ({ value: cellValue(made) })
    Metric.registerUnsafe(metric, context, { get, update: () => {}, modify: () => {} })
    inRegistry.set(key, made)
    found = made
  }
  return found
}

/**
 * Adds `read()` to a gauge's value while the scope is open (a Buffer's bytes
 * held cost nothing on the append path this way).
 *
 * @since 0.1.0
 * @category constructors
 */
export const readGauge = (
  gauge: Metric.Gauge<number>,
  store: string,
  read: () => number
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const target = cell(tagged(gauge, store), yield* Effect.context<never>())
    target.readers.add(read)
    yield* Effect.addFinalizer(() => Effect.sync(() => target.readers.delete(read)))
  })

/**
 * A Buffer's metrics, with its `store` attribute: what `Buffer` records when
 * it spills and when appends wait.
 *
 * @since 0.1.0
 * @category models
 */
export interface BufferMetrics {
  /** Times `land`, the landing of one spill batch, and counts it. */
  readonly spill: <A, E, R>(land: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Counts `bytes` landed in the slow store. */
  readonly spilled: (bytes: number) => Effect.Effect<void>
  /** Counts an append that waits for room. */
  readonly waited: Effect.Effect<void>
}

/**
 * The metrics of a Buffer named `store`, in the registry of the scope's
 * fiber; its bytes held count while the scope is open.
 *
 * @since 0.1.0
 * @category constructors
 */
export const buffer = (store: string, held: () => number): Effect.Effect<BufferMetrics, never, Scope.Scope> =>
  Effect.gen(function* () {
    yield* readGauge(bufferHeldBytes, store, held)
    const context = yield* Effect.context<never>()
    const batches = cell(tagged(bufferSpillBatches, store), context)
    const seconds = tagged(bufferSpillSeconds, store)
    const spilledBytes = cell(tagged(bufferSpilledBytes, store), context)
    const waits = cell(tagged(bufferWaits, store), context)
    return {
      spill: (land) =>
        Effect.suspend(() => {
          const started = performance.now()
          return Effect.ensuring(
            land,
            Effect.suspend(() => {
              batches.value++
              return Metric.update(seconds, (performance.now() - started) / 1000)
            })
          )
        }),
      spilled: (bytes) =>
        Effect.sync(() => {
          spilledBytes.value += bytes
        }),
      waited: Effect.sync(() => {
        waits.value++
      })
    }
  })

/**
 * What a server counts: its open connections and requests in flight.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerMetrics {
  /** Counts `socket` as open until it closes. */
  readonly connected: (socket: { once(event: "close", listener: () => void): unknown }) => void
  /** Wraps the server's request runner: each request counts as in flight until its fiber ends. */
  readonly running: <W, A, E>(run: (work: W) => Fiber.Fiber<A, E>) => (work: W) => Fiber.Fiber<A, E>
}

/**
 * A server's metrics (store attribute `Server`), in the registry of the
 * scope's fiber; what it counts leaves the gauges when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const server: Effect.Effect<ServerMetrics, never, Scope.Scope> = Effect.gen(function* () {
  let connections = 0
  let inFlight = 0
  yield* readGauge(serverConnections, "Server", () => connections)
  yield* readGauge(serverRequestsInFlight, "Server", () => inFlight)
  const done = () => {
    inFlight--
  }
  return {
    connected: (socket) => {
      connections++
      socket.once("close", () => {
        connections--
      })
    },
    running:
      <W, A, E>(run: (work: W) => Fiber.Fiber<A, E>) =>
      (work: W) => {
        inFlight++
        const fiber = run(work)
        fiber.addObserver(done)
        return fiber
      }
  }
})
