/**
 * Client: a `Store` that talks to a `Server`, as partd's `Client(address)`
 * does, so that many processes share one store.
 *
 * Every store operation is one request (see `Wire`), sent over Node's `net`
 * module and answered by the server in order; errors raised by the served
 * store arrive as the same typed `StoreError`. Keys are validated here
 * before anything is sent, and again by the server. A request costs one
 * `Effect.callback` and one frame each way.
 *
 * Waits are bounded, and a call given up on is not sent behind its caller's
 * back. A request is handed to the socket only once it has connected and
 * while it is not backed up; until then it waits in the client. A call that
 * gets no reply within `requestTimeout` (default 10 s), or whose connection
 * is lost, fails with `Unavailable` if it was never handed to the socket (it
 * was not applied and never will be: safe to retry), and with `Io` if it was
 * (the server may have applied it, or may yet). A call whose caller is
 * interrupted is taken back the same way if it was not yet sent. The
 * connection reopens on the next call.
 *
 * An append whose packed size exceeds the frame limit, or that has more
 * chunks than `maxChunksPerFrame`, is sent in parts, one frame each, back to
 * back; the server holds them and applies them as one append when the last
 * part arrives, so no other append lands in between and a connection lost
 * midway leaves nothing of it (the server bounds what it holds:
 * `maxAppendBytes`). A single chunk larger than the limit fails with
 * `BadValue`. A get of more keys than `maxChunksPerFrame` is sent as several
 * requests, back to back; a get whose reply would exceed the frame limit
 * fails with a `Protocol` error from the server: get fewer keys at a time.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import { Duration, Effect, Layer, type Scope } from "effect"
import * as BufferPool from "./BufferPool.ts"
import type * as Key from "./Key.ts"
import * as Observe from "./Observe.ts"
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
  readonly maxFrameBytes?: number | undefined
  /** The most chunks (or keys) one request may carry; the server's bound (default `Wire.defaultMaxChunksPerFrame`). */
  readonly maxChunksPerFrame?: number | undefined
  /**
   * How long a call waits for its reply before it fails with `Unavailable`
   * (default {@link defaultRequestTimeout}; `Duration.infinity` waits for
   * ever).
   */
  readonly requestTimeout?: Duration.Input
}

/**
 * The default of `Options.requestTimeout`: 10 seconds.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultRequestTimeout: Duration.Duration = Duration.seconds(10)

/** Called once with a request's outcome: its error, or the values its reply carried. */
type Settle = (error: Store.StoreError | undefined, values?: ReadonlyArray<Uint8Array>) => void

/** One call's requests on their way: held in the outbox until `sent`. */
interface Outgoing {
  readonly method: string
  readonly ids: ReadonlyArray<number>
  readonly frames: ReadonlyArray<Uint8Array>
  sent: boolean
}

/** One connection to the server and the requests waiting for its replies. */
interface Connection {
  readonly socket: Net.Socket
  readonly parser: Wire.Parser
  /** Request frames are written from reused buffers, each given back when its reply arrives. */
  readonly lender: BufferPool.Lender
  readonly waiting: Map<number, { readonly outgoing: Outgoing; readonly settle: Settle }>
  /** Calls not yet handed to the socket, in order. */
  readonly outbox: Array<Outgoing>
  connected: boolean
  nextId: number
}

/**
 * The error of a call that got no reply: `Unavailable` when it was never
 * sent (nothing was applied: safe to retry), `Io` when it was sent (the
 * server may have applied it, or may yet).
 */
const noReply = (outgoing: Outgoing, why: string): Store.StoreError =>
  outgoing.sent
    ? new Store.StoreError({
        reason: "Io",
        method: outgoing.method,
        description: `${why}; the request was sent and may have been applied`
      })
    : new Store.StoreError({
        reason: "Unavailable",
        method: outgoing.method,
        description: `${why}; the request was not sent, so it was not applied`
      })

/**
 * Hands calls from the outbox to the socket once it has connected, while it
 * is not backed up: what the socket holds is sent whatever happens to its
 * caller, what the outbox holds can still be taken back.
 */
const flush = (connection: Connection): void => {
  const { socket, outbox } = connection
  while (outbox.length > 0 && connection.connected && !socket.writableNeedDrain && !socket.destroyed) {
    const outgoing = outbox.shift()!
    outgoing.sent = true
    for (const frame of outgoing.frames) socket.write(frame)
  }
}

/** Sends a call: at once when nothing waits before it and the socket takes it, else after those. */
const send = (connection: Connection, outgoing: Outgoing): void => {
  connection.outbox.push(outgoing)
  if (connection.outbox.length === 1) flush(connection)
}

/**
 * Stops waiting for a call: a call still in the outbox is taken out, never
 * to be sent, and its reused buffers are given back.
 */
const giveUp = (connection: Connection, outgoing: Outgoing): void => {
  for (const id of outgoing.ids) connection.waiting.delete(id)
  if (outgoing.sent) return
  const at = connection.outbox.indexOf(outgoing)
  if (at !== -1) connection.outbox.splice(at, 1)
  for (const id of outgoing.ids) connection.lender.giveBack(id)
}

/** Fails every waiting request of a connection that is gone. */
const failWaiting = (connection: Connection, why: string): void => {
  const waiting = [...connection.waiting.values()]
  connection.waiting.clear()
  connection.outbox.length = 0
  for (const { outgoing, settle } of waiting) {
    settle(noReply(outgoing, why))
  }
}

/** Hands each reply to the request waiting for it. */
const receive = (connection: Connection, chunk: Uint8Array): string | undefined => {
  let messages: Array<unknown>
  try {
    messages = connection.parser.decode(chunk)
  } catch (e) {
    return `the server sent bytes that are not frames of this protocol: ${String(e)}`
  }
  for (const message of messages) {
    const reply = Wire.toReply(message)
    if (reply === undefined) return "the server sent a message that is not a reply"
    // The server has read the whole request: its buffer may be reused.
    connection.lender.giveBack(reply.id)
    const request = connection.waiting.get(reply.id)
    // A request whose caller stopped waiting has no one waiting.
    if (request === undefined) continue
    connection.waiting.delete(reply.id)
    if (reply._tag === "Done") request.settle(undefined, reply.values)
    else request.settle(Wire.decodeError(reply.error))
  }
  return undefined
}

/** The largest frame pooled for reuse; larger requests get a buffer of their own. */
const maxPooledBytes = 8 * 1024 * 1024

/**
 * Opens a connection. Requests wait in the outbox until it has connected; a
 * connection that cannot be made fails them all with `Unavailable`.
 */
const connect = (
  connectOptions: Net.NetConnectOpts,
  limits: Wire.Limits,
  lost: (connection: Connection, why: string) => void,
  describeClose: (error: Error | undefined) => string
): Connection => {
  const socket = Net.createConnection(connectOptions)
  const connection: Connection = {
    socket,
    parser: Wire.makeParser(limits),
    lender: BufferPool.makeLender({ spares: 4, minBytes: 64 * 1024, maxBytes: maxPooledBytes, maxLent: 64 }),
    waiting: new Map(),
    outbox: [],
    connected: false,
    nextId: 0
  }
  let error: Error | undefined
  socket.on("error", (e) => {
    error = e
  })
  socket.once("connect", () => {
    connection.connected = true
    flush(connection)
  })
  socket.on("drain", () => flush(connection))
  socket.on("close", () => lost(connection, describeClose(error)))
  socket.on("data", (chunk: Uint8Array) => {
    const broken = receive(connection, chunk)
    if (broken === undefined) return
    socket.destroy()
    lost(connection, broken)
  })
  return connection
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
    const maxChunks = options.maxChunksPerFrame ?? Wire.defaultMaxChunksPerFrame
    const timeoutMillis = Duration.toMillis(options.requestTimeout ?? defaultRequestTimeout)
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
    const lost = (connection: Connection, why: string) => {
      if (current === connection) current = undefined
      failWaiting(connection, why)
    }
    const describeClose = (error: Error | undefined) =>
      closing
        ? "the client was closed"
        : `the connection to ${Server.showAddress(address)} was lost: ${error?.message ?? "closed by the server"}`
    const connection = (): Connection => {
      if (current === undefined || current.socket.destroyed) {
        current = connect(connectOptions, { maxFrameBytes, maxChunksPerFrame: maxChunks }, lost, describeClose)
      }
      return current
    }

    const exchange = (method: string, messages: ReadonlyArray<Record<string, unknown>>) =>
      exchangeOn(connection(), method, messages, timeoutMillis, address)

    /** Sends one request and waits for its reply. */
    const request = (method: string, message: Record<string, unknown>) => exchange(method, [message])

    const append = (
      paths: ReadonlyArray<Key.Path>,
      values: ReadonlyArray<Uint8Array>
    ): Effect.Effect<void, Store.StoreError> => {
      const parts = appendParts(paths, values, maxFrameBytes, maxChunks)
      return parts instanceof Store.StoreError ? Effect.fail(parts) : Effect.asVoid(exchange("append", parts))
    }

    const get = (paths: ReadonlyArray<Key.Path>) =>
      Effect.flatMap(exchange("get", getRequests(paths, maxChunks)), (values) =>
        values !== undefined && values.length === paths.length
          ? Effect.succeed(values)
          : Effect.fail(
              new Store.StoreError({
                reason: "Protocol",
                method: "get",
                description: `asked for ${paths.length} values, got ${values?.length ?? "none"}`
              })
            )
      )

    return yield* Observe.make("Client", {
      append,
      get,
      iset: (path, value) => Effect.asVoid(request("iset", { _tag: "Iset", path, value })),
      delete: (paths) =>
        Effect.asVoid(request("delete", { _tag: "Delete", paths: Wire.joinPaths(paths), count: paths.length })),
      drop: Effect.asVoid(request("drop", { _tag: "Drop" }))
    })
  })

/**
 * Sends requests back to back, in one go, so that nothing else this
 * client sends comes between them, and waits for every reply: succeeds
 * with their values, joined in order, or fails with the first failure in
 * their order. A single request's frame comes from the reused buffers.
 */
const exchangeOn = (
  to: Connection,
  method: string,
  messages: ReadonlyArray<Record<string, unknown>>,
  timeoutMillis: number,
  address: Server.Address
): Effect.Effect<ReadonlyArray<Uint8Array> | undefined, Store.StoreError> =>
  Effect.callback((resume) => {
    const frames: Array<Uint8Array> = []
    const ids: Array<number> = []
    try {
      for (const message of messages) {
        const id = to.nextId++
        const allocate = messages.length === 1 ? (size: number) => to.lender.lend(id, size) : undefined
        frames.push(Wire.encode({ ...message, id }, allocate))
        ids.push(id)
      }
    } catch (cause) {
      resume(Effect.fail(new Store.StoreError({ reason: "BadValue", method, description: String(cause), cause })))
      return
    }
    const outgoing: Outgoing = { method, ids, frames, sent: false }
    const errors = new Array<Store.StoreError | undefined>(ids.length)
    const results = new Array<ReadonlyArray<Uint8Array> | undefined>(ids.length)
    let remaining = ids.length
    let timer: ReturnType<typeof setTimeout> | undefined
    ids.forEach((id, index) => {
      to.waiting.set(id, {
        outgoing,
        settle: (error, values) => {
          errors[index] = error
          results[index] = values
          if (--remaining > 0) return
          if (timer !== undefined) clearTimeout(timer)
          const first = errors.find((e) => e !== undefined)
          resume(first === undefined ? Effect.succeed(joinResults(results)) : Effect.fail(first))
        }
      })
    })
    if (Number.isFinite(timeoutMillis)) {
      timer = setTimeout(() => {
        const error = noReply(outgoing, `no reply from ${Server.showAddress(address)} within ${timeoutMillis} ms`)
        giveUp(to, outgoing)
        resume(Effect.fail(error))
      }, timeoutMillis)
    }
    send(to, outgoing)
    return Effect.sync(() => {
      if (timer !== undefined) clearTimeout(timer)
      giveUp(to, outgoing)
    })
  })

/** A get as the requests that carry it: one per `maxChunks` keys. */
const getRequests = (paths: ReadonlyArray<Key.Path>, maxChunks: number): Array<Record<string, unknown>> => {
  const messages: Array<Record<string, unknown>> = []
  for (let from = 0; from < paths.length || from === 0; from += maxChunks) {
    const slice = paths.length <= maxChunks ? paths : paths.slice(from, from + maxChunks)
    messages.push({ _tag: "Get", paths: Wire.joinPaths(slice), count: slice.length })
  }
  return messages
}

/** The values of several replies, in order (one reply's as they are). */
const joinResults = (
  results: ReadonlyArray<ReadonlyArray<Uint8Array> | undefined>
): ReadonlyArray<Uint8Array> | undefined => {
  if (results.length === 1) return results[0]
  const out: Array<Uint8Array> = []
  for (const values of results) if (values !== undefined) for (const value of values) out.push(value)
  return out
}

/**
 * An append as the requests that carry it: one, or, when it exceeds a frame
 * (in bytes or chunks), consecutive parts that the server holds until the
 * last one and then applies as one append (see `Wire.Request`).
 */
const appendParts = (
  paths: ReadonlyArray<Key.Path>,
  values: ReadonlyArray<Uint8Array>,
  maxFrameBytes: number,
  maxChunks: number
): Array<Record<string, unknown>> | Store.StoreError => {
  const maxBatchBytes = maxFrameBytes - Wire.envelopeHeadroomBytes
  if (values.length <= maxChunks && Wire.framedBytes(paths, values) <= maxBatchBytes) {
    return [{ _tag: "Append", paths: Wire.joinPaths(paths), values }]
  }
  const slices: Array<readonly [number, number]> = []
  let start = 0
  let size = 0
  for (let i = 0; i < values.length; i++) {
    const one = Wire.framedBytes([paths[i]!], [values[i]!])
    if (one > maxBatchBytes) {
      return new Store.StoreError({
        reason: "BadValue",
        method: "append",
        key: paths[i]!,
        description: `a chunk of ${values[i]!.byteLength} bytes exceeds the frame limit of ${maxFrameBytes} bytes`
      })
    }
    if (size + one > maxBatchBytes || i - start >= maxChunks) {
      slices.push([start, i])
      start = i
      size = 0
    }
    size += one
  }
  slices.push([start, values.length])
  return slices.map(([from, to], i) => ({
    _tag: "Append",
    paths: Wire.joinPaths(paths.slice(from, to)),
    values: values.slice(from, to),
    ...(i < slices.length - 1 ? { more: true } : {})
  }))
}

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
