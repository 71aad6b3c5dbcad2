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
 * - `append` is one round trip for any number of keys: a Lua script that
 *   records the call's id and runs `APPEND` per key (one script per master
 *   on a cluster; see {@link make} for atomicity).
 * - `get` is one round trip (`MGET` on one server, one pipeline of `GET`s per
 *   node on a cluster) and binary-safe: values are `Uint8Array`s in and out.
 * - `stream` reads the key's length (`STRLEN`) when it starts, then
 *   `GETRANGE` pieces below it on the key's own master, one in flight: as
 *   `APPEND` only adds bytes past the end, it yields the value as it stood
 *   when it started. `keys` `SCAN`s the prefix on every master (never
 *   `KEYS`), without the store's call ids or keys holding no bytes; `size` is
 *   `STRLEN` per key.
 * - `iset` is `SET`, `delete` is `UNLINK`, `drop` is `SCAN` + `UNLINK` of the
 *   store's prefix only (on every master of a cluster). Never a blocking
 *   listing of all keys, never a whole-database flush: other data in the same
 *   database is left alone.
 *
 * Call ids: every append carries an id (the caller's `{ id }`, or one the
 * store makes), which its script records as `<prefix>/./calls/…` with `SET
 * NX EX` before it appends, on every master it touches, in the same script:
 * a call whose id is recorded appends nothing and succeeds. Ids are
 * remembered `callWindow` (default 1 hour); `delete` and `drop` leave them,
 * as ids are per call (a call sent again after a drop is still the same
 * call); the random-prefix cleanup removes them with the keys.
 *
 * Faults are typed, and passing ones are waited out. A server that cannot
 * be reached when the Layer is built fails it with reason `Unavailable`
 * after `readyTimeout`. A call is sent again, with its id, while it fails
 * for a reason that passes (a connection that dropped, a restarted server,
 * `MOVED`, `CLUSTERDOWN`, `TRYAGAIN`, `READONLY` while a cluster fails over),
 * until `requestTimeout` from its start; then the caller gets the last
 * error: `Unavailable` when the call was never sent, `Io` when it may have
 * been applied, with its id in the description (sent again with that id, it
 * is applied at most once). Reads, `delete` and `drop` are sent again the
 * same way; `iset`, and appends with `useScripts: false` (no ids), only when
 * they were never sent. Appends sent again keep their order (a caller that
 * does not wait, `Pipelined`, relies on it): they go again in the order they
 * started, later appends wait behind them, and one whose share failed on a
 * master where a later append's share has landed since is not sent again
 * (it fails with its id).
 *
 * `replicas: n` makes each append wait for `WAIT n replicaTimeout` on every
 * master it touched before it succeeds: off by default, as Redis replicates
 * asynchronously and an append acknowledged just before a failover can be
 * missing on the promoted replica. It costs a round trip per master, and
 * `WAIT` holds the connection to that master while it waits.
 *
 * The parts, each in its own module: `Connection` (waiting for the client,
 * bounding every call, telling calls never sent from calls that may have
 * applied), `Retry` (which failures pass, sending calls again within the
 * deadline), `Calls` (where ids live), `Append` (the append script, `WAIT`
 * and pipelines), `Routing` (a cluster's calls, split by master), `Read`
 * (`stream`, `keys`, `size`). This module validates the options and puts
 * them together.
 *
 * Authentication (`password`, ACL `username`) and TLS (`tls`, or a `rediss://`
 * URL) are ioredis options and pass through unchanged.
 *
 * @since 0.1.0
 */
import { Observe, Store } from "@partd/core"
import { Config, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import {
  Cluster,
  type ClusterNode,
  Redis as IORedis,
  type ClusterOptions as IORedisClusterOptions,
  type RedisOptions
} from "ioredis"
import * as Append from "./Append.ts"
import * as Calls from "./Calls.ts"
import * as Connection from "./Connection.ts"
import * as Read from "./Read.ts"
import * as Retry from "./Retry.ts"
import * as Routing from "./Routing.ts"

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
   * How long a call may take (default 10 seconds): waiting for the
   * connection while the server is down (then it fails with `Unavailable`
   * and was not sent), and waiting for the reply (then it fails with `Io`
   * and may or may not have been applied). It bounds a whole call: raise it
   * for a `drop` of millions of keys, which takes many round trips.
   */
  readonly requestTimeout?: Duration.Input | undefined
  /**
   * Send appends as one Lua script per call (one per master on a cluster:
   * default), or as pipelines of `APPEND`s (`false`: for servers or ACL
   * users without `EVAL`; slower on the client). Only scripts record call
   * ids: with `false`, an append given an `id` fails with `BadValue`, and an
   * append that was sent is never sent again.
   */
  readonly useScripts?: boolean | undefined
  /**
   * How long the store remembers an append call's id (default 1 hour, at
   * least 1 second): a call sent again with the same id within it is not
   * applied again. Each id costs one small key per master the call touched
   * (`<prefix>/./calls/…`, about 100 bytes) for that long.
   */
  readonly callWindow?: Duration.Input | undefined
  /**
   * How many replicas must confirm an append (`WAIT`) on every master it
   * touched before it succeeds (default 0: acknowledged once the master
   * applied it, as Redis replicates asynchronously). When fewer confirm
   * within `replicaTimeout`, the append is sent again with its id until
   * `requestTimeout`, then fails with `Io`.
   */
  readonly replicas?: number | undefined
  /** How long one `WAIT` waits for `replicas` confirmations (default 1 second). */
  readonly replicaTimeout?: Duration.Input | undefined
}

/**
 * ioredis options for one server, plus the store's options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options
  extends Omit<
      RedisOptions,
      "keyPrefix" | "replyMapping" | "lazyConnect" | "autoResendUnfulfilledCommands" | "enableOfflineQueue"
    >,
    StoreOptions {}

/**
 * ioredis cluster options plus the startup nodes and the store's options.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClusterOptions
  extends Omit<IORedisClusterOptions, "keyPrefix" | "lazyConnect" | "enableOfflineQueue">,
    StoreOptions {
  readonly nodes: ReadonlyArray<ClusterNode>
}

const DEFAULT_READY_TIMEOUT = Duration.seconds(10)
const DEFAULT_REQUEST_TIMEOUT = Duration.seconds(10)
const DEFAULT_REPLICA_TIMEOUT = Duration.seconds(1)

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

/** The method that errors of building a store name. */
const MAKE = "Redis.make"

/** Why a store cannot be made over `client` with `prefix`, or `undefined`. */
const makeProblem = (client: Client, prefix: string): string | undefined =>
  prefixProblem(prefix) ??
  // ioredis's own `keyPrefix` is not applied to SCAN patterns, so `drop` would miss every key.
  (client.options.keyPrefix ? "the ioredis client has a keyPrefix: pass the store's prefix option instead" : undefined)

/** Warns about client options under which a failed call may be applied later, or twice. */
const warnUnsafeClient = (client: Client): Effect.Effect<void> => {
  const resends =
    (client instanceof Cluster ? client.options.redisOptions : client.options)?.autoResendUnfulfilledCommands !== false
  const queues = client.options.enableOfflineQueue !== false
  if (!resends && !queues) return Effect.void
  return Effect.logWarning(
    "partd Redis store: the ioredis client " +
      (resends ? "resends unfulfilled commands after a reconnect" : "queues commands while disconnected") +
      ", so an append that failed may be applied later or twice; " +
      "create it with autoResendUnfulfilledCommands: false and enableOfflineQueue: false"
  )
}

const keysOf = (keyPrefix: string, paths: ReadonlyArray<string>): Array<string> => {
  const keys = new Array<string>(paths.length)
  for (let i = 0; i < paths.length; i++) keys[i] = keyPrefix + paths[i]!
  return keys
}

/** The options that shape a store's calls, validated. */
interface Settings {
  readonly keyPrefix: string
  readonly useScripts: boolean
  readonly windowSeconds: number
  readonly replicas: number
  readonly replicaTimeoutMs: number
  readonly requestTimeoutMs: number
}

const noScriptsId = (): Store.StoreError =>
  new Store.StoreError({
    reason: "BadValue",
    method: "append",
    description: "redis: a call id needs the append script, and this store has useScripts: false"
  })

/** The store's calls over a ready client, each run through the tracker and sent again as `Retry` allows. */
const backendOf = (client: Client, tracker: Connection.Tracker, settings: Settings): Store.Backend => {
  const { keyPrefix, useScripts, replicas, replicaTimeoutMs } = settings
  const cluster = client instanceof Cluster ? client : undefined
  const server = client as IORedis
  const match = `${globEscape(keyPrefix)}*`
  const scripts = Append.scripts(keyPrefix, settings.windowSeconds)
  const retrying = Retry.make(tracker, settings.requestTimeoutMs, cluster, replicas > 0 ? replicaTimeoutMs : 0)
  const isRecord = (key: Buffer) => Calls.isRecord(key.toString("utf8", keyPrefix.length))
  // The latest ordered append (its place) whose share landed on each master ("" for the one server).
  const landedOn = new Map<string, number>()
  const appendScripts = async (
    paths: ReadonlyArray<string>,
    values: ReadonlyArray<Uint8Array>,
    id: string,
    call: Connection.Call,
    place: number,
    failed: Array<string>
  ): Promise<void> => {
    const landing: Routing.Landing = {
      landed: (master) => {
        if ((landedOn.get(master) ?? -1) < place) landedOn.set(master, place)
      },
      failed: (master) => failed.push(master)
    }
    if (cluster !== undefined) {
      const slots = await Routing.appendScripts(cluster, scripts, keyPrefix, paths, values, id, call, landing)
      if (replicas > 0)
        await Promise.all(slots.map((slot) => Append.replicate(cluster, slot, replicas, replicaTimeoutMs)))
    } else {
      await scripts.server(server, paths, values, id).then(
        () => landing.landed(""),
        (error) => {
          landing.failed("")
          throw error
        }
      )
      if (replicas > 0) await Append.replicate(server, null, replicas, replicaTimeoutMs)
    }
  }
  return {
    append: (paths, values, given) => {
      if (!useScripts) {
        if (given !== undefined) return Effect.fail(noScriptsId())
        return retrying.run("append", "unsent", (call) =>
          cluster !== undefined
            ? Routing.append(cluster, keysOf(keyPrefix, paths), values, call)
            : Append.pipeline(server, keysOf(keyPrefix, paths), values)
        )
      }
      const id = given ?? Calls.make()
      const place = retrying.nextPlace()
      // The masters where the latest attempt's share failed: sent again, it must not land after a later call's.
      let failed: Array<string> = []
      const overtaken = () => failed.some((master) => (landedOn.get(master) ?? -1) > place)
      return retrying.run(
        "append",
        "ordered",
        (call) => {
          failed = []
          return appendScripts(paths, values, id, call, place, failed)
        },
        id,
        { place, overtaken }
      )
    },
    get: (paths) =>
      retrying.run("get", "always", async (call) => {
        const keys = keysOf(keyPrefix, paths)
        if (cluster !== undefined) return Routing.get(cluster, keys, call)
        return (await server.mgetBuffer(keys)).map(Routing.toValue)
      }),
    iset: (path, value) =>
      retrying.run("iset", "unsent", () => client.set(keyPrefix + path, Append.toBuffer(value)).then(() => undefined)),
    delete: (paths) =>
      retrying.run("delete", "always", async (call) => {
        const keys = keysOf(keyPrefix, paths)
        if (cluster !== undefined) return Routing.unlink(cluster, keys, call)
        await server.unlink(...keys)
      }),
    drop: retrying.run("drop", "always", (call) =>
      cluster !== undefined
        ? Routing.drop(cluster, match, call, isRecord)
        : Routing.dropOn(server, match, false, isRecord)
    ),
    stream: (path, chunkBytes) => Read.stream(client, retrying, keyPrefix + path, chunkBytes),
    keys: Read.keys(client, retrying, keyPrefix, match),
    size: (paths) => retrying.run("size", "always", () => Read.sizes(client, keysOf(keyPrefix, paths)))
  }
}

/** Drops every key of the prefix, the store's records (call ids) too: for a random prefix nobody else can name. */
const dropAll = (
  client: Client,
  tracker: Connection.Tracker,
  keyPrefix: string
): Effect.Effect<void, Store.StoreError> => {
  const match = `${globEscape(keyPrefix)}*`
  return tracker.run("drop", (call) =>
    client instanceof Cluster ? Routing.drop(client, match, call) : Routing.dropOn(client, match, false)
  )
}

/** A whole number of seconds, at least 1, for `EX`. */
const windowSecondsOf = (window: Duration.Input | undefined): number =>
  window === undefined
    ? Calls.DEFAULT_WINDOW_SECONDS
    : Math.max(1, Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(window)) / 1000))

/**
 * Makes a store over a connected (or connecting) ioredis client, in the
 * current scope: it waits for the client to be ready (failing with
 * `Unavailable` after `readyTimeout`), and when the scope closes it drops the
 * store's keys if the prefix was random. The client itself is left open: its
 * owner closes it ({@link layer} does).
 *
 * Atomicity of `append`: a call is sent as a Lua script that records its id
 * and runs `APPEND` per key (several scripts back to back for calls of more
 * than 1024 keys or 1 MiB; on a cluster, one script per master, as keys on
 * different masters cannot share one). Redis runs a script without
 * interleaving any other client's commands, so a script is never seen half
 * done and is applied whole or not at all when the connection drops; a call
 * of several scripts may be applied in part, and sending it again with its
 * id (which the store does until `requestTimeout`) applies the rest and
 * nothing twice. Scripts do not roll back, though: an `APPEND` that fails
 * inside one (a key holding a list) leaves the keys before it appended, and
 * the call fails with `Io`. A cluster's id keys are placed by the slot of
 * each script's first key: a slot moved to another master between two sends
 * of the same call (resharding; a failover keeps slots and data together)
 * can make the second send apply some chunks twice, or skip chunks that
 * moved into a share already recorded. Order is always kept: one connection per
 * node executes commands in the order they were sent, so chunks appended to a
 * key by one caller land in call order. The script's command is encoded by
 * the store (`Resp`), because ioredis's encoding of one command with 2n
 * arguments costs a fraction of n commands; a client whose ACL forbids
 * scripts can set `useScripts: false` (pipelines of `APPEND`s, without ids).
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
    const problem = makeProblem(client, prefix)
    if (problem !== undefined) {
      return yield* Effect.fail(new Store.StoreError({ reason: "BadKey", method: MAKE, description: problem }))
    }
    const replicas = options.replicas ?? 0
    if (!Number.isSafeInteger(replicas) || replicas < 0) {
      return yield* Effect.fail(
        new Store.StoreError({
          reason: "BadValue",
          method: MAKE,
          description: `replicas must be a whole number of at least 0, got ${String(replicas)}`
        })
      )
    }
    const readyTimeout = Duration.fromInputUnsafe(options.readyTimeout ?? DEFAULT_READY_TIMEOUT)
    const requestTimeout = Duration.fromInputUnsafe(options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT)
    const replicaTimeout = Duration.fromInputUnsafe(options.replicaTimeout ?? DEFAULT_REPLICA_TIMEOUT)
    yield* warnUnsafeClient(client)
    yield* Connection.awaitReady(client, readyTimeout, MAKE)
    if (client instanceof Cluster) {
      // ioredis connects to a cluster's masters on first use, and refuses commands to a master whose
      // connection is still being made: connect them all now, so that the first calls are not refused.
      yield* Effect.promise(() => Promise.all(client.nodes("master").map((node) => node.ping().catch(() => "")))).pipe(
        Effect.timeout(readyTimeout),
        Effect.ignore
      )
    }
    const tracker = yield* Connection.track(client, requestTimeout)
    const keyPrefix = `${prefix}/`
    const backend = backendOf(client, tracker, {
      keyPrefix,
      useScripts: options.useScripts ?? true,
      windowSeconds: windowSecondsOf(options.callWindow),
      replicas,
      replicaTimeoutMs: Math.max(1, Math.round(Duration.toMillis(replicaTimeout))),
      requestTimeoutMs: Duration.toMillis(requestTimeout)
    })
    if (randomized) {
      // Nobody else can name a random prefix, so its keys (and call ids) would only leak.
      // Bounded: a server that is gone must not hold the scope open.
      yield* Effect.addFinalizer(() =>
        dropAll(client, tracker, keyPrefix).pipe(Effect.timeout(readyTimeout), Effect.ignore)
      )
    }
    return yield* Observe.make("Redis", backend)
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
// Layer's scope, never replay in-flight commands after a reconnect (an
// `APPEND` that may already have been applied must not be applied twice),
// and never queue commands while disconnected (a queued command is written
// when the connection returns, even when its caller gave up long ago: the
// store waits for the connection itself, see `Connection`).
const connectionDefaults = {
  lazyConnect: true,
  autoResendUnfulfilledCommands: false,
  enableOfflineQueue: false
} as const

// The store reads replies in ioredis's default ("legacy") shapes.
type LegacyRedisOptions = RedisOptions & { readonly replyMapping?: "legacy" }
type LegacyClusterOptions = IORedisClusterOptions & { readonly redisOptions?: LegacyRedisOptions }

const splitOptions = <O extends StoreOptions>(options: O): [StoreOptions, Omit<O, keyof StoreOptions>] => {
  const { prefix, readyTimeout, requestTimeout, useScripts, callWindow, replicas, replicaTimeout, ...rest } = options
  return [{ prefix, readyTimeout, requestTimeout, useScripts, callWindow, replicas, replicaTimeout }, rest]
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
            enableOfflineQueue: false,
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
 * and closes. Create the client with `autoResendUnfulfilledCommands: false`
 * (otherwise ioredis replays in-flight commands after a reconnect, and an
 * append that failed because the connection dropped may be applied twice)
 * and `enableOfflineQueue: false` (otherwise a command can wait in ioredis's
 * queue and be written after its call failed); the store warns otherwise.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClient = (
  client: Client,
  options: StoreOptions = {}
): Layer.Layer<Store.Store, Store.StoreError> => Layer.effect(Store.Store, make(client, options))

/**
 * What {@link layerConfig} reads: the store's options, plus where the server is.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigOptions extends StoreOptions {
  /**
   * `redis://[[user]:password@]host[:port][/db]`, or `rediss://…` for TLS.
   * With `cluster`, a comma-separated list of startup nodes' URLs (the
   * credentials and TLS of the first apply to all).
   */
  readonly url: Redacted.Redacted<string> | string
  readonly cluster?: boolean | undefined
}

/** A `redis://` or `rediss://` URL as ioredis options; a typed error (that does not echo the URL) otherwise. */
const parseUrl = (url: string): Effect.Effect<RedisOptions, Store.StoreError> =>
  Effect.try({
    try: () => {
      const parsed = new URL(url)
      if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") throw new Error("not redis: or rediss:")
      const db = parsed.pathname.replace(/^\//, "")
      if (db !== "" && !/^\d+$/.test(db)) throw new Error("the database is not a number")
      const options: RedisOptions = {
        host: parsed.hostname === "" ? "localhost" : parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
        port: parsed.port === "" ? 6379 : Number(parsed.port)
      }
      if (parsed.username !== "") options.username = decodeURIComponent(parsed.username)
      if (parsed.password !== "") options.password = decodeURIComponent(parsed.password)
      if (db !== "") options.db = Number(db)
      if (parsed.protocol === "rediss:") options.tls = {}
      return options
    },
    catch: (cause) =>
      new Store.StoreError({
        reason: "Unavailable",
        method: MAKE,
        description: `redis: the url is not a redis:// or rediss:// URL (${Store.describeCause(cause)})`
      })
  })

const clusterOptionsOf = (urls: string, storeOptions: StoreOptions): Effect.Effect<ClusterOptions, Store.StoreError> =>
  Effect.gen(function* () {
    const parsed: Array<RedisOptions> = []
    for (const one of urls.split(",").map((s) => s.trim())) if (one.length > 0) parsed.push(yield* parseUrl(one))
    const [first] = parsed
    if (first === undefined) {
      return yield* Effect.fail(
        new Store.StoreError({ reason: "Unavailable", method: MAKE, description: "redis: no cluster node URL" })
      )
    }
    const { host: _host, port: _port, db: _db, ...redisOptions } = first
    return {
      ...storeOptions,
      nodes: parsed.map((u) => ({ host: u.host!, port: u.port! })),
      redisOptions
    }
  })

/**
 * A store configured through effect's `Config`: pass a `Config` for each
 * field, e.g. `{ url: Config.Redacted("REDIS_URL"), prefix:
 * Config.String("PARTD_PREFIX") }`. A URL that does not parse fails with
 * reason `Unavailable`.
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
      const { url, cluster, ...storeOptions } = yield* Config.unwrap(config)
      const text = Redacted.isRedacted(url) ? Redacted.value(url) : url
      if (cluster === true) return yield* makeCluster(yield* clusterOptionsOf(text, storeOptions))
      return yield* makeServer({ ...(yield* parseUrl(text)), ...storeOptions })
    })
  )
