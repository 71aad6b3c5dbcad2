/**
 * File's reads without `get`: `stream` (positional reads from a length fixed
 * when the stream starts, in this process and against appenders in others,
 * in bounded memory), `keys` (the directory walked back to keys, sidecars
 * never listed, Python partd's directories too) and `size` (fstat).
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { FileName } from "@partd/backend-file"
import type { Store } from "@partd/core"
import { requirePython, runPython } from "@partd/test/Python"
import { Effect, Exit, Fiber, Stream } from "effect"
import { bytes, openStore as open, openScoped, tempDir, text } from "./Helpers.ts"

const appender = fileURLToPath(new URL("./fixtures/appender.ts", import.meta.url))
const streamMemory = fileURLToPath(new URL("./fixtures/stream-memory.ts", import.meta.url))

const tempBase = tempDir("partd-file-read-")

const join = (pieces: ReadonlyArray<Uint8Array>): Uint8Array => Buffer.concat(pieces)

/** The pieces of a stream, collected. */
const pieces = (stream: Stream.Stream<Uint8Array, Store.StoreError>) => Stream.runCollect(stream)

/** Byte i is `i % 251` (a period prime to every piece size used here). */
const pattern = (start: number, length: number): Uint8Array => {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = (start + i) % 251
  return out
}

describe("File stream", () => {
  it.effect("yields get's bytes in pieces of at most chunkBytes, for every kind of key", () =>
    Effect.gen(function* () {
      const store = yield* open({ dir: yield* tempBase })
      yield* store.append({ big: pattern(0, 100_000), "a:b é": bytes("escaped") })
      yield* store.append([
        [["t", "u"], bytes("tuple")],
        ["big", pattern(100_000, 3)]
      ])
      // "t" holds bytes and is the directory of "t/u": its bytes live in t/%self.
      yield* store.append({ t: bytes("parent") })
      for (const key of ["big", "a:b é", "t", ["t", "u"], "missing"] as const) {
        const [value] = yield* store.get([key])
        for (const chunkBytes of [1, 7, 4096, 1024 * 1024]) {
          if (chunkBytes === 1 && value!.byteLength > 1000) continue
          const got = yield* pieces(store.stream(key, { chunkBytes }))
          expect(got.every((p) => p.byteLength >= 1 && p.byteLength <= chunkBytes)).toBe(true)
          expect(Buffer.from(join(got)).equals(Buffer.from(value!))).toBe(true)
        }
      }
      expect(yield* pieces(store.stream("missing"))).toEqual([])
    })
  )

  it.effect("a file cut below the stream's length by someone else fails the stream with Io, after what it read", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const store = yield* open({ path: dir })
      yield* store.append({ k: pattern(0, 10_000) })
      const pull = yield* Stream.toPull(store.stream("k", { chunkBytes: 4000 }))
      const [first] = yield* pull
      expect(first!.byteLength).toBe(4000)
      // Not something this store or Python partd does: a person or program truncating the file.
      fs.truncateSync(nodePath.join(dir, "k"), 5000)
      const error = yield* Effect.flip(pull)
      expect(error).toMatchObject({ reason: "Io", method: "stream", key: "k" })
    }).pipe(Effect.scoped)
  )

  it.effect("yields the value as it stood when it started: later appends, a delete and an iset do not show", () =>
    Effect.gen(function* () {
      const store = yield* open({ dir: yield* tempBase })
      yield* store.append({ k: pattern(0, 10_000) })
      const pull = yield* Stream.toPull(store.stream("k", { chunkBytes: 1000 }))
      const first = yield* pull
      yield* store.append({ k: bytes("later") })
      const second = yield* pull
      yield* store.delete(["k"])
      yield* store.iset("k", bytes("replaced"))
      const rest: Array<Uint8Array> = [...first, ...second]
      for (;;) {
        const exit = yield* Effect.exit(pull)
        if (Exit.isFailure(exit)) break
        rest.push(...exit.value)
      }
      expect(Buffer.from(join(rest)).equals(Buffer.from(pattern(0, 10_000)))).toBe(true)
      expect(text(join(yield* pieces(store.stream("k"))))).toBe("replaced")
    }).pipe(Effect.scoped)
  )

  it.live(
    "a stream of a key other processes append to is always whole records, never a torn piece",
    () =>
      Effect.gen(function* () {
        const dir = nodePath.join(yield* tempBase, "store")
        const store = yield* open({ path: dir })
        const size = 5000
        const count = 200
        const children = [0, 1, 2].map((w) =>
          spawn(process.execPath, [appender, dir, String(w), String(count), String(size)], { stdio: "ignore" })
        )
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            for (const child of children) child.kill("SIGKILL")
          })
        )
        const exits = Promise.all(children.map((c) => new Promise((resolve) => c.on("exit", resolve))))
        let running = true
        void exits.then(() => {
          running = false
        })
        let streams = 0
        let longest = 0
        while (running || streams === 0) {
          // 4093 bytes: pieces never line up with records or pages.
          const value = join(yield* pieces(store.stream("shared", { chunkBytes: 4093 })))
          expect(value.byteLength % size).toBe(0)
          const view = new DataView(value.buffer, value.byteOffset, value.byteLength)
          for (let at = 0; at < value.byteLength; at += size) {
            const fill = (view.getUint32(at) * 31 + view.getUint32(at + 4) * 7) & 0xff
            if (value[at + 8] !== fill || value[at + size - 1] !== fill) throw new Error(`torn record at ${at}`)
          }
          longest = Math.max(longest, value.byteLength)
          streams++
        }
        expect(yield* Effect.promise(() => exits)).toEqual([0, 0, 0])
        const [all] = yield* store.size(["shared"])
        expect(all).toBe(3 * count * size)
        expect(streams).toBeGreaterThan(1)
      }),
    60_000
  )

  it.live(
    "streams a 96 MiB key in 1 MiB pieces holding under 4 MiB more memory (a child process with --expose-gc)",
    () =>
      Effect.gen(function* () {
        const dir = nodePath.join(yield* tempBase, "store")
        const { store, close } = yield* openScoped({ path: dir })
        const mib = 1024 * 1024
        for (let i = 0; i < 96; i++) yield* store.append({ big: pattern(i * mib, mib) })
        yield* close
        const result = spawnSync(
          process.execPath,
          ["--expose-gc", "--conditions=@partd/source", streamMemory, dir, "big", String(mib)],
          { encoding: "utf8" }
        )
        expect(result.stderr).toBe("")
        const figures = JSON.parse(result.stdout) as Record<string, number>
        expect(figures).toMatchObject({ pieces: 96, bytes: 96 * mib, largest: mib, wrong: -1 })
        expect(figures.arrayBuffers).toBeLessThan(4 * mib)
        expect(figures.rss).toBeLessThan(32 * mib)
        console.log(`stream of 96 MiB in 1 MiB pieces: ${JSON.stringify(figures)}`)
      }),
    60_000
  )
})

describe("File keys", () => {
  it.effect("lists exactly the keys that hold bytes: tuples, escapes, parents of keys; no sidecars", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const store = yield* open({ path: dir })
      yield* store.append(
        [
          ["plain", bytes("1")],
          [["t", "u"], bytes("2")],
          [["t", "v", "w"], bytes("3")],
          ["t", bytes("parent")],
          ["a:b é/c", bytes("4")],
          [".lock", bytes("not the lock")],
          ["%self", bytes("5")],
          ["gone", bytes("6")],
          [["n", 1], bytes("7")],
          ["empty", new Uint8Array(0)]
        ],
        { id: "a call id, so that the ids file exists" }
      )
      yield* store.iset("set", bytes("8"))
      yield* store.iset("set-empty", new Uint8Array(0))
      yield* store.delete(["gone"])
      // Files no key maps to: a half-done iset, a moved value, foreign names.
      fs.writeFileSync(nodePath.join(dir, "plain%iset"), "x")
      fs.writeFileSync(nodePath.join(dir, "moved%moving"), "x")
      fs.writeFileSync(nodePath.join(dir, "bad%zz"), "x")
      fs.writeFileSync(nodePath.join(dir, "a%41"), "x")
      fs.mkdirSync(nodePath.join(dir, "emptydir"))
      const names = fs.readdirSync(dir)
      expect(names).toEqual(expect.arrayContaining([FileName.LOCK, FileName.STATE, FileName.CALLS]))
      const keys = yield* Stream.runCollect(store.keys)
      expect([...keys].sort()).toEqual(["%self", ".lock", "a:b é/c", "n/1", "plain", "set", "t", "t/u", "t/v/w"].sort())
      const values = yield* store.get(keys)
      expect(values.every((v) => v.byteLength > 0)).toBe(true)
      yield* store.drop
      expect(yield* Stream.runCollect(store.keys)).toEqual([])
    })
  )

  it.effect("reads a directory Python partd wrote: its keys, sizes and streams", () =>
    Effect.gen(function* () {
      const python = requirePython()
      const dir = nodePath.join(yield* tempBase, "py")
      runPython(
        python,
        `
import sys, partd
p = partd.File(sys.argv[1])
p.append({'x': b'Hello, ', ('a', 'b'): b'tu', 'key-1_2.(3) y': bytes(range(256)), ('n', 1): b'number'})
p.append({'x': b'world!', ('a', 'b'): b'ple', 'big': bytes(300000)})
p.iset('s', b'set')
p.append({'gone': b'soon'})
p.delete(['gone'])
`,
        [dir]
      )
      const store = yield* open({ path: dir })
      const keys = [...(yield* Stream.runCollect(store.keys))].sort()
      expect(keys).toEqual(["a/b", "big", "key-1_2.(3) y", "n/1", "s", "x"].sort())
      const sizes = yield* store.size(keys)
      const values = yield* store.get(keys)
      expect(sizes).toEqual(values.map((v) => v.byteLength))
      expect(sizes).toEqual([5, 300000, 256, 6, 3, 13])
      for (const [i, key] of keys.entries()) {
        expect(
          Buffer.from(join(yield* pieces(store.stream(key, { chunkBytes: 65536 })))).equals(Buffer.from(values[i]!))
        ).toBe(true)
      }
    })
  )
})

describe("File size", () => {
  it.effect("equals get's length for every key, with handles open or not, and other instances' appends", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const first = yield* open({ path: dir })
      const second = yield* open({ path: dir, maxOpenFiles: 1 })
      yield* first.append({ a: bytes("12345"), "x:y": bytes("1"), t: bytes("p") })
      yield* second.append([
        [["t", "u"], bytes("12")],
        ["a", bytes("678")],
        ["b", bytes("9")]
      ])
      yield* first.delete(["x:y"])
      const keys = ["a", "b", "t", "t/u", "x:y", "missing"]
      for (const store of [first, second]) {
        const sizes = yield* store.size(keys)
        expect(sizes).toEqual((yield* store.get(keys)).map((v) => v.byteLength))
        expect(sizes).toEqual([8, 1, 1, 2, 0, 0])
      }
      const big = "x".repeat(300)
      expect((yield* Effect.flip(first.size([big]))).reason).toBe("BadKey")
    })
  )
})

describe("File reads while a stream is open", () => {
  it.live("a slow stream does not hold the lock: appends and gets go on meanwhile", () =>
    Effect.gen(function* () {
      const store = yield* open({ dir: yield* tempBase })
      yield* store.append({ k: pattern(0, 64 * 1024) })
      const slow = yield* store.stream("k", { chunkBytes: 1024 }).pipe(
        Stream.tap(() => Effect.sleep("2 millis")),
        Stream.runCollect,
        Effect.forkChild
      )
      yield* Effect.sleep("10 millis")
      yield* store.append({ k: bytes("more") })
      expect((yield* store.size(["k"]))[0]).toBe(64 * 1024 + 4)
      const streamed = join(yield* Fiber.join(slow))
      expect(streamed.byteLength).toBe(64 * 1024)
    })
  )
})
