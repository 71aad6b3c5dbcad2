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
 * An append whose packed size exceeds the frame limit is sent in parts, one
 * frame each, back to back; the server holds them and applies them as one
 * append when the last part arrives, so no other append lands in between and
 * a connection lost midway leaves nothing of it (the server bounds what it
 * holds: `maxAppendBytes`). A single chunk larger than the limit fails with
 * `BadValue`. A `get` whose reply would exceed the limit fails with a
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

/** Called once with a request's outcome: its error, or the values its reply carried. */
type Settle = (error: Store.StoreError | undefined, values?: ReadonlyArray<Uint8Array>) => void

/** One connection to the server and the requests waiting for its replies. */
interface Connection {
  readonly socket: Net.Socket
  readonly parser: Wire.Parser
  readonly waiting: Map<number, { readonly method: string; readonly settle: Settle }>
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
      for (const { method, settle } of waiting) settle(new Store.StoreError({ reason, method, description }))
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
          if (reply._tag === "Done") request.settle(undefined, reply.values)
          else request.settle(Wire.decodeError(reply.error))
        }
      })
      return connection
    }

    const connection = (): Connection => {
      if (current === undefined || current.socket.destroyed) current = connect()
      return current
    }

    /**
     * Sends requests back to back, in one go, so that nothing else this
     * client sends comes between them, and waits for every reply: succeeds
     * with the values of the last, or fails with the first failure in their
     * order. A single request's frame comes from the reused buffers.
     */
    const exchange = (
      method: string,
      messages: ReadonlyArray<Record<string, unknown>>
    ): Effect.Effect<ReadonlyArray<Uint8Array> | undefined, Store.StoreError> =>
      Effect.callback((resume) => {
        const to = connection()
        const frames: Array<Uint8Array> = []
        const ids: Array<number> = []
        try {
          for (const message of messages) {
            const id = to.nextId++
            frames.push(to.parser.encode({ ...message, id }, messages.length === 1 ? id : undefined))
            ids.push(id)
          }
        } catch (cause) {
          resume(Effect.fail(new Store.StoreError({ reason: "BadValue", method, description: String(cause), cause })))
          return
        }
        const errors = new Array<Store.StoreError | undefined>(ids.length)
        let remaining = ids.length
        ids.forEach((id, index) => {
          to.waiting.set(id, {
            method,
            settle: (error, values) => {
              errors[index] = error
              if (--remaining > 0) return
              const first = errors.find((e) => e !== undefined)
              resume(first === undefined ? Effect.succeed(values) : Effect.fail(first))
            }
          })
        })
        for (const frame of frames) to.socket.write(frame)
        return Effect.sync(() => {
          for (const id of ids) to.waiting.delete(id)
        })
      })

    /** Sends one request and waits for its reply. */
    const request = (method: string, message: Record<string, unknown>) => exchange(method, [message])

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
      // Sent in parts, one frame each, that the server holds until the last
      // one and then applies as one append (see `Wire.Request`).
      return Effect.asVoid(
        exchange(
          "append",
          slices.map(([from, to], i) => ({
            _tag: "Append",
            paths: Wire.joinPaths(paths.slice(from, to)),
            values: values.slice(from, to),
            ...(i < slices.length - 1 ? { more: true } : {})
          }))
        )
      )
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
