/**
 * @since 0.1.0
 */

/**
 * File: a store in a directory, one appendable file per key.
 *
 * @since 0.1.0
 */
export * as File from "./File.ts"

/**
 * File names: how keys map to files, byte-compatible with Python partd.
 *
 * @since 0.1.0
 */
export * as FileName from "./FileName.ts"

/**
 * The store directory's cross-process lock.
 *
 * @since 0.1.0
 */
export * as Lock from "./Lock.ts"
