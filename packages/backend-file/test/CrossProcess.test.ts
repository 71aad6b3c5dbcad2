import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { File } from "@partd/backend-file"
import { Store } from "@partd/core"
import { Context, Effect, Layer } from "effect"

const appender = fileURLToPath(new URL("./fixtures/appender.ts", import.meta.url))

const WRITERS = 4
const RECORDS = 300
// Records cross page boundaries (4 KiB), where a reader could see a torn write.
const SIZE = 5000

/** Checks that `value` is whole records, each intact; returns how many each writer has, in order. */
const checkRecords = (value: Uint8Array, writers: ReadonlyArray<number>): Array<number> => {
  expect(value.byteLength % SIZE).toBe(0)
  const next = new Array<number>(WRITERS).fill(0)
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength)
  for (let offset = 0; offset < value.byteLength; offset += SIZE) {
    const writer = view.getUint32(offset)
    const seq = view.getUint32(offset + 4)
    expect(writers).toContain(writer)
    expect(seq).toBe(next[writer])
    next[writer] = seq + 1
    const fill = (writer * 31 + seq * 7) & 0xff
    for (let i = 8; i < SIZE; i++) {
      if (value[offset + i] !== fill) throw new Error(`record ${writer}/${seq} is torn at byte ${i}`)
    }
  }
  return next
}

describe("File across processes", () => {
  it.live(
    "several processes appending to one directory lose nothing, never interleave, and get never sees half an append",
    () =>
      Effect.gen(function* () {
        const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-file-xproc-"))
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => fs.rmSync(base, { recursive: true, force: true, maxRetries: 5 }))
        )
        const dir = nodePath.join(base, "store")
        const store = Context.get(yield* Layer.build(File.layer({ path: dir })), Store.Store)
        const writers = Array.from({ length: WRITERS }, (_, w) => w)
        const children: Array<ChildProcess> = []
        // On failure, stop the writers before their directory is removed.
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            for (const child of children) if (child.exitCode === null) child.kill("SIGKILL")
          })
        )
        const exits = writers.map(
          (w) =>
            new Promise<{ code: number | null; stderr: string }>((resolve) => {
              const child = spawn(process.execPath, [appender, dir, String(w), String(RECORDS), String(SIZE)], {
                stdio: ["ignore", "ignore", "pipe"]
              })
              children.push(child)
              let stderr = ""
              child.stderr.on("data", (d) => {
                stderr += d
              })
              child.on("exit", (code) => resolve({ code, stderr }))
            })
        )
        let running = true
        const done = Promise.all(exits).finally(() => {
          running = false
        })
        // Read while they write: every read must be whole, intact records.
        let reads = 0
        while (running) {
          const [shared] = yield* store.get(["shared"])
          checkRecords(shared!, writers)
          reads++
          yield* Effect.sleep("2 millis")
        }
        for (const { code, stderr } of yield* Effect.promise(() => done)) {
          expect(stderr).toBe("")
          expect(code).toBe(0)
        }
        expect(reads).toBeGreaterThan(0)
        const values = yield* store.get(["shared", ...writers.map((w) => `own-${w}`)])
        expect(checkRecords(values[0]!, writers)).toEqual(writers.map(() => RECORDS))
        writers.forEach((w) => {
          expect(checkRecords(values[w + 1]!, [w])[w]).toBe(RECORDS)
        })
      }),
    120_000
  )
})
