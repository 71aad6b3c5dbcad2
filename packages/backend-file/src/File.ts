/**
 * File: a store in a directory, one appendable file per key, partd's
 * `File(path)`.
 *
 * Layout (byte-compatible with Python partd 1.x): the key `x` is the file
 * `x` in the store's directory, a tuple key `["a", "b"]` is the file `a/b`,
 * and a file holds exactly the concatenation of the bytes appended to its
 * key. `iset` writes the file, `delete` removes it, `drop` empties the
 * directory. Python's `partd.File(dir)` reads what this store wrote and the
 * other way round. Key segments map to file names as described in
 * `FileName`: the names Python partd would use for plain keys, a reversible
 * `%XX` escaping for the rest, and `BadKey` for anything too long to name.
 *
 * The parts, each in its own module: `Layout` (a key's file: naming,
 * opening, reading, removing), `Handles` (the bounded cache of open append
 * handles), `Append` (the all-or-nothing append) with `Intent` (its record)
 * and `Calls` (the call ids it has applied), `Reader` (a key's value as a
 * stream), `Listing` (the directory's keys) and `Lock` (exclusion between
 * processes). This module puts them together.
 *
 * Speed. Append handles stay open in a bounded cache (`maxOpenFiles`), so an
 * append costs one write(2) per key. All I/O is synchronous, in plain loops,
 * one Effect per call: for many small writes to the page cache a synchronous
 * syscall costs far less than a trip through the libuv thread pool. The price
 * is that a call holds the event loop while it runs, as Python partd holds
 * its thread.
 *
 * Consistency. Every call runs under the directory's lock (see `Lock`), in
 * one synchronous stretch: the fibers of a process are serialized by the
 * event loop, and processes by `flock`, so one append's bytes are contiguous
 * in each file and a `get` never sees half of one.
 *
 * Failures. An `append` is all or nothing: a call that fails (a full disk)
 * leaves every key at its length before the call, and a process killed in
 * the middle of one leaves a record that the next call of any process
 * undoes before it reads or writes (see `Append`, `Intent`). An `iset` is
 * all or nothing too: the value is written beside the key's file and renamed
 * over it. `delete` and `drop` free space and work on a full disk. Only a
 * file that does not exist reads as empty bytes; every other failure
 * (permissions, a full disk, a directory where a file should be) fails with
 * reason `Io`, the key, and the system error as cause.
 *
 * Reading without `get`. `stream(key)` opens the key's file under the lock,
 * takes its length there, and reads pieces with positional reads on libuv's
 * threads, without the lock: the value as it stood when the stream started,
 * in whole appends, whatever this or another process appends, deletes or
 * replaces meanwhile (see `Reader`); memory holds a piece, not the value.
 * `keys` walks the directory under the lock and maps file names back to keys
 * (see `Listing`): the lock's files, leftovers and foreign files are never
 * keys, and a key holding zero bytes is not listed. `size` is fstat(2) of
 * each key's file, 0 for a key without one.
 *
 * Call ids. An append given an id applies nothing, and succeeds, when the
 * directory has recorded that id: the last 65,536 ids recorded by any process
 * using the directory (see `Calls`). The id is recorded in the same step that
 * commits the call, so a process killed before it leaves the call undone and
 * its id free, and one killed after leaves both; `drop` keeps the ids.
 *
 * Lifetime. Without `path` the store lives in a fresh temporary directory
 * (under `dir` when given, else the OS temp dir) that is removed when the
 * Layer's scope closes, whether the program succeeded, failed or was
 * interrupted. With `path` the directory is created if needed and kept,
 * unless `dropOnClose`. Either way the handles and the lock are released.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { Observe, Store } from "@partd/core"
import { Effect, Layer, type Scope, Stream } from "effect"
import * as Append from "./Append.ts"
import * as Calls from "./Calls.ts"
import * as FileName from "./FileName.ts"
import * as Handles from "./Handles.ts"
import * as Intent from "./Intent.ts"
import * as Layout from "./Layout.ts"
import * as Listing from "./Listing.ts"
import * as Lock from "./Lock.ts"
import * as Reader from "./Reader.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The store's directory: created if needed, kept on close (unless `dropOnClose`). */
  readonly path?: string | undefined
  /** Without `path`: where to create the temporary directory (default: the OS temp dir). */
  readonly dir?: string | undefined
  /** With `path`: remove the directory when the scope closes. */
  readonly dropOnClose?: boolean | undefined
  /**
   * fsync(2) each file an `append` or `iset` wrote before the call returns
   * (partd's `fsync=True`). The directory entries of new files are not
   * fsynced, as in partd.
   */
  readonly fsync?: boolean | undefined
  /**
   * The most append handles to keep open; past it the oldest quarter is
   * closed. Default: half the process's soft open-file limit (`ulimit -n`),
   * at most 2048; 128 where the limit cannot be read (not Linux).
   */
  readonly maxOpenFiles?: number | undefined
}

/**
 * The store's directory: a fresh temporary one, or `path` created if needed.
 * Released (removed when it is temporary or `dropOnClose`) with the scope.
 */
const acquireRoot = (options: Options): Effect.Effect<string, Store.StoreError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        if (options.path === undefined || options.path === "") {
          const base = options.dir ?? os.tmpdir()
          return { root: fs.mkdtempSync(nodePath.join(nodePath.resolve(base), "partd-")), remove: true }
        }
        const root = nodePath.resolve(options.path)
        fs.mkdirSync(root, { recursive: true })
        if (!fs.statSync(root).isDirectory()) {
          throw Object.assign(new Error(`ENOTDIR: not a directory, '${root}'`), { code: "ENOTDIR", path: root })
        }
        return { root, remove: options.dropOnClose === true }
      },
      catch: (cause) => Store.ioError("File.make", cause)
    }),
    ({ root, remove }) =>
      remove
        ? Effect.sync(() => fs.rmSync(root, { recursive: true, force: true, maxRetries: 3 })).pipe(
            Effect.catchDefect((defect) =>
              Effect.logError(`partd File: could not remove the store directory ${root}`, defect)
            )
          )
        : Effect.void
  ).pipe(Effect.map(({ root }) => root))

/** The directory's lock, closed with the scope. */
const acquireLock = (root: string): Effect.Effect<Lock.Lock, Store.StoreError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => Lock.open(nodePath.join(root, FileName.LOCK)),
      catch: (cause) => Store.ioError("File.make", cause)
    }),
    (lock) => Effect.sync(() => lock.close())
  )

/** The handle cache, every handle closed with the scope. */
const acquireHandles = (layout: Layout.Layout, options: Options): Effect.Effect<Handles.Handles, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => Handles.make(layout, Math.max(1, options.maxOpenFiles ?? Handles.defaultMaxOpenFiles()))),
    (handles) => Effect.sync(() => handles.closeAll())
  )

/** The store's calls over its parts, each one synchronous body under the lock. */
const backendOf = (
  lock: Lock.Lock,
  layout: Layout.Layout,
  handles: Handles.Handles,
  calls: Calls.Calls,
  fsync: boolean
): Store.Backend => {
  const append = Append.make({ layout, handles, intent: Intent.writer(lock, fsync), calls, fsync })
  /** Undoes what an unfinished append left; until it can, every call fails saying so. */
  const recover = (method: string): void => {
    try {
      Intent.recover(lock, layout, calls)
    } catch (cause) {
      throw new Store.StoreError({
        reason: "Io",
        method,
        description: `could not undo what a failed or killed append left: ${Store.describeCause(cause)}`,
        cause
      })
    }
  }
  /** Runs `body` under the lock, after catching up with what other processes did. */
  const locked = <A>(method: string, body: (at: Lock.At) => A): Effect.Effect<A, Store.StoreError> =>
    Lock.run(lock, method, (at) => {
      if (lock.stale()) {
        handles.closeAll()
        calls.refresh()
      }
      if (Intent.pending(lock)) recover(method)
      return body(at)
    })
  return {
    append: (paths, values, id) =>
      locked("append", (at) => {
        if (id === undefined) return append(paths, values, at)
        const call = calls.prepare(id)
        // A call whose id is recorded was applied: a repeat applies nothing, and succeeds.
        if (call !== undefined) append(paths, values, at, call)
      }),
    get: (paths) =>
      locked("get", (at) => {
        // Name every key first: a bad key fails the call before anything is read.
        const relatives = paths.map((path) => (handles.get(path) === undefined ? layout.nameOf("get", path) : ""))
        return paths.map((path, i) => {
          at.key = path
          const handle = handles.get(path)
          return handle === undefined
            ? layout.read(relatives[i]!)
            : Layout.readAll(handle.fd, Layout.lengthOf(handle.fd))
        })
      }),
    iset: (path, value) =>
      locked("iset", (at) => {
        const relative = layout.nameOf("iset", path)
        at.key = path
        // The key gets a new file: every process's handle to the old one must go.
        lock.bump()
        handles.forget(path)
        layout.replace(relative, value, fsync)
      }),
    delete: (paths) =>
      locked("delete", (at) => {
        const relatives = paths.map((path) => layout.nameOf("delete", path))
        lock.bump()
        for (let i = 0; i < paths.length; i++) {
          at.key = paths[i]!
          handles.forget(paths[i]!)
          layout.remove(relatives[i]!)
        }
      }),
    drop: locked("drop", () => {
      lock.bump()
      handles.closeAll()
      layout.removeAll()
    }),
    stream: (path, chunkBytes) =>
      Reader.stream(
        path,
        chunkBytes,
        locked("stream", (at) => {
          const relative = layout.nameOf("stream", path)
          at.key = path
          return layout.openRead(relative)
        })
      ),
    keys: Stream.unwrap(
      Effect.map(
        locked("keys", () => Listing.keys(layout.root)),
        Stream.fromIterable
      )
    ),
    size: (paths) =>
      locked("size", (at) => {
        const relatives = paths.map((path) => (handles.get(path) === undefined ? layout.nameOf("size", path) : ""))
        return paths.map((path, i) => {
          at.key = path
          const handle = handles.get(path)
          return handle === undefined ? (layout.sizeOf(relatives[i]!) ?? 0) : Layout.lengthOf(handle.fd)
        })
      })
  }
}

/**
 * Makes a File store in the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Store.Shape, Store.StoreError, Scope.Scope> =>
  Effect.gen(function* () {
    const root = yield* acquireRoot(options)
    const lock = yield* acquireLock(root)
    const layout = Layout.make(root)
    const handles = yield* acquireHandles(layout, options)
    const fsync = options.fsync === true
    const calls = yield* Effect.acquireRelease(
      Effect.sync(() => Calls.make(nodePath.join(root, FileName.CALLS), fsync)),
      (calls) => Effect.sync(() => calls.close())
    )
    return yield* Observe.make("File", backendOf(lock, layout, handles, calls, fsync))
  })

/**
 * A File `Store`. Without `path`, in a fresh temporary directory removed when
 * the Layer's scope closes; with `path`, in that directory, kept unless
 * `dropOnClose`.
 *
 * @example
 * ```ts
 * const store = Buffer.layer({ fast: Dict.layer, slow: File.layer(), availableMemory: 64 * 1024 * 1024 })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Store.Store, Store.StoreError> =>
  Layer.effect(Store.Store, make(options))
