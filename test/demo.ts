/**
 * `npm start`: a small shuffle on Buffer(Dict, File): 1 MiB in memory, the
 * rest spilled to files in a temporary directory that is removed at the end.
 *
 * Eight writer fibers each own a slice of the input records and append every
 * record to its partition's key; afterwards each partition is read back whole
 * and checked against the records that belong to it.
 */
import { File } from "@partd/backend-file"
import { Buffer, Dict, Store } from "@partd/core"
import { Console, Effect } from "effect"

const PARTITIONS = 64
const WRITERS = 8
const RECORDS_PER_WRITER = 20_000
const RECORD_BYTES = 64

/** Record `id`: its id in the first four bytes, then filler. */
const record = (id: number): Uint8Array => {
  const bytes = new Uint8Array(RECORD_BYTES)
  new DataView(bytes.buffer).setUint32(0, id)
  bytes.fill(97 + (id % 26), 4)
  return bytes
}

/** A record's partition: a hash of its id. */
const partitionOf = (id: number): number => (Math.imul(id, 2654435761) >>> 0) % PARTITIONS

const writer = (w: number) =>
  Effect.gen(function* () {
    const store = yield* Store.Store
    // Batch a writer's records per call, as a shuffle's map task would.
    for (let start = 0; start < RECORDS_PER_WRITER; start += 1000) {
      const batch: Array<readonly [string, Uint8Array]> = []
      for (let i = start; i < start + 1000; i++) {
        const id = w * RECORDS_PER_WRITER + i
        batch.push([`partition-${partitionOf(id)}`, record(id)])
      }
      yield* store.append(batch)
    }
  })

const program = Effect.gen(function* () {
  const store = yield* Store.Store
  const started = performance.now()
  yield* Effect.forEach(
    Array.from({ length: WRITERS }, (_, w) => w),
    writer,
    { concurrency: "unbounded" }
  )
  const appended = performance.now()
  const keys = Array.from({ length: PARTITIONS }, (_, p) => `partition-${p}`)
  const values = yield* store.get(keys)
  const read = performance.now()

  // Every record present exactly once, in its own partition.
  const seen = new Uint8Array(WRITERS * RECORDS_PER_WRITER)
  values.forEach((value, p) => {
    const view = new DataView(value.buffer, value.byteOffset, value.byteLength)
    for (let o = 0; o < value.byteLength; o += RECORD_BYTES) {
      const id = view.getUint32(o)
      if (partitionOf(id) !== p) throw new Error(`record ${id} landed in partition ${p}`)
      seen[id]!++
    }
  })
  const missing = seen.filter((n) => n !== 1).length
  const total = WRITERS * RECORDS_PER_WRITER * RECORD_BYTES
  yield* Console.log(
    `partd-ts demo: ${WRITERS} writers shuffled ${WRITERS * RECORDS_PER_WRITER} records into ${PARTITIONS} partitions`
  )
  yield* Console.log(`  store:   Buffer(Dict, File), 1 MiB in memory, the rest spilled to a temp dir`)
  yield* Console.log(`  append:  ${(total / 1e6).toFixed(1)} MB in ${(appended - started).toFixed(0)} ms`)
  yield* Console.log(`  get:     ${PARTITIONS} partitions in ${(read - appended).toFixed(0)} ms`)
  yield* Console.log(
    `  check:   ${missing === 0 ? "every record present exactly once" : `${missing} records missing or duplicated`}`
  )
  if (missing !== 0) return yield* Effect.fail(new Error("the shuffle lost or duplicated records"))
})

const StoreLive = Buffer.layer({ fast: Dict.layer, slow: File.layer(), availableMemory: 1024 * 1024 })

Effect.runPromise(program.pipe(Effect.provide(StoreLive))).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
