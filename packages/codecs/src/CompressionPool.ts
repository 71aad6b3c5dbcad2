/**
 * CompressionPool: the worker threads behind `Compression`'s `workers`
 * option.
 *
 * One call's chunks are split into contiguous shares balanced by bytes: the
 * calling thread takes the first share itself while each worker takes one of
 * the others, packed into one transferred buffer each way (see
 * `CompressionWorker`), so a call costs two messages per worker whatever its
 * number of chunks, and `workers: 1` already keeps two cores busy.
 *
 * A worker is a slot, not a fixture: when its thread exits (killed,
 * terminated, crashed), the shares it was working on are redone on the
 * calling thread from the caller's own chunks, so those calls still complete
 * with the same bytes, and the slot starts a new thread the next time it is
 * given work; until that thread is ready, and if it cannot start, the
 * slot's shares run on the calling thread. No call ever waits on a thread
 * that is gone or still booting.
 *
 * @since 0.1.0
 */
import { Worker } from "node:worker_threads"
import { Store } from "@partd/core"
import { Effect, type Scope } from "effect"
import type { Reply, Request } from "./CompressionWorker.ts"

/**
 * What the workers are started with: they build this codec.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerData {
  readonly algorithm: string
  readonly options: object
}

/**
 * Runs a share of chunks on the calling thread (the codec's own `encode` or
 * `decode`, applied chunk by chunk).
 *
 * @since 0.1.0
 * @category models
 */
export type Here = (chunk: Uint8Array) => Uint8Array | PromiseLike<Uint8Array>

/**
 * A pool of worker threads.
 *
 * @since 0.1.0
 * @category models
 */
export interface Pool {
  /** Runs one call's chunks on the workers and the calling thread; results in order. */
  readonly run: (op: Request["op"], here: Here, chunks: ReadonlyArray<Uint8Array>) => Promise<Array<Uint8Array>>
  /** The threads alive now, one per slot that has one (for monitoring, and for tests that kill one). */
  readonly threads: () => ReadonlyArray<Worker>
}

interface Pending {
  readonly resolve: (reply: Reply) => void
  readonly reject: (error: unknown) => void
}

interface Live {
  readonly worker: Worker
  readonly pending: Map<number, Pending>
}

interface Slot {
  current: Promise<Live> | undefined
  live: Live | undefined
}

// The worker's module beside this one: `.ts` when run from source, `.js` when built into dist.
const WORKER_URL = new URL(
  import.meta.url.endsWith(".ts") ? "./CompressionWorker.ts" : "./CompressionWorker.js",
  import.meta.url
)

/** A worker's thread is gone: its share is redone on the calling thread. */
class WorkerGone extends Error {}

/**
 * Starts one thread in `slot` and resolves when it is ready. When the thread
 * exits, at any time, its pending shares fail with `WorkerGone` and the slot
 * is emptied so the next call starts a new one.
 */
const start = (slot: Slot, data: WorkerData): Promise<Live> => {
  const ready = new Promise<Live>((resolve, reject) => {
    const worker = new Worker(WORKER_URL, { workerData: data })
    const live: Live = { worker, pending: new Map() }
    const gone = (error: unknown) => {
      if (slot.current === ready) {
        slot.current = undefined
        slot.live = undefined
      }
      const lost = new WorkerGone(`${data.algorithm} worker: ${Store.describeCause(error)}`, { cause: error })
      for (const p of live.pending.values()) p.reject(lost)
      live.pending.clear()
      reject(lost)
    }
    worker.on("error", gone)
    worker.on("exit", (code) => gone(`exited with code ${code}`))
    worker.on("message", (message: Reply | { readonly ready: true }) => {
      if ("ready" in message) {
        // Idle workers do not keep the process alive; a worker with work in flight does.
        worker.unref()
        slot.live = live
        resolve(live)
        return
      }
      const p = live.pending.get(message.id)
      if (p === undefined) return
      live.pending.delete(message.id)
      if (live.pending.size === 0) worker.unref()
      p.resolve(message)
    })
  })
  slot.current = ready
  // A start that fails is seen by the call that awaits it; nothing else waits on it.
  ready.catch(() => undefined)
  return ready
}

/** Splits chunks into `parties` contiguous [from, to) shares balanced by bytes. */
const shares = (chunks: ReadonlyArray<Uint8Array>, parties: number): Array<readonly [number, number]> => {
  let total = 0
  for (let i = 0; i < chunks.length; i++) total += chunks[i]!.byteLength
  const out: Array<readonly [number, number]> = []
  const unit = total / parties
  let bound = unit
  let start = 0
  let bytes = 0
  for (let i = 0; i < chunks.length; i++) {
    bytes += chunks[i]!.byteLength
    if (bytes >= bound && out.length < parties - 1) {
      out.push([start, i + 1])
      start = i + 1
      bound += unit
    }
  }
  if (start < chunks.length) out.push([start, chunks.length])
  return out
}

/** A share on the calling thread; a failure carries the failing chunk's `index`. */
const runHere = (
  here: Here,
  chunks: ReadonlyArray<Uint8Array>,
  from: number,
  to: number
): Promise<Array<Uint8Array>> => {
  const results: Array<Uint8Array | PromiseLike<Uint8Array>> = []
  for (let i = from; i < to; i++) {
    try {
      results.push(here(chunks[i]!))
    } catch (cause) {
      return Promise.reject(withIndex(cause, i))
    }
  }
  return Promise.all(results)
}

const withIndex = (cause: unknown, index: number): Error =>
  Object.assign(new Error(Store.describeCause(cause), { cause }), { index })

/** Packs a share into one buffer, posts it to `live` and unpacks the reply. */
const post = (
  live: Live,
  id: number,
  op: Request["op"],
  chunks: ReadonlyArray<Uint8Array>,
  from: number,
  to: number
): Promise<Array<Uint8Array>> => {
  const lengths = new Array<number>(to - from)
  let size = 0
  for (let i = from; i < to; i++) {
    lengths[i - from] = chunks[i]!.byteLength
    size += chunks[i]!.byteLength
  }
  const data = new Uint8Array(size)
  let offset = 0
  for (let i = from; i < to; i++) {
    data.set(chunks[i]!, offset)
    offset += chunks[i]!.byteLength
  }
  return new Promise<Reply>((resolve, reject) => {
    live.pending.set(id, { resolve, reject })
    live.worker.ref()
    live.worker.postMessage({ id, op, data: data.buffer, lengths } satisfies Request, [data.buffer])
  }).then((reply) => {
    if ("error" in reply) throw Object.assign(new Error(reply.error), { index: from + reply.index })
    const out = new Uint8Array(reply.data)
    const results = new Array<Uint8Array>(reply.lengths.length)
    let at = 0
    for (let i = 0; i < reply.lengths.length; i++) {
      results[i] = out.subarray(at, at + reply.lengths[i]!)
      at += reply.lengths[i]!
    }
    return results
  })
}

/**
 * Starts `size` threads that build the codec described by `data`, waits
 * until each is ready, and terminates them when the scope closes. A thread
 * that cannot start the first time is a defect (the codec's module or
 * options are broken); later restarts fall back to the calling thread.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (size: number, data: WorkerData): Effect.Effect<Pool, never, Scope.Scope> =>
  Effect.gen(function* () {
    const slots: Array<Slot> = Array.from({ length: size }, () => ({ current: undefined, live: undefined }))
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => Promise.all(slots.map((slot) => start(slot, data))),
        catch: (cause) => Store.ioError("Compression.workers", cause)
      }).pipe(Effect.orDie),
      () =>
        Effect.promise(() =>
          Promise.all(
            slots.map((slot) =>
              slot.current?.then(
                (live) => live.worker.terminate(),
                () => undefined
              )
            )
          )
        )
    )
    let nextId = 0
    let closed = false
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
      })
    )
    // A slot without a ready thread gives its share to the calling thread, and starts a thread (once) for
    // the calls after it: no call waits for a thread to boot.
    const share = (
      slot: Slot,
      op: Request["op"],
      here: Here,
      chunks: ReadonlyArray<Uint8Array>,
      from: number,
      to: number
    ): Promise<Array<Uint8Array>> => {
      if (slot.live === undefined) {
        if (slot.current === undefined && !closed) start(slot, data)
        return runHere(here, chunks, from, to)
      }
      return post(slot.live, nextId++, op, chunks, from, to).catch((error: unknown) =>
        error instanceof WorkerGone ? runHere(here, chunks, from, to) : Promise.reject(error)
      )
    }
    const run: Pool["run"] = (op, here, chunks) => {
      const [mine, ...theirs] = shares(chunks, slots.length + 1)
      const remote = theirs.map(([from, to], w) => share(slots[w]!, op, here, chunks, from, to))
      const [from, to] = mine ?? [0, 0]
      // The calling thread's share, while the workers run theirs.
      return Promise.all([runHere(here, chunks, from, to), ...remote]).then((parts) => parts.flat())
    }
    const threads = () => slots.flatMap((slot) => (slot.live === undefined ? [] : [slot.live.worker]))
    return { run, threads }
  })
