/**
 * Streams in bounded memory (issue #17), each in a child process that
 * measures what the stream holds: Buffer(Dict, File) with a key far larger
 * than the buffer, mostly spilled to the File and partly in memory; a zstd
 * store and a Msgpack typed store over File, decoded frame by frame.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"

const fixture = nodePath.join(import.meta.dirname, "fixtures", "buffer-stream-memory.ts")
const codecFixture = nodePath.join(import.meta.dirname, "fixtures", "codec-stream-memory.ts")

/** A fresh directory for one test, removed when its scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-stream-memory-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** Runs a fixture with --expose-gc and returns the figures it printed. */
const figuresOf = (args: ReadonlyArray<string>): Record<string, number> => {
  const result = spawnSync(process.execPath, ["--expose-gc", "--conditions=@partd/source", ...args], {
    encoding: "utf8"
  })
  expect(result.stderr).toBe("")
  return JSON.parse(result.stdout) as Record<string, number>
}
const mib = 1024 * 1024

describe("Buffer(Dict, File) stream", () => {
  it.effect(
    "streams a 131 MiB key (3 MiB of it still in memory) in 1 MiB pieces holding under 8 MiB more memory",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const figures = figuresOf([fixture, nodePath.join(dir, "store"), "131", String(8 * mib), String(mib)])
        expect(figures).toMatchObject({ pieces: 131, bytes: 131 * mib, largest: mib, wrong: -1 })
        // 128 MiB were spilled (the buffer spills its one key whole at 95% of 8 MiB), 3 MiB are in memory:
        // the stream read both parts, in order.
        expect(figures.inMemory).toBe(3 * mib)
        expect(figures.arrayBuffers).toBeLessThan(8 * mib)
        expect(figures.rss).toBeLessThan(32 * mib)
        console.log(`Buffer(Dict, File) stream of 131 MiB in 1 MiB pieces: ${JSON.stringify(figures)}`)
      }).pipe(Effect.scoped),
    120_000
  )
})

describe("codec stores' streams over File", () => {
  it.effect(
    "a zstd store streams 64 MiB, decompressing frame by frame, holding under 8 MiB more memory",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const figures = figuresOf([codecFixture, nodePath.join(dir, "store"), "zstd", "64"])
        expect(figures).toMatchObject({ pieces: 64, bytes: 64 * mib, wrong: -1 })
        expect(figures.arrayBuffers).toBeLessThan(8 * mib)
        expect(figures.rss).toBeLessThan(32 * mib)
        console.log(`zstd(File) stream of 64 MiB: ${JSON.stringify(figures)}`)
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect(
    "a Msgpack typed store streams 64 MiB of lists as their elements, holding a few MiB more memory",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const figures = figuresOf([codecFixture, nodePath.join(dir, "store"), "msgpack", "64"])
        expect(figures.values).toBe(figures.appended)
        expect(figures.values).toBeGreaterThan(10_000_000)
        expect(figures.wrong).toBe(-1)
        expect(figures.arrayBuffers).toBeLessThan(8 * mib)
        expect(figures.heapUsed).toBeLessThan(16 * mib)
        expect(figures.rss).toBeLessThan(32 * mib)
        console.log(`Msgpack(File) stream of 64 MiB: ${JSON.stringify(figures)}`)
      }).pipe(Effect.scoped),
    120_000
  )
})
