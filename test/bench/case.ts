/**
 * One benchmark measurement in its own process, so that its peak RSS is its
 * own: `node test/bench/case.ts <case name> <workload>` prints one JSON line.
 * With `--reference`, it measures the case's reference program instead.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Store } from "@partd/core"
import {
  allKeys,
  appendAll,
  buildCalls,
  buildColumns,
  makePool,
  totalBytes,
  verify,
  workloads
} from "@partd/test/Workload"
import { Effect } from "effect"
import { cases } from "./cases/index.ts"

const [caseName, workloadName] = process.argv.slice(2)
const benchCase = cases.find((c) => c.name === caseName)
const workload = workloads[workloadName ?? ""]
if (benchCase === undefined || workload === undefined) {
  console.error(`unknown case ${caseName} or workload ${workloadName}`)
  process.exit(2)
}

if (process.argv.includes("--reference")) {
  if (benchCase.reference === undefined) {
    console.error(`case ${caseName} has no reference`)
    process.exit(2)
  }
  const measured = await benchCase.reference.run(workload)
  process.stdout.write(`${JSON.stringify({ ...measured, peakRssMB: process.resourceUsage().maxRSS / 1024 })}\n`)
  process.exit(0)
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "partd-bench-"))
const pool = makePool()
const total = totalBytes(workload)

/** The bytes of every file under `root` but the lock file: what a store keeps on disk. */
const storedBytes = (root: string): number => {
  let bytes = 0
  for (const entry of fs.readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name !== ".lock") bytes += fs.statSync(path.join(entry.parentPath, entry.name)).size
  }
  return bytes
}

const program = Effect.gen(function* () {
  const store = yield* Store.Store
  const calls =
    benchCase.input === "record"
      ? buildCalls(workload, pool)
      : buildColumns(workload, pool, yield* Store.keySet(allKeys(workload)))
  // Start the clock on a clean heap: building the calls is not part of the measurement.
  ;(globalThis as { gc?: () => void }).gc?.()
  const t0 = performance.now()
  yield* appendAll(store, calls)
  const t1 = performance.now()
  // The memory bound is about appending; get's result (the whole workload) comes on top.
  const appendPeakRssMB = process.resourceUsage().maxRSS / 1024
  const ratio = benchCase.reportRatio === true ? total / storedBytes(dir) : undefined
  const values = yield* store.get(allKeys(workload))
  const t2 = performance.now()
  const problem = verify(workload, pool, values)
  yield* store.drop
  return {
    appendSeconds: (t1 - t0) / 1000,
    getSeconds: (t2 - t1) / 1000,
    appendMBps: total / ((t1 - t0) / 1000) / 1e6,
    getMBps: total / ((t2 - t1) / 1000) / 1e6,
    problem: problem ?? null,
    appendPeakRssMB,
    ...(ratio === undefined ? {} : { ratio })
  }
}).pipe(Effect.provide(benchCase.layer(dir)))

Effect.runPromise(program)
  .then((result) => {
    const peakRssMB = process.resourceUsage().maxRSS / 1024
    process.stdout.write(`${JSON.stringify({ ...result, peakRssMB })}\n`)
  })
  .catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
  .finally(() => fs.rmSync(dir, { recursive: true, force: true }))
