/**
 * @since 0.1.0
 */

/**
 * Redis: a partd store on Redis `APPEND`, from one server to a Redis Cluster.
 *
 * @since 0.1.0
 */
export * as Redis from "./Redis.ts"

/**
 * RESP encoding of the append script's command.
 *
 * @since 0.1.0
 */
export * as Resp from "./Resp.ts"

/**
 * Redis Cluster's key → hash slot mapping.
 *
 * @since 0.1.0
 */
export * as Slot from "./Slot.ts"
