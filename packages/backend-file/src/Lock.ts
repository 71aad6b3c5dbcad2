/**
 * The store directory's lock: exclusion between the processes that use one
 * File store, the stamp that tells them when cached file handles went stale,
 * and the state file where a running append keeps its intent record.
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
 * {@link run}), never across an `await`, so the fibers of one process never
 * need to exclude each other: the event loop already does.
 *
 * The state file (`FileName.STATE`) is separate from `.lock` because
 * `locket` opens `.lock` with `"wb"`, truncating it on every acquire. It
 * holds, from offset 0, the *generation* (8 bytes) and the intent record
 * (see `Intent`). A process keeps append handles open (see `File`); when
 * another process deletes a key, replaces its file (`iset`) or drops the
 * store, those handles point at unlinked files, and appending through them
 * would lose the bytes. Whoever does writes fresh random bytes over the
 * generation; everyone reads the
 * head of the state file (generation and intent header, one pread) under
 * the lock at the start of every call and closes its cached handles when the
 * generation changed. Python partd deletes the whole directory on `drop`,
 * lock file included, so the identity (device, inode) of `.lock` is compared
 * too. The state file is given a few KiB when the lock first takes it, and is
 * only ever overwritten in place afterwards: a delete's stamp and the end of
 * an append's record need no new disk blocks, so they work on a full disk.
 *
 * @since 0.1.0
 */
import { randomFillSync } from "node:crypto"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { Store } from "@partd/core"
import { Effect } from "effect"
import { flockSync } from "fs-ext-extra-prebuilt"
import * as FileName from "./FileName.ts"

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
  /**
   * The state file's bytes from {@link HEAD_BYTES} on, as read when the lock
   * was taken (the intent header). Valid while the lock is held.
   */
  readonly head: () => Uint8Array
  /** Reads `length` bytes of the state file at `position`. Call it holding the lock. */
  readonly readState: (position: number, length: number) => Uint8Array
  /** Writes `bytes` into the state file at `position`, all of them or throws. Call it holding the lock. */
  readonly writeState: (position: number, bytes: Uint8Array) => void
  /** fsync(2)s the state file. */
  readonly syncState: () => void
  readonly close: () => void
}

const GENERATION_BYTES = 8

/**
 * Where in the state file the bytes after the generation start.
 *
 * @since 0.1.0
 * @category constants
 */
export const HEAD_BYTES = GENERATION_BYTES

/** How many bytes of the state file every call reads: the generation and the intent header. */
const READ_BYTES = GENERATION_BYTES + 16

/** The size the state file is given once, so that later writes into it need no new blocks. */
const STATE_RESERVE = 4096

const { O_RDWR, O_CREAT } = fs.constants

/**
 * Opens (creating them if needed) the lock file `lockPath` and the state
 * file beside it. Throws the system error when it cannot.
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = (lockPath: string): Lock => {
  const statePath = nodePath.join(nodePath.dirname(lockPath), FileName.STATE)
  let fd = fs.openSync(lockPath, O_RDWR | O_CREAT, 0o666)
  let identity = fs.fstatSync(fd)
  let state = fs.openSync(statePath, O_RDWR | O_CREAT, 0o666)
  let reserved = false
  const read = Buffer.alloc(READ_BYTES)
  let readLength = 0
  const seen = Buffer.alloc(GENERATION_BYTES)
  let seenLength = -1
  let replaced = false

  /** Reopens both files when the lock file at its path is not the one we hold. */
  const reopenIfReplaced = (): boolean => {
    let onDisk: fs.Stats | undefined
    try {
      onDisk = fs.statSync(lockPath)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
    }
    if (onDisk !== undefined && onDisk.ino === identity.ino && onDisk.dev === identity.dev) return false
    const next = fs.openSync(lockPath, O_RDWR | O_CREAT, 0o666)
    fs.closeSync(fd)
    fd = next
    identity = fs.fstatSync(fd)
    const nextState = fs.openSync(statePath, O_RDWR | O_CREAT, 0o666)
    fs.closeSync(state)
    state = nextState
    reserved = false
    // Every key file we had open is gone with the old directory.
    replaced = true
    return true
  }

  /** Gives the state file its reserve, zeros past its end only (best effort: a full disk leaves it short). */
  const reserve = (): void => {
    reserved = true
    const size = fs.fstatSync(state).size
    if (size >= STATE_RESERVE) return
    try {
      fs.writeSync(state, Buffer.alloc(STATE_RESERVE - size), 0, STATE_RESERVE - size, size)
    } catch {
      // Writes into the state file then need new blocks, and fail with the disk full.
    }
  }

  const writeState = (position: number, bytes: Uint8Array): void => {
    let offset = 0
    while (offset < bytes.byteLength) {
      offset += fs.writeSync(state, bytes, offset, bytes.byteLength - offset, position + offset)
    }
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
        if (reopenIfReplaced()) continue
        if (!reserved) reserve()
        readLength = fs.readSync(state, read, 0, READ_BYTES, 0)
        if (readLength < READ_BYTES) read.fill(0, readLength)
        return true
      }
    },
    release: () => {
      flockSync(fd, "un")
    },
    stale: () => {
      const length = Math.min(readLength, GENERATION_BYTES)
      if (replaced) {
        replaced = false
        read.copy(seen, 0, 0, GENERATION_BYTES)
        seenLength = length
        return true
      }
      if (length === seenLength && read.compare(seen, 0, GENERATION_BYTES, 0, GENERATION_BYTES) === 0) return false
      const first = seenLength === -1
      read.copy(seen, 0, 0, GENERATION_BYTES)
      seenLength = length
      return !first
    },
    bump: () => {
      randomFillSync(seen)
      writeState(0, seen)
      seenLength = GENERATION_BYTES
    },
    head: () => read.subarray(HEAD_BYTES),
    readState: (position, length) => {
      const out = Buffer.alloc(length)
      const n = fs.readSync(state, out, 0, length, position)
      return out.subarray(0, n)
    },
    writeState,
    syncState: () => fs.fsyncSync(state),
    close: () => {
      fs.closeSync(state)
      fs.closeSync(fd)
    }
  }
}

/**
 * Where a locked call's body is working: the key a failing system call's
 * error names.
 *
 * @since 0.1.0
 * @category models
 */
export interface At {
  key: string | undefined
}

/** Tries the body once when it cannot take the lock; the next try waits this long. */
const retryDelays = [1, 2, 4, 8, 16] as const

/**
 * Runs a call's synchronous `body` holding the lock, in one stretch of
 * JavaScript: no other fiber of this process runs meanwhile, and no other
 * process holds the lock. When another process holds it, polls for it
 * (1 ms, doubling up to 16 ms) without blocking the event loop. A
 * `StoreError` the body throws is the call's failure; anything else thrown
 * is an `Io` error naming the key the body set in `at`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const run = <A>(lock: Lock, method: string, body: (at: At) => A): Effect.Effect<A, Store.StoreError> => {
  const attempt = (retry: number): Effect.Effect<A, Store.StoreError> => {
    const at: At = { key: undefined }
    let acquired: boolean
    try {
      acquired = lock.tryAcquire()
    } catch (cause) {
      return Effect.fail(Store.ioError(method, cause))
    }
    if (!acquired) {
      const delay = retryDelays[Math.min(retry, retryDelays.length - 1)]!
      return Effect.flatMap(Effect.sleep(delay), () => attempt(retry + 1))
    }
    try {
      return Effect.succeed(body(at))
    } catch (error) {
      if (error instanceof Store.StoreError) return Effect.fail(error)
      return Effect.fail(Store.ioError(method, error, at.key))
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
