/**
 * Handshake: how a `Client` and a `Server` greet each other before any
 * request, and how a client proves that it holds the server's token.
 *
 * Each side speaks first, without waiting for the other: the client sends
 * `Hello { version }`, the server `Hello { version, nonce? }`. A client
 * speaking first makes a plain client fail at once against a TLS server
 * (whose handshake it breaks), and a server speaking first makes a TLS
 * client fail at once against a plain server.
 *
 * A server given a token sends a fresh random `nonce` (32 bytes) with its
 * hello. The client answers with `Auth { proof }`, `proof` being
 * HMAC-SHA256 of the nonce keyed by the token, and sends its requests right
 * behind it without waiting for a reply: the server checks the proof (in
 * constant time) before it looks at anything else the connection sent, and
 * on a wrong or missing proof it sends `Denied { error }` (a `StoreError`
 * with reason `Denied`) and closes the connection, having applied nothing.
 * The token itself never travels, so a listener on a plain connection
 * cannot learn it, and a proof is worth nothing on another connection (its
 * nonce is another). What a plain connection does not stop is someone on the
 * path taking over a connection once it is proven: across networks you do
 * not trust, use TLS too.
 *
 * A client given a token refuses a server that does not ask for one: it
 * could be anyone listening at the address (a stale socket path, a port
 * taken over), and the client would hand it its data. Its calls fail with
 * `Denied`, and nothing but the client's greeting was sent.
 *
 * Both sides bound the handshake (`handshakeTimeout`, default
 * {@link defaultTimeout}): a server closes a connection that has not been
 * admitted in time, and a client closes one that the server has not greeted
 * in time.
 *
 * @since 0.1.0
 */
import * as Crypto from "node:crypto"
import { Duration, Redacted } from "effect"
import * as Store from "./Store.ts"
import * as Wire from "./Wire.ts"

/**
 * The version of the protocol both sides speak; a peer greeting with
 * another is refused.
 *
 * @since 0.1.0
 * @category constants
 */
export const version = 1

/**
 * The default handshake timeout of a `Client` and a `Server`
 * (`handshakeTimeout`): how long a connection may take to be opened (with
 * TLS, its TLS handshake too), greeted and, when the server asks, proven
 * before it is closed.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultTimeout: Duration.Duration = Duration.seconds(10)

/** The longest a Node timer can wait; longer ones fire at once. */
const maxTimerMillis = 2 ** 31 - 1

/**
 * A `handshakeTimeout` (default {@link defaultTimeout}) in milliseconds, or a
 * `BadValue` error when it is not a positive, finite duration: a connection
 * that never greets must not hold its socket for ever.
 *
 * @since 0.1.0
 * @category constructors
 */
export const timeoutMillis = (method: string, timeout: Duration.Input | undefined): number | Store.StoreError => {
  const duration = Duration.fromInput(timeout ?? defaultTimeout)
  const millis = duration._tag === "Some" ? Duration.toMillis(duration.value) : Number.NaN
  return millis > 0 && Number.isFinite(millis)
    ? Math.min(millis, maxTimerMillis)
    : new Store.StoreError({
        reason: "BadValue",
        method,
        description: `handshakeTimeout: not a positive, finite duration: ${String(timeout)}`
      })
}

/**
 * The bytes of a server's challenge.
 *
 * @since 0.1.0
 * @category constants
 */
export const nonceBytes = 32

/**
 * A server's greeting: `nonce` when it asks for a token.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerHello {
  readonly _tag: "Hello"
  readonly version: number
  readonly nonce?: Uint8Array | undefined
}

/** What the proof is an HMAC of, besides the nonce: a proof for something else never matches. */
const context = "partd-auth-v1\u0000"

/**
 * The proof that a client holds `token`, for a server's `nonce`.
 *
 * @since 0.1.0
 * @category auth
 */
export const proof = (token: Redacted.Redacted<string>, nonce: Uint8Array): Uint8Array =>
  Crypto.createHmac("sha256", Redacted.value(token)).update(context).update(nonce).digest()

/**
 * Whether `candidate` is the proof of `token` for `nonce`, compared in
 * constant time.
 *
 * @since 0.1.0
 * @category auth
 */
export const verify = (token: Redacted.Redacted<string>, nonce: Uint8Array, candidate: unknown): boolean => {
  if (!(candidate instanceof Uint8Array)) return false
  const expected = proof(token, nonce)
  return candidate.byteLength === expected.byteLength && Crypto.timingSafeEqual(candidate, expected)
}

/**
 * A fresh challenge.
 *
 * @since 0.1.0
 * @category auth
 */
export const makeNonce = (): Uint8Array => Crypto.randomBytes(nonceBytes)

/**
 * The client's greeting, as a frame.
 *
 * @since 0.1.0
 * @category encoding
 */
export const clientHello = (): Uint8Array => Wire.encode({ _tag: "Hello", version })

/**
 * The server's greeting, as a frame.
 *
 * @since 0.1.0
 * @category encoding
 */
export const serverHello = (nonce: Uint8Array | undefined): Uint8Array =>
  Wire.encode(nonce === undefined ? { _tag: "Hello", version } : { _tag: "Hello", version, nonce })

/**
 * A client's answer to a challenge, as a frame.
 *
 * @since 0.1.0
 * @category encoding
 */
export const auth = (token: Redacted.Redacted<string>, nonce: Uint8Array): Uint8Array =>
  Wire.encode({ _tag: "Auth", proof: proof(token, nonce) })

/**
 * A refusal, as a frame: the server closes the connection after it.
 *
 * @since 0.1.0
 * @category encoding
 */
export const denied = (error: Store.StoreError): Uint8Array =>
  Wire.encode({ _tag: "Denied", error: Wire.encodeError(error) })

/**
 * Reads a message as a server's greeting; `undefined` when it is not one.
 *
 * @since 0.1.0
 * @category decoding
 */
export const toServerHello = (message: unknown): ServerHello | undefined => {
  const m = message as Record<string, unknown>
  if (m._tag !== "Hello" || m.version !== version) return undefined
  if (m.nonce !== undefined && !(m.nonce instanceof Uint8Array && m.nonce.byteLength === nonceBytes)) return undefined
  return m as unknown as ServerHello
}

/**
 * The error of a `Denied` message, when `message` is one.
 *
 * @since 0.1.0
 * @category decoding
 */
export const toDenied = (message: unknown): Store.StoreError | undefined => {
  const m = message as Record<string, unknown>
  if (m._tag !== "Denied") return undefined
  const error = Wire.decodeError(m.error)
  // Whatever it carries, a refusal is a refusal.
  return error.reason === "Denied"
    ? error
    : new Store.StoreError({ reason: "Denied", method: "connect", description: error.message })
}

/**
 * The `Denied` error a client gets, and the server sends.
 *
 * @since 0.1.0
 * @category errors
 */
export const deniedError = (description: string): Store.StoreError =>
  new Store.StoreError({ reason: "Denied", method: "connect", description })
