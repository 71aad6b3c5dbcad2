/**
 * Connection: how a Redis store's calls meet its ioredis connections —
 * waiting for a connection to be ready, bounding every wait, and telling a
 * call that was never sent from one that may have been applied.
 *
 * A call's commands are handed to ioredis only while the client is ready.
 * While it is not (the server is down, ioredis is reconnecting), the call
 * waits, here and not in ioredis's offline queue: a command in that queue
 * is written when the connection comes back even if its caller stopped
 * waiting long ago, and a caller that retried would append twice. So a call
 * whose caller gives up (interruption, `Effect.timeout`) before the client
 * is ready is never sent. Every call is bounded by `requestTimeout`:
 *
 * - not sent by then (not connected, or ioredis gave up reconnecting after
 *   `maxRetriesPerRequest` attempts): reason `Unavailable`, and the call
 *   was not applied;
 * - sent, and no reply by then (a server that stopped answering), or the
 *   connection closed while it was in flight: reason `Io`, and the call may
 *   or may not have been applied.
 *
 * ioredis never settles a command that was in flight when its connection
 * closed (unless it resends it after reconnecting, which would apply an
 * append twice: the store's constructors turn that off), so the tracker
 * fails the calls in flight on a connection's `close`.
 *
 * @since 0.1.0
 */
import { Store } from "@partd/core"
import { Duration, Effect, type Scope } from "effect"
import { Cluster, type Redis as IORedis } from "ioredis"

/**
 * An ioredis client: one server (`Redis`) or a cluster (`Cluster`).
 *
 * @since 0.1.0
 * @category models
 */
export type Client = IORedis | Cluster

/**
 * What a call's commands tell the tracker while they are sent.
 *
 * @since 0.1.0
 * @category models
 */
export interface Call {
  /**
   * Set when the call's commands went to more than one connection (a
   * cluster): then one connection refusing its part does not mean that
   * nothing was applied.
   */
  spread: boolean
}

/**
 * The store's side of its client.
 *
 * @since 0.1.0
 * @category models
 */
export interface Tracker {
  /**
   * Runs one store call's commands once the client is ready, bounded by
   * `timeoutMs` (default `requestTimeout`), failing it with `Io` if a
   * connection closes under it.
   */
  readonly run: <A>(
    method: string,
    commands: (call: Call) => Promise<A>,
    timeoutMs?: number
  ) => Effect.Effect<A, Store.StoreError>
}

/**
 * What a failure's message says.
 *
 * @since 0.1.0
 * @category errors
 */
export const errorMessage = (error: unknown): string => Store.describeCause(error)

/**
 * Maps what ioredis rejects with to a StoreError. A connection that is gone
 * or could not be made is `Unavailable` (the command was never sent); a
 * reply error from the server (`WRONGTYPE`, `OOM`, `NOPERM`, …) is `Io`.
 *
 * @since 0.1.0
 * @category errors
 */
export const toStoreError = (method: string, error: unknown, spread = false): Store.StoreError => {
  if (error instanceof Store.StoreError) return error
  const message = errorMessage(error)
  const name = error instanceof Error ? error.name : ""
  const unavailable =
    !spread &&
    (name === "MaxRetriesPerRequestError" ||
      message === "Connection is closed." ||
      message.includes("enableOfflineQueue") ||
      message.includes("ClusterAllFailedError") ||
      name === "ClusterAllFailedError")
  return new Store.StoreError({
    reason: unavailable ? "Unavailable" : "Io",
    method,
    description: `redis: ${message}`,
    cause: error
  })
}

/**
 * Waits for a client to be ready, connecting it if it was made with
 * `lazyConnect`, and fails with `Unavailable` after `timeout`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const awaitReady = (
  client: Client,
  timeout: Duration.Duration,
  method: string
): Effect.Effect<void, Store.StoreError> =>
  Effect.callback<void, Store.StoreError>((resume) => {
    if (client.status === "ready") return resume(Effect.void)
    let lastError: unknown
    const unavailable = (why: string) =>
      Effect.fail(
        new Store.StoreError({
          reason: "Unavailable",
          method,
          description: `redis: ${why}${lastError === undefined ? "" : ` (last error: ${errorMessage(lastError)})`}`,
          cause: lastError
        })
      )
    const onReady = () => {
      cleanup()
      resume(Effect.void)
    }
    const onError = (error: unknown) => {
      lastError = error
    }
    const onEnd = () => {
      cleanup()
      resume(unavailable("the connection ended before it was ready"))
    }
    const timer = setTimeout(() => {
      cleanup()
      resume(unavailable(`not ready within ${Duration.format(timeout)}`))
    }, Duration.toMillis(timeout))
    const cleanup = () => {
      clearTimeout(timer)
      client.off("ready", onReady)
      client.off("error", onError)
      client.off("end", onEnd)
    }
    client.on("ready", onReady)
    client.on("error", onError)
    client.on("end", onEnd)
    if (client.status === "wait") client.connect().catch(() => {})
    else if (client.status === "end") onEnd()
    return Effect.sync(cleanup)
  })

/** A call that has not been settled: waiting for the client, or sent. */
interface Pending {
  sent: boolean
  /** The client's reconnect count when the call started waiting. */
  readonly reconnects: number
  readonly send: () => void
  /** Fails the call with the error `make` builds for its method. */
  readonly fail: (make: (method: string) => Store.StoreError) => void
}

/** How many reconnect attempts a waiting call sits through, from the client's `maxRetriesPerRequest`. */
const maxRetriesOf = (client: Client): number => {
  const value =
    client instanceof Cluster ? client.options.redisOptions?.maxRetriesPerRequest : client.options.maxRetriesPerRequest
  return typeof value === "number" && value >= 0 ? value : Number.POSITIVE_INFINITY
}

const unavailable = (method: string, why: string): Store.StoreError =>
  new Store.StoreError({ reason: "Unavailable", method, description: `redis: ${why}; the call was not sent` })

const maybeApplied = (method: string, why: string): Store.StoreError =>
  new Store.StoreError({
    reason: "Io",
    method,
    description: `redis: ${why}; it may or may not have been applied`
  })

/**
 * Tracks a store's calls on `client` in the scope (its listeners are removed
 * when the scope closes). Call it once the client has been ready.
 *
 * @since 0.1.0
 * @category constructors
 */
export const track = (client: Client, requestTimeout: Duration.Duration): Effect.Effect<Tracker, never, Scope.Scope> =>
  Effect.gen(function* () {
    const timeoutMs = Duration.toMillis(requestTimeout)
    const timeoutText = Duration.format(requestTimeout)
    const cluster = client instanceof Cluster ? client : undefined
    const maxRetries = maxRetriesOf(client)
    const pending = new Set<Pending>()
    let reconnects = 0

    const onReady = () => {
      for (const call of pending) if (!call.sent) call.send()
    }
    const onReconnecting = () => {
      reconnects++
      for (const call of pending) {
        if (!call.sent && reconnects - call.reconnects > maxRetries) {
          call.fail((method) => unavailable(method, `no connection after ${maxRetries} reconnect attempts`))
        }
      }
    }
    const onEnd = () => {
      for (const call of pending) if (!call.sent) call.fail((method) => unavailable(method, "the connection has ended"))
    }
    const onClose = () => {
      for (const call of pending) {
        if (call.sent) call.fail((method) => maybeApplied(method, "the connection closed while the call was in flight"))
      }
    }
    const onError = () => {
      // ioredis logs unhandled "error" events; failures reach callers as StoreErrors.
    }
    const watched = new Set<IORedis>()
    const watch = (connection: IORedis) => {
      if (watched.has(connection)) return
      watched.add(connection)
      connection.on("close", onClose)
      connection.on("error", onError)
    }
    client.on("ready", onReady)
    client.on("reconnecting", onReconnecting)
    client.on("end", onEnd)
    if (cluster === undefined) {
      watch(client as IORedis)
    } else {
      cluster.on("error", onError)
      cluster.on("+node", watch)
      for (const node of cluster.nodes()) watch(node)
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        client.off("ready", onReady)
        client.off("reconnecting", onReconnecting)
        client.off("end", onEnd)
        if (cluster !== undefined) {
          cluster.off("error", onError)
          cluster.off("+node", watch)
        }
        for (const connection of watched) {
          connection.off("close", onClose)
          connection.off("error", onError)
        }
      })
    )

    const run = <A>(
      method: string,
      commands: (call: Call) => Promise<A>,
      ms = timeoutMs
    ): Effect.Effect<A, Store.StoreError> =>
      Effect.callback<A, Store.StoreError>((resume) => {
        let done = false
        const settle = (effect: Effect.Effect<A, Store.StoreError>) => {
          if (done) return
          done = true
          clearTimeout(timer)
          pending.delete(entry)
          resume(effect)
        }
        const call: Call = { spread: false }
        const entry: Pending = {
          sent: false,
          reconnects,
          send: () => {
            entry.sent = true
            let promise: Promise<A>
            try {
              promise = commands(call)
            } catch (error) {
              return settle(Effect.fail(toStoreError(method, error, call.spread)))
            }
            promise.then(
              (a) => settle(Effect.succeed(a)),
              (error) => settle(Effect.fail(toStoreError(method, error, call.spread)))
            )
          },
          fail: (make) => settle(Effect.fail(make(method)))
        }
        const timer = setTimeout(
          () =>
            entry.fail((method) =>
              entry.sent
                ? maybeApplied(method, `no reply within ${timeoutText}`)
                : unavailable(method, `not connected within ${timeoutText}`)
            ),
          ms
        )
        pending.add(entry)
        if (client.status === "ready") entry.send()
        else if (client.status === "end") entry.fail((method) => unavailable(method, "the connection has ended"))
        // Interrupted: a call not sent yet never will be.
        return Effect.sync(() => {
          done = true
          clearTimeout(timer)
          pending.delete(entry)
        })
      })

    return { run }
  })
