/**
 * ClientStream: the Client's `stream`, `keys` and `size`, over the cursor
 * requests of `Wire` (served by `ServerStream`).
 *
 * A stream or a listing opens a cursor on the server with one request,
 * whose reply carries the first part, and asks for each further part with a
 * `Next` request when its reader pulls: nothing is read ahead, so the
 * reader's pace is the server's and neither side holds more than a part.
 * The cursor lives on one connection; if that connection is lost, the
 * stream fails with `Io` (a stream cannot resume on another connection: its
 * value was fixed when it started). A stream closed before its end (its
 * reader stopped, or was interrupted) closes its cursor with a `Close`
 * request. Every reply is checked: a piece larger than asked, a listing
 * whose count does not match, sizes of the wrong number give `Protocol`
 * errors.
 *
 * @since 0.1.0
 */
import { Effect, Option, Stream } from "effect"
import type * as Key from "./Key.ts"
import * as Store from "./Store.ts"
import * as Wire from "./Wire.ts"

/**
 * Sends one request on one connection and waits for its `Done` reply (a
 * `Failed` reply is the effect's error); fails with `Io` once that
 * connection is lost.
 *
 * @since 0.1.0
 * @category models
 */
export type Request = (method: string, message: Record<string, unknown>) => Effect.Effect<Wire.Done, Store.StoreError>

/**
 * A {@link Request} pinned to the connection of the moment: a cursor and all
 * its requests stay on one connection.
 *
 * @since 0.1.0
 * @category models
 */
export type Session = () => Request

const protocolError = (method: string, description: string) =>
  new Store.StoreError({ reason: "Protocol", method, description })

/** A part's items from a reply, or the `Protocol` error of a reply that is not one. */
type Read<A> = (method: string, reply: Wire.Done) => ReadonlyArray<A> | Store.StoreError

const readPieces =
  (chunkBytes: number): Read<Uint8Array> =>
  (method, reply) => {
    const values = reply.values ?? []
    for (const piece of values) {
      if (piece.byteLength > chunkBytes) {
        return protocolError(method, `the server sent a piece of ${piece.byteLength} bytes, over ${chunkBytes}`)
      }
    }
    return values
  }

const readPaths: Read<Key.Path> = (method, reply) =>
  reply.paths === undefined ? [] : Wire.splitPaths(method, reply.paths, reply.count ?? 0)

/** One cursor's parts, in order, each asked for when the reader pulls. */
const cursorStream = <A>(
  session: Session,
  method: string,
  open: Record<string, unknown>,
  read: Read<A>
): Stream.Stream<A, Store.StoreError> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const request = session()
      const state = { cursor: -1, ended: false }
      const first = yield* Effect.acquireRelease(request(method, open), () =>
        state.ended || state.cursor < 0
          ? Effect.void
          : Effect.ignore(request(method, { _tag: "Close", cursor: state.cursor }))
      )
      if (first.cursor === undefined) return Stream.fail(protocolError(method, "the server opened no cursor"))
      state.cursor = first.cursor
      const page = (
        reply: Wire.Done
      ): Effect.Effect<readonly [ReadonlyArray<A>, Option.Option<void>], Store.StoreError> => {
        const items = read(method, reply)
        if (items instanceof Store.StoreError) return Effect.fail(items)
        if (reply.end === true) state.ended = true
        return Effect.succeed([items, state.ended ? Option.none() : Option.some(undefined)] as const)
      }
      let opened = false
      return Stream.paginate(undefined, () => {
        if (!opened) {
          opened = true
          return page(first)
        }
        return Effect.flatMap(request(method, { _tag: "Next", cursor: state.cursor }), page)
      })
    })
  )

/**
 * The Client's `stream`: the value of `path` in pieces of at most
 * `chunkBytes`, one `Next` request per part.
 *
 * @since 0.1.0
 * @category streams
 */
export const stream = (
  session: Session,
  path: Key.Path,
  chunkBytes: number
): Stream.Stream<Uint8Array, Store.StoreError> =>
  cursorStream(session, "stream", { _tag: "Stream", path, chunkBytes }, readPieces(chunkBytes))

/**
 * The Client's `keys`: the served store's keys, in parts.
 *
 * @since 0.1.0
 * @category streams
 */
export const keys = (session: Session): Stream.Stream<Key.Path, Store.StoreError> =>
  Stream.suspend(() => cursorStream(session, "keys", { _tag: "Keys" }, readPaths))

/**
 * The Client's `size`: one `Size` request per `maxChunks` keys.
 *
 * @since 0.1.0
 * @category operations
 */
export const size = (
  session: Session,
  paths: ReadonlyArray<Key.Path>,
  maxChunks: number
): Effect.Effect<ReadonlyArray<number>, Store.StoreError> =>
  Effect.suspend(() => {
    const request = session()
    const slices: Array<ReadonlyArray<Key.Path>> = []
    for (let from = 0; from < paths.length; from += maxChunks) {
      slices.push(paths.length <= maxChunks ? paths : paths.slice(from, from + maxChunks))
    }
    return Effect.map(
      Effect.forEach(slices, (slice) =>
        Effect.flatMap(
          request("size", { _tag: "Size", paths: Wire.joinPaths(slice), count: slice.length }),
          (reply): Effect.Effect<ReadonlyArray<number>, Store.StoreError> =>
            reply.sizes !== undefined && reply.sizes.length === slice.length
              ? Effect.succeed(reply.sizes)
              : Effect.fail(
                  protocolError("size", `asked for ${slice.length} sizes, got ${reply.sizes?.length ?? "none"}`)
                )
        )
      ),
      (parts) => (parts.length === 1 ? parts[0]! : parts.flat())
    )
  })
