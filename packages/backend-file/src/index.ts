/**
 * @since 0.1.0
 */

/**
 * The `partd` command: ls, cat, du, rm, drop and serve, on a directory or on
 * Redis (the package's `partd` bin).
 *
 * @since 0.1.0
 */
export * as Cli from "./Cli.ts"
/**
 * Which store a `partd` command works on, and its one-line errors.
 *
 * @since 0.1.0
 */
export * as CliStore from "./CliStore.ts"
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
/**
 * The `partd-server` command: a File or Buffer(Dict, File) store served over
 * a socket (the package's `partd-server` bin).
 *
 * @since 0.1.0
 */
export * as ServerCommand from "./ServerCommand.ts"
