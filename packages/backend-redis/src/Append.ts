/**
 * Append: how a Redis store's `append` becomes commands — one Lua script per
 * call on one server, or a pipeline of `APPEND`s.
 *
 * The script runs `APPEND` per key. Redis runs a script without
 * interleaving any other client's commands, so a call that fits in one
 * script is never seen half done; it is used instead of a pipeline because
 * encoding one command with 2n arguments costs ioredis a fraction of n
 * commands. The script's command is encoded here (see `Resp`) straight into
 * one buffer and handed to ioredis as a ready-made command, skipping its
 * per-argument encoding. A call of more than 1024 keys or 1 MiB is sent as
 * several scripts back to back: a script blocks the server while it runs, so
 * this bounds how long one call can stall other clients.
 *
 * Encoded buffers are reused: a fresh buffer of a few hundred KiB per call
 * makes the garbage collector run far more often. A buffer is reused only
 * after its command succeeded (Redis answers only once it has read the whole
 * command, so the socket is done with it); after a failure it is left to
 * the garbage collector. A key set (`Store.columns`) keeps its encoded keys
 * (`Key.keySetCache`).
 *
 * @since 0.1.0
 */
import { BufferPool, Key } from "@partd/core"
import { Command, type Redis as IORedis } from "ioredis"
import type * as Connection from "./Connection.ts"
import * as Resp from "./Resp.ts"

/** The most keys and bytes one append script carries. */
const SCRIPT_MAX_KEYS = 1024
const SCRIPT_MAX_BYTES = 1 << 20
/** Script buffers kept for reuse, and the smallest one allocated. */
const MAX_SPARE_BUFFERS = 4
const MIN_SCRIPT_BUFFER = 64 * 1024
/** The most key ranges whose encoding a key set keeps (ranges follow value sizes). */
const MAX_RANGES = 64

/**
 * `APPEND` of the i-th value argument to the i-th key argument, in order (the
 * keys are declared as the script's keys, as Redis wants). Globals are read
 * once into locals: the loop runs once per key on the server.
 *
 * @since 0.1.0
 * @category encoding
 */
export const APPEND_SCRIPT = Buffer.from(
  "local call, keys, values = redis.call, KEYS, ARGV " +
    "for i = 1, #keys do call('APPEND', keys[i], values[i]) end " +
    "return #keys"
)

/**
 * An ioredis command whose RESP bytes are encoded already: it goes through
 * ioredis's queue and reply routing like any other command, but skips
 * ioredis's per-argument encoding.
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

/**
 * A Buffer view of a Uint8Array's memory (ioredis stringifies a bare
 * Uint8Array as "1,2,3").
 *
 * @since 0.1.0
 * @category encoding
 */
export const toBuffer = (u: Uint8Array): Buffer =>
  Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength)

/**
 * A pipeline's `[error, result]` pairs: the results, or the first error thrown.
 *
 * @since 0.1.0
 * @category decoding
 */
export const results = <A>(pairs: Array<[Error | null, unknown]> | null): Array<A> => {
  if (pairs === null) throw new Error("the pipeline was aborted")
  const out = new Array<A>(pairs.length)
  for (let i = 0; i < pairs.length; i++) {
    const [error, result] = pairs[i]!
    if (error !== null) throw error
    out[i] = result as A
  }
  return out
}

/**
 * Appends `values[i]` to `keys[i]` (for `i` in `indices`, or all) as one
 * pipeline of `APPEND`s.
 *
 * @since 0.1.0
 * @category commands
 */
export const pipeline = (
  client: Connection.Client,
  keys: ReadonlyArray<string>,
  values: ReadonlyArray<Uint8Array>,
  indices?: ReadonlyArray<number>
): Promise<Array<unknown>> => {
  const commands = client.pipeline()
  if (indices === undefined) for (let i = 0; i < keys.length; i++) commands.append(keys[i]!, toBuffer(values[i]!))
  else for (const i of indices) commands.append(keys[i]!, toBuffer(values[i]!))
  return commands.exec().then(results)
}

/**
 * The script appends of a store whose Redis keys are `<keyPrefix><path>`.
 *
 * @since 0.1.0
 * @category models
 */
export type Scripts = (
  client: IORedis,
  paths: ReadonlyArray<string>,
  values: ReadonlyArray<Uint8Array>
) => Promise<Array<unknown>>

/**
 * Makes the script appends of a store with `keyPrefix`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const scripts = (keyPrefix: string): Scripts => {
  const prefixBytes = Buffer.from(keyPrefix)
  const keyBlocks = Key.keySetCache((_: ReadonlyArray<string>) => new Map<string, Buffer>())
  const keysFor = (paths: ReadonlyArray<string>, start: number, end: number): Buffer => {
    if (!Object.isFrozen(paths)) return Resp.keyBlock(prefixBytes, paths, start, end)
    const blocks = keyBlocks.get(paths)
    const range = `${start}:${end}`
    let block = blocks.get(range)
    if (block === undefined) {
      if (blocks.size >= MAX_RANGES) blocks.clear()
      block = Resp.keyBlock(prefixBytes, paths, start, end)
      blocks.set(range, block)
    }
    return block
  }
  const buffers = BufferPool.make({
    spares: MAX_SPARE_BUFFERS,
    minBytes: MIN_SCRIPT_BUFFER,
    maxBytes: Number.POSITIVE_INFINITY
  })
  return (client, paths, values) => {
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
      const encoded = Resp.evalWithKeys(APPEND_SCRIPT, keysFor(paths, start, end), values, start, end, buffers.take)
      const reply = client.sendCommand(new EncodedCommand("eval", encoded)) as Promise<unknown>
      sent.push(reply.then(() => buffers.give(encoded)))
      start = end
    }
    return Promise.all(sent)
  }
}
