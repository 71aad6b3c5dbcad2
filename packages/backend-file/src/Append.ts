/**
 * Append: the File store's append, all or nothing per call.
 *
 * A call runs in four steps under the store's lock: open every key's handle
 * (naming every new key first, so a bad key writes nothing) and take each
 * file's length; write the intent record (see `Intent`); write each key's
 * chunks, one write(2) per key (writev(2) when the call appends to a key
 * more than once); mark the record finished. A call with an id (see
 * `Calls`) names it in the record and records it after the writes, before
 * the record is marked finished: that is the step that commits it. When a write fails, every file
 * the call touched is cut back to its length before the call before the
 * error is returned; a process killed in the middle leaves the record, and
 * the next lock holder cuts the files back.
 *
 * A key set seen before (`Store.columns`), all of its handles open, takes a
 * shorter path: no lookups, its file names for the record encoded once.
 * Everything is plain synchronous code in loops, one system call per key per
 * step: for many small writes to the page cache a synchronous syscall costs
 * far less than a trip through the libuv thread pool.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import type { Key } from "@partd/core"
import type * as Calls from "./Calls.ts"
import type * as Handles from "./Handles.ts"
import * as Intent from "./Intent.ts"
import * as Layout from "./Layout.ts"
import type * as Lock from "./Lock.ts"

/**
 * What an append needs of its store.
 *
 * @since 0.1.0
 * @category models
 */
export interface Context {
  readonly layout: Layout.Layout
  readonly handles: Handles.Handles
  readonly intent: Intent.Writer
  readonly calls: Calls.Calls
  readonly fsync: boolean
}

/**
 * An append's synchronous body (see `Lock.run`).
 *
 * @since 0.1.0
 * @category models
 */
export type Append = (
  paths: ReadonlyArray<Key.Path>,
  values: ReadonlyArray<Uint8Array>,
  at: Lock.At,
  call?: Calls.Call | undefined
) => void

const writeAll = (fd: number, chunk: Uint8Array): void => {
  let offset = 0
  while (offset < chunk.byteLength) {
    offset += fs.writeSync(fd, chunk, offset, chunk.byteLength - offset)
  }
}

const writeChunks = (fd: number, chunks: ReadonlyArray<Uint8Array>): void => {
  if (chunks.length === 1) {
    writeAll(fd, chunks[0]!)
    return
  }
  let total = 0
  for (const chunk of chunks) total += chunk.byteLength
  let written = fs.writevSync(fd, chunks as Array<Uint8Array>)
  if (written === total) return
  // A short write (rare: a full disk, a signal): finish chunk by chunk.
  for (const chunk of chunks) {
    if (written >= chunk.byteLength) {
      written -= chunk.byteLength
      continue
    }
    writeAll(fd, chunk.subarray(written))
    written = 0
  }
}

/**
 * Cuts the `count` files of a failed call back to their lengths before it
 * (`lengths[2i]`), then marks the record finished. A file that cannot be cut
 * leaves the record for the next lock holder to finish the job.
 */
const rollBack = (
  context: Context,
  count: number,
  handleAt: (i: number) => Handles.Handle,
  lengths: Float64Array
): void => {
  let complete = true
  for (let i = 0; i < count; i++) {
    const handle = handleAt(i)
    try {
      if (handle.fd >= 0) fs.ftruncateSync(handle.fd, lengths[2 * i]!)
      else context.layout.truncate(handle.relative, lengths[2 * i]!)
    } catch (error) {
      // Not a regular file (a device): there is nothing to cut.
      if ((error as NodeJS.ErrnoException).code !== "EINVAL") complete = false
    }
  }
  if (complete) context.intent.clear()
}

/** Clears a record whose writing failed: no key's bytes were written. */
const abandon = (context: Context): void => {
  try {
    context.intent.clear()
  } catch {
    // The next lock holder finds a torn record and clears it.
  }
}

/** An append to a remembered key set: every handle open, every key once. */
const appendKnown = (
  context: Context,
  known: ReadonlyArray<Handles.Handle>,
  names: Uint8Array,
  values: ReadonlyArray<Uint8Array>,
  at: Lock.At,
  call: Calls.Call | undefined
): void => {
  const n = known.length
  const lengths = context.intent.begin(n, names, call)
  for (let i = 0; i < n; i++) {
    lengths[2 * i] = Layout.lengthOf(known[i]!.fd)
    lengths[2 * i + 1] = values[i]!.byteLength
  }
  try {
    context.intent.commit()
  } catch (error) {
    abandon(context)
    throw error
  }
  let i = 0
  try {
    for (; i < n; i++) {
      const value = values[i]!
      if (value.byteLength > 0) writeAll(known[i]!.fd, value)
      if (context.fsync) fs.fsyncSync(known[i]!.fd)
    }
    if (call !== undefined) context.calls.commit(call)
  } catch (error) {
    at.key = known[Math.min(i, n - 1)]!.path
    rollBack(context, n, (j) => known[j]!, lengths)
    throw error
  }
  context.intent.clear()
}

/**
 * Makes the append of a store.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (context: Context): Append => {
  const { layout, handles, intent } = context
  // Which handles the running append has chunks for: `stamp` tells them
  // apart without a Map per call. Reused across calls.
  let stamp = 0
  const touched: Array<Handles.Handle> = []
  const before: Array<number> = []
  const relatives: Array<string> = []

  /** Collects each key's chunks in call order on its handle; takes each file's length once. */
  const collect = (paths: ReadonlyArray<Key.Path>, values: ReadonlyArray<Uint8Array>, at: Lock.At): void => {
    stamp++
    for (let i = 0; i < paths.length; i++) {
      const path = paths[i]!
      let handle = handles.get(path)
      if (handle === undefined) {
        at.key = path
        handle = handles.open(path, layout.nameOf("append", path))
      }
      if (handle.stamp !== stamp) {
        handle.stamp = stamp
        touched.push(handle)
        before.push(Layout.lengthOf(handle.fd))
        relatives.push(handle.relative)
      }
      handle.chunks.push(values[i]!)
    }
  }

  /** Writes what `collect` gathered, one write per key, reopening handles closed meanwhile. */
  const writeTouched = (at: Lock.At): void => {
    for (const handle of touched) {
      at.key = handle.path
      const fd = handle.fd >= 0 ? handle.fd : handles.open(handle.path, handle.relative).fd
      writeChunks(fd, handle.chunks)
      if (context.fsync) fs.fsyncSync(fd)
    }
  }

  /** Remembers a frozen key set's handles once every one is open and its keys are distinct. */
  const remember = (paths: ReadonlyArray<Key.Path>, keySet: Handles.KeySet): void => {
    keySet.tried = true
    const known = new Array<Handles.Handle>(paths.length)
    const names = new Array<string>(paths.length)
    const distinct = new Set<Key.Path>()
    for (let i = 0; i < paths.length; i++) {
      const handle = handles.get(paths[i]!)
      if (handle === undefined) return
      known[i] = handle
      names[i] = handle.relative
      distinct.add(paths[i]!)
    }
    if (distinct.size !== paths.length) return
    keySet.handles = known
    keySet.names = Intent.names(names)
  }

  const appendAny = (
    paths: ReadonlyArray<Key.Path>,
    values: ReadonlyArray<Uint8Array>,
    at: Lock.At,
    call: Calls.Call | undefined
  ): void => {
    // Name every new key before opening anything, so a bad key writes nothing.
    for (let i = 0; i < paths.length; i++) if (handles.get(paths[i]!) === undefined) layout.nameOf("append", paths[i]!)
    try {
      collect(paths, values, at)
      const n = touched.length
      const lengths = intent.begin(n, Intent.names(relatives), call)
      for (let i = 0; i < n; i++) {
        let added = 0
        for (const chunk of touched[i]!.chunks) added += chunk.byteLength
        lengths[2 * i] = before[i]!
        lengths[2 * i + 1] = added
      }
      try {
        intent.commit()
      } catch (error) {
        abandon(context)
        throw error
      }
      try {
        writeTouched(at)
        if (call !== undefined) context.calls.commit(call)
      } catch (error) {
        rollBack(context, n, (j) => touched[j]!, lengths)
        throw error
      }
      intent.clear()
    } finally {
      for (const handle of touched) handle.chunks.length = 0
      touched.length = 0
      before.length = 0
      relatives.length = 0
    }
  }

  return (paths, values, at, call) => {
    if (Object.isFrozen(paths)) {
      const keySet = handles.keySet(paths)
      if (keySet.handles !== undefined) return appendKnown(context, keySet.handles, keySet.names!, values, at, call)
      appendAny(paths, values, at, call)
      if (!keySet.tried) remember(paths, keySet)
      return
    }
    appendAny(paths, values, at, call)
  }
}
