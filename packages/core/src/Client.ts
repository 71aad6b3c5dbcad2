/**
 * Client: a `Store` that talks to a `Server`, as partd's `Client(address)`
 * does, so that many processes share one store.
 *
 * Every store operation is one request (see `Wire`), sent over Node's `net`
 * module and answered by the server in order; errors raised by the served
 * store arrive as the same typed `StoreError`. Keys are validated here
 * before anything is sent, and again by the server. A request costs one
 * `Effect.callback` and one frame each way (see `Wire` for why this is not
 * `effect/rpc`).
 *
 * The connection opens on first use and reopens on the next request after it
 * is lost. A request caught by a lost connection fails with reason
 * `Unavailable`: it may or may not have been applied, so the caller decides
 * whether to retry. A request interrupted by its caller is still applied by
 * the server if it was sent; its reply is dropped.
 *
 * An append whose packed size exceeds the frame limit is split into several
 * requests, sent in order (each key's chunks stay in order; another client's
 * append may land in between). A single chunk larger than the limit fails
 * with `BadValue`. A `get` whose reply would exceed the limit fails with a
 * `Protocol` error from the server: get fewer keys at a time.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import { Effect, Layer, type Scope } from "effect"
import type * as Key from "./Key.ts"
import * as Server from "./Server.ts"
import * as Store from "./Store.ts"
import * as Wire from "./Wire.ts"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The server's address, as given to `Server.layer` or as text (`unix:/path`, `tcp://host:port`). */
  readonly address: Server.Address | string
  /** The largest frame sent or accepted, in bytes (default `Server.defaultMaxFrameBytes`). */
  readonly maxFrameBytes?: number
}

type Resume = (effect: Effect.Effect<ReadonlyArray<Uint8Array> | undefined, Store.StoreError>) => void

/** One connection to the server and the requests waiting for its replies. */
interface Connection {
  readonly socket: Net.Socket
  readonly parser: Wire.Parser
  readonly waiting: Map<number, { readonly method: string; readonly resume: Resume }>
  nextId: number
}

/**
 * A store served by the server at `options.address`; the connection is
 * closed when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Store.Shape, Store.StoreError, Scope.Scope> =>
  Effect.gen(function* () {
    const address = typeof options.address === "string" ? Server.parseAddress(options.address) : options.address
    if (address === undefined) {
      return yield* new Store.StoreError({
        reason: "BadValue",
        method: "Client.make",
        description: `not an address: ${JSON.stringify(options.address)}`
      })
    }
    const maxFrameBytes = options.maxFrameBytes ?? Server.defaultMaxFrameBytes
    // Room for the request's envelope besides the packed chunks.
    const maxBatchBytes = maxFrameBytes - 64 * 1024
    const connectOptions = {
      ...("path" in address ? { path: address.path } : { host: address.host ?? "127.0.0.1", port: address.port }),
      noDelay: true,
      readableHighWaterMark: Server.socketHighWaterMark,
      writableHighWaterMark: Server.socketHighWaterMark
    }
    let current: Connection | undefined
    let closing = false
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closing = true
        current?.socket.destroy()
        current = undefined
      })
    )

    /** Fails every waiting request of a connection that is gone, and forgets the connection. */
    const lost = (connection: Connection, reason: "Unavailable" | "Protocol", description: string) => {
      if (current === connection) current = undefined
      const waiting = [...connection.waiting.values()]
      connection.waiting.clear()
      for (const { method, resume } of waiting) {
        resume(Effect.fail(new Store.StoreError({ reason, method, description })))
      }
    }

    /**
     * Opens a connection. Requests are written at once: the socket holds
     * them until it has connected, and a connection that cannot be made
     * fails them all with `Unavailable`.
     */
    const connect = (): Connection => {
      const socket = Net.createConnection(connectOptions)
      const connection: Connection = {
        socket,
        parser: Wire.makeParser(maxFrameBytes),
        waiting: new Map(),
        nextId: 0
      }
      let error: Error | undefined
      socket.on("error", (e) => {
        error = e
      })
      socket.on("close", () =>
        lost(
          connection,
          "Unavailable",
          closing
            ? "the client was closed"
            : `the connection to ${Server.showAddress(address)} was lost: ${error?.message ?? "closed by the server"}`
        )
      )
      socket.on("data", (chunk: Uint8Array) => {
        let messages: Array<unknown>
        try {
          messages = connection.parser.decode(chunk)
        } catch (e) {
          socket.destroy()
          lost(connection, "Protocol", `the server sent bytes that are not frames of this protocol: ${String(e)}`)
          return
        }
        for (const message of messages) {
          const reply = Wire.toReply(message)
          if (reply === undefined) {
            socket.destroy()
            lost(connection, "Protocol", "the server sent a message that is not a reply")
            return
          }
          connection.parser.release(reply.id)
          const request = connection.waiting.get(reply.id)
          // A request whose caller was interrupted has no one waiting.
          if (request === undefined) continue
          connection.waiting.delete(reply.id)
          request.resume(
            reply._tag === "Done" ? Effect.succeed(reply.values) : Effect.fail(Wire.decodeError(reply.error))
          )
        }
      })
      return connection
    }

    /** Sends one request and waits for its reply. */
    const request = (
      method: string,
      message: Record<string, unknown>
    ): Effect.Effect<ReadonlyArray<Uint8Array> | undefined, Store.StoreError> =>
      Effect.callback((resume) => {
        if (current === undefined || current.socket.destroyed) current = connect()
        const connection = current
        const id = connection.nextId++
        let frame: Uint8Array
        try {
          frame = connection.parser.encode({ ...message, id }, id)
        } catch (cause) {
          resume(Effect.fail(new Store.StoreError({ reason: "BadValue", method, description: String(cause), cause })))
          return
        }
        connection.waiting.set(id, { method, resume })
        connection.socket.write(frame)
        return Effect.sync(() => {
          connection.waiting.delete(id)
        })
      })

    const appendPacked = (paths: ReadonlyArray<Key.Path>, values: ReadonlyArray<Uint8Array>) =>
      Effect.asVoid(request("append", { _tag: "Append", paths: Wire.joinPaths(paths), values }))

    const append = (
      paths: ReadonlyArray<Key.Path>,
      values: ReadonlyArray<Uint8Array>
    ): Effect.Effect<void, Store.StoreError> => {
      if (Wire.framedBytes(paths, values) <= maxBatchBytes) return appendPacked(paths, values)
      // Too large for one frame: consecutive slices, each under the limit, in order.
      const slices: Array<readonly [number, number]> = []
      let start = 0
      let size = 0
      for (let i = 0; i < values.length; i++) {
        const one = Wire.framedBytes([paths[i]!], [values[i]!])
        if (one > maxBatchBytes) {
          return Effect.fail(
            new Store.StoreError({
              reason: "BadValue",
              method: "append",
              key: paths[i]!,
              description: `a chunk of ${values[i]!.byteLength} bytes exceeds the frame limit of ${maxFrameBytes} bytes`
            })
          )
        }
        if (size + one > maxBatchBytes) {
          slices.push([start, i])
          start = i
          size = 0
        }
        size += one
      }
      slices.push([start, values.length])
      return Effect.forEach(slices, ([from, to]) => appendPacked(paths.slice(from, to), values.slice(from, to)), {
        discard: true
      })
    }

    return yield* Store.make({
      append,
      get: (paths) =>
        Effect.flatMap(request("get", { _tag: "Get", paths: Wire.joinPaths(paths), count: paths.length }), (values) =>
          values !== undefined && values.length === paths.length
            ? Effect.succeed(values)
            : Effect.fail(
                new Store.StoreError({
                  reason: "Protocol",
                  method: "get",
                  description: `asked for ${paths.length} values, got ${values?.length ?? "none"}`
                })
              )
        ),
      iset: (path, value) => Effect.asVoid(request("iset", { _tag: "Iset", path, value })),
      delete: (paths) =>
        Effect.asVoid(request("delete", { _tag: "Delete", paths: Wire.joinPaths(paths), count: paths.length })),
      drop: Effect.asVoid(request("drop", { _tag: "Drop" }))
    })
  })

/**
 * A `Store` served by the server at `options.address`.
 *
 * @example
 * ```ts
 * const store = Client.layer({ address: "unix:/tmp/partd.sock" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Store.Store, Store.StoreError> =>
  Layer.effect(Store.Store, make(options))
