/**
 * Intent: the record that makes a File append all or nothing, also when the
 * process dies in the middle of it.
 *
 * Before an append writes any key's bytes, it writes an intent record into
 * the lock's state file (see `Lock`): every file it is about to write, the
 * file's length before the call, and how many bytes the call adds to it.
 * When the writes are done the record is marked finished (four bytes
 * overwritten in place). When a write fails (a full disk), the append cuts
 * every file back to its length before the call and then marks the record
 * finished, so the caller's error means the call left nothing behind. When
 * the process dies between the two, the record stays; whoever takes the lock
 * next (any call of any process using this store) finds it and cuts the
 * files back the same way before doing anything else, so no later reader or
 * writer ever sees a torn tail.
 *
 * A file is cut back only when its length is still within what the record
 * says the call could have written (`before ≤ length ≤ before + added`): a
 * file that grew further was appended to after the crash by a process that
 * does not read records (Python partd), and cutting it would lose those
 * bytes. The record carries a checksum: a record torn by the crash itself
 * was written before any key's bytes, so there is nothing to undo.
 *
 * An append with a call id (see `Calls`) records the call too, and the
 * call's slot in the ids file is what commits it: a dead call whose slot was
 * written had written every key's bytes, so recovery keeps them and only
 * marks the record finished.
 *
 * Layout, from `Lock.HEAD_BYTES` in the state file: a 16-byte header
 * (magic, file count, payload bytes, FNV-1a checksum of the payload), then
 * the payload: with the magic of a call, its sequence number (float64) and
 * id hash (16 bytes); two float64 per file (length before, bytes added);
 * then the files' relative names in UTF-8 separated by NUL (names never
 * contain NUL, see `FileName`).
 *
 * @since 0.1.0
 */
import type * as Calls from "./Calls.ts"
import type * as Layout from "./Layout.ts"
import * as Lock from "./Lock.ts"

const MAGIC = 0x31494450 // "PDI1" little-endian
/** The magic of a record that carries a call (see `Calls`). */
const MAGIC_CALL = 0x32494450 // "PDI2" little-endian
const HEADER_BYTES = 16
/** A call's part of the payload: its sequence number and id hash. */
const CALL_BYTES = 24

/** FNV-1a over `bytes`. */
const checksum = (bytes: Uint8Array): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < bytes.byteLength; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193)
  return hash >>> 0
}

/**
 * The records of one store, written through one reused buffer.
 *
 * @since 0.1.0
 * @category models
 */
export interface Writer {
  /**
   * Starts a record of `count` files whose relative names, NUL-separated, are
   * `names`; returns the array to fill before {@link Writer.commit}: for the
   * i-th file, `[2i]` its length before the call and `[2i + 1]` the bytes
   * the call adds to it. The array is valid until the next `begin`. With
   * `call`, the record names the call too (see `Calls`).
   */
  readonly begin: (count: number, names: Uint8Array, call?: Calls.Call) => Float64Array
  /** Writes the record begun last (and fsyncs it when `fsync`). Throws when it cannot. */
  readonly commit: () => void
  /** Marks the record finished: nothing is to be undone. */
  readonly clear: () => void
}

/**
 * NUL-separated UTF-8 names, for {@link Writer.begin}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const names = (relatives: ReadonlyArray<string>): Uint8Array => Buffer.from(relatives.join("\0"))

/**
 * The record writer of the store whose lock is `lock`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const writer = (lock: Lock.Lock, fsync: boolean): Writer => {
  let buffer = Buffer.allocUnsafeSlow(4096)
  let size = 0
  let lengths = new Float64Array(0)
  const done = new Uint8Array(4)
  return {
    begin: (count, nameBytes, call) => {
      const start = HEADER_BYTES + (call === undefined ? 0 : CALL_BYTES)
      size = start + 16 * count + nameBytes.byteLength
      if (buffer.byteLength < size) buffer = Buffer.allocUnsafeSlow(Math.max(size, buffer.byteLength * 2))
      buffer.writeUInt32LE(call === undefined ? MAGIC : MAGIC_CALL, 0)
      buffer.writeUInt32LE(count, 4)
      buffer.writeUInt32LE(size - HEADER_BYTES, 8)
      if (call !== undefined) {
        buffer.writeDoubleLE(call.seq, HEADER_BYTES)
        buffer.set(call.hash, HEADER_BYTES + 8)
      }
      buffer.set(nameBytes, start + 16 * count)
      // The buffer is its own ArrayBuffer from offset 0, so `start` (16 or 40) keeps float64 alignment.
      lengths = new Float64Array(buffer.buffer, buffer.byteOffset + start, 2 * count)
      return lengths
    },
    commit: () => {
      buffer.writeUInt32LE(checksum(buffer.subarray(HEADER_BYTES, size)), 12)
      lock.writeState(Lock.HEAD_BYTES, buffer.subarray(0, size))
      if (fsync) lock.syncState()
    },
    clear: () => {
      lock.writeState(Lock.HEAD_BYTES, done)
    }
  }
}

/**
 * Whether the lock's state, as read when the lock was taken, holds a record
 * that is not finished: a call died before it could finish or undo it.
 *
 * @since 0.1.0
 * @category recovery
 */
export const pending = (lock: Lock.Lock): boolean => {
  const head = lock.head()
  if (head[0] !== (MAGIC & 0xff)) return false
  const magic = Buffer.from(head.buffer, head.byteOffset, 4).readUInt32LE(0)
  return magic === MAGIC || magic === MAGIC_CALL
}

/** Whether a record's call got as far as recording its id. */
const committed = (magic: number, payload: Uint8Array, calls: Calls.Calls): boolean => {
  if (magic !== MAGIC_CALL || payload.byteLength < CALL_BYTES) return false
  const view = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  return calls.committed(view.readDoubleLE(0), view.subarray(8, CALL_BYTES))
}

/**
 * Undoes what the unfinished record in the lock's state says a dead call
 * may have written, then marks it finished. Call it holding the lock; throws
 * (leaving the record for the next lock holder) when a file cannot be cut.
 *
 * @since 0.1.0
 * @category recovery
 */
export const recover = (lock: Lock.Lock, layout: Layout.Layout, calls: Calls.Calls): void => {
  const header = Buffer.from(lock.readState(Lock.HEAD_BYTES, HEADER_BYTES))
  const magic = header.byteLength === HEADER_BYTES ? header.readUInt32LE(0) : 0
  if (magic === MAGIC || magic === MAGIC_CALL) {
    const count = header.readUInt32LE(4)
    const bytes = header.readUInt32LE(8)
    const all = lock.readState(Lock.HEAD_BYTES + HEADER_BYTES, bytes)
    // A torn record was written before any key's bytes: nothing to undo. A
    // call whose id was recorded wrote all of its bytes: nothing to undo either.
    if (all.byteLength === bytes && checksum(all) === header.readUInt32LE(12) && !committed(magic, all, calls)) {
      const payload = magic === MAGIC ? all : all.subarray(CALL_BYTES)
      const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
      const files = Buffer.from(payload.buffer, payload.byteOffset + 16 * count, payload.byteLength - 16 * count)
        .toString("utf8")
        .split("\0")
      // A file can be listed more than once (its handle closed and reopened mid-call): add up its bytes.
      const byFile = new Map<string, { before: number; added: number }>()
      for (let i = 0; i < count; i++) {
        const before = view.getFloat64(16 * i, true)
        const added = view.getFloat64(16 * i + 8, true)
        const seen = byFile.get(files[i]!)
        if (seen === undefined) byFile.set(files[i]!, { before, added })
        else seen.added += added
      }
      for (const [file, { before, added }] of byFile) {
        const length = layout.sizeOf(file)
        if (length !== undefined && length > before && length <= before + added) layout.truncate(file, before)
      }
    }
  }
  lock.writeState(Lock.HEAD_BYTES, new Uint8Array(4))
}
