/**
 * Pipelined: appends that do not wait for the store's answer before the
 * caller goes on, as partd's zmq `Client` appends, and as
 * `redis-benchmark -P` drives a server.
 *
 * Over a store that talks to a server (Redis, a `Client`), an `append` that
 * waits for its answer leaves the server idle while the caller prepares the
 * next call, and the caller idle while the server works. With
 * `Pipelined.layer({ maxPending: n })` in front, up to n appends are on their
 * way at once, so both sides work at the same time.
 *
 * What a caller can count on:
 *
 * - `append` starts the inner store's append and returns once it has been
 *   handed over (for Redis or a `Client`: written to the connection), unless
 *   `maxPending` earlier appends are still unanswered: then it first waits
 *   for the oldest.
 * - An append that fails at once (a bad key or value) fails its own call.
 * - An append that fails later (the disk, a lost connection) is not lost
 *   silently: its error fails the next operation on this store, whichever it
 *   is, once (several such failures arrive as one error that carries them
 *   all). Appends started after it may have been applied.
 * - `get`, `iset`, `delete`, `drop`, `size`, `keys` and `stream` first wait
 *   for every pending append, so a caller always reads its own writes.
 * - An append's call id goes to the inner store with the call: the inner
 *   store remembers it (within its own window).
 * - When the scope closes, pending appends are awaited; a failure among them
 *   not yet reported fails the scope's close (a defect carrying the
 *   `StoreError`), so the program does not end as if the bytes had landed.
 *   To handle it as a typed error, call `get([])` before closing: it waits for
 *   every pending append and reports their failures.
 *
 * Appends start in call order, and the inner store must apply them in the
 * order they start: Redis runs one connection's commands in order, and a
 * `Server` runs each client's requests in order, so Redis and `Client`
 * stores do. A `Buffer` does not promise it (an append waiting for room may
 * be overtaken by a smaller one), nor is there anything to gain in front of
 * a store that works synchronously (Dict, File): put it in front of a store
 * that talks to a server.
 *
 * @since 0.1.0
 */
import { Cause, Effect, Fiber, Layer, Scope, Stream } from "effect"
import * as Observe from "./Observe.ts"
import * as Store from "./Store.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How many appends may be unanswered at once (at least 1). */
  readonly maxPending: number
}

/** The error a failed append's fiber ended with, as a `StoreError`. */
const toStoreError = (cause: Cause.Cause<Store.StoreError>): Store.StoreError => {
  const found = Cause.findError(cause)
  if (found._tag === "Success") return found.success
  return new Store.StoreError({
    reason: "Unavailable",
    method: "append",
    description: "a pipelined append ended without an answer",
    cause: Cause.squash(cause)
  })
}

/**
 * Pipelines `store`'s appends in the current scope (see the module's
 * description).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (store: Store.Shape, options: Options): Effect.Effect<Store.Shape, never, Scope.Scope> =>
  Effect.gen(function* () {
    const maxPending = Math.max(1, Math.floor(options.maxPending))
    // Unanswered appends, oldest first (a Set keeps insertion order).
    const pending = new Set<Fiber.Fiber<void, Store.StoreError>>()
    // Failures among them not yet reported, oldest first.
    let failures: Array<Store.StoreError> = []
    // The appends' own scope: registered before the finalizer below, so it
    // closes after that finalizer has waited for them.
    const appends = yield* Scope.fork(yield* Effect.scope)

    // Reports the failures so far as one error: the first, or all of them
    // when several appends failed before the caller heard of any.
    const reportFailure = Effect.suspend(() => {
      if (failures.length === 0) return Effect.void
      const reported = failures
      failures = []
      const first = reported[0]!
      return Effect.fail(
        reported.length === 1
          ? first
          : new Store.StoreError({
              reason: first.reason,
              method: "append",
              description: `${reported.length} pipelined appends failed; the first: ${first.message}`,
              cause: reported
            })
      )
    })
    /** Waits for every pending append, then reports their failures. */
    const settled = Effect.suspend(() =>
      pending.size === 0 ? reportFailure : Effect.andThen(Fiber.awaitAll(Array.from(pending)), reportFailure)
    )
    // Registered before `Store.make`'s, so it runs after the store is closed.
    // A finalizer cannot fail: an append that failed after its call returned
    // is acknowledged data lost, so it becomes a defect, not a log line.
    yield* Effect.addFinalizer(() => Effect.orDie(settled))
    const afterPending = <A>(effect: Effect.Effect<A, Store.StoreError>) => Effect.andThen(settled, effect)

    // The shell of `Store.make` validates keys and values before an append is
    // started, so a bad call fails its own call and never reaches the store.
    const inner = Store.toBackend(store)
    return yield* Observe.make(
      "Pipelined",
      {
        append: (paths, values, id) =>
          Effect.gen(function* () {
            yield* reportFailure
            if (paths.length === 0) return
            while (pending.size >= maxPending) {
              const oldest = pending.values().next().value!
              yield* Fiber.await(oldest)
              // Its observer has removed it already; this keeps the loop finite regardless.
              pending.delete(oldest)
              yield* reportFailure
            }
            // Started at once, so that appends are handed over in call order.
            const fiber = yield* Effect.forkIn(inner.append(paths, values, id), appends, { startImmediately: true })
            const done = fiber.pollUnsafe()
            // Finished already (a store that works synchronously): its own result.
            if (done !== undefined) return yield* done
            pending.add(fiber)
            fiber.addObserver((exit) => {
              pending.delete(fiber)
              if (exit._tag === "Failure") failures.push(toStoreError(exit.cause))
            })
          }),
        get: (paths) => afterPending(paths.length === 0 ? Effect.succeed([]) : inner.get(paths)),
        iset: (path, value) => afterPending(inner.iset(path, value)),
        delete: (paths) => afterPending(paths.length === 0 ? Effect.void : inner.delete(paths)),
        drop: afterPending(inner.drop),
        size: (paths) => afterPending(paths.length === 0 ? Effect.succeed([]) : inner.size(paths)),
        keys: Stream.unwrap(
          Effect.as(
            settled,
            Stream.suspend(() => inner.keys)
          )
        ),
        stream: (path, chunkBytes) =>
          Stream.unwrap(
            Effect.as(
              settled,
              Stream.suspend(() => inner.stream(path, chunkBytes))
            )
          )
      },
      // `get([])` waits for every pending append: a way to wait for them all.
      { forwardEmpty: true }
    )
  })

/**
 * Pipelines the appends of the `Store` it is given.
 *
 * @example
 * ```ts
 * const store = Pipelined.layer({ maxPending: 4 }).pipe(Layer.provide(Redis.layer({ host: "127.0.0.1" })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Store.Store, never, Store.Store> =>
  Layer.effect(
    Store.Store,
    Effect.gen(function* () {
      return yield* make(yield* Store.Store, options)
    })
  )
