/**
 * ServerConnection: one client's connection to a `Server`, from the bytes it
 * sends to the replies it reads.
 *
 * Requests are applied one at a time, in the order they arrived, so that a
 * client's appends land in its own order even when it does not wait for
 * their replies (see `Pipelined`); each runs as a fiber of the server's
 * scope. A request is applied only once it has been received whole, so a
 * client that vanishes mid-request leaves nothing half-written.
 *
 * What a connection makes the server hold is bounded in bytes, so that one
 * client can neither exhaust the server's memory nor starve the others:
 *
 * - requests received and not yet applied: once they hold `maxQueuedBytes`
 *   (their frames, plus `Wire.chunkOverheadBytes` per chunk and
 *   {@link messageOverheadBytes} per message), the connection is not read
 *   until they are down to half;
 * - replies the client has not read yet: once more than `maxUnreadBytes`
 *   wait in the socket, no further request is applied until the client has
 *   read them;
 * - the frame being received (at most `maxFrameBytes`), and an append sent
 *   in parts (at most `maxAppendBytes`, see `ServerAppend`).
 *
 * Nothing is served before the connection's handshake (`ServerHandshake`)
 * is done: a connection refused there is sent `Denied` and closed with
 * nothing of its requests applied.
 *
 * Input that breaks the protocol (a frame over a limit, bytes that do not
 * decode) closes this connection only; when the offending frame's request
 * number could be read, that request is first answered with a `Protocol`
 * error saying why.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import { Cause, Effect, Exit, type Fiber } from "effect"
import * as Handshake from "./Handshake.ts"
import * as ServerAppend from "./ServerAppend.ts"
import type * as ServerHandshake from "./ServerHandshake.ts"
import * as ServerRequests from "./ServerRequests.ts"
import * as ServerStream from "./ServerStream.ts"
import * as Store from "./Store.ts"
import * as Wire from "./Wire.ts"

/**
 * What a decoded message costs in memory besides its frame's bytes (its
 * object and strings), for the accounting of queued requests.
 *
 * @since 0.1.0
 * @category constants
 */
export const messageOverheadBytes = 512

/**
 * The most bytes a connection may send before it is admitted (its greeting
 * and proof take about a hundred): past them, while not admitted, it is
 * closed, so that one who cannot prove the token cannot make the server
 * hold a large frame either.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxUnadmittedBytes = 64 * 1024

/** How long a connection closed for bad input may take to read the error it was sent. */
const lingerMillis = 2000

/**
 * The limits each connection is held to.
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits extends ServerRequests.Limits {
  readonly maxAppendBytes: number
  readonly maxQueuedBytes: number
  readonly maxUnreadBytes: number
}

/**
 * What every connection shares: the store's requests, the server's fibers,
 * its limits and its debug log.
 *
 * @since 0.1.0
 * @category models
 */
export interface Shared {
  readonly requests: ServerRequests.Requests
  readonly run: (work: ServerRequests.Work) => Fiber.Fiber<ServerRequests.Result, Store.StoreError>
  readonly limits: Limits
  readonly logDebug: (message: string, cause: unknown) => void
  /** A new connection's handshake (see `ServerHandshake`). */
  readonly handshake: () => ServerHandshake.Gate
  /** Called once for each connection refused by the handshake, with why (never a secret). */
  readonly refused: (why: string, remote: string) => void
}

/** Received requests waiting to be applied, with what each holds in memory. */
class Queue {
  private messages: Array<unknown> = []
  private costs: Array<number> = []
  private head = 0
  bytes = 0

  get size(): number {
    return this.messages.length - this.head
  }

  push(message: unknown, cost: number): void {
    this.messages.push(message)
    this.costs.push(cost)
    this.bytes += cost
  }

  shift(): unknown {
    const message = this.messages[this.head]
    this.bytes -= this.costs[this.head]!
    this.messages[this.head++] = undefined
    if (this.head === this.messages.length) {
      this.messages.length = 0
      this.costs.length = 0
      this.head = 0
    }
    return message
  }
}

/**
 * Answers request `id` with a `Protocol` error and closes the connection,
 * reading nothing more from it; a client that does not read the answer is
 * cut off after `lingerMillis`.
 */
const answerAndClose = (socket: Net.Socket, id: number, why: string): void => {
  socket.pause()
  const error = new Store.StoreError({
    reason: "Protocol",
    method: "request",
    description: `${why}; the server closed the connection`
  })
  socket.end(Wire.encode({ _tag: "Failed", id, error: Wire.encodeError(error) }))
  setTimeout(() => socket.destroy(), lingerMillis).unref()
}

/**
 * A connection's handshake: greets it at once, then takes its first
 * messages until it is admitted; refuses it (`Denied`, counted) or hangs up
 * on it (not this protocol, or too slow) otherwise.
 */
const admission = (
  socket: Net.Socket,
  shared: Shared,
  connection: { readonly hangUp: (why: string) => void; readonly closing: () => boolean; readonly close: () => void }
) => {
  const gate = shared.handshake()
  const remote = () => socket.remoteAddress ?? "a local peer"
  let admitted = false
  let received = 0
  const timer = setTimeout(() => {
    if (!admitted) connection.hangUp("a connection did not finish its handshake in time")
  }, gate.timeoutMillis)
  timer.unref()
  socket.once("close", () => {
    clearTimeout(timer)
    // A client challenged for a token that leaves without an answer (one that has none) is refused too.
    if (!connection.closing() && gate.challenged())
      shared.refused("the client left without proving the token", remote())
  })
  socket.write(gate.hello)

  /** Tells the client why it is refused and closes the connection; nothing of it was applied. */
  const deny = (error: Store.StoreError): void => {
    connection.close()
    shared.refused(error.description ?? error.message, remote())
    socket.pause()
    socket.end(Handshake.denied(error))
    setTimeout(() => socket.destroy(), lingerMillis).unref()
  }

  /**
   * Runs the handshake over the first messages (decoded from `bytes` more
   * bytes); the index of the first request, or -1 when refused.
   */
  const admit = (messages: ReadonlyArray<unknown>, bytes: number): number => {
    received += bytes
    let i = 0
    while (!admitted && i < messages.length) {
      const step = gate.admit(messages[i++])
      if (step === "ready") {
        admitted = true
        clearTimeout(timer)
      } else if (step !== "more") {
        if ("denied" in step) deny(step.denied)
        else connection.hangUp(step.broken)
        return -1
      }
    }
    if (!admitted && received > maxUnadmittedBytes) {
      connection.hangUp(`a connection sent ${received} bytes without finishing its handshake`)
      return -1
    }
    return i
  }
  return { admit, admitted: () => admitted }
}

/**
 * Serves one connection until it closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = (socket: Net.Socket, shared: Shared): void => {
  const { limits, logDebug } = shared
  const parser = Wire.makeParser({ maxFrameBytes: limits.maxFrameBytes, maxChunksPerFrame: limits.maxChunksPerFrame })
  const appends = ServerAppend.make(shared.requests, limits.maxAppendBytes)
  // This connection's streams and key listings, closed with it.
  const cursors = ServerStream.make(shared.requests.store, limits)
  socket.on("close", cursors.closeAll)
  const queue = new Queue()
  let busy = false
  let paused = false
  let waitingForReader = false
  let closing = false
  const onRead = () => {
    waitingForReader = false
    pump()
  }

  // A client that resets its connection (a process that died, a connection
  // closed for bad input) is routine for a server, not an error to log.
  socket.on("error", (error) => logDebug("a connection ended with an error", error))

  /** Closes this connection over something it sent (or a reply that failed); the others carry on. */
  const hangUp = (why: string, error: unknown): void => {
    logDebug(why, error)
    closing = true
    socket.destroy()
  }

  /** Closes this connection over a frame it sent, answering the frame's request first when it can. */
  const refuse = (error: unknown): void => {
    closing = true
    if (error instanceof Wire.FrameError && error.id !== undefined) {
      logDebug("a connection sent a frame it may not send", error)
      answerAndClose(socket, error.id, error.message)
    } else {
      hangUp("a connection sent bytes that are not frames of this protocol", error)
    }
  }

  const reply = (message: Wire.Reply): void => {
    if (closing || socket.destroyed) return
    let frame: Uint8Array
    try {
      frame = Wire.encode(message)
    } catch (error) {
      hangUp("a reply could not be encoded", error)
      return
    }
    // Past the limit, no request is applied until the client has read this reply.
    if (socket.writableLength + frame.byteLength > limits.maxUnreadBytes) {
      waitingForReader = true
      socket.write(frame, onRead)
    } else {
      socket.write(frame)
    }
  }

  /** What a request does: the work to run, or a reply at once. */
  const workOf = (request: Wire.Request): ServerRequests.Work | Wire.Reply => {
    if (request._tag === "Append") return appends.append(request)
    const interrupted = appends.interrupting(request.id)
    if (interrupted !== undefined) return interrupted
    return ServerRequests.isCursorRequest(request) ? cursors.handle(request) : shared.requests.handle(request)
  }

  const runOne = (work: ServerRequests.Work, id: number, method: string): void => {
    busy = true
    let synchronous = true
    shared.run(work).addObserver((exit) => {
      busy = false
      if (Exit.isSuccess(exit)) {
        const value = exit.value
        reply(
          value === undefined
            ? { _tag: "Done", id }
            : Array.isArray(value)
              ? { _tag: "Done", id, values: value }
              : { ...(value as Wire.Outcome), _tag: "Done", id }
        )
      } else if (!Cause.hasInterruptsOnly(exit.cause)) {
        const error = ServerRequests.failedUnexpectedly(method.toLowerCase(), exit.cause)
        reply({ _tag: "Failed", id, error: Wire.encodeError(error) })
      }
      // A request that completed at once is followed by the loop in `pump`.
      if (!synchronous) pump()
    })
    synchronous = false
  }

  /** Applies waiting requests, one at a time, in order. */
  const pump = (): void => {
    while (!busy && !waitingForReader && queue.size > 0 && !closing && !socket.destroyed) {
      const message = queue.shift()
      if (paused && queue.bytes <= limits.maxQueuedBytes / 2) {
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
      const work = workOf(request)
      if (Effect.isEffect(work)) runOne(work, request.id, request._tag)
      else reply(work)
    }
  }

  const door = admission(socket, shared, {
    hangUp: (why) => hangUp(why, undefined),
    closing: () => closing,
    close: () => {
      closing = true
    }
  })

  socket.on("data", (chunk: Uint8Array) => {
    if (closing) return
    const costs: Array<number> = []
    let messages: Array<unknown>
    try {
      messages = parser.decode(chunk, costs)
    } catch (error) {
      refuse(error)
      return
    }
    const first = door.admitted() ? 0 : door.admit(messages, chunk.byteLength)
    if (first === -1) return
    for (let i = first; i < messages.length; i++) queue.push(messages[i], costs[i]! + messageOverheadBytes)
    if (!paused && queue.bytes >= limits.maxQueuedBytes) {
      paused = true
      socket.pause()
    }
    pump()
  })
}
