/**
 * Issue 17's big-value bar, by hand (it writes 2 GiB per store, too much for
 * `npm test` on a shared machine): a value of `--gib` GiB (default 2)
 * appended in 8 MiB pieces, then read back with `stream` in 1 MiB pieces and
 * checked byte for byte, on a File store and on Buffer(Dict, File, 64 MiB),
 * each in a process of its own. Prints each process's peak RSS (getrusage
 * maxrss) after the appends and after the stream, and the stream's MB/s.
 *
 *   node --conditions=@partd/source test/bench/stream-big.ts [--gib 2] [--dir /tmp]
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"
import { File } from "@partd/backend-file"
import { Dict, Store, Buffer as StoreBuffer } from "@partd/core"
import { Effect, Layer, Stream } from "effect"

const argValue = (flag: string): string | undefined => {
  const i = process.argv.indexOf(flag)
  return i === -1 ? undefined : process.argv[i + 1]
}

const piece = 8 * 1024 * 1024
const peakMB = (): number => Math.round(process.resourceUsage().maxRSS / 1024)

/** Piece `n` of the value: every byte is `(offset + i) % 251`, so a misplaced byte shows. */
const fill = (out: Uint8Array, offset: number): Uint8Array => {
  for (let i = 0; i < out.byteLength; i++) out[i] = (offset + i) % 251
  return out
}

const measure = (kind: string, dir: string, total: number) =>
  Effect.gen(function* () {
    const store = yield* Store.Store
    for (let offset = 0; offset < total; offset += piece) {
      yield* store.append({ big: fill(new Uint8Array(Math.min(piece, total - offset)), offset) })
    }
    const afterAppend = peakMB()
    const started = performance.now()
    let at = 0
    let wrong = -1
    yield* store.stream("big", { chunkBytes: 1024 * 1024 }).pipe(
      Stream.runForEach((bytes) =>
        Effect.sync(() => {
          if (wrong < 0) {
            for (let i = 0; i < bytes.byteLength; i += 4099) if (bytes[i] !== (at + i) % 251) wrong = at + i
          }
          at += bytes.byteLength
        })
      )
    )
    const seconds = (performance.now() - started) / 1000
    return {
      kind,
      bytes: at,
      wrong,
      afterAppendPeakRssMB: afterAppend,
      peakRssMB: peakMB(),
      streamMBps: Math.round(at / 1e6 / seconds)
    }
  }).pipe(
    Effect.provide(
      kind === "file"
        ? File.layer({ path: dir })
        : StoreBuffer.layer({
            fast: Dict.layer,
            slow: File.layer({ path: dir }),
            availableMemory: 64 * 1024 * 1024
          }).pipe(Layer.orDie)
    )
  )

const [mode, kind, dir, totalArg] = process.argv.slice(2)
if (mode === "child") {
  Effect.runPromise(measure(kind!, dir!, Number(totalArg))).then(
    (result) => console.log(JSON.stringify(result)),
    (error) => {
      console.log(JSON.stringify({ kind, error: String(error) }))
      process.exitCode = 1
    }
  )
} else {
  const total = Math.round(Number(argValue("--gib") ?? 2) * 1024 ** 3)
  const base = fs.mkdtempSync(nodePath.join(argValue("--dir") ?? os.tmpdir(), "partd-stream-big-"))
  try {
    for (const store of ["file", "buffer"]) {
      const dir = nodePath.join(base, store)
      const run = spawnSync(
        process.execPath,
        ["--conditions=@partd/source", fileURLToPath(import.meta.url), "child", store, dir, String(total)],
        { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }
      )
      process.stdout.write(run.stdout)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true })
  }
}
