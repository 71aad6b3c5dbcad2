/**
 * Client: a `Store` that talks to a `Server`, as partd's `Client(address)`
 * does, so that many processes share one store.
 *
 * Every store operation is one request (see `Wire`); errors raised by the
 * served store arrive as the same typed `StoreError`. Keys are validated here
 * before anything is sent, and again by the server.
 *
 * The connection opens on first use and reopens after it is lost. A request
 * caught by a lost connection fails with reason `Unavailable`: it may or may
 * not have been applied, so the caller decides whether to retry.
 *
 * An append whose packed size exceeds the frame limit is split into several
 * requests, sent in order (each key's chunks stay in order; another client's
 * append may land in between). A single chunk larger than the limit fails
 * with `BadValue`. A `get` whose answer would exceed the limit fails with a
 * `Protocol` error from the server: get fewer keys at a time.
 *
 * @since 0.1.0
 */
import { NodeSocket } from "@effect/platform-node"
import { Effect, Layer, Schedule, type Scope } from "effect"
import { RpcClient, type RpcClientError } from "effect/rpc"
import type * as Key from "./Key.ts"
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
  readonly maxFrameBytes?: number
}

const unavailable = (method: string, error: RpcClientError.RpcClientError) =>
  new Store.StoreError({ reason: "Unavailable", method, description: error.message, cause: error })

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
    // Room for the request's envelope besides the packed chunks.
    const maxBatchBytes = maxFrameBytes - 64 * 1024
    const connect = {
      ...("path" in address ? { path: address.path } : { host: address.host ?? "127.0.0.1", port: address.port }),
      readableHighWaterMark: Server.socketHighWaterMark,
      writableHighWaterMark: Server.socketHighWaterMark
    }
    const protocol = yield* Layer.build(
      RpcClient.layerProtocolSocket({
        retryTransientErrors: false,
        // Reconnect soon after a lost connection (requests fail with Unavailable meanwhile).
        retryPolicy: Schedule.min([Schedule.exponential(10, 2), Schedule.spaced(1000)])
      }).pipe(Layer.provide(Wire.serialization(maxFrameBytes)), Layer.provide(NodeSocket.layerNet(connect)))
    ).pipe(
      // Building the socket only prepares it: the connection opens on first use.
      Effect.mapError(
        (cause) =>
          new Store.StoreError({ reason: "Unavailable", method: "Client.make", description: cause.message, cause })
      )
    )
    const client = yield* RpcClient.make(Wire.Procedures, { disableTracing: true }).pipe(Effect.provide(protocol))

    const appendPacked = (paths: ReadonlyArray<Key.Path>, values: ReadonlyArray<Uint8Array>) =>
      client
        .Append({ paths: Wire.joinPaths(paths), values })
        .pipe(Effect.catchTag("RpcClientError", (e) => unavailable("append", e)))

    const append = (
      paths: ReadonlyArray<Key.Path>,
      values: ReadonlyArray<Uint8Array>
    ): Effect.Effect<void, Store.StoreError> => {
      if (Wire.framedBytes(paths, values) <= maxBatchBytes) return appendPacked(paths, values)
      // Too large for one frame: consecutive slices, each under the limit, in order.
      const slices: Array<readonly [number, number]> = []
      let start = 0
      let size = 0
      for (let i = 0; i < values.length; i++) {
        const one = Wire.framedBytes([paths[i]!], [values[i]!])
        if (one > maxBatchBytes) {
          return Effect.fail(
            new Store.StoreError({
              reason: "BadValue",
              method: "append",
              key: paths[i]!,
              description: `a chunk of ${values[i]!.byteLength} bytes exceeds the frame limit of ${maxFrameBytes} bytes`
            })
          )
        }
        if (size + one > maxBatchBytes) {
          slices.push([start, i])
          start = i
          size = 0
        }
        size += one
      }
      slices.push([start, values.length])
      return Effect.forEach(slices, ([from, to]) => appendPacked(paths.slice(from, to), values.slice(from, to)), {
        discard: true
      })
    }

    return yield* Store.make({
      append,
      get: (paths) =>
        client.Get({ paths: Wire.joinPaths(paths), count: paths.length }).pipe(
          Effect.catchTag("RpcClientError", (e) => unavailable("get", e)),
          Effect.flatMap((values) =>
            values.length === paths.length
              ? Effect.succeed(values)
              : Effect.fail(
                  new Store.StoreError({
                    reason: "Protocol",
                    method: "get",
                    description: `asked for ${paths.length} values, got ${values.length}`
                  })
                )
          )
        ),
      iset: (path, value) =>
        client.Iset({ path, value }).pipe(Effect.catchTag("RpcClientError", (e) => unavailable("iset", e))),
      delete: (paths) =>
        client
          .Delete({ paths: Wire.joinPaths(paths), count: paths.length })
          .pipe(Effect.catchTag("RpcClientError", (e) => unavailable("delete", e))),
      drop: client.Drop().pipe(Effect.catchTag("RpcClientError", (e) => unavailable("drop", e)))
    })
  })

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
