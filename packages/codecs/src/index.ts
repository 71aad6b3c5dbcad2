/**
 * @since 0.1.0
 */

/**
 * Arrow: Apache Arrow tables; append record batches, get one table.
 *
 * @since 0.1.0
 */
export * as Arrow from "./Arrow.ts"

/**
 * Compression: zlib, gzip, brotli, zstd, bz2, snappy, lz4 and blosc as store layers.
 *
 * @since 0.1.0
 */
export * as Compression from "./Compression.ts"

/**
 * Json: JSON values; get returns the array of the appended values.
 *
 * @since 0.1.0
 */
export * as Json from "./Json.ts"

/**
 * Msgpack: lists of values, partd's `Python` encoding.
 *
 * @since 0.1.0
 */
export * as Msgpack from "./Msgpack.ts"

/**
 * SchemaCodec: values described by an Effect Schema, validated both ways.
 *
 * @since 0.1.0
 */
export * as SchemaCodec from "./SchemaCodec.ts"

/**
 * Text: UTF-8 strings joined by concatenation.
 *
 * @since 0.1.0
 */
export * as Text from "./Text.ts"

/**
 * TypedArrays: numeric arrays laid out as partd's `Numpy` lays them out.
 *
 * @since 0.1.0
 */
export * as TypedArrays from "./TypedArrays.ts"
