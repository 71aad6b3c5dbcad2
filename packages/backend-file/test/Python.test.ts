/**
 * Interop with real Python partd (Debian's python3-partd): each side reads
 * what the other wrote, and both honour the same lock.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { File } from "@partd/backend-file"
import { Store } from "@partd/core"
import { requirePython, runPython } from "@partd/test/Python"
import { Effect } from "effect"

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (u: Uint8Array): string => new TextDecoder().decode(u)

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-file-py-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** Every byte value, so that nothing is lost to an encoding on either side. */
const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i)

describe("File interop with Python partd", () => {
  it.effect("Python's partd.File reads what this store wrote", () =>
    Effect.gen(function* () {
      const python = requirePython()
      const dir = nodePath.join(yield* tempDir, "store")
      yield* Effect.gen(function* () {
        yield* Store.append([
          ["x", bytes("Hello, ")],
          [["a", "b"], bytes("tuple")],
          [["n", 1], bytes("number")],
          ["key-1_2.(3) y", allBytes]
        ])
        yield* Store.append({ x: bytes("world!") })
        yield* Store.iset("s", bytes("set"))
      }).pipe(Effect.provide(File.layer({ path: dir })))
      const out = runPython(
        python,
        `
import json, sys, partd
p = partd.File(sys.argv[1])
x, ab, n1, plain, s, missing = p.get(['x', ('a', 'b'), ('n', 1), 'key-1_2.(3) y', 's', 'missing'])
print(json.dumps([x.decode(), ab.decode(), n1.decode(), list(plain), s.decode(), missing.decode()]))
`,
        [dir]
      )
      expect(JSON.parse(out)).toEqual(["Hello, world!", "tuple", "number", Array.from(allBytes), "set", ""])
    })
  )

  it.effect("this store reads what Python's partd.File wrote", () =>
    Effect.gen(function* () {
      const python = requirePython()
      const dir = nodePath.join(yield* tempDir, "store")
      runPython(
        python,
        `
import sys, partd
p = partd.File(sys.argv[1])
p.append({'x': b'Hello, ', ('a', 'b'): b'tu', 'key-1_2.(3) y': bytes(range(256))})
p.append({'x': b'world!', ('a', 'b'): b'ple'})
p.append({('n', 1): b'number'})
p.iset('s', b'set')
`,
        [dir]
      )
      const values = yield* Store.get(["x", ["a", "b"], "key-1_2.(3) y", "s", ["n", 1], "missing"]).pipe(
        Effect.provide(File.layer({ path: dir }))
      )
      expect(values.map((v, i) => (i === 2 ? Array.from(v) : text(v)))).toEqual([
        "Hello, world!",
        "tuple",
        Array.from(allBytes),
        "set",
        "number",
        ""
      ])
      // And the other way round again, after appending to Python's files.
      yield* Store.append({ x: bytes("!!") }).pipe(Effect.provide(File.layer({ path: dir })))
      const out = runPython(python, "import sys, partd; print(partd.File(sys.argv[1]).get('x').decode())", [dir])
      expect(out.trim()).toBe("Hello, world!!!")
    })
  )

  it.live("this store waits while a Python process holds the store's lock", () =>
    Effect.gen(function* () {
      const python = requirePython()
      const dir = nodePath.join(yield* tempDir, "store")
      // Python takes partd's lock, says so, holds it for a while, appends, releases.
      const child = spawn(
        python,
        [
          "-c",
          `
import sys, time, partd
p = partd.File(sys.argv[1])
with p.lock:
    print('locked', flush=True)
    time.sleep(0.4)
    p.append({'k': b'python '}, lock=False)
`,
          dir
        ],
        { stdio: ["ignore", "pipe", "inherit"] }
      )
      const exited = new Promise<number | null>((resolve) => child.on("exit", resolve))
      yield* Effect.promise(
        () =>
          new Promise<void>((resolve) => {
            child.stdout.on("data", (d: Buffer) => {
              if (d.toString().includes("locked")) resolve()
            })
          })
      )
      const value = yield* Effect.gen(function* () {
        yield* Store.append({ k: bytes("then ts") })
        return text(yield* Store.getOne("k"))
      }).pipe(Effect.provide(File.layer({ path: dir })))
      expect(yield* Effect.promise(() => exited)).toBe(0)
      expect(value).toBe("python then ts")
    })
  )
})
