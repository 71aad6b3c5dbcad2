/**
 * Reader: a File key's value as a stream of pieces, read with positional
 * reads from a descriptor opened under the store's lock.
 *
 * The stream's length is the file's length when it was opened, under the
 * lock and after any unfinished append was undone (see `Intent`), so it is
 * the value as it stood then, made of whole appends. Nothing can change
 * those bytes afterwards: appends of this or any other process (Python's
 * too) only write past the end; a failed append cuts its file back to its
 * length before the call, which is at least the stream's; `delete`, `iset`
 * and `drop` unlink or rename the file, and the open descriptor keeps
 * reading the old one. So the stream reads without the lock, piece by piece,
 * on libuv's threads, while other calls go on.
 *
 * Memory: one piece is read when the stream is pulled for it, into a fresh
 * array the consumer owns; nothing is read ahead.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import { Pieces, Store } from "@partd/core"
import { Effect, Stream } from "effect"

/**
 * An open key: a descriptor the stream owns and the length it yields.
 *
 * @since 0.1.0
 * @category models
 */
export interface Opened {
  readonly fd: number
  readonly size: number
}

/** Reads `length` bytes at `position` into a fresh array; fewer only at the end of the file. */
const readAt = (fd: number, length: number, position: number): Effect.Effect<Uint8Array, NodeJS.ErrnoException> =>
  Effect.callback<Uint8Array, NodeJS.ErrnoException>((resume) => {
    const buffer = Buffer.allocUnsafe(length)
    const step = (offset: number): void => {
      fs.read(fd, buffer, offset, length - offset, position + offset, (error, n) => {
        if (error !== null) resume(Effect.fail(error))
        else if (n === 0 || offset + n === length) {
          const end = offset + n
          resume(Effect.succeed(new Uint8Array(buffer.buffer, buffer.byteOffset, end)))
        } else step(offset + n)
      })
    }
    step(0)
  })

/**
 * The value of `path` in pieces of at most `chunkBytes`, from `open`, which
 * runs under the lock and gives the descriptor and length (or `undefined`
 * when the key has no file: an empty stream). The descriptor is closed when
 * the stream ends, fails or is interrupted; a read in flight is waited for
 * first, so the descriptor is never reused under it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const stream = (
  path: string,
  chunkBytes: number,
  open: Effect.Effect<Opened | undefined, Store.StoreError>
): Stream.Stream<Uint8Array, Store.StoreError> =>
  Stream.unwrap(
    Effect.map(
      Effect.acquireRelease(open, (opened) =>
        opened === undefined ? Effect.void : Effect.sync(() => fs.closeSync(opened.fd))
      ),
      (opened): Stream.Stream<Uint8Array, Store.StoreError> => {
        if (opened === undefined || opened.size === 0) return Stream.empty
        const { fd, size } = opened
        return Pieces.fromRanges(
          size,
          chunkBytes,
          (position, length) =>
            readAt(fd, length, position).pipe(
              Effect.uninterruptible,
              Effect.mapError((cause) => Store.ioError("stream", cause, path))
            ),
          () =>
            new Store.StoreError({
              reason: "Io",
              method: "stream",
              key: path,
              description: `the key's file was cut below the ${size} bytes it had when the stream started`
            })
        )
      }
    )
  )
