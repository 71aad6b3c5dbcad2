/**
 * Buffer under a failing slow store: a landing that fails part-way lands
 * each chunk exactly once in the end, and a final flush that fails on close
 * fails loudly. Full disks are real: a small tmpfs mounted for the test.
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { File } from "@partd/backend-file"
import { Buffer, Dict, Store } from "@partd/core"
import { fill, tmpfs } from "@partd/test/FullDisk"
import { pattern } from "@partd/test/StoreSuite"
import { Cause, Effect, Exit, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"

/**
 * A real store in front of another that applies an append call key by key,
 * each key's chunks in one inner call, as a store with one file per key
 * writes them; after `writes.left` key writes every further one fails
 * cleanly (nothing of that key is applied), as a full disk does. So a call
 * over several keys can fail after applying some of them.
 */
const keyByKey = (store: Store.Shape, writes: { left: number }) => {
  const inner = Store.toBackend(store)
  return Store.make({
    append: (paths, values) =>
      Effect.gen(function* () {
        const order: Array<Store.Batch> = []
        const byPath = new Map<string, { paths: Array<string>; values: Array<Uint8Array> }>()
        for (let i = 0; i < paths.length; i++) {
          let group = byPath.get(paths[i]!)
          if (group === undefined) {
            group = { paths: [], values: [] }
            byPath.set(paths[i]!, group)
            order.push(group)
          }
          group.paths.push(paths[i]!)
          group.values.push(values[i]!)
        }
        for (const group of order) {
          if (writes.left <= 0) {
            return yield* new Store.StoreError({
              reason: "Io",
              method: "append",
              key: group.paths[0]!,
              description: "ENOSPC: no space left on device"
            })
          }
          writes.left--
          yield* inner.append(group.paths, group.values)
        }
      }),
    get: (paths) => inner.get(paths),
    iset: (path, value) => inner.iset(path, value),
    delete: (paths) => inner.delete(paths),
    drop: inner.drop,
    stream: inner.stream,
    keys: inner.keys,
    size: inner.size
  })
}

const equal = (a: Uint8Array, b: Uint8Array): boolean => globalThis.Buffer.from(a).equals(globalThis.Buffer.from(b))

const reasonOf = (exit: Exit.Exit<unknown, Store.StoreError>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const found = Cause.findError(exit.cause)
  return found._tag === "Success" ? found.success.reason : undefined
}

describe("Buffer lands each chunk exactly once", () => {
  it.effect("a landing that fails after some keys were applied retries only the keys that did not land", () =>
    Effect.gen(function* () {
      const writes = { left: 1 }
      const slowDict = yield* Dict.make
      const slow = yield* keyByKey(slowDict, writes)
      const { store, control } = yield* Buffer.make({ fast: yield* Dict.make, slow, availableMemory: 1 << 20 })
      const a = pattern(1000, 1)
      const b = pattern(1000, 2)
      yield* store.append({ a, b })
      // The slow store takes `a`, then fails on `b`: the flush reports it.
      expect(reasonOf(yield* Effect.exit(control.flush))).toBe("Io")
      // Nothing is lost or doubled while `b` waits in memory.
      const [readA, readB] = yield* store.get(["a", "b"])
      expect(equal(readA!, a)).toBe(true)
      expect(equal(readB!, b)).toBe(true)
      expect(yield* control.memoryUsage).toBe(b.byteLength)
      writes.left = Number.POSITIVE_INFINITY
      yield* control.flush
      expect(yield* control.memoryUsage).toBe(0)
      const [slowA, slowB] = yield* slowDict.get(["a", "b"])
      expect(equal(slowA!, a)).toBe(true)
      expect(equal(slowB!, b)).toBe(true)
    })
  )

  it.effect("an appender waiting for room sees the landing's error, and what landed is not landed again", () =>
    Effect.gen(function* () {
      const writes = { left: 1 }
      const slowDict = yield* Dict.make
      const slow = yield* keyByKey(slowDict, writes)
      const { store, control } = yield* Buffer.make({ fast: yield* Dict.make, slow, availableMemory: 3000 })
      yield* store.append({ a: pattern(1400, 1), b: pattern(1400, 2) })
      // No room for this one until both keys land, and `b` cannot.
      expect(reasonOf(yield* Effect.exit(store.append({ c: pattern(2000, 3) })))).toBe("Io")
      writes.left = Number.POSITIVE_INFINITY
      yield* store.append({ c: pattern(2000, 3) })
      yield* control.flush
      const values = yield* slowDict.get(["a", "b", "c"])
      expect(values.map((v) => v.byteLength)).toEqual([1400, 1400, 2000])
      expect(equal(values[0]!, pattern(1400, 1))).toBe(true)
    })
  )

  it.effect("Buffer(Dict, File) on a full disk: the key that fit is on disk once, the other after space is freed", () =>
    Effect.gen(function* () {
      const mount = yield* tmpfs(1024 * 1024)
      const dir = nodePath.join(mount, "store")
      const slow = yield* File.make({ path: dir })
      const { store, control } = yield* Buffer.make({ fast: yield* Dict.make, slow, availableMemory: 1 << 20 })
      const size = 100 * 1024
      const a = pattern(size, 1)
      const b = pattern(size, 2)
      // Room for `a` and the File store's own 4 KiB state file only: `b`'s write fails with ENOSPC.
      const filler = fill(mount, size + 16 * 1024)
      yield* store.append({ a, b })
      expect(reasonOf(yield* Effect.exit(control.flush))).toBe("Io")
      expect(fs.statSync(nodePath.join(dir, "a")).size).toBe(size)
      fs.unlinkSync(filler)
      yield* control.flush
      expect(fs.statSync(nodePath.join(dir, "a")).size).toBe(size)
      const [onDiskA, onDiskB] = yield* slow.get(["a", "b"])
      expect(equal(onDiskA!, a)).toBe(true)
      expect(equal(onDiskB!, b)).toBe(true)
    })
  )
})

describe("Buffer fails loudly when closing loses data", () => {
  it.effect("a final flush that fails makes the scope's close fail with the keys and bytes lost", () =>
    Effect.gen(function* () {
      const writes = { left: 0 }
      const slow = yield* keyByKey(yield* Dict.make, writes)
      const scope = yield* Scope.make()
      const { store } = yield* Buffer.make({ fast: yield* Dict.make, slow, availableMemory: 1 << 20 }).pipe(
        Scope.provide(scope)
      )
      yield* store.append({ a: pattern(10, 1), b: pattern(20, 2) })
      const exit = yield* Effect.exit(Scope.close(scope, Exit.void))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      expect(error).toBeInstanceOf(Buffer.BufferError)
      const lost = error as Buffer.BufferError
      expect(lost.reason).toBe("Unflushed")
      expect(lost.lost).toEqual([
        { key: "a", bytes: 10 },
        { key: "b", bytes: 20 }
      ])
      expect(lost.message).toContain("30 bytes")
    })
  )

  it.effect("a program given Buffer.layer fails with the BufferError when the layer's final flush fails", () =>
    Effect.gen(function* () {
      const writes = { left: 0 }
      const slow = Layer.effect(
        Store.Store,
        Effect.flatMap(Dict.make, (dict) => keyByKey(dict, writes))
      )
      const exit = yield* Effect.exit(
        Store.append({ k: pattern(7, 1) }).pipe(
          Effect.provide(Buffer.layer({ fast: Dict.layer, slow, availableMemory: 1 << 20 }))
        )
      )
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      expect(error).toBeInstanceOf(Buffer.BufferError)
      expect((error as Buffer.BufferError).lost).toEqual([{ key: "k", bytes: 7 }])
    })
  )

  it.effect("close is the typed way: it fails with BufferError and can be retried once the slow store recovers", () =>
    Effect.gen(function* () {
      const writes = { left: 0 }
      const slowDict = yield* Dict.make
      const slow = yield* keyByKey(slowDict, writes)
      const { store, control } = yield* Buffer.make({ fast: yield* Dict.make, slow, availableMemory: 1 << 20 })
      yield* store.append({ a: pattern(10, 1) })
      const failed = yield* Effect.exit(control.close)
      expect(Exit.isFailure(failed) && Cause.squash(failed.cause)).toBeInstanceOf(Buffer.BufferError)
      writes.left = Number.POSITIVE_INFINITY
      yield* control.close
      expect(equal((yield* slowDict.get(["a"]))[0]!, pattern(10, 1))).toBe(true)
      expect(reasonOf(yield* Effect.exit(store.append({ a: pattern(1, 1) })))).toBe("Closed")
    })
  )
})

describe("Buffer flushAfter bounds how long bytes stay only in memory", () => {
  it.effect("bytes land once held about flushAfter, not before half of it", () =>
    Effect.gen(function* () {
      const slow = yield* Dict.make
      const { store, control } = yield* Buffer.make({
        fast: yield* Dict.make,
        slow,
        availableMemory: 1 << 20,
        flushAfter: "1 second"
      })
      yield* store.append({ early: pattern(100, 1) })
      yield* TestClock.adjust("499 millis")
      expect(yield* control.memoryUsage).toBe(100)
      yield* TestClock.adjust("101 millis")
      // 600 ms: `early` has landed; a new key arrives.
      expect((yield* slow.get(["early"]))[0]!.byteLength).toBe(100)
      yield* store.append({ late: pattern(50, 2) })
      yield* TestClock.adjust("400 millis")
      // 1000 ms: `late` is 400 ms old, under half of flushAfter.
      expect(yield* control.memoryUsage).toBe(50)
      yield* TestClock.adjust("500 millis")
      // 1500 ms: held 900 ms, landed.
      expect(yield* control.memoryUsage).toBe(0)
      expect((yield* slow.get(["late"]))[0]!.byteLength).toBe(50)
    })
  )

  it.effect("without flushAfter bytes stay in memory however long", () =>
    Effect.gen(function* () {
      const slow = yield* Dict.make
      const { store, control } = yield* Buffer.make({ fast: yield* Dict.make, slow, availableMemory: 1 << 20 })
      yield* store.append({ k: pattern(100, 1) })
      yield* TestClock.adjust("1 hour")
      expect(yield* control.memoryUsage).toBe(100)
    })
  )
})
