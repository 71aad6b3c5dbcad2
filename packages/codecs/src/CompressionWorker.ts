/**
 * CompressionWorker: the worker-thread side of `Compression`'s `workers`
 * option. It builds the same codec as the calling thread and compresses or
 * decompresses the batches it is sent: each message carries one call's
 * share of chunks packed into one transferred buffer, and the reply packs
 * the results the same way, so a call costs two messages per worker
 * whatever its number of chunks (see `CompressionPool`).
 *
 * @since 0.1.0
 */
import { parentPort, workerData } from "node:worker_threads"
import { Store } from "@partd/core"
import { Effect } from "effect"
import * as Compression from "./Compression.ts"

/**
 * A request: `lengths[i]` bytes of chunk i, packed in order in `data`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Request {
  readonly id: number
  readonly op: "encode" | "decode"
  readonly data: ArrayBuffer
  readonly lengths: ReadonlyArray<number>
}

/**
 * A reply: the results packed like a request, or the index of the chunk that failed.
 *
 * @since 0.1.0
 * @category models
 */
export type Reply =
  | { readonly id: number; readonly data: ArrayBuffer; readonly lengths: ReadonlyArray<number> }
  | { readonly id: number; readonly error: string; readonly index: number }

if (parentPort !== null) {
  const port = parentPort
  const { algorithm, options } = workerData as { algorithm: Compression.Algorithm; options: object }
  const codec = await Effect.runPromise(Effect.scoped(Compression.codec(algorithm, { ...options, workers: 0 })))
  port.on("message", async (request: Request) => {
    const input = new Uint8Array(request.data)
    const results = new Array<Uint8Array>(request.lengths.length)
    let offset = 0
    let total = 0
    for (let i = 0; i < request.lengths.length; i++) {
      const chunk = input.subarray(offset, offset + request.lengths[i]!)
      offset += request.lengths[i]!
      try {
        const result = request.op === "encode" ? codec.encode(chunk) : codec.decode(chunk)
        // Await only what is a promise (blosc): a microtask per chunk is measurable at 1 KiB chunks.
        results[i] = result instanceof Uint8Array ? result : await result
      } catch (cause) {
        port.postMessage({ id: request.id, error: Store.describeCause(cause), index: i })
        return
      }
      total += results[i]!.byteLength
    }
    const out = new Uint8Array(total)
    const lengths = new Array<number>(results.length)
    offset = 0
    for (let i = 0; i < results.length; i++) {
      out.set(results[i]!, offset)
      offset += results[i]!.byteLength
      lengths[i] = results[i]!.byteLength
    }
    port.postMessage({ id: request.id, data: out.buffer, lengths } satisfies Reply, [out.buffer])
  })
  port.postMessage({ ready: true })
}
