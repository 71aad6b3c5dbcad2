/**
 * Benchmark rows for @partd/codecs: compressed File stores, against Python
 * partd's ZLib(File) and Snappy(File), with each compression ratio.
 */
import { File } from "@partd/backend-file"
import { Compression } from "@partd/codecs"
import { Layer } from "effect"
import type { BenchCase } from "./model.ts"

const compressed =
  <K extends Compression.Algorithm>(algorithm: K, options?: Compression.Options[K]) =>
  (dir: string) =>
    Compression.layer(algorithm, options).pipe(Layer.provide(File.layer({ path: dir })))

export const codecsCases: ReadonlyArray<BenchCase> = [
  {
    name: "ZLib(File)",
    layer: compressed("zlib"),
    python: "partd.ZLib(partd.File(tmpdir))",
    workloads: ["W1"],
    reportRatio: true,
    bars: [{ workload: "W1", metric: "appendMBps", atLeastTimesPartd: 2 }]
  },
  {
    // The calling thread and one worker thread compress each call's chunks: two cores, where partd uses one.
    name: "ZLib(File), 1 worker",
    layer: compressed("zlib", { workers: 1 }),
    python: "partd.ZLib(partd.File(tmpdir))",
    workloads: ["W1"],
    reportRatio: true,
    bars: [{ workload: "W1", metric: "appendMBps", atLeastTimesPartd: 2 }]
  },
  {
    name: "Snappy(File)",
    layer: compressed("snappy"),
    python: "partd.Snappy(partd.File(tmpdir))",
    workloads: ["W1"],
    reportRatio: true
  },
  {
    name: "lz4(File)",
    layer: compressed("lz4"),
    workloads: ["W1"],
    reportRatio: true,
    bars: [{ workload: "W1", metric: "appendMBps", atLeastMBps: 300 }]
  },
  {
    name: "zstd(File)",
    layer: compressed("zstd"),
    workloads: ["W1"],
    reportRatio: true,
    bars: [{ workload: "W1", metric: "appendMBps", atLeastMBps: 300 }]
  }
]
