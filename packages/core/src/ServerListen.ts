/**
 * ServerListen: where a `Server` listens, and how it gets there safely.
 *
 * TCP binds the loopback address unless told otherwise; with `tls`, it
 * speaks TLS (Node's `tls` module: the same frames over a TLS socket), and a
 * connection is handed on only once its TLS handshake (and, for mutual TLS,
 * the check of the client's certificate) has succeeded. A Unix socket is
 * owner-only from the moment it is reachable at its path: it is created in a
 * fresh owner-only directory, made owner-only itself, and only then renamed
 * to its path (a umask would do it too, but it is process-wide, and listening
 * is asynchronous). A stale socket file left by a server that died is
 * replaced; a live one is not. Closing the scope stops listening, closes the
 * open connections and removes the socket file.
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as NodePath from "node:path"
import * as Tls from "node:tls"
import { Effect, type Scope } from "effect"
import type { Address } from "./Server.ts"
import * as Store from "./Store.ts"

/**
 * How much a connection reads ahead: a shuffle's append is hundreds of KiB,
 * and reading it in Node's default 64 KiB steps costs a trip through the
 * event loop per step.
 *
 * @since 0.1.0
 * @category constants
 */
export const socketHighWaterMark = 1024 * 1024

/**
 * Whether a TCP address is reachable only from this machine: a loopback
 * address (`127.0.0.0/8`, `::1`, `localhost`). A Unix socket is.
 *
 * @since 0.1.0
 * @category models
 */
export const isLocal = (address: Address): boolean => {
  if ("path" in address) return true
  const host = (address.host ?? "127.0.0.1").toLowerCase().replace(/^::ffff:/, "")
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}

/**
 * Renders an address for logs and messages: `unix:/path` or `tcp://host:port`.
 *
 * @since 0.1.0
 * @category models
 */
export const showAddress = (address: Address): string =>
  "path" in address ? `unix:${address.path}` : `tcp://${address.host ?? "127.0.0.1"}:${address.port}`

/**
 * Listens on `address` (a Unix socket path is taken as it is); the server
 * stops listening and its connections are closed when the scope closes.
 */
const listenOn = (
  address: Address | { readonly path: string },
  onConnection: (socket: Net.Socket) => void,
  tls: Tls.TlsOptions | undefined
): Effect.Effect<Net.Server, Error, Scope.Scope> => {
  const connections = new Set<Net.Socket>()
  return Effect.acquireRelease(
    Effect.callback<Net.Server, Error>((resume) => {
      const accept = (socket: Net.Socket) => {
        connections.add(socket)
        socket.once("close", () => connections.delete(socket))
        onConnection(socket)
      }
      const netOptions = { highWaterMark: socketHighWaterMark, noDelay: true }
      const server =
        tls === undefined ? Net.createServer(netOptions, accept) : Tls.createServer({ ...netOptions, ...tls }, accept)
      // A client that fails its TLS handshake (a plain client, a bad certificate) concerns that client only.
      if (tls !== undefined) server.on("tlsClientError", (_error, socket) => socket.destroy())
      const onError = (error: Error) => resume(Effect.fail(error))
      server.once("error", onError)
      server.listen(
        "path" in address ? { path: address.path } : { host: address.host ?? "127.0.0.1", port: address.port },
        () => {
          server.off("error", onError)
          // After listening, errors concern single connections, which handle their own.
          server.on("error", () => {})
          resume(Effect.succeed(server))
        }
      )
    }),
    (server) =>
      Effect.sync(() => {
        server.close()
        for (const socket of connections) socket.destroy()
      })
  )
}

const openError = (address: Address, cause: unknown) =>
  Store.ioError(
    "Server.layer",
    new Error(`cannot listen on ${showAddress(address)}: ${Store.describeCause(cause)}`, { cause })
  )

/** Whether something listens on the Unix socket at `path` (a refused connection means a stale file). */
const socketInUse = (path: string) =>
  Effect.callback<boolean>((resume) => {
    const probe = Net.createConnection({ path })
    probe.once("connect", () => {
      probe.destroy()
      resume(Effect.succeed(true))
    })
    probe.once("error", (error: NodeJS.ErrnoException) => {
      probe.destroy()
      resume(Effect.succeed(error.code !== "ECONNREFUSED" && error.code !== "ENOENT"))
    })
  })

/**
 * Listens on a Unix socket that nobody else can reach, ever: it is created in
 * a fresh owner-only directory next to `path`, made owner-only itself, and
 * only then renamed to `path`. (A umask would do it too, but it is
 * process-wide, and listening is asynchronous.) A stale socket file left by a
 * server that died is replaced; a live one is not. The file is removed when
 * the scope closes.
 */
const listenUnix = (path: string, onConnection: (socket: Net.Socket) => void, tls: Tls.TlsOptions | undefined) =>
  Effect.gen(function* () {
    if (Fs.existsSync(path)) {
      if (!Fs.statSync(path).isSocket()) return yield* Effect.fail(new Error(`${path} exists and is not a socket`))
      if (yield* socketInUse(path)) return yield* Effect.fail(new Error(`a server already listens on ${path}`))
      Fs.rmSync(path, { force: true })
    }
    const privateDir = yield* Effect.acquireRelease(
      Effect.try(() => Fs.mkdtempSync(NodePath.join(NodePath.dirname(path), ".partd-"))),
      (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    )
    const hidden = NodePath.join(privateDir, "s")
    yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(path, { force: true })))
    const server = yield* listenOn({ path: hidden }, onConnection, tls)
    yield* Effect.try(() => {
      Fs.chmodSync(hidden, 0o600)
      Fs.renameSync(hidden, path)
    })
    return server
  })

/**
 * Listens on the address until the scope closes; `onConnection` is called
 * with each connection accepted (with `tls`, once its TLS handshake is done).
 *
 * @since 0.1.0
 * @category constructors
 */
export const listen = (
  address: Address,
  onConnection: (socket: Net.Socket) => void,
  tls?: Tls.TlsOptions | undefined
): Effect.Effect<Net.Server, Store.StoreError, Scope.Scope> =>
  ("path" in address ? listenUnix(address.path, onConnection, tls) : listenOn(address, onConnection, tls)).pipe(
    Effect.mapError((error) => openError(address, error))
  )
