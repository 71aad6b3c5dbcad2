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
 * Speed. Python partd opens, writes and closes a file per key per append. This
 * store keeps append handles open in a bounded cache (`maxOpenFiles`), so an
 * append costs one write(2) per key (writev(2) when a call appends to a key
 * more than once), and a `get` of a key it has written reads through the
 * cached handle. All I/O is synchronous, in plain loops, one Effect per call:
 * for many small writes to the page cache a synchronous syscall costs far less
 * than a trip through the libuv thread pool. The price is that a call holds
 * the event loop while it runs (a 64 MiB `get` for some tens of
 * milliseconds), as Python partd holds its thread.
 *
 * Consistency. Every call runs under the directory's lock (see `Lock`), in
 * one synchronous stretch: the fibers of a process are serialized by the
 * event loop, and processes by `flock`, so one append's bytes are contiguous
 * in each file and a `get` never sees half of one. When another process holds
 * the lock, a call polls for it (1 ms, doubling up to 16 ms) without blocking
 * the event loop. A failed call may have written some of its keys and not
 * others, as in Python partd: calls are not transactions.
 *
 * Errors are honest: only a file that does not exist reads as empty bytes;
 * every other failure (permissions, a full disk, a directory where a file
 * should be) fails with reason `Io`, the key, and the system error as cause.
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
import { type Key, Store } from "@partd/core"
import { Effect, Layer, type Scope } from "effect"
import * as FileName from "./FileName.ts"
import * as Lock from "./Lock.ts"

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
   * The most append handles to keep open (default 2048); past it the oldest
   * quarter is closed. Keep it under the process's open-file limit.
   */
  readonly maxOpenFiles?: number | undefined
}

// libuv opens every file with O_CLOEXEC, so child processes never inherit a handle.
const { O_RDONLY, O_RDWR, O_APPEND, O_CREAT } = fs.constants
const APPEND_FLAGS = O_RDWR | O_APPEND | O_CREAT
const READ_FLAGS = O_RDONLY

const DEFAULT_MAX_OPEN_FILES = 2048

/** A key's cached append handle, and the chunks the running append has for it. */
interface Handle {
  readonly path: Key.Path
  readonly fd: number
  stamp: number
  readonly chunks: Array<Uint8Array>
}

/** A system error's code, or undefined for anything else. */
const codeOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null ? (error as NodeJS.ErrnoException).code : undefined

const ioError = (method: string, key: string | undefined, cause: unknown): Store.StoreError =>
  new Store.StoreError({
    reason: "Io",
    method,
    ...(key === undefined ? {} : { key }),
    description: cause instanceof Error ? cause.message : String(cause),
    cause
  })

/** Thrown inside a call's synchronous body; turned into the call's failure. */
class Failure {
  readonly error: Store.StoreError
  constructor(error: Store.StoreError) {
    this.error = error
  }
}

const fail = (error: Store.StoreError): never => {
  throw new Failure(error)
}

/** Tries `body` once when it cannot take the lock; the next try waits this long. */
const retryDelays = [1, 2, 4, 8, 16] as const

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
      catch: (cause) => ioError("File.make", undefined, cause)
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

/**
 * Makes a File store in the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Store.Shape, Store.StoreError, Scope.Scope> =>
  Effect.gen(function* () {
    const root = yield* acquireRoot(options)
    const lock = yield* Effect.acquireRelease(
      Effect.try({
        try: () => Lock.open(nodePath.join(root, FileName.LOCK)),
        catch: (cause) => ioError("File.make", undefined, cause)
      }),
      (lock) => Effect.sync(() => lock.close())
    )
    const fsync = options.fsync === true
    const maxOpenFiles = Math.max(1, options.maxOpenFiles ?? DEFAULT_MAX_OPEN_FILES)
    const rootPrefix = `${root}/`
    // The longest relative path a key may have, leaving room for "/%self".
    const maxRelative = FileName.PATH_MAX - 1 - Buffer.byteLength(rootPrefix) - FileName.LEAF.length - 1

    // Append handles by key path, oldest first (Map keeps insertion order).
    const handles = new Map<Key.Path, Handle>()
    // Which handles the running append has chunks for: `stamp` tells them apart
    // without a Map per call.
    let stamp = 0
    const touched: Array<Handle> = []
    // Relative file paths by key path, for keys seen recently.
    const names = new Map<Key.Path, string>()

    const closeAll = (): void => {
      for (const handle of handles.values()) fs.closeSync(handle.fd)
      handles.clear()
    }
    const forget = (path: Key.Path): void => {
      const handle = handles.get(path)
      if (handle !== undefined) {
        handles.delete(path)
        fs.closeSync(handle.fd)
      }
    }
    yield* Effect.addFinalizer(() => Effect.sync(closeAll))

    /** The relative file path of a key, or a `BadKey` failure. */
    const nameOf = (method: string, path: Key.Path): string => {
      const cached = names.get(path)
      if (cached !== undefined) return cached
      const relative = FileName.toRelative(path)
      if (relative instanceof FileName.Unnameable) {
        return fail(new Store.StoreError({ reason: "BadKey", method, key: path, description: relative.problem }))
      }
      if (relative.length > maxRelative) {
        return fail(
          new Store.StoreError({
            reason: "BadKey",
            method,
            key: path,
            description: `the key's file path would be over ${FileName.PATH_MAX} bytes`
          })
        )
      }
      if (names.size >= 65536) names.clear()
      names.set(path, relative)
      return relative
    }

    /**
     * Moves the value of the key whose file is `full` into `full/%self`, so
     * that `full` can become a directory for longer keys.
     */
    const makeRoomForDirectory = (full: string): void => {
      const moving = `${full}%moving`
      fs.renameSync(full, moving)
      fs.mkdirSync(full)
      fs.renameSync(moving, `${full}/${FileName.LEAF}`)
    }

    /** Creates the directories of `relative`'s parent, moving key files out of their way. */
    const makeParents = (relative: string): void => {
      const slash = relative.lastIndexOf("/")
      if (slash < 0) {
        // The store's directory itself is gone (deleted under us): recreate it.
        fs.mkdirSync(root, { recursive: true })
        return
      }
      try {
        fs.mkdirSync(rootPrefix + relative.slice(0, slash), { recursive: true })
        return
      } catch (error) {
        const code = codeOf(error)
        if (code !== "ENOTDIR" && code !== "EEXIST") throw error
      }
      // Some ancestor is a key's file: walk down and move each one aside.
      for (let at = relative.indexOf("/"); at >= 0; at = relative.indexOf("/", at + 1)) {
        const full = rootPrefix + relative.slice(0, at)
        let stats: fs.Stats | undefined
        try {
          stats = fs.statSync(full)
        } catch (error) {
          if (codeOf(error) !== "ENOENT") throw error
        }
        if (stats === undefined) fs.mkdirSync(full)
        else if (stats.isFile()) makeRoomForDirectory(full)
        else if (!stats.isDirectory()) {
          throw Object.assign(new Error(`ENOTDIR: not a directory, '${full}'`), { code: "ENOTDIR", path: full })
        }
      }
    }

    /** Opens a key's file for appending, creating it and its directories. */
    const openForAppend = (relative: string): number => {
      const full = rootPrefix + relative
      for (let attempt = 0; ; attempt++) {
        try {
          return fs.openSync(full, APPEND_FLAGS, 0o666)
        } catch (error) {
          const code = codeOf(error)
          if (code === "EISDIR") return fs.openSync(`${full}/${FileName.LEAF}`, APPEND_FLAGS, 0o666)
          if ((code === "ENOENT" || code === "ENOTDIR") && attempt === 0) makeParents(relative)
          else throw error
        }
      }
    }

    /** Closes the oldest quarter of the handles at once, so eviction is not paid per key. */
    const evict = (): void => {
      let n = Math.max(1, maxOpenFiles >> 2)
      for (const [path, handle] of handles) {
        handles.delete(path)
        fs.closeSync(handle.fd)
        if (--n === 0) break
      }
    }

    /** The cached append handle of a key, opening it when needed. Call with no chunks pending. */
    const handleOf = (path: Key.Path, relative: string): Handle => {
      const cached = handles.get(path)
      if (cached !== undefined) return cached
      if (handles.size >= maxOpenFiles) evict()
      const handle: Handle = { path, fd: openForAppend(relative), stamp: 0, chunks: [] }
      handles.set(path, handle)
      return handle
    }

    const writeAll = (fd: number, chunk: Uint8Array): void => {
      let offset = 0
      while (offset < chunk.byteLength) {
        offset += fs.writeSync(fd, chunk, offset, chunk.byteLength - offset)
      }
    }

    const writeChunks = (fd: number, chunks: ReadonlyArray<Uint8Array>): void => {
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

    /** Writes the chunks collected for the touched handles, one write (or writev) per key. */
    const writeTouched = (at: { key: string | undefined }): void => {
      for (const handle of touched) {
        at.key = handle.path
        const chunks = handle.chunks
        if (chunks.length === 1) writeAll(handle.fd, chunks[0]!)
        else writeChunks(handle.fd, chunks)
        if (fsync) fs.fsyncSync(handle.fd)
        chunks.length = 0
      }
      touched.length = 0
      stamp++
    }

    /** Whether some proper prefix of `relative` is a key's file (so `relative` cannot exist). */
    const underKeyFile = (relative: string): boolean => {
      let at = relative.indexOf("/")
      while (at >= 0) {
        try {
          const stats = fs.statSync(rootPrefix + relative.slice(0, at))
          if (stats.isFile()) return true
          if (!stats.isDirectory()) return false
        } catch {
          return false
        }
        at = relative.indexOf("/", at + 1)
      }
      return false
    }

    /** Reads `size` bytes of an open file into a fresh array. */
    const readAll = (fd: number, size: number): Uint8Array => {
      if (size === 0) return new Uint8Array(0)
      const buffer = Buffer.allocUnsafeSlow(size)
      let offset = 0
      while (offset < size) {
        const n = fs.readSync(fd, buffer, offset, size - offset, offset)
        if (n === 0) break
        offset += n
      }
      return new Uint8Array(buffer.buffer, buffer.byteOffset, offset)
    }

    /** Opens `full` for reading; `undefined` when it does not exist. */
    const openToRead = (full: string): number | undefined => {
      try {
        return fs.openSync(full, READ_FLAGS)
      } catch (error) {
        if (codeOf(error) === "ENOENT") return undefined
        throw error
      }
    }

    /** Reads a key's file; a file that does not exist reads as empty bytes. */
    const readKey = (path: Key.Path, relative: string): Uint8Array => {
      const cached = handles.get(path)
      if (cached !== undefined) return readAll(cached.fd, fs.fstatSync(cached.fd).size)
      const full = rootPrefix + relative
      let fd: number | undefined
      try {
        fd = openToRead(full)
      } catch (error) {
        if (codeOf(error) === "ENOTDIR" && underKeyFile(relative)) return new Uint8Array(0)
        throw error
      }
      if (fd === undefined) return new Uint8Array(0)
      try {
        let stats = fs.fstatSync(fd)
        if (stats.isDirectory()) {
          // Longer keys live under this one: its own bytes, if any, are in LEAF.
          fs.closeSync(fd)
          fd = openToRead(`${full}/${FileName.LEAF}`)
          if (fd === undefined) return new Uint8Array(0)
          stats = fs.fstatSync(fd)
          if (stats.isDirectory()) {
            throw Object.assign(
              new Error(`EISDIR: illegal operation on a directory, read '${full}/${FileName.LEAF}'`),
              {
                code: "EISDIR",
                path: `${full}/${FileName.LEAF}`
              }
            )
          }
        }
        return readAll(fd, stats.size)
      } finally {
        if (fd !== undefined) fs.closeSync(fd)
      }
    }

    /** Removes a key's file; a file that does not exist is fine. */
    const removeKey = (relative: string): void => {
      const full = rootPrefix + relative
      try {
        fs.unlinkSync(full)
        return
      } catch (error) {
        const code = codeOf(error)
        if (code === "ENOENT") return
        if (code === "ENOTDIR" && underKeyFile(relative)) return
        // Linux says EISDIR for a directory, POSIX allows EPERM.
        if (code !== "EISDIR" && code !== "EPERM") throw error
        if (code === "EPERM" && !fs.statSync(full).isDirectory()) throw error
      }
      try {
        fs.unlinkSync(`${full}/${FileName.LEAF}`)
      } catch (error) {
        if (codeOf(error) !== "ENOENT") throw error
      }
    }

    /**
     * Runs a call's synchronous `body` holding the directory's lock, in one
     * stretch of JavaScript: no other fiber of this process runs meanwhile,
     * and no other process holds the lock. The body sets `at.key` to the key
     * it works on, so that a failing system call's error names it.
     */
    const locked = <A>(
      method: string,
      body: (at: { key: string | undefined }) => A
    ): Effect.Effect<A, Store.StoreError> => {
      const attempt = (retry: number): Effect.Effect<A, Store.StoreError> => {
        const at: { key: string | undefined } = { key: undefined }
        let acquired: boolean
        try {
          acquired = lock.tryAcquire()
        } catch (cause) {
          return Effect.fail(ioError(method, undefined, cause))
        }
        if (!acquired) {
          const delay = retryDelays[Math.min(retry, retryDelays.length - 1)]!
          return Effect.flatMap(Effect.sleep(delay), () => attempt(retry + 1))
        }
        try {
          if (lock.stale()) closeAll()
          return Effect.succeed(body(at))
        } catch (error) {
          if (error instanceof Failure) return Effect.fail(error.error)
          return Effect.fail(ioError(method, at.key, error))
        } finally {
          try {
            lock.release()
          } catch {
            // Closing the lock file releases the lock anyway; the call's outcome stands.
          }
        }
      }
      return Effect.suspend(() => attempt(0))
    }

    const backend: Store.Backend = {
      append: (paths, values) =>
        locked("append", (at) => {
          // Name every new key before writing anything, so a bad key writes nothing.
          for (let i = 0; i < paths.length; i++) {
            if (!handles.has(paths[i]!)) nameOf("append", paths[i]!)
          }
          // Collect each key's chunks in call order, then write each key once.
          stamp++
          try {
            for (let i = 0; i < paths.length; i++) {
              const path = paths[i]!
              let handle = handles.get(path)
              if (handle === undefined) {
                at.key = path
                // Eviction closes handles: write what is pending first.
                if (handles.size >= maxOpenFiles) writeTouched(at)
                handle = handleOf(path, nameOf("append", path))
              }
              if (handle.stamp !== stamp) {
                handle.stamp = stamp
                touched.push(handle)
              }
              handle.chunks.push(values[i]!)
            }
            writeTouched(at)
          } finally {
            for (const handle of touched) handle.chunks.length = 0
            touched.length = 0
          }
        }),
      get: (paths) =>
        locked("get", (at) => {
          const relatives = paths.map((path) => (handles.has(path) ? "" : nameOf("get", path)))
          return paths.map((path, i) => {
            at.key = path
            return readKey(path, relatives[i]!)
          })
        }),
      iset: (path, value) =>
        locked("iset", (at) => {
          const relative = nameOf("iset", path)
          at.key = path
          const { fd } = handleOf(path, relative)
          fs.ftruncateSync(fd, 0)
          writeAll(fd, value)
          if (fsync) fs.fsyncSync(fd)
        }),
      delete: (paths) =>
        locked("delete", (at) => {
          const relatives = paths.map((path) => nameOf("delete", path))
          lock.bump()
          for (let i = 0; i < paths.length; i++) {
            at.key = paths[i]!
            forget(paths[i]!)
            removeKey(relatives[i]!)
          }
        }),
      drop: locked("drop", () => {
        lock.bump()
        closeAll()
        for (const name of fs.readdirSync(root)) {
          if (name !== FileName.LOCK) fs.rmSync(rootPrefix + name, { recursive: true, force: true, maxRetries: 3 })
        }
      })
    }
    return yield* Store.make(backend)
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
