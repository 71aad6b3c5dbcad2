/**
 * One benchmark measurement in its own process, so that its peak RSS is its
 * own: `node test/bench/case.ts <case name> <workload>` prints one JSON line.
 * The measured pass follows an untimed warm-up pass on a separate store
 * unless `--no-warmup` is given.
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
import { Effect, References, Tracer } from "effect"
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

const warmup = !process.argv.includes("--no-warmup")

/** For rows with `spans: "exported"`: makes every span, as an exporter would receive it, and drops it. */
const exportingTracer = Tracer.make({ span: (options) => new Tracer.NativeSpan(options) })

/**
 * Peak RSS in MB since the last `resetPeakRss`: Linux's VmHWM, which writing
 * 5 to /proc/self/clear_refs resets, so that the warm-up pass's peak does not
 * count. Elsewhere, the process's peak.
 */
const peakRssMB = (): number => {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"))
    if (match !== null) return Number(match[1]) / 1024
  } catch {}
  return process.resourceUsage().maxRSS / 1024
}
const resetPeakRss = (): void => {
  try {
    fs.writeFileSync("/proc/self/clear_refs", "5")
  } catch {}
}

/**
 * One pass of the workload on a fresh store in `storeDir`: append everything,
 * then get every key. A warm-up pass appends only the first quarter of the
 * calls: enough for the JIT, little enough that its memory does not sit under
 * the measured pass's peak RSS.
 */
const pass = (storeDir: string, fraction = 1) =>
  Effect.gen(function* () {
    const store = yield* Store.Store
    const all =
      benchCase.input === "record"
        ? buildCalls(workload, pool)
        : buildColumns(workload, pool, yield* Store.keySet(allKeys(workload)))
    const calls = fraction === 1 ? all : all.slice(0, Math.ceil(all.length * fraction))
    if (fraction !== 1) {
      yield* appendAll(store, calls)
      yield* store.get(allKeys(workload))
      yield* store.drop
      return undefined
    }
    // Start the clock on a clean heap: building the calls is not part of the measurement.
    ;(globalThis as { gc?: () => void }).gc?.()
    resetPeakRss()
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    yield* appendAll(store, calls)
    // An empty get returns once no append is still on its way (see `Pipelined`):
    // the append phase ends when every append is answered, as redis-benchmark's does.
    yield* store.get([])
    const t1 = performance.now()
    const cpu = process.cpuUsage(cpu0)
    // The memory bound is about appending; get's result (the whole workload) comes on top.
    const appendPeakRssMB = peakRssMB()
    const ratio = benchCase.reportRatio === true ? total / storedBytes(storeDir) : undefined
    const values = yield* store.get(allKeys(workload))
    const t2 = performance.now()
    const problem = verify(workload, pool, values)
    yield* store.drop
    return {
      appendSeconds: (t1 - t0) / 1000,
      // This process's CPU time (every thread), which other load on the machine disturbs less than wall time.
      appendCpuSeconds: (cpu.user + cpu.system) / 1e6,
      getSeconds: (t2 - t1) / 1000,
      appendMBps: total / ((t1 - t0) / 1000) / 1e6,
      getMBps: total / ((t2 - t1) / 1000) / 1e6,
      problem: problem ?? null,
      appendPeakRssMB,
      ...(ratio === undefined ? {} : { ratio })
    }
  }).pipe(
    Effect.provide(benchCase.layer(storeDir)),
    Effect.provideService(References.TracerEnabled, benchCase.spans !== false),
    (effect) => (benchCase.spans === "exported" ? Effect.withTracer(effect, exportingTracer) : effect)
  )

// A long shuffle runs on warm code: one untimed pass on its own store first lets
// the JIT compile the hot paths (Python partd's side gets the same pass).
const program = Effect.gen(function* () {
  if (warmup) {
    const warmDir = fs.mkdtempSync(path.join(os.tmpdir(), "partd-bench-warm-"))
    yield* Effect.ensuring(
      pass(warmDir, 0.25),
      Effect.sync(() => fs.rmSync(warmDir, { recursive: true, force: true }))
    )
  }
  return (yield* pass(dir))!
})

Effect.runPromise(program)
  .then((result) => {
    process.stdout.write(`${JSON.stringify({ ...result, peakRssMB: peakRssMB() })}\n`)
  })
  .catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
  .finally(() => fs.rmSync(dir, { recursive: true, force: true }))
