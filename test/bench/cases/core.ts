/**
 * Benchmark rows for @partd/core: Dict and Buffer(Dict, Dict).
 */
import { Buffer, Dict } from "@partd/core"
import type { BenchCase } from "./model.ts"

const MB64 = 64 * 1024 * 1024

export const coreCases: ReadonlyArray<BenchCase> = [
  {
    name: "Dict",
    layer: () => Dict.layer,
    python: "partd.Dict()",
    workloads: ["W1", "W2"],
    bars: [
      { workload: "W1", metric: "getMBps", atLeastTimesPartd: 1 },
      { workload: "W2", metric: "getMBps", atLeastTimesPartd: 1 }
    ]
  },
  {
    name: "Dict [record input]",
    layer: () => Dict.layer,
    python: "partd.Dict()",
    input: "record",
    workloads: ["W1", "W2"]
  },
  {
    name: "Buffer(Dict, Dict, 64 MiB)",
    layer: () => Buffer.layer({ fast: Dict.layer, slow: Dict.layer, availableMemory: MB64 }),
    python: `partd.Buffer(partd.Dict(), partd.Dict(), available_memory=${MB64})`,
    workloads: ["W1", "W2"],
    bars: [
      { workload: "W1", metric: "appendMBps", atLeastTimesPartd: 2 },
      { workload: "W2", metric: "appendMBps", atLeastTimesPartd: 2 }
    ]
  },
  {
    name: "Buffer(Dict, Dict, 64 MiB) [record input]",
    layer: () => Buffer.layer({ fast: Dict.layer, slow: Dict.layer, availableMemory: MB64 }),
    python: `partd.Buffer(partd.Dict(), partd.Dict(), available_memory=${MB64})`,
    input: "record",
    workloads: ["W1", "W2"]
  }
]
