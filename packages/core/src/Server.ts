/**
 * Server: serves a `Store` to many processes over a Unix socket or TCP, as
 * partd's `Server` does; processes reach it with `Client`.
 *
 * The server speaks the protocol in `Wire` over Node's `net` module. Each
 * request is one call to the served store, so a call's chunks are applied
 * together, and each connection's requests are applied one at a time, in the
 * order they arrived: a client's appends land in its own order even when it
 * does not wait for their replies (see `Pipelined`). Different connections
 * are served concurrently. Each request runs as a fiber of the server's
 * scope.
 *
 * Why `node:net` and not `effect/rpc` over `effect/socket`: see `Wire`; the
 * RPC version of this server reached 3.6× partd-py on W1, this one is
 * measured in `npm run bench`.
 *
 * Safety, because a socket is a door into the store:
 *
 * - TCP binds the loopback address unless told otherwise, and a Unix socket
 *   is owner-only (mode 0600) from the moment it is reachable at its path.
 * - Frames have a size limit (`maxFrameBytes`, default 128 MiB: a 64 MiB value
 *   with room to spare). A frame over the limit, or bytes that do not decode,
 *   close that client's connection; requests that decode but do not make
 *   sense fail with a `Protocol` error. Either way only that client is
 *   affected: each connection has its own parser, and a request is applied
 *   only once it has been received whole, so a client that vanishes
 *   mid-request leaves nothing half-written.
 * - Keys are validated again on the server, by the store's own rules
 *   (`Store.toPaths`), whatever the client claims to have checked.
 * - A connection that sends requests faster than the store applies them is
 *   paused (not read) until its queue drains, and replies wait for the
 *   socket to take them: a client cannot make the server buffer without
 *   bound.
 *
 * Closing the Layer's scope stops accepting connections, closes the open
 * ones, interrupts the requests still running and removes the Unix socket
 * file; the served store's own Layer (built outside) is released after that.
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as NodePath from "node:path"
import { Cause, Context, Effect, Exit, FiberSet, Layer, type Scope } from "effect"
import type * as Key from "./Key.ts"
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
export const showAddress = (address: Address): string =>
  "path" in address ? `unix:${address.path}` : `tcp://${address.host ?? "127.0.0.1"}:${address.port}`

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
  /** The largest frame accepted or sent, in bytes (default {@link defaultMaxFrameBytes}). */
  readonly maxFrameBytes?: number
  /**
   * The largest append sent in parts (one larger than a frame) that a
   * connection may have the server hold until its last part, in bytes
   * (default `Wire.defaultMaxAppendBytes`, 1 GiB).
   */
  readonly maxAppendBytes?: number
}

/** The most characters of joined key lists the server remembers as validated. */
const maxCachedPathChars = 4 * 1024 * 1024

/**
 * Splits and validates joined key lists, remembering the result by the joined
 * text: a shuffle's workers append to the same keys call after call, so the
 * second call with a key list costs one map lookup instead of splitting and
 * validating every key, and the store's backend sees the same frozen array
 * each time (which it may cache by, as with `Store.columns`). Bounded by
 * `maxCachedPathChars`; forgotten all at once when full.
 */
const makePathCache = () => {
  const cache = new Map<string, ReadonlyArray<Key.Path>>()
  let chars = 0
  return (method: string, joined: string, count: number): ReadonlyArray<Key.Path> | Store.StoreError => {
    const known = cache.get(joined)
    if (known !== undefined && known.length === count) return known
    const split = Wire.splitPaths(method, joined, count)
    if (split instanceof Store.StoreError) return split
    // Validated here, by the store's own rules: a client is not trusted.
    const valid = Store.toPaths(method, split)
    if (valid instanceof Store.StoreError) return valid
    if (joined.length <= maxCachedPathChars / 4) {
      if (chars + joined.length > maxCachedPathChars) {
        cache.clear()
        chars = 0
      }
      cache.set(joined, Object.freeze(valid))
      chars += joined.length
    }
    return valid
  }
}

const failedUnexpectedly = (method: string, cause: Cause.Cause<unknown>): Store.StoreError => {
  const error = Cause.squash(cause)
  return error instanceof Store.StoreError
    ? error
    : new Store.StoreError({
        reason: "Io",
        method,
        description: `the served store failed unexpectedly: ${Cause.pretty(cause)}`
      })
}

type AppendRequest = Extract<Wire.Request, { readonly _tag: "Append" }>

/** What each request does to the served store. */
const handlers = (store: Store.Shape, maxFrameBytes: number) => {
  const backend = Store.toBackend(store)
  const pathsOf = makePathCache()
  /** Every request but an append (see `serve`, which puts appends sent in parts together). */
  const handle = (
    request: Exclude<Wire.Request, AppendRequest>
  ): Effect.Effect<ReadonlyArray<Uint8Array> | undefined, Store.StoreError> => {
    switch (request._tag) {
      case "Get": {
        const valid = pathsOf("get", request.paths, request.count)
        if (valid instanceof Store.StoreError) return Effect.fail(valid)
        return Effect.flatMap(store.get(valid), (values) => {
          let total = 0
          for (let i = 0; i < values.length; i++) total += values[i]!.byteLength + 8
          // Checked here so that the client gets a typed error, not a closed connection.
          return total + 64 * 1024 > maxFrameBytes
            ? Effect.fail(
                new Store.StoreError({
                  reason: "Protocol",
                  method: "get",
                  description: `the reply of ${total} bytes exceeds the frame limit of ${maxFrameBytes} bytes: get fewer keys at a time`
                })
              )
            : Effect.succeed(values)
        })
      }
      case "Iset":
        return Effect.as(store.iset(request.path, request.value), undefined)
      case "Delete": {
        const split = Wire.splitPaths("delete", request.paths, request.count)
        return split instanceof Store.StoreError ? Effect.fail(split) : Effect.as(store.delete(split), undefined)
      }
      case "Drop":
        return Effect.as(store.drop, undefined)
    }
  }
  /**
   * Appends validated paths: they go to the store's backend as the parallel
   * arrays it takes, with no pair per chunk on the way.
   */
  const appendValid = (paths: ReadonlyArray<Key.Path>, values: ReadonlyArray<Uint8Array>) =>
    paths.length === 0 ? Effect.undefined : Effect.as(backend.append(paths, values), undefined)
  return { handle, pathsOf, appendValid }
}

/** The parts received so far of an append sent in parts, and the first error among them. */
interface Staged {
  readonly paths: Array<Key.Path>
  readonly values: Array<Uint8Array>
  bytes: number
  failed: Store.StoreError | undefined
}

/**
 * How much a connection reads ahead: a shuffle's append is hundreds of KiB,
 * and reading it in Node's default 64 KiB steps costs a trip through the
 * event loop per step.
 *
 * @since 0.1.0
 * @category constants
 */
export const socketHighWaterMark = 1024 * 1024

/** A connection with this many requests waiting is not read until they are down to half. */
const maxQueuedRequests = 64

/**
 * Listens on `address` (a Unix socket path is taken as it is); the server
 * stops listening and its connections are closed when the scope closes.
 */
const listenOn = (
  address: Address | { readonly path: string },
  onConnection: (socket: Net.Socket) => void
): Effect.Effect<Net.Server, Error, Scope.Scope> => {
  const connections = new Set<Net.Socket>()
  return Effect.acquireRelease(
    Effect.callback<Net.Server, Error>((resume) => {
      const server = Net.createServer({ highWaterMark: socketHighWaterMark, noDelay: true }, (socket) => {
        connections.add(socket)
        socket.once("close", () => connections.delete(socket))
        onConnection(socket)
      })
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
  new Store.StoreError({
    reason: "Io",
    method: "Server.layer",
    description: `cannot listen on ${showAddress(address)}: ${cause instanceof Error ? cause.message : String(cause)}`,
    cause
  })

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
const listenUnix = (path: string, onConnection: (socket: Net.Socket) => void) =>
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
    const server = yield* listenOn({ path: hidden }, onConnection)
    yield* Effect.try(() => {
      Fs.chmodSync(hidden, 0o600)
      Fs.renameSync(hidden, path)
    })
    return server
  })

/** Listens on the address. */
const listen = (address: Address, onConnection: (socket: Net.Socket) => void) =>
  ("path" in address ? listenUnix(address.path, onConnection) : listenOn(address, onConnection)).pipe(
    Effect.mapError((error) => openError(address, error))
  )

/**
 * Serves `store` on `options.address` until the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (store: Store.Shape, options: Options): Effect.Effect<Info, Store.StoreError, Scope.Scope> =>
  Effect.gen(function* () {
    const maxFrameBytes = options.maxFrameBytes ?? defaultMaxFrameBytes
    const maxAppendBytes = options.maxAppendBytes ?? Wire.defaultMaxAppendBytes
    const { handle, pathsOf, appendValid } = handlers(store, maxFrameBytes)
    // Made before listening, so closed after the connections: running requests are interrupted last.
    const run = yield* FiberSet.makeRuntime<never, ReadonlyArray<Uint8Array> | undefined, Store.StoreError>()
    const logDebug = (message: string, cause: unknown) => {
      run(Effect.as(Effect.logDebug(`partd Server: ${message}`, cause), undefined))
    }

    const serve = (socket: Net.Socket) => {
      const parser = Wire.makeParser(maxFrameBytes)
      const queue: Array<unknown> = []
      let head = 0
      let busy = false
      let paused = false
      let waitingForDrain = false
      // An append sent in parts is held here until its last part, then applied
      // as one append: nobody sees part of it, and a connection lost before
      // the last part leaves nothing behind.
      let staged: Staged | undefined
      // A client that resets its connection (a process that died, a connection
      // closed for bad input) is routine for a server, not an error to log.
      socket.on("error", (error) => logDebug("a connection ended with an error", error))
      /** Closes this connection over something it sent (or a reply that failed); the others carry on. */
      const hangUp = (why: string, error: unknown): void => {
        logDebug(why, error)
        socket.destroy()
      }

      const reply = (message: Wire.Reply): void => {
        if (socket.destroyed) return
        let frame: Uint8Array
        try {
          frame = parser.encode(message)
        } catch (error) {
          hangUp("a reply could not be encoded", error)
          return
        }
        if (!socket.write(frame)) waitingForDrain = true
      }

      /**
       * An append: in one frame, it runs at once. Sent in parts, a part with
       * `more` is held (or fails, and then so does the rest of that append),
       * and the last part gives the whole append to run.
       */
      const append = (
        request: AppendRequest
      ): Wire.Reply | Effect.Effect<ReadonlyArray<Uint8Array> | undefined, Store.StoreError> => {
        if (staged === undefined && request.more !== true) {
          const valid = pathsOf("append", request.paths, request.values.length)
          return valid instanceof Store.StoreError ? Effect.fail(valid) : appendValid(valid, request.values)
        }
        const part: Staged = staged ?? { paths: [], values: [], bytes: 0, failed: undefined }
        staged = part
        if (part.failed === undefined) {
          const valid = pathsOf("append", request.paths, request.values.length)
          let bytes = 0
          for (const value of request.values) bytes += value.byteLength
          if (valid instanceof Store.StoreError) {
            part.failed = valid
          } else if (part.bytes + bytes > maxAppendBytes) {
            part.failed = new Store.StoreError({
              reason: "BadValue",
              method: "append",
              description: `an append of more than ${maxAppendBytes} bytes (the server's maxAppendBytes)`
            })
          } else {
            for (let i = 0; i < valid.length; i++) {
              part.paths.push(valid[i]!)
              part.values.push(request.values[i]!)
            }
            part.bytes += bytes
          }
        }
        if (request.more === true) {
          return part.failed === undefined
            ? { _tag: "Done", id: request.id }
            : { _tag: "Failed", id: request.id, error: Wire.encodeError(part.failed) }
        }
        staged = undefined
        return part.failed === undefined
          ? appendValid(part.paths, part.values)
          : { _tag: "Failed", id: request.id, error: Wire.encodeError(part.failed) }
      }

      /** Applies waiting requests, one at a time, in order. */
      const pump = (): void => {
        while (!busy && !waitingForDrain && head < queue.length && !socket.destroyed) {
          const message = queue[head]
          queue[head++] = undefined
          if (head === queue.length) {
            queue.length = 0
            head = 0
          }
          if (paused && queue.length - head <= maxQueuedRequests / 2) {
            paused = false
            socket.resume()
          }
          let request: ReturnType<typeof Wire.toRequest>
          try {
            request = Wire.toRequest(message)
          } catch (error) {
            hangUp("a connection sent a message that is not a request", error)
            return
          }
          if (!("_tag" in request)) {
            reply({ _tag: "Failed", id: request.id, error: Wire.encodeError(request.error) })
            continue
          }
          let work: Effect.Effect<ReadonlyArray<Uint8Array> | undefined, Store.StoreError>
          if (request._tag === "Append") {
            const appending = append(request)
            if (!Effect.isEffect(appending)) {
              reply(appending)
              continue
            }
            work = appending
          } else if (staged !== undefined) {
            // A client sends an append's parts back to back: anything else in
            // between breaks the protocol, and fails along with that append.
            staged.failed ??= new Store.StoreError({
              reason: "Protocol",
              method: "append",
              description: "a request came between the parts of this append; nothing of it was applied"
            })
            reply({ _tag: "Failed", id: request.id, error: Wire.encodeError(staged.failed) })
            continue
          } else {
            work = handle(request)
          }
          const { id, _tag: method } = request
          busy = true
          let synchronous = true
          run(work).addObserver((exit) => {
            busy = false
            if (Exit.isSuccess(exit)) {
              reply(exit.value === undefined ? { _tag: "Done", id } : { _tag: "Done", id, values: exit.value })
            } else if (!Cause.hasInterruptsOnly(exit.cause)) {
              reply({
                _tag: "Failed",
                id,
                error: Wire.encodeError(failedUnexpectedly(method.toLowerCase(), exit.cause))
              })
            }
            // A request that completed at once is followed by the loop above.
            if (!synchronous) pump()
          })
          synchronous = false
        }
      }

      socket.on("drain", () => {
        waitingForDrain = false
        pump()
      })
      socket.on("data", (chunk: Uint8Array) => {
        let messages: Array<unknown>
        try {
          messages = parser.decode(chunk)
        } catch (error) {
          hangUp("a connection sent bytes that are not frames of this protocol", error)
          return
        }
        for (let i = 0; i < messages.length; i++) queue.push(messages[i])
        if (!paused && queue.length - head >= maxQueuedRequests) {
          paused = true
          socket.pause()
        }
        pump()
      })
    }

    const server = yield* listen(options.address, serve)
    const bound = server.address()
    const address: Address =
      "path" in options.address || bound === null || typeof bound === "string"
        ? options.address
        : { host: bound.address, port: bound.port }
    return Server.of({ address })
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
