/**
 * Redis: a partd store on Redis `APPEND`, from one server to a Redis Cluster,
 * over ioredis.
 *
 * Every key of a store lives in Redis under `<prefix>/<path>`, where `path` is
 * the key's canonical path (tuple segments joined by `/`). A prefix may not
 * contain `/`, so the prefix ends at the first `/` of a Redis key: two stores
 * with different prefixes can never name the same Redis key, and `drop`, which
 * scans for `<prefix>/*`, removes only its own store's keys. Without a prefix
 * the store makes a random one and drops its keys when its scope closes.
 *
 * - `append` is one round trip for any number of keys: `APPEND` per key, sent
 *   back to back (see {@link make} for atomicity).
 * - `get` is one round trip (`MGET` on one server, one pipeline of `GET`s per
 *   node on a cluster) and binary-safe: values are `Uint8Array`s in and out.
 * - `iset` is `SET`, `delete` is `UNLINK`, `drop` is `SCAN` + `UNLINK` of the
 *   store's prefix only (on every master of a cluster). Never a blocking
 *   listing of all keys, never a whole-database flush: other data in the same
 *   database is left alone.
 *
 * Faults are typed: a server that cannot be reached when the Layer is built
 * fails it with reason `Unavailable` after `readyTimeout`; a call in flight
 * when the connection drops fails with reason `Io` (it may or may not have been
 * applied), and later calls wait for ioredis to reconnect.
 *
 * Authentication (`password`, ACL `username`) and TLS (`tls`, or a `rediss://`
 * URL) are ioredis options and pass through unchanged.
 *
 * @since 0.1.0
 */
import { BufferPool, Store } from "@partd/core"
import { Config, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import {
  Cluster,
  type ClusterNode,
  Command,
  Redis as IORedis,
  type ClusterOptions as IORedisClusterOptions,
  type RedisOptions
} from "ioredis"
import * as Resp from "./Resp.ts"
import * as Slot from "./Slot.ts"

/**
 * An ioredis client: one server (`Redis`) or a cluster (`Cluster`).
 *
 * @since 0.1.0
 * @category models
 */
export type Client = IORedis | Cluster

/**
 * What every constructor accepts besides the connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreOptions {
  /**
   * Namespaces the store's keys: key `k` lives in Redis under `<prefix>/k`.
   * Not empty, and without `/`, `{`, `}` or NUL (`{…}` would pin every key of
   * the store to one cluster slot). Without a prefix the store makes a random
   * one and drops its keys when its scope closes.
   */
  readonly prefix?: string | undefined
  /**
   * How long building the Layer waits for the connection to be ready before
   * failing with reason `Unavailable` (default 10 seconds).
   */
  readonly readyTimeout?: Duration.Input | undefined
  /**
   * Send single-server appends as one Lua script per call (default), or as a
   * pipeline of `APPEND`s (`false`: for servers or ACL users without
   * `EVAL`; slower on the client). A cluster always uses pipelines.
   */
  readonly useScripts?: boolean | undefined
}

/**
 * ioredis options for one server, plus the store's options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options
  extends Omit<RedisOptions, "keyPrefix" | "replyMapping" | "lazyConnect" | "autoResendUnfulfilledCommands">,
    StoreOptions {}

/**
 * ioredis cluster options plus the startup nodes and the store's options.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClusterOptions extends Omit<IORedisClusterOptions, "keyPrefix" | "lazyConnect">, StoreOptions {
  readonly nodes: ReadonlyArray<ClusterNode>
}

const DEFAULT_READY_TIMEOUT = Duration.seconds(10)

/**
 * The most keys and bytes one append script carries. A call with more is sent
 * as several scripts back to back: a script blocks the server while it runs,
 * so this bounds how long one call can stall other clients, and it lets the
 * server work on one script while the next is being encoded.
 */
const SCRIPT_MAX_KEYS = 1024
const SCRIPT_MAX_BYTES = 1 << 20
/** Script buffers kept for reuse, and the smallest one allocated. */
const MAX_SPARE_BUFFERS = 4
const MIN_SCRIPT_BUFFER = 64 * 1024

/**
 * `APPEND` of the i-th value argument to the i-th key argument, in order (the
 * keys are declared as the script's keys, as Redis wants). Globals are read
 * once into locals: the loop runs once per key on the server.
 */
const APPEND_SCRIPT = Buffer.from(
  "local call, keys, values = redis.call, KEYS, ARGV " +
    "for i = 1, #keys do call('APPEND', keys[i], values[i]) end " +
    "return #keys"
)

/**
 * An ioredis command whose RESP bytes are encoded already (see `Resp`): it
 * goes through ioredis's queue, offline queue and reply routing like any
 * other command, but skips ioredis's per-argument encoding.
 */
class EncodedCommand extends Command {
  readonly encoded: Buffer
  constructor(name: string, encoded: Buffer) {
    super(name, [])
    this.encoded = encoded
  }
  override toWritable(): Buffer {
    return this.encoded
  }
}

/** How many keys one `SCAN` step asks for during `drop`. */
const SCAN_COUNT = 1000

// ioredis stringifies a bare Uint8Array ("1,2,3"): hand it a Buffer view of
// the same memory instead (no copy).
const toBuffer = (u: Uint8Array): Buffer => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength))

// What ioredis returns for a bulk string is a view into the socket chunk that
// carried it, which nothing else holds or reuses: a plain Uint8Array view of
// it belongs to the caller without a copy.
const toValue = (b: Buffer | null | undefined): Uint8Array =>
  b == null || b.byteLength === 0 ? new Uint8Array(0) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength)

const globEscape = (s: string): string => s.replace(/[*?[\]\\]/g, "\\$&")

/**
 * Checks a prefix: returns the reason it is not allowed, or `undefined`.
 *
 * @since 0.1.0
 * @category validation
 */
export const prefixProblem = (prefix: string): string | undefined => {
  if (typeof prefix !== "string" || prefix.length === 0) return "a prefix must be a non-empty string"
  if (/[/{}\0]/.test(prefix)) return `prefix ${JSON.stringify(prefix)} contains "/", "{", "}" or NUL`
  return undefined
}

const randomPrefix = (): string => `partd-${crypto.randomUUID()}`

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * Maps what ioredis rejects with to a StoreError. A connection that is gone
 * or could not be made is `Unavailable` (the command was never sent); a reply
 * error from the server (`WRONGTYPE`, `OOM`, `NOPERM`, …) is `Io`.
 */
const toStoreError = (method: string, error: unknown): Store.StoreError => {
  if (error instanceof Store.StoreError) return error
  const message = errorMessage(error)
  const name = error instanceof Error ? error.name : ""
  const unavailable =
    name === "MaxRetriesPerRequestError" ||
    message === "Connection is closed." ||
    message.includes("enableOfflineQueue") ||
    message.includes("ClusterAllFailedError") ||
    name === "ClusterAllFailedError"
  return new Store.StoreError({
    reason: unavailable ? "Unavailable" : "Io",
    method,
    description: `redis: ${message}`,
    cause: error
  })
}

/** A pipeline's `[error, result]` pairs: the first error, thrown. */
const results = <A>(pairs: Array<[Error | null, unknown]> | null): Array<A> => {
  if (pairs === null) throw new Error("the pipeline was aborted")
  const out = new Array<A>(pairs.length)
  for (let i = 0; i < pairs.length; i++) {
    const [error, result] = pairs[i]!
    if (error !== null) throw error
    out[i] = result as A
  }
  return out
}

interface InFlight {
  /** Whether its commands may have been written to a connection. */
  sent: boolean
  readonly fail: () => void
}

/**
 * Waits for a client to be ready, connecting it if it was made with
 * `lazyConnect`, and fails with `Unavailable` after `timeout`.
 */
const awaitReady = (client: Client, timeout: Duration.Duration): Effect.Effect<void, Store.StoreError> =>
  Effect.callback<void, Store.StoreError>((resume) => {
    if (client.status === "ready") return resume(Effect.void)
    let lastError: unknown
    const unavailable = (why: string) =>
      Effect.fail(
        new Store.StoreError({
          reason: "Unavailable",
          method: "connect",
          description: `redis: ${why}${lastError === undefined ? "" : ` (last error: ${errorMessage(lastError)})`}`,
          cause: lastError
        })
      )
    const onReady = () => {
      cleanup()
      resume(Effect.void)
    }
    const onError = (error: unknown) => {
      lastError = error
    }
    const onEnd = () => {
      cleanup()
      resume(unavailable("the connection ended before it was ready"))
    }
    const timer = setTimeout(() => {
      cleanup()
      resume(unavailable(`not ready within ${Duration.format(timeout)}`))
    }, Duration.toMillis(timeout))
    const cleanup = () => {
      clearTimeout(timer)
      client.off("ready", onReady)
      client.off("error", onError)
      client.off("end", onEnd)
    }
    client.on("ready", onReady)
    client.on("error", onError)
    client.on("end", onEnd)
    if (client.status === "wait") client.connect().catch(() => {})
    else if (client.status === "end") onEnd()
    return Effect.sync(cleanup)
  })

/**
 * Makes a store over a connected (or connecting) ioredis client, in the
 * current scope: it waits for the client to be ready (failing with
 * `Unavailable` after `readyTimeout`), and when the scope closes it drops the
 * store's keys if the prefix was random. The client itself is left open: its
 * owner closes it ({@link layer} does).
 *
 * Atomicity of `append`: on one server, a call is sent as a Lua script that
 * runs `APPEND` per key (several scripts back to back for calls of more than
 * 1024 keys or 1 MiB). Redis runs a script without interleaving any other
 * client's commands, so a call that fits in one script is never seen half
 * done and is applied whole or not at all when the connection drops. Scripts
 * do not roll back, though: an `APPEND` that fails inside one (a key holding
 * a list, out of memory) leaves the keys before it appended, and the call
 * fails with `Io`. A longer call, and any call on a cluster (one pipeline of
 * `APPEND`s per node: keys in different slots cannot share a script), is not
 * atomic: if the connection drops mid-call, some of its keys may have been
 * appended and the call fails with `Io`. Order is always kept: one connection per node
 * executes commands in the order they were sent, so chunks appended to a key
 * by one caller land in call order. The script is used instead of a pipeline
 * of `APPEND`s because encoding one command with 2n arguments costs ioredis a
 * fraction of n commands; a client whose ACL forbids scripts can set
 * `useScripts: false`.
 *
 * Idempotence of `iset` is per store instance (see `Store.make`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  client: Client,
  options: StoreOptions = {}
): Effect.Effect<Store.Shape, Store.StoreError, Scope.Scope> =>
  Effect.gen(function* () {
    const randomized = options.prefix === undefined
    const prefix = options.prefix ?? randomPrefix()
    const problem = prefixProblem(prefix)
    if (problem !== undefined) {
      return yield* Effect.fail(new Store.StoreError({ reason: "BadKey", method: "make", description: problem }))
    }
    // ioredis's own `keyPrefix` is not applied to SCAN patterns, so `drop` would miss every key.
    if (client.options.keyPrefix) {
      return yield* Effect.fail(
        new Store.StoreError({
          reason: "BadKey",
          method: "make",
          description: "the ioredis client has a keyPrefix: pass the store's prefix option instead"
        })
      )
    }
    const readyTimeout =
      options.readyTimeout === undefined ? DEFAULT_READY_TIMEOUT : Duration.fromInputUnsafe(options.readyTimeout)
    const useScripts = options.useScripts ?? true
    const cluster = client instanceof Cluster ? client : undefined
    const keyPrefix = `${prefix}/`
    const match = `${globEscape(keyPrefix)}*`

    // ioredis never settles a command that was in flight when its connection
    // closed (unless it resends it after reconnecting, which would apply an
    // append twice: `layer` turns that off). So the store tracks its calls and
    // fails those whose commands may have been sent when a connection closes.
    const inFlight = new Set<InFlight>()
    const onClose = () => {
      for (const call of inFlight) {
        if (call.sent) {
          inFlight.delete(call)
          call.fail()
        }
      }
    }
    // Calls made while disconnected wait in ioredis's offline queue, which is
    // written out as soon as the connection is ready again.
    const onReady = () => {
      for (const call of inFlight) call.sent = true
    }
    const onError = () => {
      // ioredis logs unhandled "error" events; failures reach callers as StoreErrors.
    }
    const watched = new Set<IORedis>()
    const watch = (connection: IORedis) => {
      if (watched.has(connection)) return
      watched.add(connection)
      connection.on("close", onClose)
      connection.on("error", onError)
    }
    client.on("ready", onReady)
    if (cluster === undefined) {
      watch(client as IORedis)
    } else {
      cluster.on("error", onError)
      cluster.on("+node", watch)
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        client.off("ready", onReady)
        if (cluster !== undefined) {
          cluster.off("error", onError)
          cluster.off("+node", watch)
        }
        for (const connection of watched) {
          connection.off("close", onClose)
          connection.off("error", onError)
        }
      })
    )
    const resends =
      cluster === undefined
        ? (client as IORedis).options.autoResendUnfulfilledCommands !== false
        : cluster.options.redisOptions?.autoResendUnfulfilledCommands !== false
    if (resends) {
      yield* Effect.logWarning(
        "partd Redis store: the ioredis client resends unfulfilled commands after a reconnect, " +
          "so an append that failed with a lost connection may be applied twice; " +
          "create it with autoResendUnfulfilledCommands: false"
      )
    }

    yield* awaitReady(client, readyTimeout)
    if (cluster !== undefined) for (const node of cluster.nodes()) watch(node)

    /** Runs one store call's commands, failing it with `Io` if a connection closes under it. */
    const run = <A>(method: string, commands: () => Promise<A>): Effect.Effect<A, Store.StoreError> =>
      Effect.callback<A, Store.StoreError>((resume) => {
        let done = false
        const call: InFlight = {
          sent: client.status === "ready",
          fail: () => {
            if (done) return
            done = true
            resume(
              Effect.fail(
                new Store.StoreError({
                  reason: "Io",
                  method,
                  description:
                    "redis: the connection closed while the call was in flight; it may or may not have been applied"
                })
              )
            )
          }
        }
        inFlight.add(call)
        const settle = (effect: Effect.Effect<A, Store.StoreError>) => {
          if (done) return
          done = true
          inFlight.delete(call)
          resume(effect)
        }
        let promise: Promise<A>
        try {
          promise = commands()
        } catch (error) {
          return settle(Effect.fail(toStoreError(method, error)))
        }
        promise.then(
          (a) => settle(Effect.succeed(a)),
          (error) => settle(Effect.fail(toStoreError(method, error)))
        )
        return Effect.sync(() => {
          done = true
          inFlight.delete(call)
        })
      })

    const keysOf = (paths: ReadonlyArray<string>): Array<string> => {
      const keys = new Array<string>(paths.length)
      for (let i = 0; i < paths.length; i++) keys[i] = keyPrefix + paths[i]!
      return keys
    }

    /** Indices of `keys` grouped by the cluster master that serves their slot, in order. */
    const byNode = (c: Cluster, keys: ReadonlyArray<string>): Array<Array<number>> => {
      const groups = new Map<string, Array<number>>()
      const slots = c.slots
      for (let i = 0; i < keys.length; i++) {
        const slot = Slot.of(keys[i]!)
        const node = slots[slot]?.[0] ?? `slot ${slot}`
        const group = groups.get(node)
        if (group === undefined) groups.set(node, [i])
        else group.push(i)
      }
      return Array.from(groups.values())
    }

    const prefixBytes = Buffer.from(keyPrefix)
    // A key set (`Store.columns`) hands the backend the same frozen paths
    // array on every call: its encoded keys are kept for the next call.
    // Other inputs bring a fresh array each time and are encoded each time.
    const keyBlocks = new WeakMap<ReadonlyArray<string>, Map<string, Buffer>>()
    const keysFor = (paths: ReadonlyArray<string>, start: number, end: number): Buffer => {
      if (!Object.isFrozen(paths)) return Resp.keyBlock(prefixBytes, paths, start, end)
      let blocks = keyBlocks.get(paths)
      if (blocks === undefined) {
        blocks = new Map()
        keyBlocks.set(paths, blocks)
      }
      const range = `${start}:${end}`
      let block = blocks.get(range)
      if (block === undefined) {
        // Chunk boundaries follow value sizes; bound the ranges kept per key set.
        if (blocks.size >= 64) blocks.clear()
        block = Resp.keyBlock(prefixBytes, paths, start, end)
        blocks.set(range, block)
      }
      return block
    }
    // Encoded scripts are written into reused buffers: a fresh buffer of a few
    // hundred KiB per call makes the garbage collector run far more often
    // (measured on W1: a quarter of the append time). A buffer is reused only
    // after its command succeeded: Redis answers only once it has read the
    // whole command, so the socket is done with it. After a failure (a
    // timeout may fire while the bytes still wait in the socket) it is left
    // to the garbage collector.
    const scriptBuffers = BufferPool.make({
      spares: MAX_SPARE_BUFFERS,
      minBytes: MIN_SCRIPT_BUFFER,
      maxBytes: Number.POSITIVE_INFINITY
    })
    const appendScripts = (c: IORedis, paths: ReadonlyArray<string>, values: ReadonlyArray<Uint8Array>) => {
      const sent: Array<Promise<unknown>> = []
      const n = paths.length
      let start = 0
      while (start < n) {
        let end = start
        let bytes = 0
        while (end < n && end - start < SCRIPT_MAX_KEYS && (end === start || bytes < SCRIPT_MAX_BYTES)) {
          bytes += values[end]!.byteLength
          end++
        }
        const encoded = Resp.evalWithKeys(
          APPEND_SCRIPT,
          keysFor(paths, start, end),
          values,
          start,
          end,
          scriptBuffers.take
        )
        const reply = c.sendCommand(new EncodedCommand("eval", encoded)) as Promise<unknown>
        sent.push(reply.then(() => scriptBuffers.give(encoded)))
        start = end
      }
      return Promise.all(sent)
    }

    const appendPipeline = (
      c: Client,
      keys: ReadonlyArray<string>,
      values: ReadonlyArray<Uint8Array>,
      indices?: ReadonlyArray<number>
    ) => {
      const pipeline = c.pipeline()
      if (indices === undefined) for (let i = 0; i < keys.length; i++) pipeline.append(keys[i]!, toBuffer(values[i]!))
      else for (const i of indices) pipeline.append(keys[i]!, toBuffer(values[i]!))
      return pipeline.exec().then(results)
    }

    /** Every key of the store on one server (a cluster node, or the only server): SCAN + UNLINK. */
    const dropOn = async (node: IORedis, perKey: boolean): Promise<void> => {
      let cursor = "0"
      do {
        const [next, found] = await node.scanBuffer(cursor, "MATCH", match, "COUNT", SCAN_COUNT)
        cursor = next.toString()
        if (found.length === 0) continue
        if (perKey) {
          // A cluster node refuses multi-key commands across slots.
          const pipeline = node.pipeline()
          for (const key of found) pipeline.unlink(key)
          results(await pipeline.exec())
        } else {
          await node.unlink(...found)
        }
      } while (cursor !== "0")
    }

    const backend: Store.Backend = {
      append: (paths, values) =>
        run("append", () => {
          if (cluster === undefined && useScripts) return appendScripts(client as IORedis, paths, values)
          const keys = keysOf(paths)
          if (cluster === undefined) return appendPipeline(client, keys, values)
          return Promise.all(byNode(cluster, keys).map((group) => appendPipeline(cluster, keys, values, group)))
        }),

      get: (paths) =>
        run("get", async () => {
          const keys = keysOf(paths)
          if (cluster === undefined) {
            const found = await (client as IORedis).mgetBuffer(keys)
            return found.map(toValue)
          }
          // Every index belongs to exactly one node's group, so every slot is filled.
          const out = new Array<Uint8Array>(keys.length)
          await Promise.all(
            byNode(cluster, keys).map(async (group) => {
              const pipeline = cluster.pipeline()
              for (const i of group) pipeline.getBuffer(keys[i]!)
              const found = results<Buffer | null>(await pipeline.exec())
              for (let j = 0; j < group.length; j++) out[group[j]!] = toValue(found[j])
            })
          )
          return out
        }),

      iset: (path, value) => run("iset", () => client.set(keyPrefix + path, toBuffer(value)).then(() => undefined)),

      delete: (paths) =>
        run("delete", async () => {
          const keys = keysOf(paths)
          if (cluster === undefined) {
            await (client as IORedis).unlink(...keys)
            return
          }
          await Promise.all(
            byNode(cluster, keys).map(async (group) => {
              const pipeline = cluster.pipeline()
              for (const i of group) pipeline.unlink(keys[i]!)
              results(await pipeline.exec())
            })
          )
        }),

      drop: run("drop", async () => {
        if (cluster === undefined) return dropOn(client as IORedis, false)
        await Promise.all(cluster.nodes("master").map((node) => dropOn(node, true)))
      })
    }

    if (randomized) {
      // Nobody else can name a random prefix, so its keys would only leak.
      // Bounded: a server that is gone must not hold the scope open.
      yield* Effect.addFinalizer(() => backend.drop.pipe(Effect.timeout(readyTimeout), Effect.ignore))
    }
    return yield* Store.make(backend)
  })

/**
 * Closes a client this package created: `QUIT` when connected (replies to
 * earlier commands arrive first), a plain disconnect otherwise or after a
 * second.
 */
const close = (client: Client): Effect.Effect<void> =>
  client.status === "ready"
    ? Effect.promise(() => client.quit().catch(() => undefined)).pipe(
        Effect.timeout(Duration.seconds(1)),
        Effect.ignore,
        Effect.ensuring(Effect.sync(() => client.disconnect()))
      )
    : Effect.sync(() => client.disconnect())

// Options that `layer` and `layerCluster` always set: connect inside the
// Layer's scope, and never replay in-flight commands after a reconnect (an
// `APPEND` that may already have been applied must not be applied twice).
const connectionDefaults = { lazyConnect: true, autoResendUnfulfilledCommands: false } as const

// The store reads replies in ioredis's default ("legacy") shapes.
type LegacyRedisOptions = RedisOptions & { readonly replyMapping?: "legacy" }
type LegacyClusterOptions = IORedisClusterOptions & { readonly redisOptions?: LegacyRedisOptions }

const splitOptions = <O extends StoreOptions>(
  options: O
): [StoreOptions, Omit<O, "prefix" | "readyTimeout" | "useScripts">] => {
  const { prefix, readyTimeout, useScripts, ...rest } = options
  return [{ prefix, readyTimeout, useScripts }, rest]
}

/**
 * Makes a store on one Redis server, connecting a new ioredis client in the
 * scope and quitting it when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeServer = (options: Options = {}): Effect.Effect<Store.Shape, Store.StoreError, Scope.Scope> =>
  Effect.gen(function* () {
    const [storeOptions, redisOptions] = splitOptions(options)
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => new IORedis({ ...redisOptions, ...connectionDefaults } as LegacyRedisOptions)),
      close
    )
    return yield* make(client, storeOptions)
  })

/**
 * Makes a store on a Redis Cluster, connecting a new ioredis `Cluster` in the
 * scope and quitting it when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeCluster = (options: ClusterOptions): Effect.Effect<Store.Shape, Store.StoreError, Scope.Scope> =>
  Effect.gen(function* () {
    const [storeOptions, { nodes, ...clusterOptions }] = splitOptions(options)
    const client = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new Cluster(Array.from(nodes), {
            ...clusterOptions,
            lazyConnect: true,
            redisOptions: { ...clusterOptions.redisOptions, autoResendUnfulfilledCommands: false }
          } as LegacyClusterOptions)
      ),
      close
    )
    return yield* make(client, storeOptions)
  })

/**
 * A store on one Redis server: ioredis options (`host`, `port`, `password`,
 * `username`, `tls`, `db`, …) plus `prefix` and `readyTimeout`.
 *
 * @example
 * ```ts
 * Redis.layer({ host: "127.0.0.1", port: 6379, prefix: "shuffle-42" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Store.Store, Store.StoreError> =>
  Layer.effect(Store.Store, makeServer(options))

/**
 * A store on a Redis Cluster: startup `nodes`, ioredis cluster options
 * (`redisOptions` carries `password`, `username`, `tls` for every node) plus
 * `prefix` and `readyTimeout`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerCluster = (options: ClusterOptions): Layer.Layer<Store.Store, Store.StoreError> =>
  Layer.effect(Store.Store, makeCluster(options))

/**
 * A store over an ioredis client (`Redis` or `Cluster`) that the caller owns
 * and closes. Create the client with `autoResendUnfulfilledCommands: false`:
 * otherwise ioredis replays in-flight commands after a reconnect, and an
 * append that failed because the connection dropped may be applied twice.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClient = (
  client: Client,
  options: StoreOptions = {}
): Layer.Layer<Store.Store, Store.StoreError> => Layer.effect(Store.Store, make(client, options))

/**
 * What {@link layerConfig} reads.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigOptions {
  /**
   * `redis://[[user]:password@]host[:port][/db]`, or `rediss://…` for TLS.
   * With `cluster`, a comma-separated list of startup nodes' URLs (the
   * credentials and TLS of the first apply to all).
   */
  readonly url: Redacted.Redacted<string> | string
  readonly cluster?: boolean | undefined
  readonly prefix?: string | undefined
  readonly readyTimeout?: Duration.Duration | undefined
}

const clusterFromUrls = (urls: string, storeOptions: StoreOptions): ClusterOptions => {
  const parsed = urls
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => new URL(s))
  const first = parsed[0]
  const redisOptions: RedisOptions = {}
  if (first !== undefined) {
    if (first.username !== "") redisOptions.username = decodeURIComponent(first.username)
    if (first.password !== "") redisOptions.password = decodeURIComponent(first.password)
    if (first.protocol === "rediss:") redisOptions.tls = {}
  }
  return {
    ...storeOptions,
    nodes: parsed.map((u) => ({ host: u.hostname, port: u.port === "" ? 6379 : Number(u.port) })),
    redisOptions
  }
}

/**
 * A store configured through effect's `Config`: pass a `Config` for each
 * field, e.g. `{ url: Config.Redacted("REDIS_URL"), prefix:
 * Config.String("PARTD_PREFIX") }`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Wrap<ConfigOptions>
): Layer.Layer<Store.Store, Store.StoreError | Config.ConfigError> =>
  Layer.effect(
    Store.Store,
    Effect.gen(function* () {
      const options = yield* Config.unwrap(config)
      const url = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
      const storeOptions: StoreOptions = { prefix: options.prefix, readyTimeout: options.readyTimeout }
      if (options.cluster === true) return yield* makeCluster(clusterFromUrls(url, storeOptions))
      return yield* Effect.gen(function* () {
        const client = yield* Effect.acquireRelease(
          Effect.sync(() => new IORedis(url, connectionDefaults)),
          close
        )
        return yield* make(client, storeOptions)
      })
    })
  )
