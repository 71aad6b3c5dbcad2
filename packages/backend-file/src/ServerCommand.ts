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
 * Across machines (see `Server`): `--token-file PATH` (or the `PARTD_TOKEN`
 * environment variable; never a token on the command line, which `ps`
 * shows) lets in only clients with that token, `--tls-cert` and `--tls-key`
 * serve TLS, and `--tls-ca` requires client certificates signed by that CA
 * (mutual TLS). A TCP address that is not loopback is refused without a
 * token (or `--tls-ca`) unless `--insecure` is given.
 *
 *     PARTD_TOKEN=$(cat token) partd-server --listen 0.0.0.0:5000 --dir /data/shuffle \
 *       --tls-cert server.pem --tls-key server.key
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
import * as Fs from "node:fs"
import { Buffer, Dict, Server, Store, Wire } from "@partd/core"
import { Cause, Console, Context, Effect, Config as EffectConfig, type Exit, Layer, Option, Redacted } from "effect"
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
  /** A file holding the token clients must prove (else `PARTD_TOKEN`, else none). */
  readonly tokenFile?: string | undefined
  /** TLS: the server's certificate (PEM file); with `tlsKey`. */
  readonly tlsCert?: string | undefined
  /** TLS: the server's private key (PEM file). */
  readonly tlsKey?: string | undefined
  /** Mutual TLS: clients must present a certificate signed by this CA (PEM file). */
  readonly tlsCa?: string | undefined
  /** Serve a non-loopback TCP address without authentication. */
  readonly insecure?: boolean | undefined
}

const badFlag = (description: string) =>
  new Store.StoreError({ reason: "BadValue", method: "partd-server", description })

/** Reads a file the command was pointed at; a one-line error naming the flag, never the contents. */
const readFlagFile = (flag: string, path: string): Effect.Effect<string, Store.StoreError> =>
  Effect.try({
    try: () => Fs.readFileSync(path, "utf8"),
    catch: (cause) => badFlag(`${flag}: cannot read ${path}: ${Store.describeCause(cause)}`)
  })

/**
 * The token: the file's contents (without a trailing newline), else
 * `PARTD_TOKEN`, else none. An empty token is an error.
 *
 * @since 0.1.0
 * @category constructors
 */
export const readToken = (
  config: Pick<Config, "tokenFile">
): Effect.Effect<Redacted.Redacted<string> | undefined, Store.StoreError> =>
  Effect.gen(function* () {
    const fromFile =
      config.tokenFile === undefined
        ? undefined
        : Redacted.make((yield* readFlagFile("--token-file", config.tokenFile)).replace(/\r?\n$/, ""))
    const token =
      fromFile ??
      Option.getOrUndefined(
        yield* EffectConfig.option(EffectConfig.Redacted("PARTD_TOKEN")).pipe(
          Effect.mapError(() => badFlag("PARTD_TOKEN: not a token"))
        )
      )
    if (token !== undefined && Redacted.value(token).length === 0) {
      return yield* badFlag(`${config.tokenFile === undefined ? "PARTD_TOKEN" : "--token-file"}: the token is empty`)
    }
    return token
  })

/**
 * The server's TLS options from the command's file flags, if any.
 *
 * @since 0.1.0
 * @category constructors
 */
export const readTls = (
  config: Pick<Config, "tlsCert" | "tlsKey" | "tlsCa">
): Effect.Effect<Server.TlsOptions | undefined, Store.StoreError> =>
  Effect.gen(function* () {
    if (config.tlsCert === undefined && config.tlsKey === undefined) {
      return config.tlsCa === undefined ? undefined : yield* badFlag("--tls-ca needs --tls-cert and --tls-key")
    }
    if (config.tlsCert === undefined || config.tlsKey === undefined) {
      return yield* badFlag("--tls-cert and --tls-key go together")
    }
    const cert = yield* readFlagFile("--tls-cert", config.tlsCert)
    const key = yield* readFlagFile("--tls-key", config.tlsKey)
    const ca = config.tlsCa === undefined ? undefined : yield* readFlagFile("--tls-ca", config.tlsCa)
    return ca === undefined ? { cert, key } : { cert, key, ca }
  })

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
  if (lost === undefined) {
    // A StoreError (the server could not start) is reported by the caller, in one line.
    const failure = exit.cause.reasons.find((reason) => reason._tag === "Fail")
    return failure !== undefined && failure.error instanceof Store.StoreError
      ? Effect.void
      : Console.error("partd-server stopped by an error")
  }
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
    const token = yield* readToken(config)
    const tls = yield* readTls(config)
    return yield* Effect.gen(function* () {
      const context = yield* Layer.build(
        Server.layer({
          address,
          auth: token === undefined ? undefined : { token },
          tls,
          insecure: config.insecure,
          maxFrameBytes: config.maxFrameBytes,
          maxAppendBytes: config.maxAppendBytes,
          maxChunksPerFrame: config.maxChunksPerFrame,
          maxQueuedBytes: config.maxQueuedBytes,
          maxUnreadBytes: config.maxUnreadBytes
        }).pipe(Layer.provide(storeLayer(config)))
      )
      const listening = Server.showAddress(Context.get(context, Server.Server).address)
      const guard = [tls === undefined ? "" : ", TLS", token === undefined ? "" : ", token required"].join("")
      yield* Console.log(`partd-server listening on ${listening} (${config.store} store at ${config.dir}${guard})`)
      return yield* Effect.never
    }).pipe(
      Effect.scoped,
      Effect.onExit((exit) => reportStop(config, exit))
    )
  })

/**
 * The command's flags, for commands that serve as `partd-server` does (e.g.
 * a `serve` subcommand).
 *
 * @since 0.1.0
 * @category commands
 */
export const flags = {
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
  ),
  tokenFile: Flag.String("token-file").pipe(
    Flag.withDescription(
      "a file holding the token clients must give (else the PARTD_TOKEN environment variable; never a token on the command line)"
    ),
    Flag.optional,
    Flag.map(Option.getOrUndefined)
  ),
  tlsCert: Flag.String("tls-cert").pipe(
    Flag.withDescription("serve TLS with this certificate (PEM file; with --tls-key)"),
    Flag.optional,
    Flag.map(Option.getOrUndefined)
  ),
  tlsKey: Flag.String("tls-key").pipe(
    Flag.withDescription("the TLS certificate's private key (PEM file)"),
    Flag.optional,
    Flag.map(Option.getOrUndefined)
  ),
  tlsCa: Flag.String("tls-ca").pipe(
    Flag.withDescription("mutual TLS: require client certificates signed by this CA (PEM file)"),
    Flag.optional,
    Flag.map(Option.getOrUndefined)
  ),
  insecure: Flag.Boolean("insecure").pipe(
    Flag.withDescription(
      "serve a non-loopback TCP address without a token: anyone who reaches it can read and drop the store"
    ),
    Flag.withDefault(false)
  )
} as const

/**
 * The command.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("partd-server", flags, serve).pipe(
  Command.withDescription("Serve a partd store to many processes over a socket")
)
