/**
 * ServerHandshake: the server's side of `Handshake` for one connection, from
 * its first message to the moment its requests may be served.
 *
 * A connection must first greet (`Hello` of this protocol's version), then,
 * when the server has a token, prove it (`Auth`). Until then nothing it sends
 * is served: a wrong proof, or a request instead of one, is a refusal (the
 * connection is told `Denied` and closed by `ServerConnection`), and a
 * connection that has not finished within the server's `handshakeTimeout`
 * (see `Gate.timeoutMillis`) is closed.
 *
 * @since 0.1.0
 */
import type { Redacted } from "effect"
import * as Handshake from "./Handshake.ts"
import type * as Store from "./Store.ts"

/**
 * What a message did to the handshake: `"ready"` (this message completed it:
 * the next ones are requests), `"more"` (it goes on), or why the connection
 * is refused: `denied` (tell the client, count it) or `broken` (not this
 * protocol: close).
 *
 * @since 0.1.0
 * @category models
 */
export type Step = "ready" | "more" | { readonly denied: Store.StoreError } | { readonly broken: string }

/**
 * One connection's handshake.
 *
 * @since 0.1.0
 * @category models
 */
export interface Gate {
  /** The server's greeting, to send as soon as the connection opens. */
  readonly hello: Uint8Array
  /** Takes the connection's next message while the handshake is not done. */
  readonly admit: (message: unknown) => Step
  /** Whether the connection greeted and was challenged, and has not proven the token yet. */
  readonly challenged: () => boolean
  /** How long the connection may take to be admitted before the server closes it. */
  readonly timeoutMillis: number
}

/**
 * A handshake for a server with `token` (none: greeting is enough), to be
 * done within `timeoutMillis`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (token: Redacted.Redacted<string> | undefined, timeoutMillis: number): Gate => {
  const nonce = token === undefined ? undefined : Handshake.makeNonce()
  let greeted = false
  const admit = (message: unknown): Step => {
    const m = message as Record<string, unknown>
    if (!greeted) {
      if (m._tag !== "Hello") return { broken: "a connection spoke before greeting" }
      if (m.version !== Handshake.version) {
        return { broken: `a connection greeted with protocol version ${String(m.version)}, not ${Handshake.version}` }
      }
      greeted = true
      return nonce === undefined ? "ready" : "more"
    }
    if (m._tag !== "Auth") {
      return { denied: Handshake.deniedError("this server requires a token, and the client gave none") }
    }
    return Handshake.verify(token!, nonce!, m.proof)
      ? "ready"
      : { denied: Handshake.deniedError("the client's token is not this server's token") }
  }
  let proven = false
  const step = (message: unknown): Step => {
    const result = admit(message)
    if (result === "ready") proven = true
    return result
  }
  return {
    hello: Handshake.serverHello(nonce),
    admit: step,
    challenged: () => nonce !== undefined && greeted && !proven,
    timeoutMillis
  }
}
