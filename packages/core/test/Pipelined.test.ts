import { describe, expect, it } from "@effect/vitest"
import { Dict, Pipelined, Store } from "@partd/core"
import { Cause, Effect, Exit, Scope, Stream } from "effect"

/** A real Dict whose appends answer after `delay`, failing while `broken.value` is true: a disk that filled up. */
const failingLater = (broken: { value: boolean }, delay: Effect.Effect<void>) =>
  Effect.flatMap(Dict.make, (dict) => {
    const inner = Store.toBackend(dict)
    return Store.make({
      ...inner,
      append: (paths, values, id) =>
        Effect.andThen(
          delay,
          Effect.suspend(() =>
            broken.value
              ? Effect.fail(new Store.StoreError({ reason: "Io", method: "append", description: "ENOSPC" }))
              : inner.append(paths, values, id)
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

  it.live("stream, keys and size see every pending append; an append's id reaches the inner store", () =>
    Effect.gen(function* () {
      const inner = yield* failingLater({ value: false }, Effect.sleep("5 millis"))
      const store = yield* Pipelined.make(inner, { maxPending: 8 })
      const text = (u: Uint8Array) => new TextDecoder().decode(u)
      yield* store.append({ k: new TextEncoder().encode("a") }, { id: "one" })
      yield* store.append({ k: new TextEncoder().encode("b") })
      expect(text(Buffer.concat(yield* Stream.runCollect(store.stream("k"))))).toBe("ab")
      yield* store.append({ j: new TextEncoder().encode("c") })
      expect((yield* Stream.runCollect(store.keys)).slice().sort()).toEqual(["j", "k"])
      yield* store.append({ k: new TextEncoder().encode("a") }, { id: "one" })
      yield* store.append({ k: new TextEncoder().encode("d") }, { id: "two" })
      expect(yield* store.size(["k", "j"])).toEqual([3, 1])
      // The inner store (a Dict) applied the repeated id once.
      expect(text((yield* inner.get(["k"]))[0]!)).toBe("abd")
    }).pipe(Effect.scoped)
  )
})
