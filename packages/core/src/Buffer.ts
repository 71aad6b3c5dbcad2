/**
 * Buffer: a memory-bounded fast store in front of a slow one, partd's
 * `Buffer(Dict(), File(), available_memory=...)`.
 *
 * Appends go to the fast store. When the bytes held in memory pass 95% of
 * `availableMemory`, a background fiber spills the largest keys to the slow
 * store until memory is back to 85% of the bound (spilling little at a time
 * keeps the most data in memory and writes the least to the slow store, as
 * partd's Buffer does, which spills a tenth of its memory); an append that
 * would push memory past the bound waits until the flusher has made room
 * (backpressure), so memory stays bounded however fast writers append. A
 * single batch larger than the bound is let through when memory is empty.
 * With `flushAfter`, bytes are also spilled once they have been held that
 * long, which bounds what a crash of the process can lose.
 *
 * Order and completeness under concurrency (partd lost bytes here,
 * dask/dask#1383). Spilling a key is two steps:
 *
 * 1. take: under the buffer's lock, read the key's bytes from the fast store,
 *    delete them there, and hold them in memory as *stranded* bytes (see
 *    `BufferLedger`);
 * 2. land: append the stranded bytes to the slow store, then forget them.
 *
 * Appends to the fast store also hold the lock, so no append can slip between
 * the read and the delete of step 1. `get` reads slow, then stranded, then
 * fast, which is append order, and it holds the lock while it reads and waits
 * out any landing of its keys, so it never sees a key both stranded and
 * landed, or neither. Batches are spilled one at a time, so a key's landings
 * stay in order.
 *
 * Exactly once. A batch lands key by key, one slow-store call per key, and a
 * key is forgotten as soon as its call succeeds. This relies on the slow
 * store's promise that an `append` call that fails has applied nothing (see
 * `Store.Backend`), and needs it only per key: a landing that fails part-way
 * knows which keys landed and keeps exactly the others stranded (still
 * readable, still counted against the bound); they go first in the key's next
 * landing. The error reaches the appenders waiting for room and `flush`.
 *
 * Reading without joining. `stream` yields a key as `get` joins it: the
 * slow store's part, then the stranded and fast chunks. When it starts, under
 * the lock and once no landing touches the key, it takes the slow part's
 * length (`size`) and a snapshot of the chunk lists in memory; the slow part
 * is streamed up to that length (later landings are not seen) and the memory
 * part is copied out piece by piece. A value far larger than
 * `availableMemory` is therefore read in bounded memory: the slow store's
 * stream plus at most the buffer's own bytes, which the snapshot may keep
 * alive after they were spilled. `keys` is the union of the keys holding
 * bytes in memory and the slow store's keys; `size` is the slow store's size
 * plus the bytes in memory.
 *
 * Call ids. The buffer remembers the ids of the appends it applied to the
 * fast store, in memory (the last 65,536, see `CallIds`): ids are as durable
 * as the buffered bytes. Landings are the buffer's own calls to the slow
 * store, without the caller's id.
 *
 * Closing. `close` lands everything and then closes the store; it fails with
 * a {@link BufferError} naming the keys and bytes still in memory, and may be
 * retried. Closing the Layer's scope without it runs the same final flush;
 * since a finalizer cannot fail, a failure there becomes a defect carrying the
 * `BufferError`, so the scope's exit (and a program run with `runMain`) fails
 * instead of losing data quietly.
 *
 * @since 0.1.0
 */
import { Clock, Context, Deferred, Duration, Effect, Layer, Schema, type Scope, Semaphore, Stream } from "effect"
import * as BufferLedger from "./BufferLedger.ts"
import * as Bytes from "./Bytes.ts"
import { CallIds } from "./CallIds.ts"
import type * as Key from "./Key.ts"
import * as Metrics from "./Metrics.ts"
import * as Observe from "./Observe.ts"
import * as Pieces from "./Pieces.ts"
import * as Store from "./Store.ts"

/**
 * Why closing a buffer failed.
 *
 * - `Unflushed`: the final flush to the slow store failed; `lost` lists the
 *   bytes of each key that are only in memory.
 *
 * @since 0.1.0
 * @category errors
 */
export const BufferErrorReason = Schema.Literals(["Unflushed"])

/**
 * @since 0.1.0
 * @category errors
 */
export type BufferErrorReason = typeof BufferErrorReason.Type

/**
 * The error of closing a buffer whose bytes could not all be landed.
 *
 * @since 0.1.0
 * @category errors
 */
export class BufferError extends Schema.TaggedError<BufferError>("@partd/core/BufferError")("BufferError", {
  reason: BufferErrorReason,
  /** The bytes of each key that are only in memory, in the order the keys were first appended. */
  lost: Schema.Array(Schema.Struct({ key: Schema.String, bytes: Schema.Number })),
  /** The slow store's error. */
  cause: Store.StoreError
}) {
  /** The bytes only in memory, over every key. */
  get lostBytes(): number {
    let total = 0
    for (const entry of this.lost) total += entry.bytes
    return total
  }

  override get message(): string {
    const shown = this.lost.slice(0, 10).map((entry) => `${JSON.stringify(entry.key)}: ${entry.bytes}`)
    const more = this.lost.length > shown.length ? `, and ${this.lost.length - shown.length} more` : ""
    return (
      `${this.reason}: ${this.lostBytes} bytes of ${this.lost.length} keys are not in the slow store ` +
      `(${shown.join(", ")}${more}): ${this.cause.message}`
    )
  }
}

/**
 * Control over a buffer, next to its `Store`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Control {
  /** Moves everything held in memory to the slow store. */
  readonly flush: Effect.Effect<void, Store.StoreError>
  /**
   * Moves everything to the slow store, then closes the store (its calls fail
   * with `Closed`). On failure the store stays open and `close` may be retried.
   */
  readonly close: Effect.Effect<void, BufferError>
  /** The bytes currently held in memory (fast store and stranded bytes). */
  readonly memoryUsage: Effect.Effect<number>
}

/**
 * The `Buffer` service: control over the buffer that provides the `Store`.
 *
 * @since 0.1.0
 * @category services
 */
export class Buffer extends Context.Service<Buffer, Control>()("@partd/core/Buffer") {}

/**
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions {
  readonly fast: Store.Shape
  readonly slow: Store.Shape
  /** The most bytes to hold in the fast store. */
  readonly availableMemory: number
  /**
   * Land bytes in the slow store once they have been held this long (checked
   * every half of it), so a crash loses at most about this much time of
   * appends. Without it, bytes stay in memory until memory runs short, `flush`
   * or close.
   */
  readonly flushAfter?: Duration.Input | undefined
}

type Wait = { readonly _tag: "Wait"; readonly signal: Deferred.Deferred<void, Store.StoreError> }
const wait = (signal: Deferred.Deferred<void, Store.StoreError>): Wait => ({ _tag: "Wait", signal })
const isWait = (u: unknown): u is Wait => typeof u === "object" && u !== null && (u as Wait)._tag === "Wait"

/**
 * Runs `attempt` until it returns something other than a `Wait`, awaiting
 * the wait's signal in between (outside any lock).
 */
const retryAfterWaits = <A, E>(attempt: Effect.Effect<A | Wait, E>): Effect.Effect<A, E | Store.StoreError> =>
  Effect.flatMap(attempt, (result) =>
    isWait(result)
      ? Effect.flatMap(Deferred.await(result.signal), () => retryAfterWaits(attempt))
      : Effect.succeed(result as A)
  )

type ChunkReader = (
  paths: ReadonlyArray<Key.Path>
) => Effect.Effect<ReadonlyArray<ReadonlyArray<Uint8Array>>, Store.StoreError>

/**
 * Chunk-level reads where the store offers them (in-memory stores), so that
 * spilling moves chunks without copying and `get` copies once.
 */
const chunkReader =
  (backend: Store.Backend): ChunkReader =>
  (paths) =>
    backend.getChunks !== undefined
      ? backend.getChunks(paths)
      : Effect.map(backend.get(paths), (values) => values.map((value) => [value]))

/** The state of one buffer, shared by the functions below. */
interface Buffered {
  readonly fast: Store.Backend
  readonly slow: Store.Backend
  readonly fastChunks: ChunkReader
  readonly slowChunks: ChunkReader
  /** Without getChunks, the slow store's `get` returns fresh arrays we may hand out as they are. */
  readonly slowGivesFresh: boolean
  readonly ledger: BufferLedger.Ledger
  /** The ids of the appends applied to the fast store. */
  readonly ids: CallIds
  readonly clock: Clock.Clock
  readonly bound: number
  readonly highWater: number
  readonly lowWater: number
  /** Guards the fast store and the ledger: appends, reads and the take step. */
  readonly lock: Semaphore.Semaphore
  /** One spill batch at a time, so a key's landings stay in order. */
  readonly flushLock: Semaphore.Semaphore
  /** The keys of the batch being landed, and its completion. */
  landing: ReadonlySet<Key.Path> | undefined
  landed: Deferred.Deferred<void, Store.StoreError>
  /** Appenders waiting for room await `room`; the largest such batch is `demand`. */
  room: Deferred.Deferred<void, Store.StoreError>
  demand: number
  wake: Deferred.Deferred<void>
  closed: boolean
  readonly metrics: Metrics.BufferMetrics
}

const invalidBound = (bound: number) =>
  new Store.StoreError({
    reason: "BadValue",
    method: "Buffer.make",
    description: `availableMemory must be a positive number of bytes, got ${bound}`
  })

/**
 * Makes a buffer over two stores. The flusher runs in the scope, and closing
 * the scope flushes everything to the slow store (see the module's
 * description for what a failure there does).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: MakeOptions
): Effect.Effect<{ readonly store: Store.Shape; readonly control: Control }, Store.StoreError, Scope.Scope> =>
  Effect.gen(function* () {
    const bound = options.availableMemory
    if (!(bound > 0) || !Number.isFinite(bound)) return yield* invalidBound(bound)
    const buffered = yield* acquire(options)
    yield* Effect.forkScoped(runFlusher(buffered))
    if (options.flushAfter !== undefined) {
      yield* Effect.forkScoped(runAger(buffered, Duration.toMillis(options.flushAfter)))
    }
    const control = makeControl(buffered)
    yield* Effect.addFinalizer(() => (buffered.closed ? Effect.void : Effect.orDie(control.close)))
    const store = yield* Observe.make("Buffer", makeBackend(buffered))
    return { store, control }
  })

/** The buffer's state over the two stores, its inner stores' backends: paths are validated once, by this store. */
const acquire = (options: MakeOptions): Effect.Effect<Buffered, never, Scope.Scope> =>
  Effect.gen(function* () {
    const ledger = new BufferLedger.Ledger()
    const fast = Store.toBackend(options.fast)
    const slow = Store.toBackend(options.slow)
    const bound = options.availableMemory
    return {
      fast,
      slow,
      fastChunks: chunkReader(fast),
      slowChunks: chunkReader(slow),
      slowGivesFresh: slow.getChunks === undefined,
      ledger,
      ids: new CallIds(),
      clock: yield* Clock.Clock,
      bound,
      highWater: bound * 0.95,
      lowWater: bound * 0.85,
      lock: yield* Semaphore.make(1),
      flushLock: yield* Semaphore.make(1),
      landing: undefined,
      landed: Deferred.makeUnsafe(),
      room: Deferred.makeUnsafe(),
      demand: 0,
      wake: Deferred.makeUnsafe(),
      closed: false,
      metrics: yield* Metrics.buffer("Buffer", () => ledger.memory)
    }
  })

/** Wakes the appenders waiting for room: to try again, or with the error that keeps room from being made. */
const signalRoom = (b: Buffered, failure?: Store.StoreError): void => {
  const signal = b.room
  b.room = Deferred.makeUnsafe()
  b.demand = 0
  Deferred.doneUnsafe(signal, failure === undefined ? Effect.void : Effect.fail(failure))
}

const wakeFlusher = (b: Buffered): void => {
  Deferred.doneUnsafe(b.wake, Effect.void)
}

const landingOverlaps = (b: Buffered, paths: ReadonlyArray<Key.Path>): boolean => {
  if (b.landing === undefined) return false
  for (const path of paths) if (b.landing.has(path)) return true
  return false
}

/**
 * Appends one key's stranded chunks to the slow store in one call, as they
 * are (no copy): as one list where the slow store takes lists (an in-memory
 * store, which then need not read each chunk), else with the path repeated
 * once per chunk (a slow store that writes batches them per path).
 */
const landKey = (b: Buffered, path: Key.Path): Effect.Effect<void, Store.StoreError> => {
  const h = b.ledger.get(path)!
  if (b.slow.appendChunks !== undefined) return b.slow.appendChunks([path], [h.stranded], [h.strandedBytes])
  const stranded = h.stranded
  return b.slow.append(new Array<Key.Path>(stranded.length).fill(path), stranded)
}

/**
 * Take: moves the fast-store bytes of the keys chosen by `select` (called
 * under the lock) into the ledger's stranded chunks, and marks them landing.
 */
const take = (b: Buffered, select: () => ReadonlyArray<Key.Path>): Effect.Effect<Array<Key.Path>, Store.StoreError> =>
  b.lock.withPermit(
    Effect.gen(function* () {
      const keys = select().filter((path) => b.ledger.has(path))
      const inFast = keys.filter((path) => b.ledger.get(path)!.fast > 0)
      if (inFast.length > 0) {
        const chunks = yield* b.fastChunks(inFast)
        yield* b.fast.delete(inFast)
        // The fast store has let go of these chunks: they are ours now.
        b.ledger.strand(inFast, chunks)
      }
      if (keys.length > 0) {
        b.landing = new Set(keys)
        b.landed = Deferred.makeUnsafe()
      }
      return keys
    })
  )

/**
 * Spills the keys chosen by `select` to the slow store: take, then land key
 * by key, forgetting each key once its call succeeded; the first failure
 * stops the batch and leaves the rest stranded. Uninterruptible, so that a
 * landing is never half-written when the scope closes.
 */
const spill = (b: Buffered, select: () => ReadonlyArray<Key.Path>): Effect.Effect<void, Store.StoreError> =>
  b.flushLock.withPermit(
    Effect.uninterruptible(
      Effect.gen(function* () {
        const keys = yield* take(b, select)
        if (keys.length === 0) return
        yield* b.metrics.spill(landEach(b, keys)).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              b.landing = undefined
              Deferred.doneUnsafe(b.landed, Effect.void)
            })
          )
        )
        signalRoom(b)
      })
    )
  )

/** Lands `keys` one call each, in order, forgetting each once landed; stops at the first failure. */
const landEach = (b: Buffered, keys: ReadonlyArray<Key.Path>): Effect.Effect<void, Store.StoreError> =>
  Effect.gen(function* () {
    for (const path of keys) {
      yield* landKey(b, path)
      yield* b.metrics.spilled(b.ledger.get(path)!.strandedBytes)
      b.ledger.landed(path)
    }
  })

/** Every key the buffer holds, landed. */
const flushAll = (b: Buffered): Effect.Effect<void, Store.StoreError> => spill(b, () => b.ledger.paths())

/** How low the flusher brings memory: under the low-water mark, and low enough for the largest waiting batch. */
const target = (b: Buffered): number =>
  b.demand > 0 ? Math.max(0, Math.min(b.lowWater, b.bound - b.demand)) : b.lowWater

/**
 * The background flusher: woken by appends; spills the largest keys until
 * memory is under target. A failed spill wakes the waiting appenders with its
 * error, and the flusher waits for the next wake to try again.
 */
const runFlusher = (b: Buffered): Effect.Effect<never> =>
  Effect.forever(
    Effect.gen(function* () {
      yield* Deferred.await(b.wake)
      b.wake = Deferred.makeUnsafe()
      while (b.ledger.memory > target(b) && (b.ledger.memory > b.highWater || b.demand > 0)) {
        const spilled = yield* spill(b, () => b.ledger.largest(b.ledger.memory - target(b))).pipe(
          Effect.as(true),
          Effect.catch((error) =>
            Effect.sync(() => {
              signalRoom(b, error)
              return false
            })
          )
        )
        if (!spilled) break
      }
    })
  )

/**
 * For `flushAfter`: every half of it, spills the keys holding bytes older
 * than the other half, so no byte is held much longer than `flushAfter`. A
 * failure is reported to waiting appenders and retried on the next tick.
 */
const runAger = (b: Buffered, flushAfterMillis: number): Effect.Effect<never> => {
  const half = Math.max(1, flushAfterMillis / 2)
  return Effect.forever(
    Effect.andThen(
      Effect.sleep(Duration.millis(half)),
      Effect.suspend(() => {
        const cutoff = b.clock.currentTimeMillisUnsafe() - half
        return Effect.catch(
          spill(b, () => b.ledger.olderThan(cutoff)),
          (error) => Effect.sync(() => signalRoom(b, error))
        )
      })
    )
  )
}

const makeControl = (b: Buffered): Control => ({
  flush: flushAll(b),
  close: closeBuffer(b),
  memoryUsage: Effect.sync(() => b.ledger.memory)
})

/**
 * Lands everything, then closes the store under the lock, once nothing is
 * left in memory (an append may slip in between the flush and the lock: then
 * flush again).
 */
const closeBuffer = (b: Buffered): Effect.Effect<void, BufferError> => {
  const attempt: Effect.Effect<void, Store.StoreError> = Effect.suspend(() =>
    b.closed
      ? Effect.void
      : flushAll(b).pipe(
          Effect.andThen(
            b.lock.withPermit(
              Effect.sync(() => {
                if (b.ledger.memory === 0) b.closed = true
                return b.closed
              })
            )
          ),
          Effect.flatMap((closed) => (closed ? Effect.void : attempt))
        )
  )
  return Effect.mapError(
    attempt,
    (cause) => new BufferError({ reason: "Unflushed", lost: b.ledger.unflushed(), cause })
  )
}

/**
 * Appends to the fast store, or returns a `Wait` for room when the batch
 * does not fit (and wakes the flusher to make it).
 */
const appendOrWait = (
  b: Buffered,
  paths: ReadonlyArray<Key.Path>,
  values: ReadonlyArray<Uint8Array>,
  sizes: Store.Sizes,
  id: string | undefined
): Effect.Effect<void | Wait, Store.StoreError> => {
  // Checked at the moment of applying, under the lock: of two calls with one id, the second applies nothing.
  if (id !== undefined && b.ids.has(id)) return Effect.void
  const size = sizes.bytes
  if (b.ledger.memory > 0 && b.ledger.memory + size > b.bound) {
    b.demand = Math.max(b.demand, size)
    wakeFlusher(b)
    return Effect.as(b.metrics.waited, wait(b.room))
  }
  return Effect.map(b.fast.append(paths, values, undefined, sizes), () => {
    if (id !== undefined) b.ids.add(id)
    b.ledger.appended(paths, sizes, b.clock.currentTimeMillisUnsafe())
    if (b.ledger.memory > b.highWater) wakeFlusher(b)
  })
}

/** Reads keys in append order: slow's chunks, then stranded, then fast's, one copy per key. */
const read = (
  b: Buffered,
  paths: ReadonlyArray<Key.Path>
): Effect.Effect<ReadonlyArray<Uint8Array> | Wait, Store.StoreError> => {
  if (landingOverlaps(b, paths)) return Effect.succeed(wait(b.landed))
  const inFast = paths.filter((path) => (b.ledger.get(path)?.fast ?? 0) > 0)
  return Effect.zipWith(
    b.slowChunks(paths),
    inFast.length === 0 ? Effect.succeed([]) : b.fastChunks(inFast),
    (fromSlow, fromFast) => {
      let f = 0
      return paths.map((path, i) => {
        const h = b.ledger.get(path)
        const parts = fromSlow[i]!
        if (h === undefined) return parts.length === 1 && b.slowGivesFresh ? parts[0]! : Bytes.concat(parts)
        return Bytes.concat([...parts, ...h.stranded, ...(h.fast > 0 ? fromFast[f++]! : [])])
      })
    }
  )
}

/**
 * Runs `body` under the buffer's lock once no landing touches `paths` (all
 * keys when `paths` is undefined), failing with `Closed` once closed.
 */
const exclusive = <A>(
  b: Buffered,
  method: string,
  paths: ReadonlyArray<Key.Path> | undefined,
  body: () => Effect.Effect<A, Store.StoreError>
): Effect.Effect<A, Store.StoreError> =>
  retryAfterWaits(
    b.lock.withPermit(
      Effect.suspend((): Effect.Effect<A | Wait, Store.StoreError> => {
        if (b.closed) return Effect.fail(Store.closedError(method))
        const busy = paths === undefined ? b.landing !== undefined : landingOverlaps(b, paths)
        return busy ? Effect.succeed(wait(b.landed)) : body()
      })
    )
  )

/**
 * A key's stream as it stands now (called under the lock, no landing of the
 * key under way): the slow part up to its present length, then a snapshot of
 * the stranded and fast chunks.
 */
const streamFrom = (
  b: Buffered,
  path: Key.Path,
  chunkBytes: number
): Effect.Effect<Stream.Stream<Uint8Array, Store.StoreError>, Store.StoreError> =>
  Effect.gen(function* () {
    const [slowBytes] = yield* b.slow.size([path])
    const h = b.ledger.get(path)
    const memory: Array<Uint8Array> = h === undefined ? [] : h.stranded.slice()
    let memoryBytes = h === undefined ? 0 : h.strandedBytes
    if (h !== undefined && h.fast > 0) {
      const [fromFast] = yield* b.fastChunks([path])
      for (const chunk of fromFast!) memory.push(chunk)
      memoryBytes += h.fast
    }
    const inMemory = Pieces.fromChunks(memory, memoryBytes, chunkBytes)
    return slowBytes === 0
      ? inMemory
      : Stream.concat(Pieces.takeBytes(b.slow.stream(path, chunkBytes), slowBytes!), inMemory)
  })

/** The buffer's operations, over validated paths. */
const makeBackend = (b: Buffered): Store.Backend => ({
  append: (paths, values, id, given) => {
    // The lengths measured by the shell go on to the ledger and the fast store: no chunk is read here.
    const sizes = given ?? Store.sizesOf(values)
    return retryAfterWaits(
      b.lock.withPermit(
        Effect.suspend(() =>
          b.closed ? Effect.fail(Store.closedError("append")) : appendOrWait(b, paths, values, sizes, id)
        )
      )
    )
  },
  get: (paths) =>
    retryAfterWaits(
      b.lock.withPermit(Effect.suspend(() => (b.closed ? Effect.fail(Store.closedError("get")) : read(b, paths))))
    ),
  iset: (path, value) =>
    exclusive(b, "iset", [path], () =>
      Effect.gen(function* () {
        if ((b.ledger.get(path)?.fast ?? 0) > 0) yield* b.fast.delete([path])
        yield* b.slow.iset(path, value)
        b.ledger.remove(path)
      })
    ),
  delete: (paths) =>
    exclusive(b, "delete", paths, () =>
      Effect.gen(function* () {
        yield* b.slow.delete(paths)
        yield* b.fast.delete(paths)
        for (const path of paths) b.ledger.remove(path)
        signalRoom(b)
      })
    ),
  stream: (path, chunkBytes) => Stream.unwrap(exclusive(b, "stream", [path], () => streamFrom(b, path, chunkBytes))),
  keys: Stream.unwrap(
    exclusive(b, "keys", [], () =>
      Effect.sync(() => {
        const inMemory = b.ledger.paths().filter((path) => {
          const h = b.ledger.get(path)!
          return h.fast + h.strandedBytes > 0
        })
        const held = new Set(inMemory)
        return Stream.concat(
          Stream.fromArray(inMemory),
          Stream.filter(b.slow.keys, (path) => !held.has(path))
        )
      })
    )
  ),
  size: (paths) =>
    exclusive(b, "size", paths, () =>
      Effect.map(b.slow.size(paths), (sizes) =>
        sizes.map((size, i) => {
          const h = b.ledger.get(paths[i]!)
          return h === undefined ? size : size + h.strandedBytes + h.fast
        })
      )
    ),
  drop: exclusive(b, "drop", undefined, () =>
    Effect.gen(function* () {
      yield* b.fast.drop
      yield* b.slow.drop
      b.ledger.clear()
      signalRoom(b)
    })
  )
})

/**
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions<E1, R1, E2, R2> {
  /** The fast store, e.g. `Dict.layer`. Built afresh for this buffer. */
  readonly fast: Layer.Layer<Store.Store, E1, R1>
  /** The slow store, e.g. a File store. Built afresh for this buffer. */
  readonly slow: Layer.Layer<Store.Store, E2, R2>
  /** The most bytes to hold in the fast store. */
  readonly availableMemory: number
  /** See {@link MakeOptions.flushAfter}. */
  readonly flushAfter?: Duration.Input | undefined
}

/**
 * A `Store` that buffers appends in `fast` and spills the largest keys to
 * `slow`, plus the `Buffer` service to flush it. Both stores are built in the
 * Layer's scope and released after the final flush.
 *
 * @example
 * ```ts
 * const store = Buffer.layer({ fast: Dict.layer, slow: File.layer(), availableMemory: 64 * 1024 * 1024 })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E1, R1, E2, R2>(
  options: LayerOptions<E1, R1, E2, R2>
): Layer.Layer<Store.Store | Buffer, E1 | E2 | Store.StoreError, R1 | R2> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const slow = Context.get(yield* Layer.build(Layer.fresh(options.slow)), Store.Store)
      const fast = Context.get(yield* Layer.build(Layer.fresh(options.fast)), Store.Store)
      const { store, control } = yield* make({
        fast,
        slow,
        availableMemory: options.availableMemory,
        flushAfter: options.flushAfter
      })
      return Context.make(Store.Store, store).pipe(Context.add(Buffer, control))
    })
  )

/**
 * Flushes the `Buffer` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const flush: Effect.Effect<void, Store.StoreError, Buffer> = Buffer.use((buffer) => buffer.flush)

/**
 * Closes the `Buffer` in context: everything lands in the slow store, or it
 * fails with the keys and bytes that did not.
 *
 * @since 0.1.0
 * @category accessors
 */
export const close: Effect.Effect<void, BufferError, Buffer> = Buffer.use((buffer) => buffer.close)
