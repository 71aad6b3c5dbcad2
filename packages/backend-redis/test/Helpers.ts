/**
 * What the Redis tests share: text ↔ bytes, the StoreError of a failed exit,
 * and a store Layer built in the test's scope.
 */
import { Store } from "@partd/core"
import { Context, Effect, Exit, Layer } from "effect"

export const bytes = (s: string) => new TextEncoder().encode(s)
export const text = (u: Uint8Array) => new TextDecoder().decode(u)

/** The StoreError a failed exit carries, if it failed with one. */
export const errorOf = (exit: Exit.Exit<unknown, unknown>): Store.StoreError | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return reason?._tag === "Fail" ? (reason.error as Store.StoreError) : undefined
}

/** Builds a store Layer in the current scope and returns the store. */
export const build = (layer: Layer.Layer<Store.Store, Store.StoreError>) =>
  Effect.map(Layer.build(layer), (context) => Context.get(context, Store.Store))
