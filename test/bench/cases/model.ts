/**
 * A benchmark row: a TypeScript store, how to build it, the Python partd store
 * it is measured against, and the bars it must meet.
 */
import type { Store } from "@partd/core"
import type { Workload } from "@partd/test/Workload"
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
  /** Our figure must be at least this multiple of the case's reference program's. */
  readonly atLeastTimesReference?: number
}

/** What a reference program measured: append throughput, as MB/s of the workload's values and as ops/s. */
export interface ReferenceMeasurement {
  readonly appendMBps: number
  readonly opsPerSecond: number
}

/**
 * Another program measured on the same workload in the same run, for rows whose
 * natural yardstick is not Python partd (e.g. `redis-benchmark` for Redis).
 * It runs in its own child process, like our rows.
 */
export interface Reference {
  /** How the reference is shown in the report, e.g. the command line. */
  readonly name: string
  /** Why the reference cannot run here (a missing binary), or undefined when it can. */
  readonly unavailable: () => string | undefined
  readonly run: (workload: Workload) => Promise<ReferenceMeasurement>
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
  readonly reference?: Reference
  /** At most this many runs of the row, whatever `--runs` says (for slow rows measured once). */
  readonly maxRuns?: number
  /**
   * Report the compression ratio: the workload's bytes over the bytes the
   * store left in `dir` after the append phase (for stores that write there).
   */
  readonly reportRatio?: boolean
  /**
   * What tracing the row runs with, to measure what spans cost: by default
   * none is installed (a store then makes no spans); `false` disables
   * tracing; `"exported"` installs a tracer that makes every span as an
   * exporter would receive it, then drops it.
   */
  readonly spans?: false | "exported"
}
