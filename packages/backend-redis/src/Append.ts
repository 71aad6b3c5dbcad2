/**
 * Append: how a Redis store's `append` becomes commands — one Lua script per
 * call on one server, one per master on a cluster, or a pipeline of
 * `APPEND`s (without ids).
 *
 * The script records the call's id (see `Calls`) and, when the id is new,
 * runs `APPEND` per key; it appends nothing for an id it has seen, so a call
 * sent again is applied once. Redis runs a script without
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
import { type Cluster, Command, type Redis as IORedis } from "ioredis"
import * as Calls from "./Calls.ts"
import type * as Connection from "./Connection.ts"
import * as Resp from "./Resp.ts"
import * as Retry from "./Retry.ts"

/** The most keys and bytes one append script carries. */
const SCRIPT_MAX_KEYS = 1024
const SCRIPT_MAX_BYTES = 1 << 20
/** Script buffers kept for reuse, and the smallest one allocated. */
const MAX_SPARE_BUFFERS = 4
const MIN_SCRIPT_BUFFER = 64 * 1024
/** The most key ranges whose encoding a key set keeps (ranges follow value sizes). */
const MAX_RANGES = 64

/**
 * The append script: `KEYS[1]` is the call's id key, `ARGV[1]` its window in
 * seconds, then the chunks' keys and their values (`ARGV[1 + i]` gets
 * `ARGV[1 + n + i]`). It returns 1 when it appended, 0 for an id it had seen.
 * The keys are arguments, not declared keys, because a cluster node runs a
 * script only when its declared keys share one slot; the flag lets the
 * script touch keys of other slots on the same node. On a cluster
 * (`cluster`), it first reads every key, so that a key the node does not
 * serve (a slot moved between the client's routing and the script) fails
 * the script before it wrote anything. Globals are read once into locals:
 * the loop runs once per key on the server.
 *
 * @since 0.1.0
 * @category encoding
 */
export const appendScript = (cluster: boolean): Buffer =>
  Buffer.from(
    "#!lua flags=allow-cross-slot-keys\n" +
      "local call, args = redis.call, ARGV " +
      "local n = (#args - 1) / 2 " +
      (cluster ? "for i = 2, n + 1 do call('EXISTS', args[i]) end " : "") +
      "if not call('SET', KEYS[1], '1', 'NX', 'EX', args[1]) then return 0 end " +
      "for i = 2, n + 1 do call('APPEND', args[i], args[i + n]) end " +
      "return 1"
  )

/**
 * An ioredis command whose RESP bytes are encoded already: it goes through
 * ioredis's queue and reply routing like any other command (on a cluster, to
 * the master of its slot, following `MOVED`), but skips ioredis's
 * per-argument encoding.
 *
 * @since 0.1.0
 * @category encoding
 */
export class EncodedCommand extends Command {
  readonly encoded: Buffer
  readonly routeSlot: number | null
  /** `slot`: where a cluster sends it (its master); `null` on one server. */
  constructor(name: string, encoded: Buffer, slot: number | null = null) {
    super(name, [])
    this.encoded = encoded
    this.routeSlot = slot
  }
  override getSlot(): number {
    // ioredis's own commands without keys answer null too (its type says number).
    return this.routeSlot as number
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
 * Where the script that starts at chunk `start` of `values[start, end)`
 * ends: at most 1024 chunks and (past its first chunk) 1 MiB.
 *
 * @since 0.1.0
 * @category encoding
 */
export const pieceEnd = (values: ReadonlyArray<Uint8Array>, start: number, end: number): number => {
  let i = start
  let bytes = 0
  while (i < end && i - start < SCRIPT_MAX_KEYS && (i === start || bytes < SCRIPT_MAX_BYTES)) {
    bytes += values[i]!.byteLength
    i++
  }
  return i
}

/**
 * Encodes and sends append scripts for a store whose Redis keys are
 * `<keyPrefix><path>`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Scripts {
  /** The call's scripts on one server, back to back; resolves to how many applied (not seen before). */
  readonly server: (
    client: IORedis,
    paths: ReadonlyArray<string>,
    values: ReadonlyArray<Uint8Array>,
    id: string
  ) => Promise<number>
  /**
   * Sends one cluster script: chunks `[start, end)` of `paths`/`values`
   * (a master's share of a call), whose id key is `idKey`, to the master
   * of `slot`; resolves to 1 when it appended, 0 for an id seen before.
   */
  readonly cluster: (
    cluster: Cluster,
    paths: ReadonlyArray<string>,
    values: ReadonlyArray<Uint8Array>,
    start: number,
    end: number,
    idKey: string,
    slot: number
  ) => Promise<number>
}

/**
 * Makes the script appends of a store with `keyPrefix`, whose ids are
 * remembered `windowSeconds`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const scripts = (keyPrefix: string, windowSeconds: number): Scripts => {
  const prefixBytes = Buffer.from(keyPrefix)
  const window = String(windowSeconds)
  const serverScript = appendScript(false)
  const clusterScript = appendScript(true)
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
  const send = (
    client: IORedis | Cluster,
    script: Buffer,
    paths: ReadonlyArray<string>,
    values: ReadonlyArray<Uint8Array>,
    start: number,
    end: number,
    idKey: string,
    slot: number | null
  ): Promise<number> => {
    const keys = keysFor(paths, start, end)
    const encoded = Resp.evalWithId(script, idKey, window, keys, values, start, end, buffers.take)
    const reply = client.sendCommand(new EncodedCommand("eval", encoded, slot)) as Promise<number>
    return reply.then((applied) => {
      buffers.give(encoded)
      return applied
    })
  }
  return {
    server: (client, paths, values, id) => {
      const sent: Array<Promise<number>> = []
      const n = paths.length
      for (let start = 0; start < n; ) {
        const end = pieceEnd(values, start, n)
        sent.push(send(client, serverScript, paths, values, start, end, Calls.serverKey(keyPrefix, id, start), null))
        start = end
      }
      return Promise.all(sent).then((applied) => applied.reduce((a, b) => a + b, 0))
    },
    cluster: (cluster, paths, values, start, end, idKey, slot) =>
      send(cluster, clusterScript, paths, values, start, end, idKey, slot)
  }
}

/**
 * `WAIT replicas timeoutMs` on one server, or on the master of `slot`:
 * resolves once at least `replicas` replicas confirmed every write the
 * store's connection to it made so far, and rejects with
 * `Retry.ReplicaShortfall` when fewer did within `timeoutMs`. `WAIT` holds
 * the connection while it waits: the store's other calls to that server
 * queue behind it.
 *
 * @since 0.1.0
 * @category commands
 */
export const replicate = async (
  client: IORedis | Cluster,
  slot: number | null,
  replicas: number,
  timeoutMs: number
): Promise<void> => {
  const n = String(replicas)
  const ms = String(timeoutMs)
  const encoded = Buffer.from(`*3\r\n$4\r\nWAIT\r\n$${n.length}\r\n${n}\r\n$${ms.length}\r\n${ms}\r\n`, "latin1")
  const confirmed = (await client.sendCommand(new EncodedCommand("wait", encoded, slot))) as number
  if (confirmed < replicas) {
    throw new Retry.ReplicaShortfall(
      `${confirmed} of ${replicas} replica${replicas === 1 ? "" : "s"} confirmed the append within ${timeoutMs} ms ` +
        "(WAIT); it was applied on the master and may be lost if the master fails over"
    )
  }
}
