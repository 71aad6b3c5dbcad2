/**
 * Benchmark rows for @partd/backend-file: File, File with fsync, and
 * Buffer(Dict, File), against Python partd's File and Buffer(Dict, File).
 */
import { File } from "@partd/backend-file"
import { Buffer, Dict } from "@partd/core"
import type { BenchCase } from "./model.ts"

const MB64 = 64 * 1024 * 1024

export const fileCases: ReadonlyArray<BenchCase> = [
  {
    name: "File",
    layer: (dir) => File.layer({ path: dir }),
    python: "partd.File(tmpdir)",
    workloads: ["W1", "W2"],
    bars: [
      { workload: "W1", metric: "appendMBps", atLeastTimesPartd: 5 },
      { workload: "W2", metric: "appendMBps", atLeastTimesPartd: 5 },
      { workload: "W1", metric: "getMBps", atLeastTimesPartd: 2 }
    ]
  },
  {
    // fsync costs a disk flush per key per call, as in partd: measured once, on W1, for the record.
    name: "File (fsync)",
    layer: (dir) => File.layer({ path: dir, fsync: true }),
    workloads: ["W1"],
    maxRuns: 1
  },
  {
    name: "Buffer(Dict, File, 64 MiB)",
    layer: (dir) => Buffer.layer({ fast: Dict.layer, slow: File.layer({ path: dir }), availableMemory: MB64 }),
    python: `partd.Buffer(partd.Dict(), partd.File(tmpdir), available_memory=${MB64})`,
    workloads: ["W1", "W2"],
    bars: [
      { workload: "W1", metric: "appendMBps", atLeastTimesPartd: 2 },
      { workload: "W1", metric: "appendMBps", atMostRssMB: 64 + 150 }
    ]
  }
]
