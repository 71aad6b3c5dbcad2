/**
 * @since 0.1.0
 */

/**
 * Compression: zlib, gzip, brotli, zstd, bz2, snappy, lz4 and blosc as store layers.
 *
 * @since 0.1.0
 */
export * as Compression from "./Compression.ts"
