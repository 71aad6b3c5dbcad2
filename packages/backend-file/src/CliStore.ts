/**
 * Which store a `partd` command works on, and opening it: a File store at an
 * existing directory, or a Redis store (`--redis URL --prefix P`), optionally
 * behind a compression (`--codec zlib|zstd|…`).
 *
 * Redis and the compressions live in other packages (`@partd/backend-redis`,
 * `@partd/codecs`), optional peer dependencies of this one: they are loaded
 * with a dynamic `import()` only when asked for, so `partd ls DIR` needs
 * neither, and a missing one is one line saying which package to install.
 *
 * A command never creates a directory: `partd ls /no/such/dir` fails with
 * "no such directory" rather than leaving an empty store behind.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import { Store } from "@partd/core"
import { Config, Duration, Effect, Layer, Option, Schema } from "effect"
import * as File from "./File.ts"

/**
 * A `partd` command's failure: one line for stderr, and the exit code.
 *
 * @since 0.1.0
 * @category errors
 */
export class CliError extends Schema.TaggedError<CliError>("@partd/backend-file/CliError")("CliError", {
  line: Schema.String
}) {
  override get message(): string {
    return this.line
  }
}

/**
 * Where a command's store is: exactly one of a directory and a Redis URL.
 *
 * @since 0.1.0
 * @category models
 */
export interface Source {
  readonly dir: Option.Option<string>
  readonly redis: Option.Option<string>
  readonly prefix: Option.Option<string>
  readonly cluster: boolean
  readonly codec: Option.Option<string>
  /** How long to wait for Redis to answer at startup, in milliseconds. */
  readonly timeoutMs: number
}

/**
 * The name a command's messages use for its store: the directory, or
 * `redis URL (prefix P)` with the URL's password hidden.
 *
 * @since 0.1.0
 * @category accessors
 */
export const describe = (source: Source): string =>
  Option.match(source.redis, {
    onNone: () => Option.getOrElse(source.dir, () => "?"),
    onSome: (url) => `${hidePassword(url)} (prefix ${Option.getOrElse(source.prefix, () => "?")})`
  })

const hidePassword = (url: string): string => url.replace(/\/\/([^@/]*):[^@/]*@/, "//$1:***@")

/** A store's failure as one line, never echoing secrets the error does not carry itself. */
const storeLine = (source: Source) => (error: unknown) =>
  new CliError({
    line: error instanceof Store.StoreError ? `${describe(source)}: ${error.message}` : Store.describeCause(error)
  })

const missingPackage = (pkg: string, why: string) =>
  new CliError({ line: `${why} needs the package ${pkg}, which is not installed (npm install ${pkg})` })

/** `import(pkg)`, or the one-line error saying it is missing. */
const load = <M>(pkg: string, why: string, importer: () => Promise<M>): Effect.Effect<M, CliError> =>
  Effect.tryPromise({
    try: importer,
    catch: (cause) =>
      (cause as { readonly code?: unknown })?.code === "ERR_MODULE_NOT_FOUND" ||
      (cause as { readonly code?: unknown })?.code === "MODULE_NOT_FOUND"
        ? missingPackage(pkg, why)
        : new CliError({ line: `${why}: could not load ${pkg}: ${Store.describeCause(cause)}` })
  })

/** The File store at `dir`, which must exist and be a directory. */
const fileLayer = (dir: string): Layer.Layer<Store.Store, CliError | Store.StoreError> =>
  Layer.unwrap(
    Effect.suspend(() => {
      let stat: fs.Stats
      try {
        stat = fs.statSync(dir)
      } catch {
        return Effect.fail(new CliError({ line: `${dir}: no such directory` }))
      }
      if (!stat.isDirectory()) return Effect.fail(new CliError({ line: `${dir}: not a directory` }))
      return Effect.succeed(File.layer({ path: dir }))
    })
  )

/** The Redis store at `url` under `prefix`, loaded on demand. */
const redisLayer = (source: Source, url: string): Layer.Layer<Store.Store, unknown> =>
  Layer.unwrap(
    Effect.gen(function* () {
      if (Option.isNone(source.prefix)) {
        return yield* new CliError({ line: "--redis needs --prefix: the prefix of the store's keys" })
      }
      if (Option.isSome(source.dir)) {
        return yield* new CliError({ line: `give a directory or --redis, not both (got ${source.dir.value})` })
      }
      const Redis = yield* load("@partd/backend-redis", "--redis", () => import("@partd/backend-redis"))
      const timeout = Duration.millis(source.timeoutMs)
      return Redis.Redis.layerConfig({
        url: Config.succeed(url),
        cluster: Config.succeed(source.cluster),
        prefix: Config.succeed(source.prefix.value),
        readyTimeout: Config.succeed(timeout),
        requestTimeout: Config.succeed(timeout)
      })
    })
  )

/** The compression `--codec` names, over the `Store` in context. */
const codecLayer = (algorithm: string): Layer.Layer<Store.Store, CliError, Store.Store> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const { Compression } = yield* load("@partd/codecs", "--codec", () => import("@partd/codecs"))
      if (!(Compression.algorithms as ReadonlyArray<string>).includes(algorithm)) {
        return yield* new CliError({
          line: `--codec: unknown compression ${algorithm} (one of ${Compression.algorithms.join(", ")})`
        })
      }
      return Compression.layer(algorithm as (typeof Compression.algorithms)[number])
    })
  )

/**
 * The store a command works on (see the module's description). It fails
 * with a {@link CliError}, or with the store's own error (a `StoreError`, a
 * `ConfigError`): {@link toCliError} turns any of them into one line.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (source: Source): Layer.Layer<Store.Store, unknown> => {
  const base = Option.match(source.redis, {
    onSome: (url) => redisLayer(source, url),
    onNone: () =>
      Option.match(source.dir, {
        onSome: fileLayer,
        onNone: () =>
          Layer.effect(
            Store.Store,
            Effect.fail(new CliError({ line: "give the store's directory, or --redis URL --prefix P" }))
          )
      })
  })
  return Option.match(source.codec, {
    onNone: () => base,
    onSome: (algorithm) => Layer.provide(codecLayer(algorithm), base)
  })
}

/**
 * A store operation's failure as a {@link CliError} naming the store.
 *
 * @since 0.1.0
 * @category errors
 */
export const toCliError =
  (source: Source) =>
  (error: unknown): CliError =>
    error instanceof CliError ? error : storeLine(source)(error)
