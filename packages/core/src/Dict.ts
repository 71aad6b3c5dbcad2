/**
 * Dict: a store in memory, partd's `Dict()`.
 *
 * Like partd's Dict, which keeps a list of the appended `bytes` per key, an
 * append keeps references to the appended chunks, so appending costs no copy
 * at all. The chunks are therefore taken over by the store: a caller must not
 * modify an array after appending it (copy it first if it reuses buffers).
 * `get` concatenates into a fresh array that belongs to the caller. The data
 * is cleared when the Layer's scope closes.
 *
 * `stream` takes a snapshot of the key's list of chunks when it starts (the
 * chunks are never modified, so the list is enough) and copies it out in
 * fresh pieces as the reader pulls; appends after the start are not seen.
 * `keys` are the keys holding at least one byte; `size` sums a key's chunks.
 * Append call ids are remembered in memory, the last 65,536 (see `CallIds`).
 *
 * @since 0.1.0
 */
import { Effect, Layer, type Scope, Stream } from "effect"
import * as Bytes from "./Bytes.ts"
import { CallIds } from "./CallIds.ts"
import * as Key from "./Key.ts"
import * as Observe from "./Observe.ts"
import * as Pieces from "./Pieces.ts"
import * as Store from "./Store.ts"

interface Slot {
  chunks: Array<Uint8Array>
  length: number
}

/**
 * Makes an in-memory store whose data lives until the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Store.Shape, never, Scope.Scope> = Effect.gen(function* () {
  const data = new Map<Key.Path, Slot>()
  const slotOf = (path: Key.Path): Slot => {
    let slot = data.get(path)
    if (slot === undefined) {
      slot = { chunks: [], length: 0 }
      data.set(path, slot)
    }
    return slot
  }
  // Slots resolved once per key set, stale once a key is removed.
  const slots = Key.keySetCache((paths: ReadonlyArray<Key.Path>) => paths.map(slotOf))
  const ids = new CallIds()
  yield* Effect.addFinalizer(() => Effect.sync(() => data.clear()))
  return yield* Observe.make("Dict", {
    append: (paths, values, id, sizes) =>
      Effect.sync(() => {
        if (id !== undefined) {
          if (ids.has(id)) return
          ids.add(id)
        }
        const resolved = slots.get(paths)
        // The lengths measured above: the chunks themselves are not read, only referenced.
        const lengths = (sizes ?? Store.sizesOf(values)).lengths
        for (let i = 0; i < resolved.length; i++) {
          const slot = resolved[i]!
          slot.chunks.push(values[i]!)
          slot.length += lengths[i]!
        }
      }),
    get: (paths) =>
      Effect.sync(() =>
        paths.map((path) => {
          const slot = data.get(path)
          return slot === undefined ? Bytes.empty() : Bytes.concat(slot.chunks, slot.length)
        })
      ),
    stream: (path, chunkBytes) =>
      Stream.suspend(() => {
        const slot = data.get(path)
        return slot === undefined ? Stream.empty : Pieces.fromChunks(slot.chunks.slice(), slot.length, chunkBytes)
      }),
    keys: Stream.suspend(() => {
      const held: Array<Key.Path> = []
      for (const [path, slot] of data) if (slot.length > 0) held.push(path)
      return Stream.fromArray(held)
    }),
    size: (paths) => Effect.sync(() => paths.map((path) => data.get(path)?.length ?? 0)),
    appendChunks: (paths, chunks, lengths) =>
      Effect.sync(() => {
        for (let i = 0; i < paths.length; i++) {
          const given = chunks[i]!
          if (given.length === 0) continue
          const slot = slotOf(paths[i]!)
          // The list is copied, the chunks are not (nor read: their lengths are given).
          slot.chunks = slot.chunks.length === 0 ? given.slice() : slot.chunks.concat(given)
          slot.length += lengths[i]!
        }
      }),
    getChunks: (paths) =>
      Effect.sync(() =>
        paths.map((path) => {
          const slot = data.get(path)
          return slot === undefined ? [] : slot.chunks
        })
      ),
    iset: (path, value) =>
      Effect.sync(() => {
        // In place, so that slots resolved for key sets stay valid.
        const slot = slotOf(path)
        slot.chunks = [value]
        slot.length = value.byteLength
      }),
    delete: (paths) =>
      Effect.sync(() => {
        for (const path of paths) data.delete(path)
        slots.invalidate()
      }),
    drop: Effect.sync(() => {
      data.clear()
      slots.invalidate()
    })
  })
})

/**
 * An in-memory `Store`, cleared when the Layer's scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Store.Store> = Layer.effect(Store.Store, make)
