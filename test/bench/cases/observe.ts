/**
 * Benchmark rows that measure what tracing costs: the same stores as the
 * rows of core.ts and file.ts, with Effect's tracer disabled
 * (`References.TracerEnabled` false: every span a no-op). Metrics are on in
 * both. Compare "Dict" with "Dict [spans off]", and so on.
 */
import { File } from "@partd/backend-file"
import { Buffer, Dict } from "@partd/core"
import type { BenchCase } from "./model.ts"

const MB64 = 64 * 1024 * 1024

export const observeCases: ReadonlyArray<BenchCase> = [
  {
    name: "Dict [spans off]",
    layer: () => Dict.layer,
    python: "partd.Dict()",
    workloads: ["W1", "W2"],
    spans: false
  },
  {
    name: "File [spans off]",
    layer: (dir) => File.layer({ path: dir }),
    python: "partd.File(tmpdir)",
    workloads: ["W1", "W2"],
    spans: false
  },
  {
    name: "Buffer(Dict, File, 64 MiB) [spans off]",
    layer: (dir) => Buffer.layer({ fast: Dict.layer, slow: File.layer({ path: dir }), availableMemory: MB64 }),
    python: `partd.Buffer(partd.Dict(), partd.File(tmpdir), available_memory=${MB64})`,
    workloads: ["W1", "W2"],
    spans: false
  }
]
