/**
 * Buffer(Dict, File)'s stream in bounded memory (issue #17): a key far
 * larger than the buffer, mostly spilled to the File and partly in memory,
 * streamed in a child process that measures what the stream holds.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"

const fixture = nodePath.join(import.meta.dirname, "fixtures", "buffer-stream-memory.ts")
const mib = 1024 * 1024

describe("Buffer(Dict, File) stream", () => {
  it.effect(
    "streams a 131 MiB key (3 MiB of it still in memory) in 1 MiB pieces holding under 8 MiB more memory",
    () =>
      Effect.gen(function* () {
        const dir = yield* Effect.acquireRelease(
          Effect.sync(() => fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-buffer-stream-"))),
          (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
        )
        const result = spawnSync(
          process.execPath,
          [
            "--expose-gc",
            "--conditions=@partd/source",
            fixture,
            nodePath.join(dir, "store"),
            "131",
            String(8 * mib),
            String(mib)
          ],
          { encoding: "utf8" }
        )
        expect(result.stderr).toBe("")
        const figures = JSON.parse(result.stdout) as Record<string, number>
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
