/**
 * Handles: the File store's cache of open append handles, bounded by
 * `maxOpenFiles`, and what it remembers per key set.
 *
 * Python partd opens, writes and closes a file per key per append. The File
 * store keeps append handles open instead, so an append costs one write(2)
 * per key, and a `get` of a key it has written reads through the cached
 * handle. Past `maxOpenFiles` the oldest quarter is closed at once, so
 * eviction is not paid per key. A closed handle's `fd` is set to -1: a call
 * that still holds it (see `Append`) reopens its file.
 *
 * Per key set (`Store.columns`: the same frozen paths array every call) the
 * cache remembers every key's handle by position, so an append to it needs
 * no lookups; `Key.keySetCache` forgets all of it whenever any handle is
 * closed.
 *
 * The default bound fits the process's open-file limit: half its soft
 * `RLIMIT_NOFILE` (read from `/proc/self/limits` on Linux), at most 2048,
 * and 128 where the limit cannot be read.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import { Key } from "@partd/core"
import type * as Layout from "./Layout.ts"

/**
 * A key's append handle, and the chunks the running append has for it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Handle {
  readonly path: Key.Path
  readonly relative: string
  /** The open descriptor, or -1 once the cache closed it. */
  fd: number
  /** Which call last collected chunks for it (see `Append`). */
  stamp: number
  readonly chunks: Array<Uint8Array>
}

/**
 * What the cache remembers of a key set until a handle is closed.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeySet {
  /** Every key's handle by position, when all are open and the keys are distinct. */
  handles: ReadonlyArray<Handle> | undefined
  /** The keys' file names for the intent record (see `Intent.names`). */
  names: Uint8Array | undefined
  /** Whether `handles` was tried since the key set was last forgotten. */
  tried: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Handles {
  readonly get: (path: Key.Path) => Handle | undefined
  /** The cached handle of a key, opening its file (and evicting the oldest quarter when full). */
  readonly open: (path: Key.Path, relative: string) => Handle
  /** Closes a key's handle, if it has one. */
  readonly forget: (path: Key.Path) => void
  readonly closeAll: () => void
  /** What is remembered of a frozen key set. */
  readonly keySet: (paths: ReadonlyArray<Key.Path>) => KeySet
}

/** The bound when the process's limit cannot be read, and the most it ever is. */
const FALLBACK_MAX_OPEN_FILES = 128
const MOST_OPEN_FILES = 2048

/**
 * The soft open-file limit in the text of `/proc/self/limits`, or
 * `undefined` when it is not there (or unlimited).
 *
 * @since 0.1.0
 * @category limits
 */
export const softFileLimit = (limits: string): number | undefined => {
  const match = /^Max open files\s+(\d+)\s/m.exec(limits)
  return match === null ? undefined : Number(match[1])
}

/**
 * The default `maxOpenFiles`: half the process's soft open-file limit, at
 * most 2048 (at least 1), or 128 where the limit cannot be read.
 *
 * @since 0.1.0
 * @category limits
 */
export const defaultMaxOpenFiles = (): number => {
  let limit: number | undefined
  try {
    limit = softFileLimit(fs.readFileSync("/proc/self/limits", "latin1"))
  } catch {
    limit = undefined
  }
  if (limit === undefined) return FALLBACK_MAX_OPEN_FILES
  return Math.max(1, Math.min(MOST_OPEN_FILES, Math.floor(limit / 2)))
}

/**
 * A handle cache of at most `maxOpenFiles` handles over `layout`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (layout: Layout.Layout, maxOpenFiles: number): Handles => {
  // Oldest first (a Map keeps insertion order).
  const handles = new Map<Key.Path, Handle>()
  const keySets = Key.keySetCache(
    (_: ReadonlyArray<Key.Path>): KeySet => ({ handles: undefined, names: undefined, tried: false })
  )

  const close = (handle: Handle): void => {
    const fd = handle.fd
    handle.fd = -1
    fs.closeSync(fd)
  }

  const evict = (): void => {
    keySets.invalidate()
    let n = Math.max(1, maxOpenFiles >> 2)
    for (const [path, handle] of handles) {
      handles.delete(path)
      close(handle)
      if (--n === 0) break
    }
  }

  return {
    get: (path) => handles.get(path),
    open: (path, relative) => {
      const cached = handles.get(path)
      if (cached !== undefined) return cached
      if (handles.size >= maxOpenFiles) evict()
      const handle: Handle = { path, relative, fd: layout.openForAppend(relative), stamp: 0, chunks: [] }
      handles.set(path, handle)
      return handle
    },
    forget: (path) => {
      const handle = handles.get(path)
      if (handle === undefined) return
      keySets.invalidate()
      handles.delete(path)
      close(handle)
    },
    closeAll: () => {
      keySets.invalidate()
      for (const handle of handles.values()) close(handle)
      handles.clear()
    },
    keySet: keySets.get
  }
}
