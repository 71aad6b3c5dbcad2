/**
 * The shuffle workloads shared by the benchmark, the demo and the tests.
 *
 * A workload is `calls` append calls, each carrying one chunk of `valueBytes`
 * for every one of `keys` keys; afterwards every key is read back. Chunk
 * contents come from a deterministic pool of moderately compressible bytes
 * (so compression codecs see realistic data), and `verify` checks every byte
 * of every key in order.
 */
import { type Key, Store } from "@partd/core"
import { Effect } from "effect"

export interface Workload {
  readonly name: string
  readonly keys: number
  readonly calls: number
  readonly valueBytes: number
}

/** W1: 256 keys × 400 append calls × 1 KiB (100 MiB). */
export const W1: Workload = { name: "W1", keys: 256, calls: 400, valueBytes: 1024 }
/** W2: 1000 keys × 200 append calls × 100 B (19 MiB). */
export const W2: Workload = { name: "W2", keys: 1000, calls: 200, valueBytes: 100 }

export const workloads: Record<string, Workload> = { W1, W2 }

export const totalBytes = (w: Workload): number => w.keys * w.calls * w.valueBytes

export const keyName = (k: number): string => `key-${k}`

const POOL_BYTES = 1 << 20

/**
 * 1 MiB of bytes from a xorshift generator over a 16-symbol alphabet with a
 * skewed distribution: it compresses about 2:1, like typical shuffle data.
 * The Python side of the benchmark builds the same pool the same way.
 */
export const makePool = (): Uint8Array => {
  const pool = new Uint8Array(POOL_BYTES)
  let x = 2463534242
  for (let i = 0; i < POOL_BYTES; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    const r = x & 0xff
    // Skewed symbol choice: low symbols are much more frequent.
    pool[i] = 97 + ((r * r) >>> 12)
  }
  return pool
}

/** Where chunk (call, key) starts in the pool. */
const offset = (w: Workload, call: number, key: number): number =>
  ((call * 7919 + key * 104729) * 8) % (POOL_BYTES - w.valueBytes)

/** The chunk appended to `key` by `call`: a view into the pool. */
export const chunk = (w: Workload, pool: Uint8Array, call: number, key: number): Uint8Array => {
  const o = offset(w, call, key)
  return pool.subarray(o, o + w.valueBytes)
}

/** Every append call of the workload, built up front so building is not timed. */
export const buildCalls = (w: Workload, pool: Uint8Array): ReadonlyArray<Record<string, Uint8Array>> => {
  const names = Array.from({ length: w.keys }, (_, k) => keyName(k))
  return Array.from({ length: w.calls }, (_, call) => {
    const record: Record<string, Uint8Array> = {}
    for (let k = 0; k < w.keys; k++) record[names[k]!] = chunk(w, pool, call, k)
    return record
  })
}

/**
 * Every append call in columns over one key set (`Store.columns`): the
 * fastest input for a shuffle, which appends to the same keys on every call.
 */
export const buildColumns = (w: Workload, pool: Uint8Array, keys: Key.KeySet): ReadonlyArray<Store.AppendInput> =>
  Array.from({ length: w.calls }, (_, call) =>
    Store.columns(
      keys,
      Array.from({ length: w.keys }, (_, k) => chunk(w, pool, call, k))
    )
  )

export const allKeys = (w: Workload): ReadonlyArray<string> => Array.from({ length: w.keys }, (_, k) => keyName(k))

/** Checks every byte of every key; returns a description of the first mismatch. */
export const verify = (w: Workload, pool: Uint8Array, values: ReadonlyArray<Uint8Array>): string | undefined => {
  if (values.length !== w.keys) return `expected ${w.keys} values, got ${values.length}`
  for (let k = 0; k < w.keys; k++) {
    const value = values[k]!
    if (value.byteLength !== w.calls * w.valueBytes) {
      return `${keyName(k)}: expected ${w.calls * w.valueBytes} bytes, got ${value.byteLength}`
    }
    for (let call = 0; call < w.calls; call++) {
      const expected = chunk(w, pool, call, k)
      const base = call * w.valueBytes
      for (let i = 0; i < w.valueBytes; i++) {
        if (value[base + i] !== expected[i]) return `${keyName(k)}: byte ${base + i} differs (call ${call})`
      }
    }
  }
  return undefined
}

/** Runs the append phase sequentially, as one writer would. */
export const appendAll = (store: Store.Shape, calls: ReadonlyArray<Store.AppendInput>) =>
  Effect.gen(function* () {
    for (const call of calls) yield* store.append(call)
  })
