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
 * @since 0.1.0
 */
import { Buffer, Dict, Server, Store, Wire } from "@partd/core"
import { Console, Context, Effect, Layer } from "effect"
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
  readonly maxFrameBytes: number
  readonly maxAppendBytes: number
}

/**
 * The store Layer for a configuration: File at `dir`, optionally behind a
 * Buffer holding at most `memory` bytes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const storeLayer = (
  config: Pick<Config, "dir" | "store" | "memory">
): Layer.Layer<Store.Store, Store.StoreError> => {
  const file = File.layer({ path: config.dir })
  return config.store === "file" ? file : Buffer.layer({ fast: Dict.layer, slow: file, availableMemory: config.memory })
}

/**
 * Serves until interrupted; prints where it listens.
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
    yield* Effect.addFinalizer(() => Console.log(`partd-server stopped; data flushed to ${config.dir}`))
    const context = yield* Layer.build(
      Server.layer({ address, maxFrameBytes: config.maxFrameBytes, maxAppendBytes: config.maxAppendBytes }).pipe(
        Layer.provide(storeLayer(config))
      )
    )
    const listening = Server.showAddress(Context.get(context, Server.Server).address)
    yield* Console.log(`partd-server listening on ${listening} (${config.store} store at ${config.dir})`)
    return yield* Effect.never
  }).pipe(Effect.scoped)

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
    maxFrameBytes: Flag.Int("max-frame-bytes").pipe(
      Flag.withDescription("the largest request or answer, in bytes"),
      Flag.withDefault(Server.defaultMaxFrameBytes)
    ),
    maxAppendBytes: Flag.Int("max-append-bytes").pipe(
      Flag.withDescription("the largest append sent in parts (larger than a frame) that is held until its last part"),
      Flag.withDefault(Wire.defaultMaxAppendBytes)
    )
  },
  serve
).pipe(Command.withDescription("Serve a partd store to many processes over a socket"))
