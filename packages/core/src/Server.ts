/**
 * Server: serves a `Store` to many processes over a Unix socket or TCP, as
 * partd's `Server` does; processes reach it with `Client`.
 *
 * The server speaks the protocol in `Wire` over Node's `net` module. Each
 * request is one call to the served store, so a call's chunks are applied
 * together; each connection's requests are applied one at a time, in the
 * order they arrived, and different connections are served concurrently
 * (see `ServerConnection`).
 *
 * A socket is a door into the store, so the server trusts nothing a client
 * sends: TCP binds loopback unless told otherwise and a Unix socket is
 * owner-only (`ServerListen`); frames are checked before anything is built
 * from them (`WireFrame`); keys are validated by the store's own rules
 * (`ServerRequests`); and what one connection can make the server hold is
 * bounded in bytes (`ServerConnection`), so that one client can neither
 * crash the server nor starve the others. A client that breaks the protocol
 * loses its own connection, nobody else's.
 *
 * Across machines, a server lets in only its own workers: with `auth: {
 * token }` a connection proves it holds the token before anything it sends
 * is served (see `Handshake`: a challenge–response, the token never
 * travels), and is otherwise refused with `Denied` and closed; with `tls`
 * the frames travel over TLS, and with `tls.ca` clients must present a
 * certificate signed by it (mutual TLS). A TCP address that is not loopback
 * is refused at startup unless the server authenticates its clients (a
 * token, or mutual TLS), or `insecure: true` says to serve it anyway (with
 * a warning in the log).
 *
 * Closing the Layer's scope stops accepting connections, closes the open
 * ones, interrupts the requests still running and removes the Unix socket
 * file; the served store's own Layer (built outside) is released after that.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import type * as Tls from "node:tls"
import { Config, Context, type Duration, Effect, FiberSet, Layer, Option, type Redacted, type Scope } from "effect"
import * as Handshake from "./Handshake.ts"
import * as Metrics from "./Metrics.ts"
import * as ServerConnection from "./ServerConnection.ts"
import * as ServerHandshake from "./ServerHandshake.ts"
import * as ServerListen from "./ServerListen.ts"
import * as ServerRequests from "./ServerRequests.ts"
import * as Store from "./Store.ts"
import * as Wire from "./Wire.ts"

/**
 * Where a server listens: a Unix socket path, or a TCP port (and host, by
 * default `127.0.0.1`).
 *
 * @since 0.1.0
 * @category models
 */
export type Address = { readonly path: string } | { readonly host?: string; readonly port: number }

/**
 * Renders an address for logs and messages: `unix:/path` or `tcp://host:port`.
 *
 * @since 0.1.0
 * @category models
 */
export const showAddress: (address: Address) => string = ServerListen.showAddress

/**
 * Parses `unix:/path`, `/path`, `tcp://host:port`, `host:port` or a bare port.
 *
 * @since 0.1.0
 * @category models
 */
export const parseAddress = (text: string): Address | undefined => {
  if (text.startsWith("unix:")) return text.length > 5 ? { path: text.slice(5) } : undefined
  if (text.startsWith("/") || text.startsWith(".")) return { path: text }
  const hostPort = text.startsWith("tcp://") ? text.slice(6) : text
  const colon = hostPort.lastIndexOf(":")
  const host = colon === -1 ? undefined : hostPort.slice(0, colon).replace(/^\[(.*)\]$/, "$1")
  const portText = colon === -1 ? hostPort : hostPort.slice(colon + 1)
  if (!/^\d+$/.test(portText)) return undefined
  const port = Number(portText)
  if (port > 65535) return undefined
  return host === undefined || host === "" ? { port } : { host, port }
}

/**
 * The default of `Options.handshakeTimeout`: 10 seconds (see
 * `Handshake.defaultTimeout`).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultHandshakeTimeout: Duration.Duration = Handshake.defaultTimeout

/**
 * The default frame size limit (see `Wire.defaultMaxFrameBytes`).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxFrameBytes = Wire.defaultMaxFrameBytes

/**
 * The running server.
 *
 * @since 0.1.0
 * @category models
 */
export interface Info {
  /** Where it listens; for TCP port 0, the port the system chose. */
  readonly address: Address
  /** How many connections the handshake has refused so far (a wrong or missing token). */
  readonly refusedConnections: () => number
}

/**
 * The `Server` service: where the server provided by {@link layer} listens.
 *
 * @since 0.1.0
 * @category services
 */
export class Server extends Context.Service<Server, Info>()("@partd/core/Server") {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Where to listen. TCP port 0 picks a free port (see the `Server` service). */
  readonly address: Address
  /**
   * Serve only connections that prove they hold `token` (see `Handshake`);
   * the others are refused with `Denied`. Needed on a TCP address that is
   * not loopback, unless `tls.ca` or `insecure` is given.
   */
  readonly auth?: { readonly token: Redacted.Redacted<string> } | undefined
  /** Speak TLS (see {@link TlsOptions}). */
  readonly tls?: TlsOptions | undefined
  /**
   * Serve a TCP address that is not loopback without authenticating clients:
   * anyone who reaches it can read, write and drop the store. Logs a warning.
   */
  readonly insecure?: boolean | undefined
  /**
   * How long a connection may take to be admitted (with TLS, its TLS
   * handshake, then the greeting and, with `auth`, the token's proof) before
   * the server closes it (default {@link defaultHandshakeTimeout}; a positive,
   * finite duration).
   */
  readonly handshakeTimeout?: Duration.Input | undefined
  /** The largest frame accepted or sent, in bytes (default {@link defaultMaxFrameBytes}). */
  readonly maxFrameBytes?: number | undefined
  /**
   * The largest append sent in parts (one larger than a frame) that a
   * connection may have the server hold until its last part, in bytes,
   * counting `Wire.chunkOverheadBytes` per chunk (default
   * `Wire.defaultMaxAppendBytes`, 1 GiB).
   */
  readonly maxAppendBytes?: number | undefined
  /**
   * The most chunks (or values) one frame may carry (default
   * `Wire.defaultMaxChunksPerFrame`). A frame with more closes the
   * connection; `Client` sends larger appends in parts and larger gets in
   * several requests, given the same bound.
   */
  readonly maxChunksPerFrame?: number | undefined
  /**
   * How many bytes of received requests a connection may have waiting to be
   * applied before the server stops reading from it (default
   * {@link defaultMaxQueuedBytes}).
   */
  readonly maxQueuedBytes?: number | undefined
  /**
   * How many bytes of replies may wait for a connection's client to read
   * them before the server stops applying its requests (default
   * {@link defaultMaxUnreadBytes}).
   */
  readonly maxUnreadBytes?: number | undefined
}

/**
 * A server's TLS material, in PEM.
 *
 * @since 0.1.0
 * @category models
 */
export interface TlsOptions {
  /** The server's private key. */
  readonly key: string | Uint8Array
  /** The server's certificate (chain). */
  readonly cert: string | Uint8Array
  /**
   * Mutual TLS: clients must present a certificate signed by this CA, or
   * their connection is refused during the TLS handshake.
   */
  readonly ca?: string | Uint8Array | undefined
}

/**
 * The default of `Options.maxQueuedBytes`: 64 MiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxQueuedBytes = 64 * 1024 * 1024

/**
 * The default of `Options.maxUnreadBytes`: 8 MiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxUnreadBytes = 8 * 1024 * 1024

/**
 * How much a connection reads ahead (see `ServerListen`).
 *
 * @since 0.1.0
 * @category constants
 */
export const socketHighWaterMark = ServerListen.socketHighWaterMark

/** The limits of a server's options, defaults filled in. */
const limitsOf = (options: Omit<Options, "address">): ServerConnection.Limits => ({
  maxFrameBytes: options.maxFrameBytes ?? defaultMaxFrameBytes,
  maxChunksPerFrame: options.maxChunksPerFrame ?? Wire.defaultMaxChunksPerFrame,
  maxAppendBytes: options.maxAppendBytes ?? Wire.defaultMaxAppendBytes,
  maxQueuedBytes: options.maxQueuedBytes ?? defaultMaxQueuedBytes,
  maxUnreadBytes: options.maxUnreadBytes ?? defaultMaxUnreadBytes
})

/** Where a listening server is: for TCP port 0, the port the system chose. */
const boundAddress = (asked: Address, server: Net.Server): Address => {
  const bound = server.address()
  return "path" in asked || bound === null || typeof bound === "string"
    ? asked
    : { host: bound.address, port: bound.port }
}

/** PEM text or bytes as Node's TLS options take them. */
const pem = (material: string | Uint8Array): string | globalThis.Buffer =>
  typeof material === "string"
    ? material
    : globalThis.Buffer.from(material.buffer, material.byteOffset, material.byteLength)

/**
 * Node's TLS server options for ours, the TLS handshake bounded by
 * `handshakeTimeout`: with a CA, client certificates are required and
 * checked.
 */
const tlsServerOptions = (tls: TlsOptions | undefined, handshakeTimeout: number): Tls.TlsOptions | undefined =>
  tls === undefined
    ? undefined
    : {
        key: pem(tls.key),
        cert: pem(tls.cert),
        handshakeTimeout,
        ...(tls.ca === undefined ? {} : { ca: pem(tls.ca), requestCert: true, rejectUnauthorized: true })
      }

/**
 * Refuses a TCP address that is not loopback when the server would let in
 * anyone, unless told `insecure`; then warns.
 */
const checkExposure = (options: Options): Effect.Effect<void, Store.StoreError> => {
  if (ServerListen.isLocal(options.address) || options.auth !== undefined || options.tls?.ca !== undefined) {
    return Effect.void
  }
  const where = showAddress(options.address)
  if (options.insecure === true) {
    return Effect.logWarning(
      `partd Server: serving ${where} without authentication (insecure): anyone who can reach it can read, write and drop the store`
    )
  }
  return Effect.fail(
    new Store.StoreError({
      reason: "BadValue",
      method: "Server.layer",
      description: `refusing to serve ${where} without authentication: give a token (auth: { token }, or partd-server --token-file / PARTD_TOKEN), or insecure: true (--insecure) to let anyone in`
    })
  )
}

/**
 * Serves `store` on `options.address` until the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (store: Store.Shape, options: Options): Effect.Effect<Info, Store.StoreError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* checkExposure(options)
    const handshakeTimeout = Handshake.timeoutMillis("Server.layer", options.handshakeTimeout)
    if (handshakeTimeout instanceof Store.StoreError) return yield* handshakeTimeout
    const limits = limitsOf(options)
    const token = options.auth?.token
    let refusedConnections = 0
    // Made before listening, so closed after the connections: running requests are interrupted last.
    const run = yield* FiberSet.makeRuntime<never, ServerRequests.Result, Store.StoreError>()
    const metrics = yield* Metrics.server
    const shared: ServerConnection.Shared = {
      requests: ServerRequests.make(store, limits),
      run: metrics.running(run),
      limits,
      logDebug: (message, cause) => {
        run(Effect.as(Effect.logDebug(`partd Server: ${message}`, cause), undefined))
      },
      handshake: () => ServerHandshake.make(token, handshakeTimeout),
      refused: (why, remote) => {
        refusedConnections++
        run(Effect.as(Effect.logWarning(`partd Server: refused a connection from ${remote}: ${why}`), undefined))
      }
    }
    const server = yield* ServerListen.listen(
      options.address,
      (socket) => {
        metrics.connected(socket)
        ServerConnection.serve(socket, shared)
      },
      tlsServerOptions(options.tls, handshakeTimeout)
    )
    return Server.of({ address: boundAddress(options.address, server), refusedConnections: () => refusedConnections })
  })

/**
 * Serves the `Store` in context on `options.address`; provides the `Server`
 * service, which tells where it listens. Closing the Layer's scope closes the
 * socket (and removes a Unix socket's file).
 *
 * @example
 * ```ts
 * const served = Server.layer({ address: { path: "/tmp/partd.sock" } }).pipe(Layer.provide(File.layer({ dir })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Server, Store.StoreError, Store.Store> =>
  Layer.effect(
    Server,
    Effect.gen(function* () {
      return yield* make(yield* Store.Store, options)
    })
  )

/**
 * {@link layer}, with the token read from `Config` (by default the
 * `PARTD_TOKEN` environment variable) when `options.auth` is not given: a
 * server with the variable set lets in only clients with the same token.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Options,
  token: Config.Config<Redacted.Redacted<string>> = Config.Redacted("PARTD_TOKEN")
): Layer.Layer<Server, Store.StoreError | Config.ConfigError, Store.Store> =>
  Layer.effect(
    Server,
    Effect.gen(function* () {
      const store = yield* Store.Store
      if (options.auth !== undefined) return yield* make(store, options)
      const configured = yield* Config.option(token)
      return yield* make(store, Option.isSome(configured) ? { ...options, auth: { token: configured.value } } : options)
    })
  )
