/**
 * The store directory's lock: exclusion between the processes that use one
 * File store, and the stamp that tells them when cached file handles went
 * stale.
 *
 * The lock is `flock(2)` on the file `.lock` in the store's directory, the
 * same file and the same kind of lock that Python partd takes (through
 * `locket`) around every operation, so a TypeScript and a Python process can
 * even share a store while both run. `flock` locks belong to the open file
 * description and are released by the kernel when the process dies, so a
 * crash never leaves a stale lock behind (unlike lock files created with
 * `O_EXCL` or lock directories).
 *
 * Why a lock at all, when appends use `O_APPEND`: on Linux an `O_APPEND`
 * write(2) holds the inode lock for the whole write, so concurrent appenders
 * never interleave within one write and never overwrite each other. But a
 * reader does not take that lock: a buffered write grows the file page by
 * page, so a concurrent `get` can see the first pages of an append and not
 * the rest. And a write can be short (a full disk), after which the rest of
 * the chunk would be a second write that another process can come between.
 * Holding the exclusive lock over every operation rules out both: a `get`
 * sees whole appends only, and one append's bytes are contiguous.
 *
 * The lock is only ever held for one synchronous stretch of JavaScript (see
 * `File`), never across an `await`, so the fibers of one process never need
 * to exclude each other: the event loop already does.
 *
 * The stamp: a process keeps append handles open (see `File`); when another
 * process deletes a key or drops the store, those handles point at unlinked
 * files, and appending through them would lose the bytes. Whoever deletes
 * writes fresh random bytes at the start of `.lock` (the *generation*);
 * everyone compares it, under the lock, at the start of every call and closes
 * its cached handles when it changed. Python partd deletes the whole
 * directory on `drop`, lock file included, so the identity (device, inode) of
 * `.lock` is compared too.
 *
 * @since 0.1.0
 */
import { randomFillSync } from "node:crypto"
import * as fs from "node:fs"
import { flockSync } from "fs-ext-extra-prebuilt"

/**
 * @since 0.1.0
 * @category models
 */
export interface Lock {
  /** Takes the lock if no other process holds it; `false` when one does. */
  readonly tryAcquire: () => boolean
  readonly release: () => void
  /**
   * Whether cached handles must be dropped since the last call: another
   * process deleted keys or dropped the store. Call it holding the lock.
   */
  readonly stale: () => boolean
  /** Tells the other processes that keys were deleted. Call it holding the lock. */
  readonly bump: () => void
  readonly close: () => void
}

const GENERATION_BYTES = 8

/**
 * Opens (creating it if needed) the lock file `lockPath`. Throws the system
 * error when it cannot.
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = (lockPath: string): Lock => {
  let fd = fs.openSync(lockPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o666)
  let identity = fs.fstatSync(fd)
  const seen = Buffer.alloc(GENERATION_BYTES)
  const current = Buffer.alloc(GENERATION_BYTES)
  let seenLength = -1
  let replaced = false

  const readGeneration = (): number => fs.readSync(fd, current, 0, GENERATION_BYTES, 0)

  /** Reopens `.lock` when the file at its path is not the one we hold. */
  const reopenIfReplaced = (): boolean => {
    let onDisk: fs.Stats | undefined
    try {
      onDisk = fs.statSync(lockPath)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
    }
    if (onDisk !== undefined && onDisk.ino === identity.ino && onDisk.dev === identity.dev) return false
    const next = fs.openSync(lockPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o666)
    fs.closeSync(fd)
    fd = next
    identity = fs.fstatSync(fd)
    // Every key file we had open is gone with the old directory.
    replaced = true
    return true
  }

  return {
    tryAcquire: () => {
      for (;;) {
        try {
          flockSync(fd, "exnb")
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "EAGAIN") return false
          throw error
        }
        // The lock we hold is only worth something if it is on the file that
        // others open now (Python's drop deletes and recreates the directory).
        if (!reopenIfReplaced()) return true
      }
    },
    release: () => {
      flockSync(fd, "un")
    },
    stale: () => {
      const length = readGeneration()
      if (replaced) {
        replaced = false
        current.copy(seen)
        seenLength = length
        return true
      }
      if (length === seenLength && current.equals(seen)) return false
      const first = seenLength === -1
      current.copy(seen)
      seenLength = length
      return !first
    },
    bump: () => {
      randomFillSync(seen)
      fs.writeSync(fd, seen, 0, GENERATION_BYTES, 0)
      seenLength = GENERATION_BYTES
    },
    close: () => {
      fs.closeSync(fd)
    }
  }
}
