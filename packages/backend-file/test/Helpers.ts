/**
 * What the File tests share: text ↔ bytes, a temporary directory per test,
 * stores opened in the test's scope or in one of their own, and the check of
 * a value made of numbered records that a killed writer must leave whole.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { expect } from "@effect/vitest"
import { File } from "@partd/backend-file"
import { Store } from "@partd/core"
import { Context, Effect, Exit, Layer, Scope } from "effect"

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
export const text = (u: Uint8Array): string => new TextDecoder().decode(u)

/** A fresh directory under the system's temp dir, removed with the test's scope. */
export const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(nodePath.join(os.tmpdir(), prefix))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

/** A File store, closed with the test's scope. */
export const openStore = (options: File.Options) =>
  Effect.map(Layer.build(File.layer(options)), (context) => Context.get(context, Store.Store))

/** A File store in its own scope, closed by the returned effect: a process that comes and goes. */
export const openScoped = (options: File.Options) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const store = Context.get(yield* Layer.buildWithScope(File.layer(options), scope), Store.Store)
    return { store, close: Scope.close(scope, Exit.void) }
  })

/** Checks that `value` is records 0, 1, 2, … of `size` bytes, each whole; returns how many. */
export const wholeRecords = (value: Uint8Array, size: number): number => {
  expect(value.byteLength % size).toBe(0)
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength)
  const count = value.byteLength / size
  for (let n = 0; n < count; n++) {
    const offset = n * size
    expect(view.getUint32(offset)).toBe(n)
    for (let i = 4; i < size; i += 997) if (value[offset + i] !== (n & 0xff)) throw new Error(`record ${n} is torn`)
    expect(value[offset + size - 1]).toBe(n & 0xff)
  }
  return count
}
