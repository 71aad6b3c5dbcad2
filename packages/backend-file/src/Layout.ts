/**
 * Layout: the File store's directory operations, key by key — naming a key's
 * file, opening it for appending (creating its directories) or for reading,
 * reading, measuring, truncating and removing it.
 *
 * A key's file is `FileName.toRelative(path)` under the store's directory.
 * A key that is also the parent of longer keys is a directory, and its own
 * bytes live in `FileName.LEAF` inside it; every operation here resolves
 * that, so the rest of the store only ever deals with relative names. All of
 * it is synchronous and throws system errors as they come: the caller runs
 * it under the store's lock and turns what is thrown into a `StoreError`
 * (see `Lock.run`). A key that cannot be named throws a `BadKey`
 * `StoreError`, before anything is written.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import { type Key, Store } from "@partd/core"
import { constants as extConstants, seekSync } from "fs-ext-extra-prebuilt"
import * as FileName from "./FileName.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface Layout {
  /** The store's directory, absolute. */
  readonly root: string
  /** The relative file name of a key; throws a `BadKey` `StoreError` when it has none. */
  readonly nameOf: (method: string, path: Key.Path) => string
  /** Opens a key's file for appending, creating it and its directories; returns the descriptor. */
  readonly openForAppend: (relative: string) => number
  /** A key's bytes; a key whose file does not exist reads as empty bytes. */
  readonly read: (relative: string) => Uint8Array
  /**
   * Opens a key's file for reading: the descriptor (the caller closes it)
   * and the file's size, or `undefined` when the key has no file.
   */
  readonly openRead: (relative: string) => { readonly fd: number; readonly size: number } | undefined
  /** A key's length, or `undefined` when it has no regular file. */
  readonly sizeOf: (relative: string) => number | undefined
  /**
   * Sets a key's bytes to `value`, all or nothing: written to a file beside
   * it, then renamed over it. The key's file is a new one afterwards: close
   * every handle to the old one.
   */
  readonly replace: (relative: string, value: Uint8Array, fsync: boolean) => void
  /** Cuts a key's file back to `length` bytes. */
  readonly truncate: (relative: string, length: number) => void
  /** Removes a key's file; a file that does not exist is fine. */
  readonly remove: (relative: string) => void
  /** Removes every key: everything in the directory but the lock's files and the call ids. */
  readonly removeAll: () => void
}

// libuv opens every file with O_CLOEXEC, so child processes never inherit a handle.
const { O_RDONLY, O_RDWR, O_WRONLY, O_APPEND, O_CREAT, O_TRUNC } = fs.constants
const APPEND_FLAGS = O_RDWR | O_APPEND | O_CREAT
const SEEK_END = extConstants.SEEK_END

/** The most relative names remembered; past it the memo starts afresh. */
const MAX_NAMES = 65536

/** A system error's code, or undefined for anything else. */
const codeOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null ? (error as NodeJS.ErrnoException).code : undefined

const systemError = (code: string, what: string, path: string): Error =>
  Object.assign(new Error(`${code}: ${what}, '${path}'`), { code, path })

/**
 * Reads `size` bytes of an open file into a fresh array.
 *
 * @since 0.1.0
 * @category reading
 */
export const readAll = (fd: number, size: number): Uint8Array => {
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

/**
 * The length of an open file: lseek(2) to its end, a third of what fstat(2)
 * costs through Node. Only for descriptors whose offset nothing relies on
 * (`O_APPEND` handles, positional reads).
 *
 * @since 0.1.0
 * @category reading
 */
export const lengthOf = (fd: number): number => seekSync(fd, 0, SEEK_END)

/** Opens `full` for reading; `undefined` when it does not exist. */
const openToRead = (full: string): number | undefined => {
  try {
    return fs.openSync(full, O_RDONLY)
  } catch (error) {
    if (codeOf(error) === "ENOENT") return undefined
    throw error
  }
}

/** The store's directory, and its path with a trailing slash. */
interface Dir {
  readonly root: string
  readonly rootPrefix: string
}

/**
 * Moves the value of the key whose file is `full` into `full/%self`, so
 * that `full` can become a directory for longer keys. Three steps under
 * the lock; open handles follow the file (they name the inode, not the
 * path). A process killed between them leaves the bytes in `full%moving`,
 * a name no key maps to, where they can be recovered by hand.
 */
const makeRoomForDirectory = (full: string): void => {
  const moving = `${full}%moving`
  fs.renameSync(full, moving)
  fs.mkdirSync(full)
  fs.renameSync(moving, `${full}/${FileName.LEAF}`)
}

/** Creates the directories of `relative`'s parent, moving key files out of their way. */
const makeParents = (dir: Dir, relative: string): void => {
  const slash = relative.lastIndexOf("/")
  if (slash < 0) {
    // The store's directory itself is gone (deleted under us): recreate it.
    fs.mkdirSync(dir.root, { recursive: true })
    return
  }
  try {
    fs.mkdirSync(dir.rootPrefix + relative.slice(0, slash), { recursive: true })
    return
  } catch (error) {
    const code = codeOf(error)
    if (code !== "ENOTDIR" && code !== "EEXIST") throw error
  }
  // Some ancestor is a key's file: walk down and move each one aside.
  for (let at = relative.indexOf("/"); at >= 0; at = relative.indexOf("/", at + 1)) {
    const full = dir.rootPrefix + relative.slice(0, at)
    let stats: fs.Stats | undefined
    try {
      stats = fs.statSync(full)
    } catch (error) {
      if (codeOf(error) !== "ENOENT") throw error
    }
    if (stats === undefined) fs.mkdirSync(full)
    else if (stats.isFile()) makeRoomForDirectory(full)
    else if (!stats.isDirectory()) throw systemError("ENOTDIR", "not a directory", full)
  }
}

const openForAppend = (dir: Dir, relative: string): number => {
  const full = dir.rootPrefix + relative
  for (let attempt = 0; ; attempt++) {
    try {
      return fs.openSync(full, APPEND_FLAGS, 0o666)
    } catch (error) {
      const code = codeOf(error)
      if (code === "EISDIR") return fs.openSync(`${full}/${FileName.LEAF}`, APPEND_FLAGS, 0o666)
      if ((code === "ENOENT" || code === "ENOTDIR") && attempt === 0) makeParents(dir, relative)
      else throw error
    }
  }
}

/** Whether some proper prefix of `relative` is a key's file (so `relative` cannot exist). */
const underKeyFile = (dir: Dir, relative: string): boolean => {
  for (let at = relative.indexOf("/"); at >= 0; at = relative.indexOf("/", at + 1)) {
    try {
      const stats = fs.statSync(dir.rootPrefix + relative.slice(0, at))
      if (stats.isFile()) return true
      if (!stats.isDirectory()) return false
    } catch {
      return false
    }
  }
  return false
}

/**
 * Opens a key's file for reading, following a directory to its LEAF:
 * the descriptor and the file's size, or `undefined` when the key has no file.
 */
const openKey = (dir: Dir, relative: string): { readonly fd: number; readonly size: number } | undefined => {
  const full = dir.rootPrefix + relative
  let fd: number | undefined
  try {
    fd = openToRead(full)
  } catch (error) {
    if (codeOf(error) === "ENOTDIR" && underKeyFile(dir, relative)) return undefined
    throw error
  }
  if (fd === undefined) return undefined
  let stats = fs.fstatSync(fd)
  if (stats.isDirectory()) {
    // Longer keys live under this one: its own bytes, if any, are in LEAF.
    fs.closeSync(fd)
    fd = openToRead(`${full}/${FileName.LEAF}`)
    if (fd === undefined) return undefined
    stats = fs.fstatSync(fd)
    if (stats.isDirectory()) {
      fs.closeSync(fd)
      throw systemError("EISDIR", "illegal operation on a directory, read", `${full}/${FileName.LEAF}`)
    }
  }
  return { fd, size: stats.size }
}

const read = (dir: Dir, relative: string): Uint8Array => {
  const opened = openKey(dir, relative)
  if (opened === undefined) return new Uint8Array(0)
  try {
    return readAll(opened.fd, opened.size)
  } finally {
    fs.closeSync(opened.fd)
  }
}

/** The path of a key's regular file, or `undefined` when it has none. */
const fileOf = (dir: Dir, relative: string): string | undefined => {
  const full = dir.rootPrefix + relative
  for (const candidate of [full, `${full}/${FileName.LEAF}`]) {
    const stats = fs.statSync(candidate, { throwIfNoEntry: false })
    if (stats === undefined) return undefined
    if (stats.isFile()) return candidate
    if (!stats.isDirectory()) return undefined
  }
  return undefined
}

const sizeOf = (dir: Dir, relative: string): number | undefined => {
  try {
    const file = fileOf(dir, relative)
    return file === undefined ? undefined : fs.statSync(file).size
  } catch (error) {
    if (codeOf(error) === "ENOTDIR") return undefined
    throw error
  }
}

/** The suffix of the file a new value is written to before it replaces a key's file: no key's name ends so. */
const REPLACING = "%iset"

const writeAll = (fd: number, bytes: Uint8Array): void => {
  let offset = 0
  while (offset < bytes.byteLength) offset += fs.writeSync(fd, bytes, offset, bytes.byteLength - offset)
}

const replace = (dir: Dir, relative: string, value: Uint8Array, fsync: boolean): void => {
  // Makes sure the key's file and its directories exist, then finds where its bytes live.
  fs.closeSync(openForAppend(dir, relative))
  const file = fileOf(dir, relative)
  if (file === undefined) {
    // Not a regular file (a device): write in place, as there is nothing to rename over.
    const fd = openForAppend(dir, relative)
    try {
      writeAll(fd, value)
    } finally {
      fs.closeSync(fd)
    }
    return
  }
  const next = file + REPLACING
  const fd = fs.openSync(next, O_WRONLY | O_CREAT | O_TRUNC, 0o666)
  try {
    writeAll(fd, value)
    if (fsync) fs.fsyncSync(fd)
  } catch (error) {
    fs.closeSync(fd)
    fs.rmSync(next, { force: true })
    throw error
  }
  fs.closeSync(fd)
  fs.renameSync(next, file)
}

const truncate = (dir: Dir, relative: string, length: number): void => {
  const file = fileOf(dir, relative)
  if (file !== undefined) fs.truncateSync(file, length)
}

const remove = (dir: Dir, relative: string): void => {
  const full = dir.rootPrefix + relative
  try {
    fs.unlinkSync(full)
    return
  } catch (error) {
    const code = codeOf(error)
    if (code === "ENOENT") return
    if (code === "ENOTDIR" && underKeyFile(dir, relative)) return
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

const removeAll = (dir: Dir): void => {
  for (const name of fs.readdirSync(dir.root)) {
    if (name !== FileName.LOCK && name !== FileName.STATE && name !== FileName.CALLS) {
      fs.rmSync(dir.rootPrefix + name, { recursive: true, force: true, maxRetries: 3 })
    }
  }
}

/**
 * The layout of the directory `root` (absolute, existing).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (root: string): Layout => {
  const dir: Dir = { root, rootPrefix: `${root}/` }
  // The longest relative path a key may have, leaving room for "/%self".
  const maxRelative = FileName.PATH_MAX - 1 - Buffer.byteLength(dir.rootPrefix) - FileName.LEAF.length - 1
  // Relative file paths by key path, for keys seen recently.
  const names = new Map<Key.Path, string>()

  const nameOf = (method: string, path: Key.Path): string => {
    const cached = names.get(path)
    if (cached !== undefined) return cached
    const relative = FileName.toRelative(path)
    const problem =
      relative instanceof FileName.Unnameable
        ? relative.problem
        : relative.length > maxRelative
          ? `the key's file path would be over ${FileName.PATH_MAX} bytes`
          : undefined
    if (problem !== undefined) throw new Store.StoreError({ reason: "BadKey", method, key: path, description: problem })
    if (names.size >= MAX_NAMES) names.clear()
    names.set(path, relative as string)
    return relative as string
  }

  return {
    root,
    nameOf,
    openForAppend: (relative) => openForAppend(dir, relative),
    read: (relative) => read(dir, relative),
    openRead: (relative) => openKey(dir, relative),
    sizeOf: (relative) => sizeOf(dir, relative),
    replace: (relative, value, fsync) => replace(dir, relative, value, fsync),
    truncate: (relative, length) => truncate(dir, relative, length),
    remove: (relative) => remove(dir, relative),
    removeAll: () => removeAll(dir)
  }
}
