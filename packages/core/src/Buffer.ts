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
 *
 * Order and completeness under concurrency (partd lost bytes here,
 * dask/dask#1383). Spilling a key is two steps:
 *
 * 1. take: under the buffer's lock, read the key's bytes from the fast store,
 *    delete them there, and hold them in memory as *stranded* bytes;
 * 2. land: append the stranded bytes to the slow store, then forget them.
 *
 * Appends to the fast store also hold the lock, so no append can slip between
 * the read and the delete of step 1. `get` reads slow, then stranded, then
 * fast, which is append order, and it holds the lock while it reads and waits
 * out any landing of its keys, so it never sees a key both stranded and
 * landed, or neither. A landing that fails keeps its bytes stranded (still
 * readable, still counted against the bound) and they go first in the key's
 * next landing; the error is reported to the appenders waiting for room and
 * to `flush`. Batches are spilled one at a time, so a key's landings stay in
 * order.
 *
 * Closing the Layer's scope flushes everything to the slow store, then
 * releases the fast and slow stores.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Effect, Layer, type Scope, Semaphore } from "effect"
import * as Bytes from "./Bytes.ts"
import type * as Key from "./Key.ts"
import * as Store from "./Store.ts"

/**
 * Control over a buffer, next to its `Store`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Control {
  /** Moves everything held in memory to the slow store. */
  readonly flush: Effect.Effect<void, Store.StoreError>
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
}

interface Held {
  /** Bytes of this key in the fast store. */
  fast: number
  /** Bytes taken from the fast store and not yet in the slow store, oldest first. */
  stranded: Array<Uint8Array>
  strandedBytes: number
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

/**
 * Makes a buffer over two stores. The flusher runs in the scope, and closing
 * the scope flushes everything to the slow store.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: MakeOptions
): Effect.Effect<{ readonly store: Store.Shape; readonly control: Control }, Store.StoreError, Scope.Scope> =>
  Effect.gen(function* () {
    // The inner stores' backends: paths are validated once, by this store.
    const fast = Store.toBackend(options.fast)
    const slow = Store.toBackend(options.slow)
    // Chunk-level reads where the inner store offers them (in-memory stores),
    // so that spilling moves chunks without copying and `get` copies once.
    const chunksOf =
      (backend: Store.Backend) =>
      (paths: ReadonlyArray<Key.Path>): Effect.Effect<ReadonlyArray<ReadonlyArray<Uint8Array>>, Store.StoreError> =>
        backend.getChunks !== undefined
          ? backend.getChunks(paths)
          : Effect.map(backend.get(paths), (values) => values.map((value) => [value]))
    const fastChunks = chunksOf(fast)
    const slowChunks = chunksOf(slow)
    // Without getChunks, the slow store's `get` returns fresh arrays we may hand out as they are.
    const slowGivesFresh = slow.getChunks === undefined
    const bound = options.availableMemory
    if (!(bound > 0) || !Number.isFinite(bound)) {
      return yield* new Store.StoreError({
        reason: "BadValue",
        method: "Buffer.make",
        description: `availableMemory must be a positive number of bytes, got ${bound}`
      })
    }
    const highWater = bound * 0.95
    const lowWater = bound * 0.85

    // Guards the fast store and `held`: appends, reads and the take step.
    const lock = yield* Semaphore.make(1)
    // One spill batch at a time, so a key's landings stay in order.
    const flushLock = yield* Semaphore.make(1)

    const held = new Map<Key.Path, Held>()
    let memory = 0
    // The keys of the batch being landed, and its completion.
    let landing: ReadonlySet<Key.Path> | undefined
    let landed = Deferred.makeUnsafe<void, Store.StoreError>()
    // Appenders waiting for room await `room`; the largest such batch is `demand`.
    let room = Deferred.makeUnsafe<void, Store.StoreError>()
    let demand = 0
    let wake = Deferred.makeUnsafe<void>()

    const heldOf = (path: Key.Path): Held => {
      let h = held.get(path)
      if (h === undefined) {
        h = { fast: 0, stranded: [], strandedBytes: 0 }
        held.set(path, h)
      }
      return h
    }
    // `Held` records resolved once per key set (see `Key.KeySet`), valid while
    // `heldGeneration` holds: every removal from `held` bumps it.
    const resolved = new WeakMap<
      ReadonlyArray<Key.Path>,
      { readonly generation: number; readonly helds: Array<Held> }
    >()
    let heldGeneration = 0
    const heldsOf = (paths: ReadonlyArray<Key.Path>): Array<Held> => {
      if (!Object.isFrozen(paths)) return paths.map(heldOf)
      let cached = resolved.get(paths)
      if (cached === undefined || cached.generation !== heldGeneration) {
        cached = { generation: heldGeneration, helds: paths.map(heldOf) }
        resolved.set(paths, cached)
      }
      return cached.helds
    }
    const unhold = (path: Key.Path): void => {
      if (held.delete(path)) heldGeneration++
    }
    const forget = (path: Key.Path, h: Held): void => {
      if (h.fast === 0 && h.strandedBytes === 0) unhold(path)
    }
    const signalRoom = (failure?: Store.StoreError): void => {
      const signal = room
      room = Deferred.makeUnsafe()
      demand = 0
      Deferred.doneUnsafe(signal, failure === undefined ? Effect.void : Effect.fail(failure))
    }
    const wakeFlusher = (): void => {
      Deferred.doneUnsafe(wake, Effect.void)
    }
    const landingOverlaps = (paths: ReadonlyArray<Key.Path>): boolean => {
      if (landing === undefined) return false
      for (const path of paths) if (landing.has(path)) return true
      return false
    }

    /**
     * Appends the stranded chunks of `keys` to the slow store, as they are (no
     * copy): as one list per key where the slow store takes lists (an
     * in-memory store, which then need not read each chunk), else with the
     * path repeated once per chunk (a slow store that writes batches them per
     * path).
     */
    const land = (keys: ReadonlyArray<Key.Path>): Effect.Effect<void, Store.StoreError> => {
      if (slow.appendChunks !== undefined) {
        const helds = keys.map((path) => held.get(path)!)
        return slow.appendChunks(
          keys,
          helds.map((h) => h.stranded),
          helds.map((h) => h.strandedBytes)
        )
      }
      let count = 0
      for (const path of keys) count += held.get(path)!.stranded.length
      const paths = new Array<Key.Path>(count)
      const values = new Array<Uint8Array>(count)
      let at = 0
      for (const path of keys) {
        const stranded = held.get(path)!.stranded
        for (let i = 0; i < stranded.length; i++, at++) {
          paths[at] = path
          values[at] = stranded[i]!
        }
      }
      return slow.append(paths, values)
    }

    /**
     * Spills the keys chosen by `select` (called under the lock) to the slow
     * store: take, then land. Uninterruptible, so that a landing is never
     * half-written when the scope closes.
     */
    const spill = (select: () => ReadonlyArray<Key.Path>): Effect.Effect<void, Store.StoreError> =>
      flushLock.withPermit(
        Effect.uninterruptible(
          Effect.gen(function* () {
            const keys = yield* lock.withPermit(
              Effect.gen(function* () {
                const keys = select().filter((path) => held.has(path))
                const inFast = keys.filter((path) => held.get(path)!.fast > 0)
                if (inFast.length > 0) {
                  const chunks = yield* fastChunks(inFast)
                  yield* fast.delete(inFast)
                  // The fast store has let go of these chunks: they are ours now.
                  for (let i = 0; i < inFast.length; i++) {
                    const h = held.get(inFast[i]!)!
                    h.stranded = h.stranded.length === 0 ? chunks[i]!.slice() : h.stranded.concat(chunks[i]!)
                    h.strandedBytes += h.fast
                    h.fast = 0
                  }
                }
                if (keys.length > 0) {
                  landing = new Set(keys)
                  landed = Deferred.makeUnsafe()
                }
                return keys
              })
            )
            if (keys.length === 0) return
            const result = yield* Effect.exit(land(keys))
            if (result._tag === "Success") {
              for (const path of keys) {
                const h = held.get(path)!
                memory -= h.strandedBytes
                h.stranded = []
                h.strandedBytes = 0
                forget(path, h)
              }
            }
            landing = undefined
            Deferred.doneUnsafe(landed, Effect.void)
            if (result._tag === "Failure") return yield* result
            signalRoom()
          })
        )
      )

    /** The keys to spill to bring memory down to `target`: largest first. */
    const largestKeys = (target: number) => (): ReadonlyArray<Key.Path> => {
      const need = memory - target
      if (need <= 0) return []
      const sizes = Array.from(held, ([path, h]) => [path, h.fast + h.strandedBytes] as const)
      sizes.sort((a, b) => b[1] - a[1])
      const keys: Array<Key.Path> = []
      let freed = 0
      for (const [path, size] of sizes) {
        if (freed >= need) break
        keys.push(path)
        freed += size
      }
      return keys
    }

    const target = (): number => (demand > 0 ? Math.max(0, Math.min(lowWater, bound - demand)) : lowWater)

    // The background flusher: woken by appends; spills until memory is under
    // target. A failed spill wakes the waiting appenders with its error, and
    // the flusher waits for the next wake to try again.
    const flusher = Effect.gen(function* () {
      while (true) {
        yield* Deferred.await(wake)
        wake = Deferred.makeUnsafe()
        while (memory > target() && (memory > highWater || demand > 0)) {
          const spilled = yield* spill(largestKeys(target())).pipe(
            Effect.as(true),
            Effect.catch((error) =>
              Effect.sync(() => {
                signalRoom(error)
                return false
              })
            )
          )
          if (!spilled) break
        }
      }
    })
    yield* Effect.forkScoped(flusher)

    const flushAll = spill(() => Array.from(held, ([path]) => path))

    yield* Effect.addFinalizer(() =>
      Effect.catch(flushAll, (error) =>
        Effect.logError("partd Buffer: flushing to the slow store on close failed; unflushed bytes are lost", error)
      )
    )

    const store = yield* Store.make({
      append: (paths, values) => {
        let size = 0
        for (let i = 0; i < values.length; i++) size += values[i]!.byteLength
        return retryAfterWaits(
          lock.withPermit(
            Effect.suspend(() => {
              if (memory > 0 && memory + size > bound) {
                demand = Math.max(demand, size)
                wakeFlusher()
                return Effect.succeed(wait(room))
              }
              return Effect.map(fast.append(paths, values), () => {
                const helds = heldsOf(paths)
                for (let i = 0; i < helds.length; i++) helds[i]!.fast += values[i]!.byteLength
                memory += size
                if (memory > highWater) wakeFlusher()
                return undefined
              })
            })
          )
        )
      },
      get: (paths) =>
        retryAfterWaits(
          lock.withPermit(
            Effect.suspend((): Effect.Effect<ReadonlyArray<Uint8Array> | Wait, Store.StoreError> => {
              if (landingOverlaps(paths)) return Effect.succeed(wait(landed))
              const inFast = paths.filter((path) => (held.get(path)?.fast ?? 0) > 0)
              return Effect.zipWith(
                slowChunks(paths),
                inFast.length === 0 ? Effect.succeed([]) : fastChunks(inFast),
                (fromSlow, fromFast) => {
                  let f = 0
                  // One copy per key: slow's chunks, then stranded, then fast's.
                  return paths.map((path, i) => {
                    const h = held.get(path)
                    const parts = fromSlow[i]!
                    if (h === undefined) {
                      return parts.length === 1 && slowGivesFresh ? parts[0]! : Bytes.concat(parts)
                    }
                    return Bytes.concat([...parts, ...h.stranded, ...(h.fast > 0 ? fromFast[f++]! : [])])
                  })
                }
              )
            })
          )
        ),
      iset: (path, value) =>
        retryAfterWaits(
          lock.withPermit(
            Effect.suspend(() => {
              if (landingOverlaps([path])) return Effect.succeed(wait(landed))
              return Effect.gen(function* () {
                const h = held.get(path)
                if (h !== undefined && h.fast > 0) yield* fast.delete([path])
                yield* slow.iset(path, value)
                if (h !== undefined) {
                  memory -= h.fast + h.strandedBytes
                  unhold(path)
                }
              })
            })
          )
        ),
      delete: (paths) =>
        retryAfterWaits(
          lock.withPermit(
            Effect.suspend(() => {
              if (landingOverlaps(paths)) return Effect.succeed(wait(landed))
              return Effect.gen(function* () {
                yield* slow.delete(paths)
                yield* fast.delete(paths)
                for (const path of paths) {
                  const h = held.get(path)
                  if (h === undefined) continue
                  memory -= h.fast + h.strandedBytes
                  unhold(path)
                }
                signalRoom()
              })
            })
          )
        ),
      drop: retryAfterWaits(
        lock.withPermit(
          Effect.suspend(() => {
            if (landing !== undefined) return Effect.succeed(wait(landed))
            return Effect.gen(function* () {
              yield* fast.drop
              yield* slow.drop
              held.clear()
              heldGeneration++
              memory = 0
              signalRoom()
            })
          })
        )
      )
    })

    const control: Control = {
      flush: flushAll,
      memoryUsage: Effect.sync(() => memory)
    }
    return { store, control }
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
      const { store, control } = yield* make({ fast, slow, availableMemory: options.availableMemory })
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
