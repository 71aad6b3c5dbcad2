/**
 * Repeats one benchmark row's append phase on fresh stores, for profiling:
 * one run of `npm run bench` times a phase of a few tens of milliseconds,
 * too short for a CPU profile to say much. The calls are built once; each
 * repetition starts on a freshly collected heap. Prints the fastest and the
 * median repetition.
 *
 *   node --conditions=@partd/source --expose-gc --cpu-prof test/bench/profile.ts "Buffer(Dict, Dict, 64 MiB)" W1 40
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Store } from "@partd/core"
import { allKeys, appendAll, buildCalls, buildColumns, makePool, workloads } from "@partd/test/Workload"
import { Effect, type Layer } from "effect"
import { cases } from "./cases/index.ts"

const [caseName, workloadName, repetitions] = process.argv.slice(2)
const benchCase = cases.find((c) => c.name === caseName)
const workload = workloads[workloadName ?? ""]
if (benchCase === undefined || workload === undefined) {
  console.error(
    `usage: profile.ts <case name> <W1|W2> [repetitions]; unknown case ${caseName} or workload ${workloadName}`
  )
  process.exit(2)
}

// The row's own input: records, or columns over a key set validated once.
const calls =
  benchCase.input === "record"
    ? buildCalls(workload, makePool())
    : buildColumns(workload, makePool(), await Effect.runPromise(Store.keySet(allKeys(workload))))
const times: Array<number> = []
for (let r = 0; r < Number(repetitions ?? 20); r++) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "partd-profile-"))
  ;(globalThis as { gc?: () => void }).gc?.()
  try {
    await Effect.runPromise(
      Effect.gen(function* () {
        const store = yield* Store.Store
        const start = performance.now()
        yield* appendAll(store, calls)
        // Every append answered (see `Pipelined`).
        yield* store.get([])
        times.push(performance.now() - start)
        yield* store.drop
      }).pipe(Effect.provide(benchCase.layer(dir) as Layer.Layer<Store.Store>))
    )
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
times.sort((a, b) => a - b)
console.log(
  `${caseName} ${workloadName} append: fastest ${times[0]!.toFixed(1)} ms, median ${times[times.length >> 1]!.toFixed(1)} ms`
)
