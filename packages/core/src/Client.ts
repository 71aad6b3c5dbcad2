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
 * A call whose connection is lost, or that cannot connect (a server
 * restarting), is sent again on a new connection until `requestTimeout`
 * from its start: the caller sees success, or the error of its last try
 * after the deadline (`Io` if any try was sent). An append is safe to send
 * again because it carries a call id (the caller's, or one made here per
 * call), which the served store applies at most once (within its window:
 * see each store); a `drop` that was sent is not sent again. Errors the
 * server sent (the store's own) are never retried.
 *
 * Before any request, client and server greet (`Handshake`): with `token`
 * the client proves it holds the server's token (a challenge–response: the
 * token never travels); a server that refuses it fails every call with
 * `Denied`, and nothing of them was applied. A client with a token refuses
 * a server that does not ask for one the same way (`Denied`, nothing sent):
 * whoever listens at the address, it is not the server the token is for.
 * A connection the server has not greeted within `handshakeTimeout`
 * (default 10 s) is closed, and its calls tried again on a new one. With `tls` the connection is
 * TLS (Node's `tls`), checked against `tls.ca` (or the system's CAs), with a
 * client certificate for servers that ask for one (mutual TLS).
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
import * as Crypto from "node:crypto"
import * as Net from "node:net"
import * as Tls from "node:tls"
import { Config, Deferred, Duration, Effect, Layer, Option, type Redacted, type Scope } from "effect"
import * as BufferPool from "./BufferPool.ts"
import * as ClientStream from "./ClientStream.ts"
import * as Handshake from "./Handshake.ts"
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
  /**
   * The server's token, for a server started with `auth` (see `Handshake`).
   * A client with a token refuses a server that does not ask for it: its
   * calls fail with `Denied`, and nothing of them is sent.
   */
  readonly token?: Redacted.Redacted<string> | undefined
  /**
   * How long a connection may take to be opened (with TLS, its TLS
   * handshake too) and greeted by the server before the client closes it
   * (default `Handshake.defaultTimeout`, 10 s; a positive, finite duration).
   * Its calls were not sent: they are sent again on a new connection until
   * `requestTimeout`, then fail with `Unavailable`.
   */
  readonly handshakeTimeout?: Duration.Input | undefined
  /** Connect over TLS (see {@link TlsOptions}); `{}` checks the server against the system's CAs. */
  readonly tls?: TlsOptions | undefined
}

/**
 * A client's TLS options, in PEM.
 *
 * @since 0.1.0
 * @category models
 */
export interface TlsOptions {
  /** The CA the server's certificate must be signed by (default: the system's CAs). */
  readonly ca?: string | Uint8Array | undefined
  /** The name the server's certificate must carry (default: the address's host). */
  readonly servername?: string | undefined
  /** A client certificate, for a server that requires one (mutual TLS). */
  readonly cert?: string | Uint8Array | undefined
  /** The client certificate's private key. */
  readonly key?: string | Uint8Array | undefined
}

/**
 * The default of `Options.requestTimeout`: 10 seconds.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultRequestTimeout: Duration.Duration = Duration.seconds(10)

/** Called once with a request's outcome: its error, or the values its reply carried. */
type Settle = (error: Store.StoreError | undefined, reply?: Wire.Done) => void

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
  /** Greeted by the server (and, when it asked, answered with the token's proof): requests may go. */
  connected: boolean
  /** Closes the connection if the server has not greeted it by `handshakeTimeout`; cleared once it has. */
  greeting: ReturnType<typeof setTimeout> | undefined
  nextId: number
}

/**
 * The errors of a lost connection that a call may be sent again after: the
 * connection was lost after the greeting, or nothing listened yet.
 */
const retriable = new WeakSet<Store.StoreError>()

/** The errors this client made for calls that got no reply (not the server's). */
const unanswered = new WeakSet<Store.StoreError>()

/** Socket errors that mean nothing answers at the address (yet): a server down or restarting. */
const notListening = new Set(["ECONNREFUSED", "ENOENT", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT"])

/**
 * The error of a call that got no reply: `Unavailable` when it was never
 * sent (nothing was applied: safe to retry), `Io` when it was sent (the
 * server may have applied it, or may yet).
 */
const noReply = (outgoing: Outgoing, why: string): Store.StoreError => {
  const error = outgoing.sent
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
  unanswered.add(error)
  return error
}

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

/**
 * Fails every waiting request of a connection that is gone: with `denied`
 * when the server refused it (it applied nothing), else as not answered;
 * `retry` marks the errors as worth sending the call again after.
 */
const failWaiting = (connection: Connection, why: string, retry: boolean, denied?: Store.StoreError): void => {
  const waiting = [...connection.waiting.values()]
  connection.waiting.clear()
  connection.outbox.length = 0
  for (const { outgoing, settle } of waiting) {
    const error =
      denied === undefined
        ? noReply(outgoing, why)
        : new Store.StoreError({ reason: "Denied", method: outgoing.method, description: denied.description ?? why })
    if (retry && denied === undefined) retriable.add(error)
    settle(error)
  }
}

/** Why a connection ended: the text for its calls' errors, whether to retry them, a refusal. */
interface Ending {
  readonly why: string
  readonly retry: boolean
  readonly denied?: Store.StoreError | undefined
}

/** Bytes of a TLS record (a handshake or an alert) where a frame was expected. */
const looksLikeTls = (chunk: Uint8Array): boolean =>
  chunk.byteLength >= 2 && (chunk[0] === 0x15 || chunk[0] === 0x16) && chunk[1] === 0x03

/**
 * Takes the server's greeting: answers a challenge with the token's proof,
 * then lets the requests go. An ending when the greeting is not one, or the
 * server asks for a token the client does not have.
 */
const greet = (
  connection: Connection,
  message: unknown,
  token: Redacted.Redacted<string> | undefined
): Ending | undefined => {
  const hello = Handshake.toServerHello(message)
  if (hello === undefined) {
    return { why: "the server did not greet as a partd server speaking this protocol's version", retry: false }
  }
  if (hello.nonce !== undefined) {
    if (token === undefined) {
      const denied = Handshake.deniedError(
        "the server requires a token: give the Client its token (the token option, or PARTD_TOKEN with Client.layerConfig)"
      )
      return { why: denied.message, retry: false, denied }
    }
    connection.socket.write(Handshake.auth(token, hello.nonce))
  } else if (token !== undefined) {
    // Whoever listens there, it is not the server the token is for: nothing is sent to it.
    const denied = Handshake.deniedError(
      "the server does not ask for a token, and this Client has one: it sends nothing to a server that lets anyone in, which may not be the server meant (give the server the token, or the Client none)"
    )
    return { why: denied.message, retry: false, denied }
  }
  clearTimeout(connection.greeting)
  connection.connected = true
  flush(connection)
  return undefined
}

/**
 * Hands each reply in `chunk`, the bytes just read into the parser's read
 * buffer, to the request waiting for it (the first message is the server's
 * greeting).
 */
const receive = (
  connection: Connection,
  chunk: Uint8Array,
  token: Redacted.Redacted<string> | undefined
): Ending | undefined => {
  if (!connection.connected && looksLikeTls(chunk)) {
    return { why: "the server speaks TLS: give the Client a tls option", retry: false }
  }
  let messages: Array<unknown>
  try {
    messages = connection.parser.decodeRead(chunk.byteLength)
  } catch (e) {
    return { why: `the server sent bytes that are not frames of this protocol: ${String(e)}`, retry: false }
  }
  for (const message of messages) {
    if (!connection.connected) {
      const ending = greet(connection, message, token)
      if (ending !== undefined) return ending
      continue
    }
    const reply = Wire.toReply(message)
    if (reply === undefined) {
      const denied = Handshake.toDenied(message)
      return denied === undefined
        ? { why: "the server sent a message that is not a reply", retry: false }
        : { why: denied.message, retry: false, denied }
    }
    // The server has read the whole request: its buffer may be reused.
    connection.lender.giveBack(reply.id)
    const request = connection.waiting.get(reply.id)
    // A request whose caller stopped waiting has no one waiting.
    if (request === undefined) continue
    connection.waiting.delete(reply.id)
    if (reply._tag === "Done") request.settle(undefined, reply)
    else request.settle(Wire.decodeError(reply.error))
  }
  return undefined
}

/** The largest frame pooled for reuse; larger requests get a buffer of their own. */
const maxPooledBytes = 8 * 1024 * 1024

/** How a client connects: the socket options, TLS's when it speaks TLS, and how long it waits to be greeted. */
interface Dial {
  readonly net: Net.NetConnectOpts
  readonly tls: Tls.ConnectionOptions | undefined
  readonly token: Redacted.Redacted<string> | undefined
  readonly handshakeMillis: number
  /** The address, as messages show it. */
  readonly address: string
}

/**
 * Opens a connection. Requests wait in the outbox until the server has
 * greeted it; a connection that cannot be made fails them all with
 * `Unavailable`.
 */
const connect = (
  dial: Dial,
  limits: Wire.Limits,
  lost: (connection: Connection, ending: Ending) => void,
  describeClose: (error: Error | undefined, greeted: boolean) => string
): Connection => {
  const parser = Wire.makeParser(limits)
  // Reads go straight into the parser's own segments (see `Wire.makeParser`): a large reply takes a few reads
  // and no buffer per read, over TLS too (whose reads are at most a record, 16 KiB).
  const onread = {
    buffer: parser.readBuffer,
    callback: (bytes: number, buffer: Uint8Array): boolean => {
      const ending = receive(connection, buffer.subarray(0, bytes), dial.token)
      if (ending === undefined) return true
      socket.destroy()
      lost(connection, ending)
      return false
    }
  }
  const socket =
    dial.tls === undefined
      ? Net.createConnection({ ...dial.net, onread })
      : // Node's tls.connect takes `onread` as net's does (documented; @types/node lacks it).
        Tls.connect({ ...(dial.net as Tls.ConnectionOptions), ...dial.tls, ...({ onread } as object) })
  const connection: Connection = {
    socket,
    parser,
    lender: BufferPool.makeLender({ spares: 4, minBytes: 64 * 1024, maxBytes: maxPooledBytes, maxLent: 64 }),
    waiting: new Map(),
    outbox: [],
    connected: false,
    greeting: setTimeout(() => {
      if (connection.connected || socket.destroyed) return
      socket.destroy()
      // Nothing was sent: worth trying again (a server restarting), until `requestTimeout`.
      lost(connection, {
        why: `could not open a connection to ${dial.address}: the server did not greet within ${dial.handshakeMillis} ms (handshakeTimeout)`,
        retry: true
      })
    }, dial.handshakeMillis),
    nextId: 0
  }
  let error: NodeJS.ErrnoException | undefined
  socket.on("error", (e) => {
    error = e
  })
  // The client speaks first (see `Handshake`), then waits for the server's greeting. Written at once, the socket
  // sends it as soon as it can, before anything written later (the proof, the requests), whatever event comes first.
  socket.write(Handshake.clientHello())
  socket.on("drain", () => flush(connection))
  socket.on("close", () => {
    clearTimeout(connection.greeting)
    // Lost once greeted: the server went away (a restart), worth trying again; before, only if nothing listened.
    const retry = connection.connected || (error?.code !== undefined && notListening.has(error.code))
    lost(connection, { why: describeClose(error, connection.connected), retry })
  })
  return connection
}

/** Node's socket options for an address and TLS options. */
const dialOf = (address: Server.Address, options: Options, handshakeMillis: number): Dial => {
  const tls = options.tls
  const pem = (material: string | Uint8Array | undefined) =>
    material === undefined || typeof material === "string"
      ? material
      : globalThis.Buffer.from(material.buffer, material.byteOffset, material.byteLength)
  const net = {
    ...("path" in address ? { path: address.path } : { host: address.host ?? "127.0.0.1", port: address.port }),
    noDelay: true,
    readableHighWaterMark: Server.socketHighWaterMark,
    writableHighWaterMark: Server.socketHighWaterMark
  }
  return {
    net,
    tls:
      tls === undefined
        ? undefined
        : {
            ...(tls.ca === undefined ? {} : { ca: pem(tls.ca) }),
            ...(tls.servername === undefined ? {} : { servername: tls.servername }),
            ...(tls.cert === undefined ? {} : { cert: pem(tls.cert) }),
            ...(tls.key === undefined ? {} : { key: pem(tls.key) })
          },
    token: options.token,
    handshakeMillis,
    address: Server.showAddress(address)
  }
}

/**
 * How many times a call is sent again after its connection was lost with
 * the call on it: a server that closes the connection over the call itself
 * (one it cannot take) would otherwise be sent it until the deadline; a
 * restart costs one.
 */
const maxResends = 3

/** Why a connection ended, for its calls' errors: lost once greeted, or never opened. */
const describeEnd = (address: Server.Address, error: Error | undefined, greeted: boolean): string =>
  greeted
    ? `the connection to ${Server.showAddress(address)} was lost: ${error?.message ?? "closed by the server"}`
    : `could not open a connection to ${Server.showAddress(address)}: ${
        error === undefined
          ? "the server closed it before greeting (a TLS server needs the Client's tls option; or it is not a partd server)"
          : (error as NodeJS.ErrnoException).code === "ERR_SSL_WRONG_VERSION_NUMBER"
            ? "the server does not speak TLS (drop the Client's tls option; or it is not a partd server)"
            : error.message
      }`

/**
 * A client's exchanges: a call's requests sent and their replies awaited,
 * sent again on a new connection after a lost one until the deadline.
 * `release` lets go the calls waiting to be sent again (when the client
 * closes).
 */
const makeExchange = (config: {
  readonly timeoutMillis: number
  readonly address: Server.Address
  readonly connection: () => Connection
  readonly closing: () => boolean
}) => {
  const { timeoutMillis, address, connection, closing } = config
  /**
   * While the calls of a lost connection wait to be sent again, every call
   * waits behind them: they are let go together, in the order they wait
   * (the order they were sent, then new calls), so that a caller that did
   * not wait between its calls (`Pipelined`) sees them land in its order.
   */
  let barrier: Deferred.Deferred<void> | undefined
  const holdBack = (pause: number): Deferred.Deferred<void> => {
    if (barrier !== undefined) return barrier
    const held = Deferred.makeUnsafe<void>()
    barrier = held
    setTimeout(() => {
      if (barrier === held) barrier = undefined
      Deferred.doneUnsafe(held, Effect.void)
    }, pause)
    return held
  }
  const closedError = (method: string) =>
    new Store.StoreError({ reason: "Closed", method, description: "the client was closed" })

  /**
   * Sends a call's requests and waits for their replies; on a lost
   * connection, sends them again on a new one until the deadline (a call
   * that must not be applied twice and has no id, `once`, only if it was
   * never sent).
   */
  const exchange = (
    method: string,
    messages: ReadonlyArray<Record<string, unknown>>,
    once = false
  ): Effect.Effect<ReadonlyArray<Uint8Array> | undefined, Store.StoreError> =>
    Effect.suspend(() => {
      const deadline = Date.now() + timeoutMillis
      let sent = false
      let lostSent = 0
      const attempt = (n: number): Effect.Effect<ReadonlyArray<Uint8Array> | undefined, Store.StoreError> =>
        closing()
          ? Effect.fail(closedError(method))
          : Effect.catch(
              Effect.map(
                exchangeOn(connection(), method, messages, deadline - Date.now(), timeoutMillis, address),
                joinResults
              ),
              (error) => {
                if (error.reason === "Io") {
                  sent = true
                  lostSent++
                }
                const left = deadline - Date.now()
                if (!retriable.has(error) || left <= 0 || (once && sent) || lostSent > maxResends) {
                  return Effect.fail(lastError(error, sent, messages))
                }
                return Effect.flatMap(Deferred.await(holdBack(Math.min(backoffMillis(n), left))), () =>
                  deadline - Date.now() > 0 ? attempt(n + 1) : Effect.fail(lastError(error, sent, messages))
                )
              }
            )
      return barrier === undefined ? attempt(0) : Effect.flatMap(Deferred.await(barrier), () => attempt(0))
    })
  const release = () => {
    if (barrier !== undefined) Deferred.doneUnsafe(barrier, Effect.void)
  }
  return { exchange, release }
}

/** The pause before the n-th retry of a call: 25 ms, doubling, at most 500 ms. */
const backoffMillis = (n: number): number => Math.min(500, 25 * 2 ** n)

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
    const handshakeMillis = Handshake.timeoutMillis("Client.make", options.handshakeTimeout)
    if (handshakeMillis instanceof Store.StoreError) return yield* handshakeMillis
    const dial = dialOf(address, options, handshakeMillis)
    let current: Connection | undefined
    let closing = false
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closing = true
        current?.socket.destroy()
        current = undefined
        release()
      })
    )
    const lost = (connection: Connection, ending: Ending) => {
      if (current === connection) current = undefined
      failWaiting(connection, ending.why, ending.retry && !closing, ending.denied)
    }
    const describeClose = (error: Error | undefined, greeted: boolean) =>
      closing ? "the client was closed" : describeEnd(address, error, greeted)
    const connection = (): Connection => {
      if (current === undefined || current.socket.destroyed) {
        current = connect(dial, { maxFrameBytes, maxChunksPerFrame: maxChunks }, lost, describeClose)
      }
      return current
    }

    const { exchange, release } = makeExchange({ timeoutMillis, address, connection, closing: () => closing })

    /**
     * Requests on the connection of the moment, failing once it is lost, and
     * not sent again (a stream's cursor lives on its connection).
     */
    const session: ClientStream.Session = () => {
      const on = connection()
      return (method, message) =>
        current !== on || on.socket.destroyed
          ? Effect.fail(
              new Store.StoreError({
                reason: "Io",
                method,
                description: `the connection to ${Server.showAddress(address)} was lost while the ${method} ran`
              })
            )
          : Effect.map(
              exchangeOn(on, method, [message], timeoutMillis, timeoutMillis, address),
              (replies) => replies[0]!
            )
    }

    /** Sends one request and waits for its reply. */
    const request = (method: string, message: Record<string, unknown>, once = false) =>
      exchange(method, [message], once)

    const append = (
      paths: ReadonlyArray<Key.Path>,
      values: ReadonlyArray<Uint8Array>,
      id?: string
    ): Effect.Effect<void, Store.StoreError> => {
      // The call's id, so that it may be sent again after a lost connection and be applied once.
      const parts = appendParts(paths, values, maxFrameBytes, maxChunks, id ?? Crypto.randomUUID())
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
      // A drop sent again could remove what others appended since: it is not sent twice.
      drop: Effect.asVoid(request("drop", { _tag: "Drop" }, true)),
      stream: (path, chunkBytes) => ClientStream.stream(session, path, chunkBytes),
      keys: ClientStream.keys(session),
      size: (paths) => ClientStream.size(session, paths, maxChunks)
    })
  })

/**
 * The error a call ends with after its last try: `Io` if any try was sent
 * (it may have been applied); for an append, with its call id, under which
 * it may be sent again and still be applied at most once.
 */
const lastError = (
  error: Store.StoreError,
  sent: boolean,
  messages: ReadonlyArray<Record<string, unknown>>
): Store.StoreError => {
  const call = messages[0]?.call
  if (!unanswered.has(error)) return error
  if (!(sent && error.reason === "Unavailable") && (typeof call !== "string" || error.reason !== "Io")) return error
  const earlier = error.reason === "Unavailable" ? "; an earlier try was sent and may have been applied" : ""
  const again =
    typeof call === "string" ? `; append again with { id: ${JSON.stringify(call)} } to apply it at most once` : ""
  return new Store.StoreError({
    reason: "Io",
    method: error.method,
    description: `${error.description ?? error.message}${earlier}${again}`
  })
}

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
  waitMillis: number,
  timeoutMillis: number,
  address: Server.Address
): Effect.Effect<ReadonlyArray<Wire.Done>, Store.StoreError> =>
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
    const results = new Array<Wire.Done>(ids.length)
    let remaining = ids.length
    let timer: ReturnType<typeof setTimeout> | undefined
    ids.forEach((id, index) => {
      to.waiting.set(id, {
        outgoing,
        settle: (error, reply) => {
          errors[index] = error
          if (reply !== undefined) results[index] = reply
          if (--remaining > 0) return
          if (timer !== undefined) clearTimeout(timer)
          const first = errors.find((e) => e !== undefined)
          resume(first === undefined ? Effect.succeed(results) : Effect.fail(first))
        }
      })
    })
    if (Number.isFinite(waitMillis)) {
      timer = setTimeout(
        () => {
          const error = noReply(outgoing, `no reply from ${Server.showAddress(address)} within ${timeoutMillis} ms`)
          giveUp(to, outgoing)
          resume(Effect.fail(error))
        },
        Math.max(0, waitMillis)
      )
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
const joinResults = (results: ReadonlyArray<Wire.Done>): ReadonlyArray<Uint8Array> | undefined => {
  if (results.length === 1) return results[0]!.values
  const out: Array<Uint8Array> = []
  for (const { values } of results) if (values !== undefined) for (const value of values) out.push(value)
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
  maxChunks: number,
  call: string
): Array<Record<string, unknown>> | Store.StoreError => {
  const maxBatchBytes = maxFrameBytes - Wire.envelopeHeadroomBytes
  if (values.length <= maxChunks && Wire.framedBytes(paths, values) <= maxBatchBytes) {
    return [{ _tag: "Append", paths: Wire.joinPaths(paths), values, call }]
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
    call,
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

/**
 * {@link layer}, with the token read from `Config` (by default the
 * `PARTD_TOKEN` environment variable, as `partd-server` reads it) when
 * `options.token` is not given.
 *
 * @example
 * ```ts
 * const store = Client.layerConfig({ address: "tcp://10.0.0.5:5000", tls: { ca } })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Options,
  token: Config.Config<Redacted.Redacted<string>> = Config.Redacted("PARTD_TOKEN")
): Layer.Layer<Store.Store, Store.StoreError | Config.ConfigError> =>
  Layer.effect(
    Store.Store,
    Effect.gen(function* () {
      if (options.token !== undefined) return yield* make(options)
      const configured = yield* Config.option(token)
      return yield* make(Option.isSome(configured) ? { ...options, token: configured.value } : options)
    })
  )
