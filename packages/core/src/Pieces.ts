/**
 * Pieces: the byte streams `Store.stream` yields, cut to size.
 *
 * Every store's `stream(key, { chunkBytes })` yields a value as pieces of
 * at most `chunkBytes`, fresh arrays that belong to the caller, holding a few
 * pieces in memory whatever the value's size. The in-memory and wrapping
 * stores build those streams from the same three parts, here:
 *
 * - {@link fromChunks}: a snapshot of the chunks an in-memory store holds
 *   (Dict, Buffer's memory), copied out piece by piece as the reader pulls;
 * - {@link cut}: a stream of pieces of any size (decoded frames) regrouped
 *   into pieces of at most `chunkBytes`;
 * - {@link takeBytes}: the first `n` bytes of a stream, for a stream that
 *   must stop at the length a value had when the stream started (Buffer's
 *   slow part, which the flusher may grow meanwhile).
 *
 * Stores that read a value in ranges from where it lies (File's positional
 * reads, Redis's `GETRANGE`) use {@link fromRanges}.
 *
 * @since 0.1.0
 */
import { Cause, Effect, type Pull, Stream } from "effect"
import * as Bytes from "./Bytes.ts"
import * as Framing from "./Framing.ts"

/** How many bytes one pull yields at most, in pieces, so tiny pieces do not cost a pull each. */
const bytesPerPull = 1024 * 1024

/**
 * The concatenation of `chunks` (whose lengths add up to `total`) as fresh
 * pieces of `chunkBytes` (the last one shorter), copied as they are pulled.
 * The list is read, never kept past the stream: pass a copy of a list that
 * may change.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromChunks = (
  chunks: ReadonlyArray<Uint8Array>,
  total: number,
  chunkBytes: number
): Stream.Stream<Uint8Array> => {
  if (total === 0) return Stream.empty
  return Stream.fromPull(
    Effect.sync(() => {
      let c = 0
      let offset = 0
      let left = total
      const piece = (size: number): Uint8Array => {
        const out = Bytes.allocUninitialized(size)
        let filled = 0
        while (filled < size) {
          const chunk = chunks[c]!
          const count = Math.min(chunk.byteLength - offset, size - filled)
          if (count > 0) out.set(chunk.subarray(offset, offset + count), filled)
          filled += count
          offset += count
          if (offset === chunk.byteLength) {
            c++
            offset = 0
          }
        }
        return out
      }
      return Effect.suspend((): Pull.Pull<readonly [Uint8Array, ...Array<Uint8Array>]> => {
        if (left === 0) return Cause.done()
        const out: Array<Uint8Array> = []
        let pulled = 0
        while (left > 0 && (out.length === 0 || pulled + chunkBytes <= bytesPerPull)) {
          const size = Math.min(chunkBytes, left)
          out.push(piece(size))
          left -= size
          pulled += size
        }
        return Effect.succeed(out as unknown as readonly [Uint8Array, ...Array<Uint8Array>])
      })
    })
  )
}

/**
 * A value of `length` bytes as pieces of `chunkBytes` (the last one shorter),
 * each read with `read(offset, bytes)` when the stream is pulled for it, one
 * at a time and nothing ahead. A read that gives fewer bytes than asked means
 * the value shrank under the stream (deleted, replaced, cut): the stream
 * fails with `shrunk(at)`, `at` being how many bytes were there, after the
 * pieces before it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromRanges = <E, R>(
  length: number,
  chunkBytes: number,
  read: (offset: number, bytes: number) => Effect.Effect<Uint8Array, E, R>,
  shrunk: (at: number) => E
): Stream.Stream<Uint8Array, E, R> =>
  Stream.unfold(0, (offset: number) => {
    if (offset >= length) return Effect.succeed(undefined)
    const bytes = Math.min(chunkBytes, length - offset)
    return Effect.flatMap(read(offset, bytes), (piece) =>
      piece.byteLength === bytes
        ? Effect.succeed([piece, offset + bytes] as const)
        : Effect.fail(shrunk(offset + piece.byteLength))
    )
  })

/**
 * The first `n` bytes of a byte stream (all of it, if it is shorter).
 *
 * @since 0.1.0
 * @category combinators
 */
export const takeBytes = <E, R>(self: Stream.Stream<Uint8Array, E, R>, n: number): Stream.Stream<Uint8Array, E, R> =>
  n <= 0
    ? Stream.empty
    : Stream.transformPull(self, (pull) =>
        Effect.sync(() => {
          let left = n
          return Effect.suspend((): Pull.Pull<readonly [Uint8Array, ...Array<Uint8Array>], E> => {
            if (left <= 0) return Cause.done()
            return Effect.map(pull, (batch) => {
              const out: Array<Uint8Array> = []
              for (let i = 0; i < batch.length && left > 0; i++) {
                const piece = batch[i]!
                out.push(piece.byteLength <= left ? piece : piece.subarray(0, left))
                left -= Math.min(piece.byteLength, left)
              }
              return out as unknown as readonly [Uint8Array, ...Array<Uint8Array>]
            })
          })
        })
      )

/**
 * A byte stream regrouped into pieces of `chunkBytes` (the last one
 * shorter): small inputs are joined, large ones cut. A piece is a view into
 * an input where it lies inside one, else a fresh copy; the inputs must be
 * fresh arrays that belong to the caller (decoded frames are).
 *
 * @since 0.1.0
 * @category combinators
 */
export const cut = <E, R>(self: Stream.Stream<Uint8Array, E, R>, chunkBytes: number): Stream.Stream<Uint8Array, E, R> =>
  Framing.transformBatches<Uint8Array, Uint8Array, E, R, never>(self, () => {
    let pending: Array<Uint8Array> = []
    let pendingBytes = 0
    const flushPending = (out: Array<Uint8Array>) => {
      if (pendingBytes > 0) out.push(pending.length === 1 ? pending[0]! : Bytes.concat(pending, pendingBytes))
      pending = []
      pendingBytes = 0
    }
    return {
      step: (batch) => {
        const out: Array<Uint8Array> = []
        for (let i = 0; i < batch.length; i++) {
          let input = batch[i]!
          while (input.byteLength > 0) {
            const room = chunkBytes - pendingBytes
            const part = input.byteLength <= room ? input : input.subarray(0, room)
            pending.push(part)
            pendingBytes += part.byteLength
            input = input.subarray(part.byteLength)
            if (pendingBytes === chunkBytes) flushPending(out)
          }
        }
        return out
      },
      end: () => {
        const out: Array<Uint8Array> = []
        flushPending(out)
        return { out, error: undefined }
      }
    }
  })
