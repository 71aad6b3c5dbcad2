/**
 * Calls: the File store's durable memory of append call ids, shared by every
 * process that uses the directory.
 *
 * An append given an id (`Store.AppendOptions.id`) is applied at most once:
 * a call whose id this directory has recorded succeeds without writing. The
 * ids live in the file `FileName.CALLS`, a ring of {@link CAPACITY} slots of
 * 32 bytes (2 MiB at most), so the window is the last 65,536 ids recorded in
 * the directory by any process. A slot holds the call's sequence number, the
 * first 16 bytes of the SHA-256 of its id, and a checksum; slot `seq mod
 * CAPACITY` holds call `seq`, and sequence numbers are consecutive, so a
 * process catches up with what others recorded by reading the slots after the
 * last one it knows, under the lock, when it is handed an id.
 *
 * Recording is the step that commits the call: an append with an id puts the
 * id's sequence number and hash in its intent record (see `Intent`), writes
 * every key's bytes, then writes the id's slot, then marks the record
 * finished. A process killed before the slot is written leaves a record that
 * the next lock holder undoes (the call is unapplied and its id unrecorded,
 * so a retry applies it); killed after, the next lock holder finds the slot
 * holding the record's call and keeps the bytes (the call is applied and its
 * id recorded, so a retry is a repeat). A slot torn by the kill fails its
 * checksum and counts as not written.
 *
 * `drop` keeps the file: ids are per call, so a call repeated after a drop
 * is still a repeat. Python partd's `drop` removes the whole directory, and
 * with it the ids (see {@link Calls.refresh}).
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"

/**
 * How many call ids a directory remembers: the most recent ones.
 *
 * @since 0.1.0
 * @category constants
 */
export const CAPACITY = 65536

const SLOT_BYTES = 32
const MAGIC = 0x31434450 // "PDC1" little-endian
/** How many slots one catch-up read takes. */
const READ_SLOTS = 64

/**
 * A call about to be recorded: its sequence number and its id's hash.
 *
 * @since 0.1.0
 * @category models
 */
export interface Call {
  readonly seq: number
  /** The first 16 bytes of the SHA-256 of the id's UTF-8. */
  readonly hash: Uint8Array
}

/**
 * The ids of one directory. Every method is synchronous and is called
 * holding the store's lock; they throw system errors as they come.
 *
 * @since 0.1.0
 * @category models
 */
export interface Calls {
  /**
   * Catches up with the ids other processes recorded; the call to record for
   * `id`, or `undefined` when the id was recorded already (the call is a
   * repeat: apply nothing).
   */
  readonly prepare: (id: string) => Call | undefined
  /**
   * Writes the call's slot (and fsyncs it when the store does): from here on
   * the call counts as applied. Throws, leaving the call unrecorded, when it
   * cannot.
   */
  readonly commit: (call: Call) => void
  /** Whether the slot of `seq` holds the call `seq` with `hash` (a dead call got as far as recording). */
  readonly committed: (seq: number, hash: Uint8Array) => boolean
  /** Forgets what it knows if the file was removed or replaced under it (Python's `drop`). */
  readonly refresh: () => void
  readonly close: () => void
}

/** FNV-1a over `bytes[0, length)`. */
const checksum = (bytes: Uint8Array, length: number): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < length; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193)
  return hash >>> 0
}

const hashOf = (id: string): Uint8Array => createHash("sha256").update(id, "utf8").digest().subarray(0, 16)

const hexOf = (hash: Uint8Array): string => Buffer.from(hash.buffer, hash.byteOffset, 16).toString("hex")

/** The slot's call, or `undefined` when it holds none (never written, torn). */
const parseSlot = (view: Buffer, at: number): { seq: number; hex: string } | undefined => {
  if (view.readUInt32LE(at + 28) !== MAGIC) return undefined
  if (checksum(view.subarray(at, at + 24), 24) !== view.readUInt32LE(at + 24)) return undefined
  const seq = view.readDoubleLE(at)
  if (!Number.isSafeInteger(seq) || seq < 1) return undefined
  return { seq, hex: view.toString("hex", at + 8, at + 24) }
}

/**
 * The ids recorded in the file at `path` (created on the first commit).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (path: string, fsync: boolean): Calls => {
  let fd = -1
  let identity: { readonly ino: number; readonly dev: number } | undefined
  // Which id's hash (hex) each slot holds, and each remembered hash's sequence number.
  let bySlot: Array<string | undefined> = []
  let seqOf = new Map<string, number>()
  /** The sequence number the next recorded call gets; 0 until the file is loaded. */
  let next = 0
  const slot = Buffer.alloc(SLOT_BYTES)
  const batch = Buffer.alloc(SLOT_BYTES * READ_SLOTS)

  const forget = (): void => {
    if (fd >= 0) fs.closeSync(fd)
    fd = -1
    identity = undefined
    bySlot = []
    seqOf = new Map()
    next = 0
  }

  /** Opens the file if it exists (or `create`); whether it is open. */
  const open = (create: boolean): boolean => {
    if (fd >= 0) return true
    try {
      fd = fs.openSync(path, create ? fs.constants.O_RDWR | fs.constants.O_CREAT : fs.constants.O_RDWR, 0o666)
    } catch (error) {
      if (!create && (error as NodeJS.ErrnoException).code === "ENOENT") return false
      throw error
    }
    const stats = fs.fstatSync(fd)
    identity = { ino: stats.ino, dev: stats.dev }
    return true
  }

  const remember = (seq: number, hex: string): void => {
    const index = seq % CAPACITY
    const old = bySlot[index]
    if (old !== undefined && seqOf.get(old) === seq - CAPACITY) seqOf.delete(old)
    bySlot[index] = hex
    seqOf.set(hex, seq)
    if (seq >= next) next = seq + 1
  }

  /** Reads every slot of the file: what a process knows when it first meets an id, or after falling behind. */
  const load = (): void => {
    bySlot = []
    seqOf = new Map()
    next = 1
    if (!open(false)) return
    const size = Math.min(fs.fstatSync(fd).size, CAPACITY * SLOT_BYTES)
    const all = Buffer.allocUnsafe(size)
    let read = 0
    while (read < size) {
      const n = fs.readSync(fd, all, read, size - read, read)
      if (n === 0) break
      read += n
    }
    const calls: Array<{ seq: number; hex: string }> = []
    for (let at = 0; at + SLOT_BYTES <= read; at += SLOT_BYTES) {
      const call = parseSlot(all, at)
      if (call !== undefined) calls.push(call)
    }
    calls.sort((a, b) => a.seq - b.seq)
    for (const call of calls) remember(call.seq, call.hex)
  }

  /** Reads the slots after the last known one while they hold the next calls. */
  const catchUp = (): void => {
    if (next === 0) {
      load()
      return
    }
    if (!open(false)) return
    for (;;) {
      const first = next % CAPACITY
      const count = Math.min(READ_SLOTS, CAPACITY - first)
      const n = fs.readSync(fd, batch, 0, count * SLOT_BYTES, first * SLOT_BYTES)
      for (let at = 0; at + SLOT_BYTES <= n; at += SLOT_BYTES) {
        const call = parseSlot(batch, at)
        if (call === undefined || call.seq < next) return
        // Others recorded a whole ring's worth since we last looked.
        if (call.seq > next) {
          load()
          return
        }
        remember(call.seq, call.hex)
      }
      if (n < count * SLOT_BYTES) return
    }
  }

  const writeSlot = (bytes: Buffer, seq: number): void => {
    const position = (seq % CAPACITY) * SLOT_BYTES
    let offset = 0
    while (offset < SLOT_BYTES) offset += fs.writeSync(fd, bytes, offset, SLOT_BYTES - offset, position + offset)
  }

  return {
    prepare: (id) => {
      catchUp()
      const hash = hashOf(id)
      return seqOf.has(hexOf(hash)) ? undefined : { seq: next, hash }
    },
    commit: (call) => {
      open(true)
      slot.writeDoubleLE(call.seq, 0)
      slot.set(call.hash, 8)
      slot.writeUInt32LE(checksum(slot, 24), 24)
      slot.writeUInt32LE(MAGIC, 28)
      writeSlot(slot, call.seq)
      if (fsync) {
        try {
          fs.fsyncSync(fd)
        } catch (error) {
          // The call fails and is undone: its slot must not say it applied.
          try {
            writeSlot(Buffer.alloc(SLOT_BYTES), call.seq)
          } catch {
            // Nothing more to do: the error below fails the call.
          }
          throw error
        }
      }
      remember(call.seq, hexOf(call.hash))
    },
    committed: (seq, hash) => {
      if (!open(false)) return false
      const n = fs.readSync(fd, slot, 0, SLOT_BYTES, (seq % CAPACITY) * SLOT_BYTES)
      if (n < SLOT_BYTES) return false
      const call = parseSlot(slot, 0)
      return call !== undefined && call.seq === seq && call.hex === hexOf(hash)
    },
    refresh: () => {
      if (identity === undefined) {
        if (next !== 0) forget()
        return
      }
      const onDisk = fs.statSync(path, { throwIfNoEntry: false })
      if (onDisk === undefined || onDisk.ino !== identity.ino || onDisk.dev !== identity.dev) forget()
    },
    close: () => {
      if (fd >= 0) fs.closeSync(fd)
      fd = -1
    }
  }
}
