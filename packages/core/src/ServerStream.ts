/**
 * ServerStream: a connection's cursors, the streams (`Stream`) and key
 * listings (`Keys`) that a client reads part by part.
 *
 * Opening a cursor starts the served store's `stream(path)` (or `keys`) and
 * answers with its first part, so that the value a stream yields is fixed
 * when the request is applied, in the connection's order (an append the
 * client sent before it is included, one sent after is not). Each `Next`
 * request reads one more part: the server pulls the store's stream only
 * when asked, so a slow reader makes the server hold at most one pull's
 * worth of a stream (a piece, for File), never the value; the reader's pace
 * is the stream's. A part is the pieces (or key paths) of one pull, split
 * to fit a frame. A cursor is closed when it reaches its end (the reply says
 * `end`), when its store stream fails (the reply carries the error), on
 * `Close`, and with its connection.
 *
 * A stream's pieces are at most `chunkBytes`, and at most what fits in a
 * frame (`maxFrameBytes` less `Wire.envelopeHeadroomBytes`). A connection
 * holds at most {@link maxCursors} open cursors; past that, opening one
 * fails with a `Protocol` error.
 *
 * @since 0.1.0
 */
import { type Cause, Effect, Exit, Pull, Scope, Stream } from "effect"
import type * as Key from "./Key.ts"
import * as ServerRequests from "./ServerRequests.ts"
import * as Store from "./Store.ts"
import * as Wire from "./Wire.ts"

/**
 * The most cursors one connection may hold open.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxCursors = 256

/**
 * The most key paths one part of a listing carries.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxKeysPerPart = 16_384

/** The most characters of key paths one part of a listing carries. */
const maxKeyCharsPerPart = 4 * 1024 * 1024

/**
 * A connection's cursors.
 *
 * @since 0.1.0
 * @category models
 */
export interface Cursors {
  /** The work of a cursor request, run in the connection's order like every request. */
  readonly handle: (request: ServerRequests.CursorRequest) => ServerRequests.Work
  /** Closes every cursor (the connection is gone); one whose part is being read closes after it. */
  readonly closeAll: () => void
}

/** One open cursor: its store stream's pull, in its own scope, and what the last pull left to send. */
interface Cursor {
  readonly kind: "stream" | "keys"
  readonly scope: Scope.Closeable
  readonly pull: Effect.Effect<ReadonlyArray<unknown>, Store.StoreError | Cause.Done>
  leftover: ReadonlyArray<unknown>
  at: number
  busy: boolean
  closed: boolean
}

const protocolError = (method: string, description: string) =>
  new Store.StoreError({ reason: "Protocol", method, description })

/**
 * The cursors of one connection over `store`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (store: Store.Shape, limits: ServerRequests.Limits): Cursors => {
  const cursors = new Map<number, Cursor>()
  let nextCursor = 0
  const maxPieceBytes = limits.maxFrameBytes - Wire.envelopeHeadroomBytes
  const maxPartChunks = limits.maxChunksPerFrame

  const release = (number: number, cursor: Cursor): void => {
    cursors.delete(number)
    cursor.closed = true
    if (!cursor.busy) Effect.runFork(Scope.close(cursor.scope, Exit.void))
  }

  /** The next part of what the last pull left: pieces that fit a frame, or a batch of key paths. */
  const takePart = (cursor: Cursor): Wire.Outcome => {
    const { leftover } = cursor
    let end = cursor.at
    if (cursor.kind === "stream") {
      let bytes = 0
      while (end < leftover.length && end - cursor.at < maxPartChunks) {
        const piece = leftover[end] as Uint8Array
        if (end > cursor.at && bytes + piece.byteLength + 8 > maxPieceBytes) break
        bytes += piece.byteLength + 8
        end++
      }
      const values = leftover.slice(cursor.at, end) as Array<Uint8Array>
      cursor.at = end
      return { values }
    }
    let chars = 0
    while (end < leftover.length && end - cursor.at < maxKeysPerPart) {
      const path = leftover[end] as Key.Path
      if (end > cursor.at && chars + path.length + 1 > maxKeyCharsPerPart) break
      chars += path.length + 1
      end++
    }
    const paths = leftover.slice(cursor.at, end) as Array<Key.Path>
    cursor.at = end
    return { paths: Wire.joinPaths(paths), count: paths.length }
  }

  /** Reads the cursor's next part: from what is left, else one pull; at the end, closes it. */
  const nextPart = (number: number, cursor: Cursor, method: string): ServerRequests.Work => {
    if (cursor.at < cursor.leftover.length) return Effect.succeed(takePart(cursor))
    cursor.busy = true
    return cursor.pull.pipe(
      Effect.matchCauseEffect({
        onSuccess: (items): ServerRequests.Work => {
          cursor.leftover = items
          cursor.at = 0
          return Effect.succeed(takePart(cursor))
        },
        onFailure: (cause): ServerRequests.Work => {
          release(number, cursor)
          if (Pull.isDoneCause(cause)) {
            return Effect.succeed(
              cursor.kind === "stream" ? { values: [], end: true } : { paths: "", count: 0, end: true }
            )
          }
          return Effect.fail(ServerRequests.failedUnexpectedly(method, cause as Cause.Cause<unknown>))
        }
      }),
      Effect.onExit(() =>
        Effect.sync(() => {
          cursor.busy = false
          if (cursor.closed) Effect.runFork(Scope.close(cursor.scope, Exit.void))
        })
      )
    )
  }

  /** Opens a cursor over `stream` and reads its first part. */
  const open = (
    kind: Cursor["kind"],
    method: string,
    stream: Stream.Stream<unknown, Store.StoreError>
  ): ServerRequests.Work =>
    Effect.suspend(() => {
      if (cursors.size >= maxCursors) {
        return Effect.fail(
          protocolError(method, `a connection may hold at most ${maxCursors} open streams and listings`)
        )
      }
      return Effect.gen(function* () {
        const scope = yield* Scope.make()
        const pull = yield* Scope.provide(scope)(Stream.toPull(stream))
        const number = nextCursor++
        const cursor: Cursor = { kind, scope, pull, leftover: [], at: 0, busy: false, closed: false }
        cursors.set(number, cursor)
        const part = yield* nextPart(number, cursor, method)
        return { ...part, cursor: number }
      })
    })

  const find = (method: string, number: number): Cursor | Store.StoreError =>
    cursors.get(number) ??
    protocolError(
      method,
      `no stream or listing numbered ${number} is open on this connection (a lost connection closes them)`
    )

  return {
    handle: (request) => {
      switch (request._tag) {
        case "Stream": {
          const chunkBytes = Math.min(request.chunkBytes, maxPieceBytes)
          return open("stream", "stream", store.stream(request.path, { chunkBytes }))
        }
        case "Keys":
          return open("keys", "keys", store.keys)
        case "Next": {
          const cursor = find("stream", request.cursor)
          if (cursor instanceof Store.StoreError) return Effect.fail(cursor)
          return nextPart(request.cursor, cursor, cursor.kind)
        }
        case "Close": {
          const cursor = cursors.get(request.cursor)
          if (cursor !== undefined) release(request.cursor, cursor)
          return Effect.succeed(undefined)
        }
      }
    },
    closeAll: () => {
      for (const [number, cursor] of [...cursors]) release(number, cursor)
    }
  }
}
