/**
 * @since 0.1.0
 */

/**
 * Buffer: a memory-bounded fast store in front of a slow one.
 *
 * @since 0.1.0
 */
export * as Buffer from "./Buffer.ts"

/**
 * BufferPool: a few spare buffers for outgoing messages.
 *
 * @since 0.1.0
 */
export * as BufferPool from "./BufferPool.ts"

/**
 * Byte chunks and their concatenation.
 *
 * @since 0.1.0
 */
export * as Bytes from "./Bytes.ts"
/**
 * CallIds: the append call ids an in-memory store remembers.
 *
 * @since 0.1.0
 */
export * as CallIds from "./CallIds.ts"
/**
 * Client: a store served by a `Server`, over a socket.
 *
 * @since 0.1.0
 */
export * as Client from "./Client.ts"
/**
 * Codec: how values become bytes and come back, and the frames they are
 * stored in.
 *
 * @since 0.1.0
 */
export * as Codec from "./Codec.ts"

/**
 * Dict: a store in memory.
 *
 * @since 0.1.0
 */
export * as Dict from "./Dict.ts"
/**
 * Encode: codecs applied to stores (byte stores and typed stores).
 *
 * @since 0.1.0
 */
export * as Encode from "./Encode.ts"
/**
 * Framing: partd's 8-byte little-endian length frames.
 *
 * @since 0.1.0
 */
export * as Framing from "./Framing.ts"
/**
 * Keys, tuple keys and their validation.
 *
 * @since 0.1.0
 */
export * as Key from "./Key.ts"
/**
 * Metrics: the `partd_` metrics stores, Buffer and Server record.
 *
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.ts"

/**
 * Observe: a store's calls as spans (`partd.<Store>.<operation>`) and metrics.
 *
 * @since 0.1.0
 */
export * as Observe from "./Observe.ts"

/**
 * Pieces: the byte streams `Store.stream` yields, cut to size.
 *
 * @since 0.1.0
 */
export * as Pieces from "./Pieces.ts"

/**
 * Pipelined: appends that do not wait for the store's answer before the
 * caller goes on, as partd's zmq `Client` appends.
 *
 * @since 0.1.0
 */
export * as Pipelined from "./Pipelined.ts"

/**
 * Server: serves a store to many processes over a Unix socket or TCP.
 *
 * @since 0.1.0
 */
export * as Server from "./Server.ts"
/**
 * The `Store` service, its error and the backend contract.
 *
 * @since 0.1.0
 */
export * as Store from "./Store.ts"

/**
 * The wire protocol between `Client` and `Server`.
 *
 * @since 0.1.0
 */
export * as Wire from "./Wire.ts"
