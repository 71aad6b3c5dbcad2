/**
 * The `partd` command: look at a store on disk or in Redis, change it, serve it.
 *
 *     partd ls DIR [--json]            the keys and their sizes
 *     partd cat DIR KEY [--codec zstd] the value of KEY, streamed to stdout
 *     partd du DIR [--json]            totals: keys, bytes, files
 *     partd rm DIR KEY…                removes keys
 *     partd drop DIR                   removes every key
 *     partd serve --listen … --dir …   the partd-server command
 *
 * `ls`, `cat`, `du`, `rm` and `drop` take `--redis URL --prefix P` in place of
 * DIR for a Redis store (see `CliStore`). They work through `Store.Shape`
 * (`keys`, `size`, `stream`, `delete`, `drop`), so every store's own rules
 * apply: a File store takes its directory's lock for each call, as Python
 * partd does, and nothing asks before it removes.
 *
 * Output goes to stdout; a failure is one line on stderr (`partd: …`) and
 * exit code 1 (`CliMain`). On a terminal, `cat` into a file or a pipe and
 * `drop` of many keys show their progress on stderr.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import { type Key, Store } from "@partd/core"
import { Console, Effect, Option, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Progress from "./CliProgress.ts"
import * as CliStore from "./CliStore.ts"

/** The flags every store command takes to find its store, besides DIR. */
const sourceFlags = {
  redis: Flag.String("redis").pipe(
    Flag.withDescription(
      "a Redis store instead of a directory: redis://[user:password@]host[:port][/db] or rediss://… (default: none)"
    ),
    Flag.optional
  ),
  prefix: Flag.String("prefix").pipe(
    Flag.withDescription("with --redis: the prefix of the store's keys (required with --redis)"),
    Flag.optional
  ),
  cluster: Flag.Boolean("cluster").pipe(
    Flag.withDescription("with --redis: a Redis Cluster (URL: its nodes, comma-separated) (default: false)"),
    Flag.withDefault(false)
  ),
  codec: Flag.String("codec").pipe(
    Flag.withDescription(
      "the store's compression, as written by @partd/codecs: zlib, gzip, brotli, zstd, bz2, snappy, lz4, blosc (default: none)"
    ),
    Flag.optional
  ),
  timeoutMs: Flag.Int("timeout-ms").pipe(
    Flag.withDescription(
      "with --redis: how long to wait for Redis to connect and answer, in milliseconds (default: 5000)"
    ),
    Flag.withDefault(5000)
  )
}

const dirArgument = Argument.String("dir").pipe(
  Argument.withDescription("the store's directory (omit it with --redis)"),
  Argument.optional
)

const jsonFlag = Flag.Boolean("json").pipe(
  Flag.withDescription("print JSON instead of text (default: false)"),
  Flag.withDefault(false)
)

interface SourceInput {
  readonly redis: Option.Option<string>
  readonly prefix: Option.Option<string>
  readonly cluster: boolean
  readonly codec: Option.Option<string>
  readonly timeoutMs: number
}

const sourceOf = (input: SourceInput, dir: Option.Option<string>): CliStore.Source => ({
  dir,
  redis: input.redis,
  prefix: input.prefix,
  cluster: input.cluster,
  codec: input.codec,
  timeoutMs: input.timeoutMs
})

/**
 * Splits positional operands into the directory and the rest: with --redis
 * every operand is a key, else the first is the directory.
 */
const splitOperands = (
  input: SourceInput,
  operands: ReadonlyArray<string>
): { readonly dir: Option.Option<string>; readonly rest: ReadonlyArray<string> } =>
  Option.isSome(input.redis)
    ? { dir: Option.none(), rest: operands }
    : { dir: Option.fromUndefinedOr(operands[0]), rest: operands.slice(1) }

/** Runs `body` with the store of `source`, every failure as one line naming the store. */
const withStore = <A>(
  source: CliStore.Source,
  body: (store: Store.Shape) => Effect.Effect<A, unknown>
): Effect.Effect<A, CliStore.CliError> =>
  Effect.gen(function* () {
    return yield* body(yield* Store.Store)
  }).pipe(
    Effect.provide(CliStore.layer(source)),
    Effect.mapError(CliStore.toCliError(source)),
    Effect.catchDefect((defect) => Effect.fail(CliStore.toCliError(source)(defect)))
  )

/** The sizes of `keys`, asked in batches so one call never names too many keys. */
const sizesOf = (store: Store.Shape, keys: ReadonlyArray<Key.Path>) =>
  Effect.gen(function* () {
    const sizes: Array<number> = []
    for (let i = 0; i < keys.length; i += 1000) sizes.push(...(yield* store.size(keys.slice(i, i + 1000))))
    return sizes
  })

/** Every key of the store, sorted (JavaScript's string order of the paths), with its size. */
const listing = (store: Store.Shape) =>
  Effect.gen(function* () {
    const keys = Array.from(yield* Stream.runCollect(store.keys)).sort()
    const sizes = yield* sizesOf(store, keys)
    return keys.map((key, i) => ({ key, bytes: sizes[i]! }))
  })

/**
 * `partd ls`.
 *
 * @since 0.1.0
 * @category commands
 */
export const ls = Command.make("ls", { dir: dirArgument, json: jsonFlag, ...sourceFlags }, (input) =>
  withStore(sourceOf(input, input.dir), (store) =>
    Effect.gen(function* () {
      const entries = yield* listing(store)
      if (input.json) return yield* Console.log(JSON.stringify(entries))
      if (entries.length === 0) return
      const shown = entries.map((entry) => Progress.bytes(entry.bytes))
      const width = Math.max(...shown.map((s) => s.length))
      yield* Console.log(entries.map((entry, i) => `${shown[i]!.padStart(width)}  ${entry.key}`).join("\n"))
    })
  )
).pipe(Command.withDescription("List the store's keys with their sizes (stored bytes), sorted by key"))

/** The regular files under `dir`, every sidecar included: what the directory holds on disk. */
const countFiles = (dir: string): number => {
  let files = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) files++
  return files
}

/**
 * `partd du`.
 *
 * @since 0.1.0
 * @category commands
 */
export const du = Command.make("du", { dir: dirArgument, json: jsonFlag, ...sourceFlags }, (input) =>
  withStore(sourceOf(input, input.dir), (store) =>
    Effect.gen(function* () {
      const entries = yield* listing(store)
      let bytes = 0
      for (const entry of entries) bytes += entry.bytes
      const files = Option.isSome(input.dir) && Option.isNone(input.redis) ? countFiles(input.dir.value) : undefined
      if (input.json) {
        return yield* Console.log(
          JSON.stringify({ keys: entries.length, bytes, ...(files === undefined ? {} : { files }) })
        )
      }
      const filesText = files === undefined ? "" : `, ${files} files`
      yield* Console.log(`${entries.length} keys, ${bytes} bytes (${Progress.bytes(bytes)})${filesText}`)
    })
  )
).pipe(Command.withDescription("Totals of the store: keys, bytes, and (for a directory) files on disk"))

/** Resolves once everything written to `out` so far has been handed to the system. */
const flushed = (out: NodeJS.WritableStream): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    out.write("", () => resume(Effect.void))
  })

/** Writes `piece` to `out`, waiting for it to drain when its buffer is full. */
const writeOut = (out: NodeJS.WritableStream, piece: Uint8Array): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (out.write(piece)) resume(Effect.void)
    else out.once("drain", () => resume(Effect.void))
  })

/**
 * `partd cat`.
 *
 * @since 0.1.0
 * @category commands
 */
export const cat = Command.make(
  "cat",
  {
    operands: Argument.String("dir-and-key").pipe(
      Argument.withDescription("DIR KEY, or KEY alone with --redis; a tuple key is its parts joined by /"),
      Argument.variadic({ min: 1, max: 2 })
    ),
    chunkBytes: Flag.Int("chunk-bytes").pipe(
      Flag.withDescription(
        `the largest piece read from the store at a time, in bytes (default: ${Store.defaultChunkBytes})`
      ),
      Flag.withDefault(Store.defaultChunkBytes)
    ),
    ...sourceFlags
  },
  (input) => {
    const { dir, rest } = splitOperands(input, input.operands)
    const source = sourceOf(input, dir)
    return withStore(source, (store) =>
      Effect.gen(function* () {
        const [key] = rest
        if (key === undefined || rest.length > 1) {
          return yield* new CliStore.CliError({ line: "cat takes one key: partd cat DIR KEY (or --redis … KEY)" })
        }
        const progress = Progress.shows() && !process.stdout.isTTY
        const total = progress ? (yield* store.size([key]))[0]! : 0
        const meter = Progress.make(`cat ${key}`, total)
        yield* store.stream(key, { chunkBytes: input.chunkBytes }).pipe(
          Stream.runForEach((piece) =>
            Effect.andThen(
              writeOut(process.stdout, piece),
              Effect.sync(() => {
                if (progress) meter.advance(piece.byteLength)
              })
            )
          ),
          Effect.andThen(flushed(process.stdout)),
          Effect.ensuring(
            Effect.sync(() => {
              if (progress) meter.done()
            })
          )
        )
      })
    )
  }
).pipe(Command.withDescription("Write the value of a key to stdout, streamed in bounded memory"))

/**
 * `partd rm`.
 *
 * @since 0.1.0
 * @category commands
 */
export const rm = Command.make(
  "rm",
  {
    operands: Argument.String("dir-and-keys").pipe(
      Argument.withDescription("DIR KEY…, or KEY… alone with --redis; a tuple key is its parts joined by /"),
      Argument.variadic({ min: 1 })
    ),
    ...sourceFlags
  },
  (input) => {
    const { dir, rest } = splitOperands(input, input.operands)
    return withStore(sourceOf(input, dir), (store) =>
      rest.length === 0
        ? Effect.fail(new CliStore.CliError({ line: "rm takes the keys to remove: partd rm DIR KEY…" }))
        : store.delete(rest)
    )
  }
).pipe(Command.withDescription("Remove keys (missing keys are fine); asks nothing"))

/** On a terminal, removes the keys in batches with a progress line before the drop itself. */
const dropShowingProgress = (store: Store.Shape) =>
  Effect.gen(function* () {
    const keys = Array.from(yield* Stream.runCollect(store.keys))
    const meter = Progress.make("drop", keys.length, "keys")
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000)
      yield* store.delete(batch)
      meter.advance(batch.length)
    }
    meter.done()
    yield* store.drop
  })

/**
 * `partd drop`.
 *
 * @since 0.1.0
 * @category commands
 */
export const drop = Command.make("drop", { dir: dirArgument, ...sourceFlags }, (input) =>
  withStore(sourceOf(input, input.dir), (store) => (Progress.shows() ? dropShowingProgress(store) : store.drop))
).pipe(Command.withDescription("Remove every key of the store (the directory stays); asks nothing"))

/**
 * `partd serve`: listed here for `partd --help`; `CliMain` hands `partd
 * serve …` to the `partd-server` command (`ServerCommand`), so it takes
 * every flag partd-server takes (`partd serve --help`).
 *
 * @since 0.1.0
 * @category commands
 */
export const serve = Command.make("serve").pipe(
  Command.withDescription(
    "Serve a store over a socket: the partd-server command, with all its flags (partd serve --help)"
  )
)

/**
 * The `partd` command and its subcommands.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("partd").pipe(
  Command.withDescription("Look at, change and serve partd stores (a directory, or Redis with --redis URL --prefix P)"),
  Command.withSubcommands([ls, cat, du, rm, drop, serve])
)
