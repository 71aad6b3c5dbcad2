/**
 * Benchmark rows that measure what tracing costs: the same stores as the
 * rows of core.ts and file.ts, with tracing disabled (`References.TracerEnabled`
 * false) and with a tracer installed that makes every span as an exporter
 * would receive it (`[spans exported]`). The plain rows run with no tracer
 * installed, as an application without OpenTelemetry does: the stores then
 * make no spans. Metrics are on in every row.
 */
import { File } from "@partd/backend-file"
import { Buffer, Dict } from "@partd/core"
import type { BenchCase } from "./model.ts"

const MB64 = 64 * 1024 * 1024

const stores: ReadonlyArray<Pick<BenchCase, "name" | "layer" | "python">> = [
  { name: "Dict", layer: () => Dict.layer, python: "partd.Dict()" },
  { name: "File", layer: (dir) => File.layer({ path: dir }), python: "partd.File(tmpdir)" },
  {
    name: "Buffer(Dict, File, 64 MiB)",
    layer: (dir) => Buffer.layer({ fast: Dict.layer, slow: File.layer({ path: dir }), availableMemory: MB64 }),
    python: `partd.Buffer(partd.Dict(), partd.File(tmpdir), available_memory=${MB64})`
  }
]

export const observeCases: ReadonlyArray<BenchCase> = stores.flatMap((store) => [
  { ...store, name: `${store.name} [spans off]`, workloads: ["W1", "W2"], spans: false },
  { ...store, name: `${store.name} [spans exported]`, workloads: ["W1", "W2"], spans: "exported" }
])
