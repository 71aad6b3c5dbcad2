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
 * Byte chunks and their concatenation.
 *
 * @since 0.1.0
 */
export * as Bytes from "./Bytes.ts"

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
 * The `Store` service, its error and the backend contract.
 *
 * @since 0.1.0
 */
export * as Store from "./Store.ts"
