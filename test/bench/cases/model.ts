/**
 * A benchmark row: a TypeScript store, how to build it, the Python partd store
 * it is measured against, and the bars it must meet.
 */
import type { Store } from "@partd/core"
import type { Layer } from "effect"

export type Metric = "appendMBps" | "getMBps"

export interface Bar {
  readonly workload: "W1" | "W2"
  readonly metric: Metric
  /** Our figure must be at least this multiple of partd-py's. */
  readonly atLeastTimesPartd?: number
  /** Our figure must be at least this many MB/s. */
  readonly atLeastMBps?: number
  /** Our peak RSS must be at most this many MB. */
  readonly atMostRssMB?: number
}

export interface BenchCase {
  readonly name: string
  /** Builds the store in the benchmark's child process; `dir` is a fresh temporary directory. */
  readonly layer: (dir: string) => Layer.Layer<Store.Store, unknown>
  /** The Python partd store to compare with: an expression in which `tmpdir` is a fresh directory. */
  readonly python?: string
  readonly workloads: ReadonlyArray<"W1" | "W2">
  /**
   * How append calls are given: in columns over a key set validated once
   * (`Store.columns`, the default: what a shuffle should use) or as records.
   */
  readonly input?: "columns" | "record"
  readonly bars?: ReadonlyArray<Bar>
  /**
   * Report the compression ratio: the workload's bytes over the bytes the
   * store left in `dir` after the append phase (for stores that write there).
   */
  readonly reportRatio?: boolean
}
