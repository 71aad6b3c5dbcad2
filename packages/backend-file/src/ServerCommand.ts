/**
 * The `partd-server` command: serves a File store, or a Buffer(Dict, File)
 * store, at a directory, over a Unix socket or TCP, until SIGINT or SIGTERM.
 *
 *     partd-server --listen unix:/tmp/partd.sock --dir /data/shuffle
 *     partd-server --listen 127.0.0.1:5000 --dir /data/shuffle --store file
 *
 * It prints one line when it listens (`partd-server listening on ADDRESS …`)
 * and one when it has stopped. On SIGINT or SIGTERM it stops accepting
 * connections, closes the open ones, flushes the buffer to the directory and
 * releases the directory, then exits with code 0. The directory is kept: it
 * holds the data, readable by a later `File` store (or Python's
 * `partd.File(dir)`).
 *
 * If that final flush fails (a full disk), acknowledged appends exist only in
 * the dying process: it prints how many bytes of which keys were lost to
 * stderr and exits non-zero. A buffered server killed with SIGKILL loses
 * everything it holds in memory (up to `--memory` bytes); `--flush-after-ms`
 * bounds how long bytes stay only in memory, and `--store file` writes every
 * append through before acknowledging it.
 *
 * @since 0.1.0
 */
import { Buffer, Dict, Server, Store, Wire } from "@partd/core"
import { Cause, Console, Context, Effect, type Exit, Layer } from "effect"
import { Command, Flag } from "effect/cli"
import * as File from "./File.ts"

/**
 * The stores the command can serve.
 *
 * @since 0.1.0
 * @category models
 */
export type StoreKind = "buffer" | "file"

/**
 * @since 0.1.0
 * @category models
 */
export interface Config {
  readonly listen: string
  readonly dir: string
  readonly store: StoreKind
  readonly memory: number
  /** For the buffer store: land bytes in the directory once held this many milliseconds (0: only when memory runs short). */
  readonly flushAfterMs?: number | undefined
  readonly maxFrameBytes: number
  readonly maxAppendBytes: number
  /** The most chunks one request may carry (default `Wire.defaultMaxChunksPerFrame`). */
  readonly maxChunksPerFrame?: number | undefined
  /** The request bytes one connection may have waiting before the server stops reading it. */
  readonly maxQueuedBytes?: number | undefined
  /** The reply bytes one connection may leave unread before the server stops applying its requests. */
  readonly maxUnreadBytes?: number | undefined
}

/**
 * The store Layer for a configuration: File at `dir`, optionally behind a
 * Buffer holding at most `memory` bytes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const storeLayer = (
  config: Pick<Config, "dir" | "store" | "memory" | "flushAfterMs">
): Layer.Layer<Store.Store, Store.StoreError> => {
  const file = File.layer({ path: config.dir })
  if (config.store === "file") return file
  const flushAfterMs = config.flushAfterMs ?? 0
  return Buffer.layer({
    fast: Dict.layer,
    slow: file,
    availableMemory: config.memory,
    flushAfter: flushAfterMs > 0 ? flushAfterMs : undefined
  })
}

/** The most lost keys the stop report lists one by one. */
const MAX_LISTED_KEYS = 1000

/**
 * The line printed when the server stops: "data flushed", or, when the final
 * flush failed, how many bytes of which keys are lost (on stderr).
 */
const reportStop = (config: Pick<Config, "dir">, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
  if (exit._tag === "Success" || Cause.hasInterruptsOnly(exit.cause)) {
    return Console.log(`partd-server stopped; data flushed to ${config.dir}`)
  }
  const lost = unflushedOf(exit.cause)
  if (lost === undefined) return Console.error("partd-server stopped by an error")
  const listed = lost.lost
    .slice(0, MAX_LISTED_KEYS)
    .map((entry) => `  ${JSON.stringify(entry.key)}: ${entry.bytes} bytes`)
  const more = lost.lost.length > listed.length ? [`  and ${lost.lost.length - listed.length} more keys`] : []
  return Console.error(
    [
      `partd-server stopped; DATA LOST: ${lost.lostBytes} bytes of ${lost.lost.length} keys could not be flushed to ${config.dir}: ${lost.cause.message}`,
      ...listed,
      ...more
    ].join("\n")
  )
}

/** The buffer's failed final flush in a cause (a finalizer's defect), if any. */
const unflushedOf = (cause: Cause.Cause<unknown>): Buffer.BufferError | undefined => {
  for (const reason of cause.reasons) {
    if (reason._tag === "Die" && reason.defect instanceof Buffer.BufferError) return reason.defect
    if (reason._tag === "Fail" && reason.error instanceof Buffer.BufferError) return reason.error
  }
  return undefined
}

/**
 * Serves until interrupted; prints where it listens and how it stopped. A
 * failed final flush fails the effect (a defect carrying `Buffer.BufferError`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = (config: Config): Effect.Effect<never, Store.StoreError> =>
  Effect.gen(function* () {
    const address = Server.parseAddress(config.listen)
    if (address === undefined) {
      return yield* new Store.StoreError({
        reason: "BadValue",
        method: "partd-server",
        description: `--listen: not an address: ${config.listen} (use unix:/path, /path, host:port or a port)`
      })
    }
    return yield* Effect.gen(function* () {
      const context = yield* Layer.build(
        Server.layer({
          address,
          maxFrameBytes: config.maxFrameBytes,
          maxAppendBytes: config.maxAppendBytes,
          maxChunksPerFrame: config.maxChunksPerFrame,
          maxQueuedBytes: config.maxQueuedBytes,
          maxUnreadBytes: config.maxUnreadBytes
        }).pipe(Layer.provide(storeLayer(config)))
      )
      const listening = Server.showAddress(Context.get(context, Server.Server).address)
      yield* Console.log(`partd-server listening on ${listening} (${config.store} store at ${config.dir})`)
      return yield* Effect.never
    }).pipe(
      Effect.scoped,
      Effect.onExit((exit) => reportStop(config, exit))
    )
  })

/**
 * The command.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "partd-server",
  {
    listen: Flag.String("listen").pipe(
      Flag.withDescription(
        "where to listen: unix:/path, /path, host:port, or a port (TCP binds 127.0.0.1 unless a host is given)"
      )
    ),
    dir: Flag.String("dir").pipe(Flag.withDescription("the store's directory (created if needed, kept)")),
    store: Flag.Literals("store", ["buffer", "file"]).pipe(
      Flag.withDescription("buffer: Buffer(Dict, File), appends held in memory and spilled to files; file: File only"),
      Flag.withDefault("buffer" as const)
    ),
    memory: Flag.Int("memory").pipe(
      Flag.withDescription("the most bytes the buffer holds in memory"),
      Flag.withDefault(1024 * 1024 * 1024)
    ),
    flushAfterMs: Flag.Int("flush-after-ms").pipe(
      Flag.withDescription(
        "buffer store: land appended bytes in the directory once held this many milliseconds, bounding what a crash loses (0: only when memory runs short)"
      ),
      Flag.withDefault(0)
    ),
    maxFrameBytes: Flag.Int("max-frame-bytes").pipe(
      Flag.withDescription("the largest request or answer, in bytes"),
      Flag.withDefault(Server.defaultMaxFrameBytes)
    ),
    maxAppendBytes: Flag.Int("max-append-bytes").pipe(
      Flag.withDescription("the largest append sent in parts (larger than a frame) that is held until its last part"),
      Flag.withDefault(Wire.defaultMaxAppendBytes)
    ),
    maxChunksPerFrame: Flag.Int("max-chunks-per-frame").pipe(
      Flag.withDescription("the most chunks one request may carry"),
      Flag.withDefault(Wire.defaultMaxChunksPerFrame)
    ),
    maxQueuedBytes: Flag.Int("max-queued-bytes").pipe(
      Flag.withDescription("the request bytes one connection may have waiting before the server stops reading it"),
      Flag.withDefault(Server.defaultMaxQueuedBytes)
    ),
    maxUnreadBytes: Flag.Int("max-unread-bytes").pipe(
      Flag.withDescription(
        "the reply bytes one connection may leave unread before the server stops applying its requests"
      ),
      Flag.withDefault(Server.defaultMaxUnreadBytes)
    )
  },
  serve
).pipe(Command.withDescription("Serve a partd store to many processes over a socket"))
