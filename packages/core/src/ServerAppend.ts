/**
 * ServerAppend: a connection's appends, including those sent in parts.
 *
 * An append too large for one frame arrives as parts, back to back, each but
 * the last marked `more` (see `Wire.Request`). The parts are held here until
 * the last one, then applied as one append: nobody sees part of it, and a
 * connection lost before the last part leaves nothing behind. What the parts
 * hold is bounded by `maxAppendBytes`, counting their bytes and
 * `Wire.chunkOverheadBytes` per chunk (a part of many empty chunks holds
 * memory too). A part that fails fails the rest of that append; a request of
 * another kind between two parts breaks the protocol, and fails along with
 * that append.
 *
 * @since 0.1.0
 */

import * as ServerRequests from "./ServerRequests.ts"
import * as Store from "./Store.ts"
import * as Wire from "./Wire.ts"

type AppendRequest = Extract<Wire.Request, { readonly _tag: "Append" }>

/** The parts received so far of an append sent in parts, and the first error among them. */
interface Staged {
  readonly paths: Array<string>
  readonly values: Array<Uint8Array>
  bytes: number
  failed: Store.StoreError | undefined
}

/**
 * One connection's appends.
 *
 * @since 0.1.0
 * @category models
 */
export interface Appends {
  /**
   * An append: in one frame, the work that applies it. Sent in parts, a
   * part with `more` is held and answered at once (a reply), and the last
   * part gives the work that applies the whole append (or the reply that
   * fails it).
   */
  readonly append: (request: AppendRequest) => Wire.Reply | ServerRequests.Work
  /**
   * Another request arrived: while an append's parts are held it fails (the
   * reply), and so does that append; otherwise `undefined`.
   */
  readonly interrupting: (id: number) => Wire.Reply | undefined
  /** The bytes the held parts account for. */
  readonly heldBytes: () => number
}

const failedReply = (id: number, error: Store.StoreError): Wire.Reply => ({
  _tag: "Failed",
  id,
  error: Wire.encodeError(error)
})

/** Adds a part to what is held, or records why the append fails. */
const stage = (
  requests: ServerRequests.Requests,
  maxAppendBytes: number,
  staged: Staged,
  request: AppendRequest
): void => {
  if (staged.failed !== undefined) return
  const paths = requests.paths("append", request.paths, request.values.length)
  if (paths instanceof Store.StoreError) {
    staged.failed = paths
    return
  }
  let bytes = request.values.length * Wire.chunkOverheadBytes
  for (const value of request.values) bytes += value.byteLength
  if (staged.bytes + bytes > maxAppendBytes) {
    staged.failed = new Store.StoreError({
      reason: "BadValue",
      method: "append",
      description: `an append of more than ${maxAppendBytes} bytes (the server's maxAppendBytes)`
    })
    return
  }
  for (let i = 0; i < paths.length; i++) {
    staged.paths.push(paths[i]!)
    staged.values.push(request.values[i]!)
  }
  staged.bytes += bytes
}

/**
 * A connection's appends over `requests`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (requests: ServerRequests.Requests, maxAppendBytes: number): Appends => {
  let staged: Staged | undefined
  const append = (request: AppendRequest): Wire.Reply | ServerRequests.Work => {
    if (staged === undefined && request.more !== true) {
      const keys = requests.keySet("append", request.paths, request.values.length)
      return keys instanceof Store.StoreError
        ? failedReply(request.id, keys)
        : requests.append(keys, request.values, request.call)
    }
    const part: Staged = staged ?? { paths: [], values: [], bytes: 0, failed: undefined }
    staged = part
    stage(requests, maxAppendBytes, part, request)
    if (request.more === true) {
      return part.failed === undefined ? { _tag: "Done", id: request.id } : failedReply(request.id, part.failed)
    }
    staged = undefined
    if (part.failed !== undefined) return failedReply(request.id, part.failed)
    // The whole append's keys, validated once.
    const keys = ServerRequests.toKeySet("append", part.paths)
    return keys instanceof Store.StoreError
      ? failedReply(request.id, keys)
      : requests.append(keys, part.values, request.call)
  }
  const interrupting = (id: number): Wire.Reply | undefined => {
    if (staged === undefined) return undefined
    staged.failed ??= new Store.StoreError({
      reason: "Protocol",
      method: "append",
      description: "a request came between the parts of this append; nothing of it was applied"
    })
    return failedReply(id, staged.failed)
  }
  return { append, interrupting, heldBytes: () => staged?.bytes ?? 0 }
}
