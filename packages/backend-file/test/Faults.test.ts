/**
 * File under real faults: a full disk (a small tmpfs mounted for the test:
 * the tests run as root), a writer killed with SIGKILL in the middle of an
 * append, and a process whose open-file limit is low.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { File, FileName } from "@partd/backend-file"
import * as Handles from "@partd/backend-file/Handles"
import * as Intent from "@partd/backend-file/Intent"
import * as Lock from "@partd/backend-file/Lock"
import { Store } from "@partd/core"
import { requirePython, runPython } from "@partd/test/Python"
import { Cause, Context, Effect, Exit, Layer, Scope } from "effect"
import { bytes, openStore as open, tempDir, text, wholeRecords } from "./Helpers.ts"

const bigAppender = fileURLToPath(new URL("./fixtures/big-appender.ts", import.meta.url))
const manyKeys = fileURLToPath(new URL("./fixtures/many-keys.ts", import.meta.url))

/** A fresh directory for one test, removed when the test's scope closes. */
const tempBase = tempDir("partd-file-faults-")

/** A tmpfs of `size` (e.g. "1m") mounted for the test's scope; returns its mount point. */
const tmpfs = (size: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-tmpfs-"))
      const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { encoding: "utf8" })
      if (mounted.status !== 0) throw new Error(`mount tmpfs failed (the tests need root): ${mounted.stderr}`)
      return dir
    }),
    (dir) =>
      Effect.sync(() => {
        spawnSync("umount", ["-l", dir])
        fs.rmSync(dir, { recursive: true, force: true })
      })
  )

/** Builds a File store in the test's scope. */

/** The StoreError a failed exit carries. */
const storeError = <A>(exit: Exit.Exit<A, Store.StoreError>): Store.StoreError => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, got a success")
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "None") throw new Error(`expected a StoreError, got ${Cause.pretty(exit.cause)}`)
  return error.value
}

/** Fills what is left of the filesystem at `dir` with a file outside the store; checks it is full. */
const fillUp = (dir: string): void => {
  const fd = fs.openSync(nodePath.join(dir, "filler"), "a")
  const block = Buffer.alloc(4096, 1)
  try {
    for (;;) fs.writeSync(fd, block)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error
  }
  try {
    for (;;) fs.writeSync(fd, block, 0, 1)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error
  }
  fs.closeSync(fd)
  expect(() => fs.writeFileSync(nodePath.join(dir, "probe"), "x")).toThrow(/ENOSPC/)
}

describe("File on a full disk", () => {
  it.effect("a call that fails with ENOSPC leaves every key at its length before the call", () =>
    Effect.gen(function* () {
      const mount = yield* tmpfs("1m")
      const dir = nodePath.join(mount, "store")
      const store = yield* open({ path: dir })
      yield* store.append({ a: bytes("a0;"), b: bytes("b0;") })
      // a fits, b does not: today's store kept a's chunk and part of b's.
      const error = storeError(
        yield* Effect.exit(store.append({ a: new Uint8Array(300 * 1024).fill(1), b: new Uint8Array(900 * 1024) }))
      )
      expect(error.reason).toBe("Io")
      expect(error.key).toBe("b")
      expect((error.cause as NodeJS.ErrnoException).code).toBe("ENOSPC")
      expect(fs.statSync(nodePath.join(dir, "a")).size).toBe(3)
      expect(fs.statSync(nodePath.join(dir, "b")).size).toBe(3)
      // The same through a key set's fast path (every handle open).
      const keys = yield* Store.keySet(["a", "b"])
      yield* store.append(Store.columns(keys, [bytes("a1;"), bytes("b1;")]))
      const failed = yield* Effect.exit(
        store.append(Store.columns(keys, [new Uint8Array(300 * 1024), new Uint8Array(900 * 1024)]))
      )
      expect(storeError(failed).reason).toBe("Io")
      // Later appends land right after what was there: nothing torn hides them.
      yield* store.append(Store.columns(keys, [bytes("a2"), bytes("b2")]))
      expect((yield* store.get(["a", "b"])).map(text)).toEqual(["a0;a1;a2", "b0;b1;b2"])
      // And Python partd reads the same.
      const python = requirePython()
      const out = runPython(
        python,
        "import sys, partd; print(b','.join(partd.File(sys.argv[1]).get(['a', 'b'])).decode())",
        [dir]
      )
      expect(out.trim()).toBe("a0;a1;a2,b0;b1;b2")
    })
  )

  it.effect("an iset that fails with ENOSPC leaves the key's old value", () =>
    Effect.gen(function* () {
      const mount = yield* tmpfs("1m")
      const dir = nodePath.join(mount, "store")
      const store = yield* open({ path: dir })
      // (A store isets a key once: a later iset of the same key is a no-op, so the key is appended to.)
      yield* store.append({ k: bytes("old") })
      yield* store.append({ other: new Uint8Array(100 * 1024) })
      fillUp(mount)
      const error = storeError(yield* Effect.exit(store.iset("k", new Uint8Array(200 * 1024))))
      expect(error.reason).toBe("Io")
      expect((error.cause as NodeJS.ErrnoException).code).toBe("ENOSPC")
      expect(text((yield* store.get(["k"]))[0]!)).toBe("old")
      yield* store.delete(["other"])
      yield* store.iset("k", bytes("new"))
      yield* store.append({ k: bytes("+") })
      expect(text((yield* store.get(["k"]))[0]!)).toBe("new+")
      expect(fs.readdirSync(dir).sort()).toEqual([FileName.LOCK, FileName.STATE, "k"].sort())
    })
  )

  it.effect("delete and drop free a full disk; get works on it; an append on it changes nothing", () =>
    Effect.gen(function* () {
      const mount = yield* tmpfs("1m")
      const dir = nodePath.join(mount, "store")
      const store = yield* open({ path: dir })
      const chunk = new Uint8Array(100 * 1024).fill(7)
      for (let i = 0; i < 4; i++) yield* store.append({ [`k${i}`]: chunk })
      fillUp(mount)
      const error = storeError(yield* Effect.exit(store.append({ k0: bytes("more"), k9: bytes("new") })))
      expect((error.cause as NodeJS.ErrnoException).code).toBe("ENOSPC")
      expect((yield* store.get(["k0", "k9"])).map((v) => v.byteLength)).toEqual([chunk.byteLength, 0])
      const free = () => fs.statfsSync(mount).bavail
      const before = free()
      yield* store.delete(["k0"])
      expect(free()).toBeGreaterThan(before)
      expect((yield* store.get(["k0", "k1"])).map((v) => v.byteLength)).toEqual([0, chunk.byteLength])
      fs.rmSync(nodePath.join(mount, "filler"))
      fillUp(mount)
      yield* store.drop
      expect((yield* store.get(["k1", "k2", "k3"])).map((v) => v.byteLength)).toEqual([0, 0, 0])
      expect(fs.readdirSync(dir).sort()).toEqual([FileName.LOCK, FileName.STATE].sort())
    })
  )
})

/** Runs the big appender on `dir` until it has appended a while, then SIGKILLs it. */
const killMidAppend = (dir: string, size: number, afterMs: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(
      process.execPath,
      ["--conditions=@partd/source", bigAppender, dir, String(size)],
      {
        stdio: ["ignore", "pipe", "pipe"]
      }
    )
    let stderr = ""
    child.stderr!.on("data", (d) => {
      stderr += d
    })
    child.stdout!.on("data", (d: Buffer) => {
      if (d.toString().includes("appending")) setTimeout(() => child.kill("SIGKILL"), afterMs)
    })
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL") resolve()
      else reject(new Error(`the appender exited with ${code} before it was killed: ${stderr}`))
    })
  })

describe("File after a writer is killed mid-append", () => {
  it.live(
    "kill -9 leaves nothing a later reader or writer sees: every key whole, every call on all keys or none",
    () =>
      Effect.gen(function* () {
        const dir = nodePath.join(yield* tempBase, "store")
        const size = 4 * 1024 * 1024 + 13
        let calls = 0
        for (const afterMs of [30, 70, 150]) {
          yield* Effect.promise(() => killMidAppend(dir, size, afterMs))
          const scope = yield* Scope.make()
          const store = Context.get(yield* Layer.buildWithScope(File.layer({ path: dir }), scope), Store.Store)
          const [a, b] = yield* store.get(["a", "b"])
          const count = wholeRecords(a!, size)
          expect(wholeRecords(b!, size)).toBe(count)
          expect(count).toBeGreaterThan(0)
          calls += count
          // An append after the crash lands right after the last whole record.
          yield* store.append({ a: bytes("end") })
          const [after] = yield* store.get(["a"])
          expect(after!.byteLength).toBe(count * size + 3)
          yield* store.drop
          yield* Scope.close(scope, Exit.void)
        }
        expect(calls).toBeGreaterThan(0)
      }),
    120_000
  )
})

/** Leaves an unfinished intent record in `dir`'s state, as a call killed mid-append does. */
const leaveRecord = (dir: string, files: ReadonlyArray<readonly [string, number, number]>, tear = false): void => {
  const lock = Lock.open(nodePath.join(dir, FileName.LOCK))
  try {
    expect(lock.tryAcquire()).toBe(true)
    const intent = Intent.writer(lock, false)
    const lengths = intent.begin(files.length, Intent.names(files.map(([name]) => name)))
    files.forEach(([, before, added], i) => {
      lengths[2 * i] = before
      lengths[2 * i + 1] = added
    })
    intent.commit()
    // A record torn by the crash: its last byte never reached the file.
    if (tear) lock.writeState(Lock.HEAD_BYTES + 15, Uint8Array.of(0xff))
    lock.release()
  } finally {
    lock.close()
  }
}

describe("File recovery from an unfinished record", () => {
  it.effect("the next call cuts back what the record says a dead call wrote, and only that", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const scope = yield* Scope.make()
      const first = Context.get(yield* Layer.buildWithScope(File.layer({ path: dir }), scope), Store.Store)
      yield* first.append({ a: bytes("a;torn"), b: bytes("b;"), grown: bytes("g;python appended") })
      yield* Scope.close(scope, Exit.void)
      // a: 2 bytes before, a 4-byte tail written; b: nothing written yet; grown: longer than the call could
      // have made it (another writer appended after the crash), so it is left alone.
      leaveRecord(dir, [
        ["a", 2, 10],
        ["b", 2, 10],
        ["grown", 2, 3]
      ])
      const store = yield* open({ path: dir })
      expect((yield* store.get(["a", "b", "grown"])).map(text)).toEqual(["a;", "b;", "g;python appended"])
      yield* store.append({ a: bytes("next") })
      expect(text((yield* store.get(["a"]))[0]!)).toBe("a;next")
    })
  )

  it.effect("a record torn by the crash itself was written before any key's bytes: nothing is cut", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const scope = yield* Scope.make()
      const first = Context.get(yield* Layer.buildWithScope(File.layer({ path: dir }), scope), Store.Store)
      yield* first.append({ a: bytes("a;kept") })
      yield* Scope.close(scope, Exit.void)
      leaveRecord(dir, [["a", 2, 10]], true)
      const store = yield* open({ path: dir })
      expect(text((yield* store.get(["a"]))[0]!)).toBe("a;kept")
    })
  )
})

describe("File under a low open-file limit", () => {
  it.live(
    "the default maxOpenFiles fits `ulimit -n 256`: 1000 keys append and read back",
    () =>
      Effect.gen(function* () {
        const dir = nodePath.join(yield* tempBase, "store")
        const result = spawnSync(
          "bash",
          [
            "-c",
            'ulimit -n 256 && exec "$@"',
            "bash",
            process.execPath,
            "--conditions=@partd/source",
            manyKeys,
            dir,
            "1000"
          ],
          { encoding: "utf8", timeout: 60_000 }
        )
        expect(result.stderr).toBe("")
        expect(result.status).toBe(0)
      }),
    90_000
  )

  it("the soft limit is read from /proc/self/limits", () => {
    const limits = (soft: string) =>
      `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${soft}                  4096                 files\n`
    expect(Handles.softFileLimit(limits("256"))).toBe(256)
    expect(Handles.softFileLimit(limits("unlimited"))).toBeUndefined()
    expect(Handles.softFileLimit("")).toBeUndefined()
  })
})
