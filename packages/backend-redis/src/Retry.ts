/**
 * Retry: a Redis store's calls sent again, within one deadline, when they
 * failed for a reason that passes — a connection that dropped, a server that
 * restarted or did not answer in time, a cluster master failing over
 * (`MOVED`, `CLUSTERDOWN`, `TRYAGAIN`, `READONLY` from a demoted master) —
 * and failed at once for a reason that would fail again (`WRONGTYPE`,
 * `NOPERM`, `OOM`).
 *
 * A call may be sent again only when sending it twice does what sending it
 * once does: reads, `delete` and `drop` always; an append because its
 * script records its id (see `Calls`) and appends nothing for an id seen
 * before. Other calls (`iset`, appends without scripts) are sent again only
 * when they were never sent. The caller sees success, applied once, or the
 * last error once `requestTimeout` (from the call's start) has passed; an
 * append's error then names its id, so that the caller can send it again
 * with that id and still have it applied at most once. Appends sent again
 * keep their order among appends (see {@link Order}).
 *
 * @since 0.1.0
 */
import { Store } from "@partd/core"
import { Effect } from "effect"
import type { Cluster } from "ioredis"
import type * as Connection from "./Connection.ts"

/**
 * Thrown when fewer replicas than asked confirmed an append (`WAIT`): the
 * call was applied on its masters, and may be lost if one fails over now.
 *
 * @since 0.1.0
 * @category errors
 */
export class ReplicaShortfall extends Error {
  override readonly name = "ReplicaShortfall"
}

/** Reply errors that a failover, a restart or a busy server explain, and that pass. */
const PASSING_REPLY = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN|LOADING|READONLY|MASTERDOWN|BUSY)\b/

/**
 * Whether a call that failed with `error` may succeed if sent again.
 *
 * @since 0.1.0
 * @category errors
 */
export const passes = (error: Store.StoreError): boolean => {
  if (error.reason === "Unavailable") return true
  if (error.reason !== "Io") return false
  const cause = error.cause
  if (cause instanceof ReplicaShortfall) return true
  if (cause instanceof Error && cause.name === "ReplyError") {
    const message = cause.message
    return PASSING_REPLY.test(message) || message.includes("cluster is down") || message.includes("non local key")
  }
  // Not a reply: the connection dropped under the call, or no reply came in time.
  return true
}

/**
 * How a call may be sent again: `"always"` for calls that do the same when
 * sent twice, `"unsent"` for calls that may be resent only when they never
 * left the client, `"ordered"` for appends, which do the same when sent
 * twice (their id) but must also keep their place among appends (see
 * {@link Order}).
 *
 * @since 0.1.0
 * @category models
 */
export type Policy = "always" | "unsent" | "ordered"

/**
 * An ordered call's place among the store's appends, and whether a later
 * append has landed where this one's failed part would go (then sending it
 * again would put its chunks after that one's, and a caller that does not
 * wait for its appends, `Pipelined`, would see them out of order: it fails
 * with its id instead).
 *
 * While an ordered call is being sent again, later ordered calls (first
 * sends too) wait for it: after a failover the calls that failed go again
 * in the order they started, and new calls follow them.
 *
 * @since 0.1.0
 * @category models
 */
export interface Order {
  readonly place: number
  readonly overtaken: () => boolean
}

/**
 * The store's calls, each sent until it succeeds or its deadline passes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Retrying {
  readonly run: <A>(
    method: string,
    policy: Policy,
    commands: (call: Connection.Call) => Promise<A>,
    id?: string,
    order?: Order
  ) => Effect.Effect<A, Store.StoreError>
  /** The place of an ordered call that starts now. */
  readonly nextPlace: () => number
}

/** The pause before attempt `n + 1`: 20 ms doubling, at most 500 ms. */
const pause = (attempt: number): number => Math.min(500, 20 * 2 ** attempt)

/**
 * The error the caller sees: the last attempt's, but `Io` (may have been
 * applied) when an earlier attempt may have applied the call.
 */
const giveUp = (
  error: Store.StoreError,
  attempts: number,
  id: string | undefined,
  maybeApplied: boolean,
  overtaken: boolean
): Store.StoreError =>
  attempts === 1 && id === undefined
    ? error
    : new Store.StoreError({
        reason: maybeApplied ? "Io" : error.reason,
        method: error.method,
        description:
          `${error.description} (after ${attempts} attempt${attempts === 1 ? "" : "s"}` +
          (overtaken ? ", not sent again because a later append has landed where it would go" : "") +
          (id === undefined ? ")" : `; send it again with id ${JSON.stringify(id)} to apply it at most once)`),
        cause: error.cause
      })

/**
 * Wraps a tracker: every call gets `timeoutMs` from its start for all its
 * attempts; no attempt starts with less than `minAttemptMs` left (the time
 * one `WAIT` may take), so the caller hears why the last full attempt
 * failed rather than a deadline cut short. On a cluster, a failed attempt also asks ioredis to refresh its
 * map of slots, so that the next one goes to the master that serves them now.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  tracker: Connection.Tracker,
  timeoutMs: number,
  cluster: Cluster | undefined,
  minAttemptMs = 0
): Retrying => {
  let places = 0
  // Ordered calls being sent again: later ordered calls wait for them.
  const again = new Set<number>()
  const earlierAgain = (place: number): boolean => {
    if (again.size === 0) return false
    for (const other of again) if (other < place) return true
    return false
  }
  return {
    nextPlace: () => places++,
    run: <A>(
      method: string,
      policy: Policy,
      commands: (call: Connection.Call) => Promise<A>,
      id?: string,
      order?: Order
    ) =>
      Effect.suspend(() => {
        const deadline = Date.now() + timeoutMs
        let maybeApplied = false
        /** Waits while an earlier ordered call is being sent again; false when the deadline passed first. */
        const inTurn: Effect.Effect<boolean> = Effect.suspend(() => {
          if (order === undefined || !earlierAgain(order.place)) return Effect.succeed(true)
          if (Date.now() >= deadline) return Effect.succeed(false)
          return Effect.flatMap(Effect.sleep(10), () => inTurn)
        })
        const send = (n: number): Effect.Effect<A, Store.StoreError> =>
          tracker.run(method, commands, Math.max(1, deadline - Date.now())).pipe(
            Effect.catch((error: Store.StoreError) => {
              if (error.reason !== "Unavailable") maybeApplied = true
              const left = deadline - Date.now()
              const wait = Math.min(pause(n), left)
              const overtaken = order?.overtaken() === true
              const passing = policy === "unsent" ? error.reason === "Unavailable" : passes(error)
              if (!passing || overtaken || left - wait <= minAttemptMs) {
                return Effect.fail(giveUp(error, n + 1, id, maybeApplied, overtaken && passing))
              }
              if (cluster !== undefined) cluster.refreshSlotsCache()
              const retry = Effect.flatMap(Effect.sleep(wait), () => attempt(n + 1))
              if (order === undefined || again.has(order.place)) return retry
              again.add(order.place)
              return Effect.ensuring(
                retry,
                Effect.sync(() => again.delete(order.place))
              )
            })
          )
        const notInTurn = (n: number) =>
          Effect.fail(
            giveUp(
              new Store.StoreError({
                reason: "Unavailable",
                method,
                description: "redis: earlier appends were still being sent again at the deadline; the call was not sent"
              }),
              n + 1,
              id,
              maybeApplied,
              false
            )
          )
        const attempt = (n: number): Effect.Effect<A, Store.StoreError> =>
          // The common case, nothing being sent again: no wait at all.
          order === undefined || again.size === 0
            ? send(n)
            : Effect.flatMap(inTurn, (turn) => (turn ? send(n) : notInTurn(n)))
        return attempt(0)
      })
  }
}
