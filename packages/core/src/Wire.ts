/**
 * The wire protocol between `Client` and `Server`: the messages, what makes
 * them well-formed, and the limits both peers keep. Frames (the layout of a
 * message on the socket, and the checks on an incoming one) are in
 * `WireFrame`, re-exported here.
 *
 * A client sends requests, one per store operation, each with a number of
 * its own; the server answers each request with a reply carrying the same
 * number, in the order the requests arrived:
 *
 * - `Append { id, paths, values, more?, call? }`, `Get { id, paths, count }`,
 *   `Iset { id, path, value }`, `Delete { id, paths, count }`, `Drop { id }`;
 * - `Done { id, values? }` (values for `Get`), or `Failed { id, error }` with
 *   the `StoreError` in its schema's encoded form, so that errors reach the
 *   client typed and intact.
 *
 * A shuffle's append carries hundreds or thousands of small chunks, so the
 * cost per chunk is what matters: the paths travel as one string, joined with
 * NUL (which no valid path contains), not as a list of strings, and the
 * chunks as one table of lengths and their bytes (see `WireFrame`).
 *
 * Why `node:net` and not `effect/rpc` over `effect/socket`: a request through
 * `effect/rpc` costs a fiber and a mailbox per request on each side, a pull
 * per socket read and a copy of every byte read, which outweigh a shuffle
 * store's own work per call; this protocol costs one `Effect.callback` per
 * request on the client and one fiber per request on the server.
 *
 * Every peer trusts nothing it decodes: input that is not a frame of this
 * protocol closes the connection (see `WireFrame`). A message that decodes
 * but is not a request (or reply) the peer knows fails that request with a
 * `Protocol` error; keys are validated again on the server, by the store.
 *
 * @since 0.1.0
 */
import { Option, Schema } from "effect"
import * as Key from "./Key.ts"
import * as Store from "./Store.ts"
import { FrameError, isChunks } from "./WireFrame.ts"

export {
  /**
   * @since 0.1.0
   * @category constants
   */
  chunkOverheadBytes,
  /**
   * @since 0.1.0
   * @category constants
   */
  defaultMaxChunksPerFrame,
  /**
   * @since 0.1.0
   * @category constants
   */
  defaultMaxFrameBytes,
  /**
   * @since 0.1.0
   * @category encoding
   */
  encode,
  /**
   * @since 0.1.0
   * @category errors
   */
  FrameError,
  /**
   * @since 0.1.0
   * @category models
   */
  type Limits,
  /**
   * @since 0.1.0
   * @category constructors
   */
  makeParser,
  /**
   * @since 0.1.0
   * @category models
   */
  type Parser
} from "./WireFrame.ts"

/**
 * A request: one store operation. `id` is the client's own number for it;
 * the reply carries it back.
 *
 * @since 0.1.0
 * @category models
 */
export type Request =
  | {
      readonly _tag: "Append"
      readonly id: number
      /** NUL-joined paths; `values[i]` goes to the i-th. */
      readonly paths: string
      readonly values: ReadonlyArray<Uint8Array>
      /**
       * A part of an append too large for one frame, with more parts to
       * follow: the server holds it, and applies all the parts as one append
       * when the part without `more` arrives.
       */
      readonly more?: boolean
      /**
       * The call's id (`Store.AppendOptions.id`), on every part: the server
       * hands it to the store, which applies a call with an id it has seen
       * no more, so that a client may send a call again after a lost
       * connection.
       */
      readonly call?: string
    }
  | { readonly _tag: "Get"; readonly id: number; readonly paths: string; readonly count: number }
  | { readonly _tag: "Iset"; readonly id: number; readonly path: string; readonly value: Uint8Array }
  | { readonly _tag: "Delete"; readonly id: number; readonly paths: string; readonly count: number }
  | { readonly _tag: "Drop"; readonly id: number }

/**
 * A reply to the request with the same `id`: done (with the values of a
 * `Get`), or failed with a `StoreError` in its encoded form (see
 * {@link encodeError}).
 *
 * @since 0.1.0
 * @category models
 */
export type Reply =
  | { readonly _tag: "Done"; readonly id: number; readonly values?: ReadonlyArray<Uint8Array> }
  | { readonly _tag: "Failed"; readonly id: number; readonly error: unknown }

const isId = (u: unknown): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0

const isCount = (u: unknown): u is number => typeof u === "number" && Number.isInteger(u) && u >= 0

/**
 * Reads a decoded message as a request. A message without a request number
 * cannot be answered: it throws a `FrameError`, and the server closes the
 * connection. A numbered message that is not a well-formed request gives a
 * `Protocol` error, which the server sends back as that request's reply.
 *
 * @since 0.1.0
 * @category decoding
 */
export const toRequest = (message: unknown): Request | { readonly id: number; readonly error: Store.StoreError } => {
  const m = message as Record<string, unknown>
  if (!isId(m.id)) throw new FrameError("a message without a request number")
  const bad = (what: string) => ({
    id: m.id as number,
    error: protocolError("request", `a ${String(m._tag)} request ${what}`)
  })
  switch (m._tag) {
    case "Append":
      if (typeof m.paths !== "string" || !isChunks(m.values) || (m.more !== undefined && typeof m.more !== "boolean")) {
        return bad("needs paths and a list of byte arrays")
      }
      if (m.call !== undefined && typeof m.call !== "string") return bad("has a call id that is not a string")
      return message as Request
    case "Get":
    case "Delete":
      if (typeof m.paths !== "string" || !isCount(m.count)) return bad("needs paths and their count")
      return message as Request
    case "Iset":
      if (typeof m.path !== "string" || !(m.value instanceof Uint8Array)) return bad("needs a path and a byte array")
      return message as Request
    case "Drop":
      return message as Request
    default:
      return bad("is not a request this server knows")
  }
}

/**
 * Reads a decoded message as a reply; `undefined` when it is not one (the
 * client then closes the connection).
 *
 * @since 0.1.0
 * @category decoding
 */
export const toReply = (message: unknown): Reply | undefined => {
  const m = message as Record<string, unknown>
  if (!isId(m.id)) return undefined
  if (m._tag === "Done") return m.values === undefined || isChunks(m.values) ? (message as Reply) : undefined
  if (m._tag === "Failed") return message as Reply
  return undefined
}

const encodeStoreError = Schema.encodeUnknownOption(Store.StoreError)
const decodeStoreError = Schema.decodeUnknownOption(Store.StoreError)

/**
 * A `StoreError` as it travels: its schema's encoded form. A cause that does
 * not encode is left out rather than losing the error.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeError = (error: Store.StoreError): unknown =>
  Option.getOrElse(encodeStoreError(error), () =>
    Option.getOrElse(
      encodeStoreError(
        new Store.StoreError({
          reason: error.reason,
          method: error.method,
          ...(error.key === undefined ? {} : { key: error.key }),
          ...(error.description === undefined ? {} : { description: error.description })
        })
      ),
      () => ({ _tag: "StoreError", reason: error.reason, method: error.method })
    )
  )

/**
 * The `StoreError` a `Failed` reply carries; a `Protocol` error when it is
 * not one.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeError = (encoded: unknown): Store.StoreError =>
  Option.getOrElse(decodeStoreError(encoded), () => protocolError("reply", "a failed reply without a StoreError"))

// A frozen list (a key set's, see `Store.columns`) is joined once.
const joinedOf = Key.keySetCache((paths: ReadonlyArray<Key.Path>) => paths.join("\u0000"))

/**
 * Joins paths for the wire. No valid path contains NUL, so the join is
 * injective.
 *
 * @since 0.1.0
 * @category encoding
 */
export const joinPaths = (paths: ReadonlyArray<Key.Path>): string => joinedOf.get(paths)

/**
 * Splits joined paths, checking that there are `count` of them.
 *
 * @since 0.1.0
 * @category decoding
 */
export const splitPaths = (method: string, joined: string, count: number): Array<string> | Store.StoreError => {
  if (count === 0 && joined === "") return []
  const paths = joined.split("\u0000")
  return paths.length === count ? paths : protocolError(method, `expected ${count} paths, got ${paths.length}`)
}

const protocolError = (method: string, description: string) =>
  new Store.StoreError({ reason: "Protocol", method, description })

/**
 * Roughly how many bytes chunks take in a frame, to keep a request under the
 * frame limit.
 *
 * @since 0.1.0
 * @category encoding
 */
export const framedBytes = (paths: ReadonlyArray<Key.Path>, values: ReadonlyArray<Uint8Array>): number => {
  let total = 0
  for (let i = 0; i < values.length; i++) total += values[i]!.byteLength + paths[i]!.length * 3 + 8
  return total
}

/**
 * The default limit of an append sent in parts (see `Request`): 1 GiB held by
 * the server until the last part arrives.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxAppendBytes = 1024 * 1024 * 1024

/**
 * Room for a message's envelope (its numbers, tag and error) besides the
 * byte arrays and paths it carries: a request or reply is kept under
 * `maxFrameBytes - envelopeHeadroomBytes` of chunks and paths.
 *
 * @since 0.1.0
 * @category constants
 */
export const envelopeHeadroomBytes = 64 * 1024
