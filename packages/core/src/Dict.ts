/**
 * Dict: a store in memory, partd's `Dict()`.
 *
 * Each key's value lives in one growable buffer: an append copies its chunk in
 * (the caller may reuse its array afterwards) and the buffer doubles when it
 * is full, so appending many small chunks costs amortized one copy per byte
 * and no object per chunk. `get` returns a fresh copy of the bytes. The data
 * is cleared when the Layer's scope closes.
 *
 * @since 0.1.0
 */
import { Effect, Layer, type Scope } from "effect"
import * as Bytes from "./Bytes.ts"
import type * as Key from "./Key.ts"
import * as Store from "./Store.ts"

interface Slot {
  buffer: Uint8Array
  length: number
}

const MIN_CAPACITY = 256

const appendTo = (slot: Slot, chunk: Uint8Array): void => {
  const needed = slot.length + chunk.byteLength
  if (needed > slot.buffer.byteLength) {
    const grown = new Uint8Array(Math.max(needed, slot.buffer.byteLength * 2, MIN_CAPACITY))
    grown.set(slot.buffer.subarray(0, slot.length))
    slot.buffer = grown
  }
  slot.buffer.set(chunk, slot.length)
  slot.length = needed
}

/**
 * Makes an in-memory store whose data lives until the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Store.Shape, never, Scope.Scope> = Effect.gen(function* () {
  const data = new Map<Key.Path, Slot>()
  yield* Effect.addFinalizer(() => Effect.sync(() => data.clear()))
  return yield* Store.make({
    append: (entries) =>
      Effect.sync(() => {
        for (let i = 0; i < entries.length; i++) {
          const [path, chunk] = entries[i]!
          const slot = data.get(path)
          if (slot === undefined) {
            // A first chunk is copied exactly: many keys get only one.
            data.set(path, { buffer: Bytes.copy(chunk), length: chunk.byteLength })
          } else {
            appendTo(slot, chunk)
          }
        }
      }),
    get: (paths) =>
      Effect.sync(() =>
        paths.map((path) => {
          const slot = data.get(path)
          return slot === undefined ? Bytes.empty() : slot.buffer.slice(0, slot.length)
        })
      ),
    iset: (path, value) =>
      Effect.sync(() => {
        data.set(path, { buffer: Bytes.copy(value), length: value.byteLength })
      }),
    delete: (paths) =>
      Effect.sync(() => {
        for (const path of paths) data.delete(path)
      }),
    drop: Effect.sync(() => data.clear())
  })
})

/**
 * An in-memory `Store`, cleared when the Layer's scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Store.Store> = Layer.effect(Store.Store, make)
