/**
 * `npm run bench`: every row of cases.ts on the shuffle workloads, each
 * measurement in its own process, side by side with Python partd on the same
 * workload in the same run, with our/partd ratios and the bars.
 *
 *   npm run bench                      all rows, best of 3 runs each
 *   npm run bench -- --runs 1          one run each
 *   npm run bench -- --only Buffer     rows whose name contains "Buffer"
 *   npm run bench -- --only A --only B rows whose name contains "A" or "B"
 *   npm run bench -- --no-warmup       measure cold: no untimed warm-up pass first
 *
 * Results are written as JSON to bench-results/ (not committed), with an SVG
 * chart of every row beside them (chart.ts). On a terminal, a progress line
 * shows the row being measured, the time spent and an estimate of the time
 * left; elsewhere each row's start is a plain line.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { findPython } from "@partd/test/Python"
import { totalBytes, workloads } from "@partd/test/Workload"
import { type Bar, cases, type Metric } from "./cases/index.ts"
import type { ReferenceMeasurement } from "./cases/model.ts"
import { chartSvg } from "./chart.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "../..")

const argValue = (flag: string): string | undefined => {
  const i = process.argv.indexOf(flag)
  return i === -1 ? undefined : process.argv[i + 1]
}
const runs = Number(argValue("--runs") ?? 3)
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`--runs takes a positive whole number, got ${argValue("--runs")}`)
  process.exit(2)
}
const only = process.argv.flatMap((arg, i) =>
  arg === "--only" && i + 1 < process.argv.length ? [process.argv[i + 1]!] : []
)
// Each measurement follows an untimed warm-up pass of the same workload on its own store, on both sides.
const warmup = !process.argv.includes("--no-warmup")

interface Measurement {
  readonly appendMBps: number
  readonly getMBps: number
  readonly peakRssMB: number
  /** Peak RSS by the end of the append phase (before get builds its result). */
  readonly appendPeakRssMB?: number
  readonly problem?: string | null
  /**
   * The append phase's CPU time in the measuring process (all its threads):
   * less disturbed than wall time by other load on the machine, but blind to
   * work done in other processes (a server, Redis).
   */
  readonly appendCpuSeconds?: number
  /** Workload bytes over stored bytes, for rows that report it. */
  readonly ratio?: number
}

const python = findPython()

const started = performance.now()

/** A duration in seconds as `1m05s` or `42s`. */
const duration = (seconds: number): string => {
  const s = Math.max(0, Math.round(seconds))
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`
}

/** What the progress line shows: the row being measured and the step within it. */
const where = { label: "", step: "", rowsDone: 0, rowsTotal: 0, rowStarted: 0 }

const drawProgress = (): void => {
  const now = performance.now()
  const elapsed = (now - started) / 1000
  // The rows finished so far set the pace; the row under way has used some of its share.
  const perRow = (where.rowStarted - started) / 1000 / where.rowsDone
  const left =
    where.rowsDone === 0
      ? "estimating the time left"
      : `~${duration(perRow * (where.rowsTotal - where.rowsDone) - (now - where.rowStarted) / 1000)} left`
  const line = `${duration(elapsed)} elapsed, ${left} · ${where.label}${where.step === "" ? "" : ` (${where.step})`}`
  process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 200) - 1)}`)
}

// Redrawn every second while a measurement runs, so the elapsed time stays live.
const ticker = process.stderr.isTTY ? setInterval(drawProgress, 1000) : undefined

/**
 * Where the run is: on a terminal one line rewritten in place, with the time
 * spent and, once a row has finished, the time left at the pace so far;
 * elsewhere (a log, CI) a plain line per row, without control codes.
 */
const progress = (label: string, step: string, rowsDone: number, rowsTotal: number): void => {
  if (rowsDone !== where.rowsDone || where.rowStarted === 0) where.rowStarted = performance.now()
  Object.assign(where, { label, step, rowsDone, rowsTotal })
  if (process.stderr.isTTY) drawProgress()
  else if (step === "") process.stderr.write(`${label}\n`)
}

/**
 * The node arguments every measuring child gets: the workspace's packages
 * from their sources (`@partd/source`, as `npm run bench` runs this script),
 * not from a `dist/` build that may be stale or absent.
 */
const nodeArgs = ["--conditions=@partd/source"]

/** Runs a measuring child process; its last line of output is the measurement, as JSON. */
const runChild = <M = Measurement>(command: string, args: ReadonlyArray<string>): Promise<M | string> =>
  new Promise((resolve) => {
    // Asynchronous, so that the progress line keeps ticking while the child measures.
    const child = spawn(command, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (data: string) => {
      stdout += data
    })
    child.stderr.setEncoding("utf8").on("data", (data: string) => {
      stderr += data
    })
    child.on("error", (error) => resolve(`could not start ${command}: ${error.message}`))
    child.on("close", (status) => {
      if (status !== 0) {
        resolve(`exit ${status}: ${(stderr || stdout).trim().split("\n").slice(-3).join(" ")}`)
        return
      }
      const line = stdout.trim().split("\n").pop() ?? ""
      try {
        resolve(JSON.parse(line) as M)
      } catch {
        resolve(`unreadable output: ${line.slice(0, 200)}`)
      }
    })
  })

/** The better of two measurements of one side: highest throughput, lowest peak RSS. */
const better = (best: Measurement | undefined, m: Measurement): Measurement =>
  best === undefined
    ? m
    : {
        appendMBps: Math.max(best.appendMBps, m.appendMBps),
        getMBps: Math.max(best.getMBps, m.getMBps),
        peakRssMB: Math.min(best.peakRssMB, m.peakRssMB),
        ...(m.appendPeakRssMB === undefined
          ? {}
          : { appendPeakRssMB: Math.min(best.appendPeakRssMB ?? m.appendPeakRssMB, m.appendPeakRssMB) }),
        ...(m.appendCpuSeconds === undefined
          ? {}
          : { appendCpuSeconds: Math.min(best.appendCpuSeconds ?? m.appendCpuSeconds, m.appendCpuSeconds) }),
        problem: best.problem ?? m.problem ?? null,
        ...(m.ratio === undefined ? {} : { ratio: m.ratio })
      }

interface Row {
  readonly name: string
  readonly workload: string
  readonly ours: Measurement | string
  readonly partd: Measurement | string | undefined
  /** The case's reference program, when it has one: measured, or why not. */
  readonly reference?: ReferenceMeasurement | string
}

/** One run of a reference program, in its own child process. */
const runReference = (caseName: string, workloadName: string): Promise<ReferenceMeasurement | string> =>
  runChild<ReferenceMeasurement>(process.execPath, [
    ...nodeArgs,
    path.join(here, "case.ts"),
    caseName,
    workloadName,
    "--reference"
  ])

const selected = cases.filter((c) => only.length === 0 || only.some((part) => c.name.includes(part)))
const rows: Array<Row> = []
const total = selected.reduce((n, c) => n + c.workloads.length, 0)
let index = 0
for (const benchCase of selected) {
  for (const workloadName of benchCase.workloads) {
    index++
    const label = `[${index}/${total}] ${benchCase.name} ${workloadName}`
    progress(label, "", index - 1, total)
    const oursRuns = Math.min(runs, benchCase.maxRuns ?? runs)
    const spec =
      python !== undefined && benchCase.python !== undefined
        ? JSON.stringify({ ...workloads[workloadName]!, python: benchCase.python, warmup })
        : undefined
    const unavailable = benchCase.reference?.unavailable()
    // Best of `runs` on each side, the sides taking turns run by run: the
    // machine's speed drifts during a benchmark (creating a file took from
    // 0.07 to 0.8 ms here, minutes apart), and a drift should weigh on both
    // sides of a ratio alike rather than on whichever side ran during it.
    let ours: Measurement | string | undefined
    let partd: Measurement | string | undefined
    let reference: ReferenceMeasurement | string | undefined = unavailable
    for (let i = 0; i < runs; i++) {
      if (i < oursRuns && typeof ours !== "string") {
        progress(label, `ts run ${i + 1}/${oursRuns}`, index - 1, total)
        const m = await runChild(process.execPath, [
          ...nodeArgs,
          "--expose-gc",
          path.join(here, "case.ts"),
          benchCase.name,
          workloadName,
          ...(warmup ? [] : ["--no-warmup"])
        ])
        ours = typeof m === "string" ? m : better(ours, m)
      }
      if (spec !== undefined && python !== undefined && typeof partd !== "string") {
        progress(label, `partd-py run ${i + 1}/${runs}`, index - 1, total)
        const m = await runChild(python, [path.join(here, "partd_bench.py"), spec])
        partd = typeof m === "string" ? m : better(partd, m)
      }
      if (benchCase.reference !== undefined && unavailable === undefined && typeof reference !== "string") {
        progress(label, `${benchCase.reference.name} run ${i + 1}/${runs}`, index - 1, total)
        const m = await runReference(benchCase.name, workloadName)
        if (typeof m === "string" || reference === undefined || m.opsPerSecond > reference.opsPerSecond) reference = m
      }
    }
    rows.push({
      name: benchCase.name,
      workload: workloadName,
      // Every case runs at least once (`runs` ≥ 1, `maxRuns` ≥ 1).
      ours: ours!,
      partd,
      ...(reference === undefined ? {} : { reference })
    })
  }
}
if (ticker !== undefined) clearInterval(ticker)
if (process.stderr.isTTY) process.stderr.write("\r\x1b[K")

const fmt = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(1))
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`
const pad = (s: string, n: number): string => s.padEnd(n)

console.log(
  `partd-ts benchmark — node ${process.version}, ${runs === 1 ? "1 run" : `best of ${runs} runs`}` +
    (warmup ? ", each after an untimed warm-up pass (both sides)" : ", cold (no warm-up pass)") +
    (python === undefined ? ", Python partd not found (apt-get install python3-partd)" : `, Python partd via ${python}`)
)
console.log("")
console.log(
  `${pad("store", 34)}${pad("load", 6)}${pad("append MB/s", 13)}${pad("get MB/s", 12)}${pad("RSS MB app/all", 16)}` +
    `${pad("partd-py append", 17)}${pad("partd-py get", 14)}${pad("append ×", 10)}get ×`
)
for (const row of rows) {
  const w = workloads[row.workload]!
  const mib = (totalBytes(w) / 1024 / 1024).toFixed(0)
  const load = `${row.workload}`
  if (typeof row.ours === "string") {
    console.log(`${pad(row.name, 34)}${pad(load, 6)}FAILED: ${row.ours}`)
    continue
  }
  const o = row.ours
  const p = typeof row.partd === "object" ? row.partd : undefined
  console.log(
    `${pad(row.name, 34)}${pad(load, 6)}${pad(fmt(o.appendMBps), 13)}${pad(fmt(o.getMBps), 12)}${pad(`${o.appendPeakRssMB === undefined ? "-" : fmt(o.appendPeakRssMB)}/${fmt(o.peakRssMB)}`, 16)}` +
      (p === undefined
        ? typeof row.partd === "string"
          ? `partd-py failed: ${row.partd}`
          : "(no partd-py row)"
        : `${pad(fmt(p.appendMBps), 17)}${pad(fmt(p.getMBps), 14)}${pad(ratio(o.appendMBps, p.appendMBps), 10)}${ratio(o.getMBps, p.getMBps)}`)
  )
  if (o.appendCpuSeconds !== undefined && p?.appendCpuSeconds !== undefined) {
    console.log(
      `  append CPU time in the measuring process: ours ${(o.appendCpuSeconds * 1000).toFixed(1)} ms, ` +
        `partd-py ${(p.appendCpuSeconds * 1000).toFixed(1)} ms = ${ratio(p.appendCpuSeconds, o.appendCpuSeconds)}`
    )
  }
  if (o.ratio !== undefined) {
    console.log(
      `  ${row.name} ${row.workload}: compression ratio ${o.ratio.toFixed(2)}:1 at ${fmt(o.appendMBps)} MB/s append`
    )
  }
  if (row.reference !== undefined) {
    const referenceName = selected.find((c) => c.name === row.name)?.reference?.name ?? "reference"
    if (typeof row.reference === "string") {
      console.log(`  reference ${referenceName}: not measured: ${row.reference}`)
    } else {
      const oursOps = (o.appendMBps * 1e6) / w.valueBytes
      console.log(
        `  reference ${referenceName}: ${fmt(row.reference.appendMBps)} MB/s = ${row.reference.opsPerSecond.toFixed(0)} ops/s; ` +
          `ours ${oursOps.toFixed(0)} ops/s = ${ratio(o.appendMBps, row.reference.appendMBps)}`
      )
    }
  }
  if (o.problem) console.log(`  ! ours returned wrong data: ${o.problem}`)
  if (p?.problem) console.log(`  ! partd-py returned wrong data: ${p.problem}`)
  void mib
}
console.log("")
console.log("W1 = 256 keys × 400 calls × 1 KiB (100 MiB); W2 = 1000 keys × 200 calls × 100 B (19 MiB)")

const metricName = (m: Metric) => (m === "appendMBps" ? "append" : "get")

interface BarResult {
  readonly label: string
  readonly ok: boolean
  readonly detail: string
}

const evaluate = (name: string, bar: Bar): BarResult => {
  const row = rows.find((r) => r.name === name && r.workload === bar.workload)
  const label = `${name} ${bar.workload} ${metricName(bar.metric)}`
  if (row === undefined || typeof row.ours === "string") return { label, ok: false, detail: "not measured" }
  if (row.ours.problem) return { label, ok: false, detail: `wrong data: ${row.ours.problem}` }
  const ours = row.ours[bar.metric]
  const parts: Array<BarResult> = []
  if (bar.atLeastTimesPartd !== undefined) {
    if (typeof row.partd !== "object") {
      parts.push({ label, ok: false, detail: "partd-py not measured" })
    } else {
      const r = ours / row.partd[bar.metric]
      parts.push({
        label,
        ok: r >= bar.atLeastTimesPartd,
        detail: `${r.toFixed(2)}× partd-py (bar ≥ ${bar.atLeastTimesPartd}×)`
      })
    }
  }
  if (bar.atLeastTimesReference !== undefined) {
    if (typeof row.reference !== "object") {
      parts.push({ label, ok: false, detail: `reference not measured${row.reference ? `: ${row.reference}` : ""}` })
    } else if (bar.metric !== "appendMBps") {
      parts.push({ label, ok: false, detail: "a reference measures appends only" })
    } else {
      const r = ours / row.reference.appendMBps
      parts.push({
        label,
        ok: r >= bar.atLeastTimesReference,
        detail: `${r.toFixed(2)}× the reference's ops/s (bar ≥ ${bar.atLeastTimesReference}×)`
      })
    }
  }
  if (bar.atLeastMBps !== undefined) {
    parts.push({ label, ok: ours >= bar.atLeastMBps, detail: `${fmt(ours)} MB/s (bar ≥ ${bar.atLeastMBps} MB/s)` })
  }
  if (bar.atMostRssMB !== undefined) {
    const rss = row.ours.appendPeakRssMB ?? row.ours.peakRssMB
    parts.push({
      label: `${name} ${bar.workload} peak RSS`,
      ok: rss <= bar.atMostRssMB,
      detail: `${fmt(rss)} MB by the end of the append phase (bar ≤ ${bar.atMostRssMB} MB)`
    })
  }
  return { label, ok: parts.every((p) => p.ok), detail: parts.map((p) => p.detail).join("; ") }
}

const bars = selected.flatMap((c) => (c.bars ?? []).map((bar) => evaluate(c.name, bar)))
if (bars.length > 0) {
  console.log("")
  console.log("Bars:")
  for (const bar of bars) console.log(`  ${bar.ok ? "PASS" : "MISS"}  ${bar.label}: ${bar.detail}`)
}

const outDir = path.join(root, "bench-results")
fs.mkdirSync(outDir, { recursive: true })
const outFile = path.join(outDir, `bench-${new Date().toISOString().replace(/[:.]/g, "-")}.json`)
fs.writeFileSync(
  outFile,
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, runs, python: python ?? null, rows, bars }, null, 2)}\n`
)
const chartFile = outFile.replace(/\.json$/, ".svg")
fs.writeFileSync(
  chartFile,
  chartSvg(
    rows.map((row) => ({ label: `${row.name} ${row.workload}`, ours: row.ours, partd: row.partd })),
    `partd-ts vs Python partd — node ${process.version}, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`
  )
)
console.log("")
console.log(`results: ${path.relative(root, outFile)}`)
console.log(`chart:   ${path.relative(root, chartFile)}`)
