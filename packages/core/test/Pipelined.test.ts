import { describe, expect, it } from "@effect/vitest"
import { Dict, Pipelined, Store } from "@partd/core"
import { Cause, Effect, Exit, Scope } from "effect"

/** A real Dict whose appends answer after `delay`, failing while `broken.value` is true: a disk that filled up. */
const failingLater = (broken: { value: boolean }, delay: Effect.Effect<void>) =>
  Effect.flatMap(Dict.make, (dict) => {
    const inner = Store.toBackend(dict)
    return Store.make({
      ...inner,
      append: (paths, values) =>
        Effect.andThen(
          delay,
          Effect.suspend(() =>
            broken.value
              ? Effect.fail(new Store.StoreError({ reason: "Io", method: "append", description: "ENOSPC" }))
              : inner.append(paths, values)
          )
        )
    })
  })

describe("Pipelined", () => {
  it.live("an append that failed after its call returned fails the scope's close when nobody heard of it", () =>
    Effect.gen(function* () {
      const broken = { value: true }
      const scope = yield* Scope.make()
      const store = yield* Pipelined.make(yield* failingLater(broken, Effect.sleep("5 millis")), {
        maxPending: 4
      }).pipe(Scope.provide(scope))
      // Returns at once: the failure comes later.
      yield* store.append({ k: new Uint8Array(3) })
      const exit = yield* Effect.exit(Scope.close(scope, Exit.void))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      expect(error).toBeInstanceOf(Store.StoreError)
      expect((error as Store.StoreError).reason).toBe("Io")
    })
  )
})
