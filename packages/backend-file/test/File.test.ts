import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { File, FileName } from "@partd/backend-file"
import { Buffer, Dict, Store } from "@partd/core"
import { requirePython, runPython } from "@partd/test/Python"
import { suite } from "@partd/test/StoreSuite"
import { Cause, Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { bytes, tempDir, text } from "./Helpers.ts"

// The explicit-dir store drops its own directory on close; its parent is the test's to remove.
const explicitDir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-file-suite-"))
afterAll(() => fs.rmSync(explicitDir, { recursive: true, force: true }))

suite("File (temp dir)", File.layer(), { propertyRuns: 15 })
suite("File (explicit dir)", File.layer({ path: nodePath.join(explicitDir, "store"), dropOnClose: true }), {
  propertyRuns: 15
})
suite(
  "Buffer(Dict, File) with a 1 KiB bound",
  Buffer.layer({ fast: Dict.layer, slow: File.layer(), availableMemory: 1024 }),
  { propertyRuns: 10 }
)

/** A fresh directory for one test, removed when the test's scope closes. */
const tempBase = tempDir("partd-file-test-")

/** Builds a File store in its own scope; returns it with the scope, to close it by hand. */
const open = (options: File.Options) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(File.layer(options), scope)
    return { store: Context.get(context, Store.Store), scope }
  })

/** The StoreError a failed exit carries. */
const storeError = <A>(exit: Exit.Exit<A, Store.StoreError>): Store.StoreError => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, got a success")
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "None") throw new Error(`expected a StoreError, got ${Cause.pretty(exit.cause)}`)
  return error.value
}

/** Every file under `dir`, relative, sorted (directories end in "/"). */
const listing = (dir: string): Array<string> =>
  (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as Array<fs.Dirent>)
    .map((d) => {
      const relative = nodePath.relative(dir, nodePath.join(d.parentPath, d.name))
      return d.isDirectory() ? `${relative}/` : relative
    })
    .sort()

/** How many of this process's file descriptors point into `dir`. */
const openFilesUnder = (dir: string): number =>
  fs.readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`)
    } catch {
      return false
    }
  }).length

describe("File layout", () => {
  it.effect("one file per key holding exactly the appended bytes; tuple keys nest", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const { store, scope } = yield* open({ path: dir })
      yield* store.append([
        ["x", bytes("Hello, ")],
        [["a", "b"], bytes("ab")],
        ["key-1_2.(3) y", bytes("plain")],
        ["a:b/é", bytes("escaped")]
      ])
      yield* store.append({ x: bytes("world!") })
      yield* store.iset("s", bytes("set"))
      expect(listing(dir)).toEqual(
        [".lock", FileName.STATE, "a/", "a/b", "a%3Ab/", "a%3Ab/%C3%A9", "key-1_2.(3) y", "s", "x"].sort()
      )
      expect(fs.readFileSync(nodePath.join(dir, "x"), "utf8")).toBe("Hello, world!")
      expect(fs.readFileSync(nodePath.join(dir, "a", "b"), "utf8")).toBe("ab")
      expect(fs.readFileSync(nodePath.join(dir, "a%3Ab", "%C3%A9"), "utf8")).toBe("escaped")
      yield* store.delete(["x", ["a", "b"]])
      expect(fs.existsSync(nodePath.join(dir, "x"))).toBe(false)
      expect(fs.existsSync(nodePath.join(dir, "a", "b"))).toBe(false)
      yield* store.drop
      expect(listing(dir)).toEqual([".lock", FileName.STATE])
      yield* Scope.close(scope, Exit.void)
      // An explicit path is kept when the scope closes.
      expect(fs.existsSync(dir)).toBe(true)
    })
  )

  it.effect("a key and a longer key under it both hold bytes (the shorter one moves to %self)", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const { store } = yield* open({ path: dir })
      yield* store.append({ a: bytes("A") })
      yield* store.append({ "a/b": bytes("B") })
      yield* store.append({ a: bytes("A2"), "a/b/c": bytes("C") })
      expect(fs.readFileSync(nodePath.join(dir, "a", FileName.LEAF), "utf8")).toBe("AA2")
      const [a, ab, abc] = yield* store.get(["a", "a/b", "a/b/c"])
      expect([text(a!), text(ab!), text(abc!)]).toEqual(["AA2", "B", "C"])
      yield* store.iset("a/b/c/d", bytes("D"))
      yield* store.delete(["a/b"])
      expect((yield* store.get(["a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/e"])).map(text)).toEqual([
        "AA2",
        "",
        "C",
        "D",
        ""
      ])
    })
  )

  it.effect("maxOpenFiles bounds the open handles", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const { store } = yield* open({ path: dir, maxOpenFiles: 4 })
      const keys = Array.from({ length: 20 }, (_, i) => `k${i}`)
      for (let round = 0; round < 3; round++) {
        yield* store.append(keys.map((k) => [k, bytes(`${round}`)] as const))
        expect(openFilesUnder(dir)).toBeLessThanOrEqual(4 + 2) // + the lock and its state file
      }
      expect((yield* store.get(keys)).map(text)).toEqual(keys.map(() => "012"))
    })
  )

  it.effect("appends in columns stay right across eviction, deletes, drops and repeated keys", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const { store } = yield* open({ path: dir, maxOpenFiles: 4 })
      const other = (yield* open({ path: dir })).store
      const small = yield* Store.keySet(["p", "q", "r"])
      const many = yield* Store.keySet(Array.from({ length: 6 }, (_, i) => `m${i}`))
      const repeated = yield* Store.keySet(["p", "s", "p"])
      const model = new Map<string, string>()
      const add = (key: string, s: string) => model.set(key, (model.get(key) ?? "") + s)
      for (let round = 0; round < 4; round++) {
        // Twice in a row: the second call takes the key set's cached handles.
        for (const twice of ["a", "b"]) {
          yield* store.append(Store.columns(small, [bytes(`p${twice}`), bytes(`q${twice}`), bytes(`r${twice}`)]))
          for (const k of ["p", "q", "r"]) add(k, `${k}${twice}`)
        }
        // More keys than open handles: every call evicts the small set's handles.
        yield* store.append(
          Store.columns(
            many,
            many.paths.map((k) => bytes(`${k}.${round}`))
          )
        )
        for (const k of many.paths) add(k, `${k}.${round}`)
        yield* store.append(Store.columns(repeated, [bytes("1"), bytes("s"), bytes("2")]))
        add("p", "12")
        add("s", "s")
        if (round === 1) {
          // Another store deletes a key: this store's cached handles must not write into the unlinked file.
          yield* other.delete(["q"])
          model.delete("q")
        }
        if (round === 2) {
          yield* other.drop
          model.clear()
        }
      }
      const keys = Array.from(model.keys())
      expect((yield* other.get(keys)).map(text)).toEqual(keys.map((k) => model.get(k)))
      expect((yield* store.get(["q"])).map(text)).toEqual([model.get("q")])
    })
  )

  it.effect("fsync: true writes the same bytes", () =>
    Effect.gen(function* () {
      const { store } = yield* open({ dir: yield* tempBase, fsync: true })
      yield* store.append([
        ["f", bytes("1")],
        ["f", bytes("2")],
        ["g", bytes("g")]
      ])
      yield* store.iset("h", bytes("h"))
      expect((yield* store.get(["f", "g", "h"])).map(text)).toEqual(["12", "g", "h"])
    })
  )
})

describe("File key safety", () => {
  it.effect("keys that cannot be named fail with BadKey and write nothing", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const { store } = yield* open({ path: dir })
      const bad: ReadonlyArray<string | ReadonlyArray<string>> = [
        "x".repeat(256),
        ["ok", "y".repeat(300)],
        "é".repeat(43),
        Array.from({ length: 20 }, () => "z".repeat(250)),
        "lone\uD800surrogate",
        "../escape",
        "/abs",
        ["a", ".."]
      ]
      for (const key of bad) {
        const appended = storeError(
          yield* Effect.exit(store.append([["good", bytes("x")] as const, [key, bytes("y")]]))
        )
        expect(appended.reason).toBe("BadKey")
        expect(storeError(yield* Effect.exit(store.get([key]))).reason).toBe("BadKey")
        expect(storeError(yield* Effect.exit(store.iset(key, bytes("y")))).reason).toBe("BadKey")
        expect(storeError(yield* Effect.exit(store.delete(["good", key]))).reason).toBe("BadKey")
      }
      expect(listing(dir)).toEqual([".lock", FileName.STATE])
      // The longest name that fits is fine.
      yield* store.append({ ["n".repeat(255)]: bytes("long") })
      expect(text(yield* Store.getOneFrom(store, "n".repeat(255)))).toBe("long")
    })
  )

  it.effect("a key named .lock does not touch the lock file", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const { store } = yield* open({ path: dir })
      yield* store.append({ ".lock": bytes("mine") })
      expect(text(yield* Store.getOneFrom(store, ".lock"))).toBe("mine")
      expect(fs.readFileSync(nodePath.join(dir, "%2Elock"), "utf8")).toBe("mine")
      yield* store.drop
      expect(fs.existsSync(nodePath.join(dir, FileName.LOCK))).toBe(true)
    })
  )
})

describe("File errors are honest", () => {
  it.effect("a directory where a key's file should be is an Io error, not empty bytes (EISDIR)", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const { store } = yield* open({ path: dir })
      fs.mkdirSync(nodePath.join(dir, "k", FileName.LEAF), { recursive: true })
      const exits: Array<Exit.Exit<unknown, Store.StoreError>> = [
        yield* Effect.exit(store.get(["k"])),
        yield* Effect.exit(store.append({ k: bytes("x") })),
        yield* Effect.exit(store.iset("k", bytes("x"))),
        yield* Effect.exit(store.delete(["k"]))
      ]
      for (const exit of exits) {
        const error = storeError(exit)
        expect(error.reason).toBe("Io")
        expect(error.key).toBe("k")
        expect((error.cause as NodeJS.ErrnoException).code).toBe("EISDIR")
      }
    })
  )

  it.effect("a full disk is an Io error with the cause (ENOSPC through /dev/full)", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const { store } = yield* open({ path: dir })
      yield* store.append({ fine: bytes("1") })
      fs.symlinkSync("/dev/full", nodePath.join(dir, "full"))
      const error = storeError(yield* Effect.exit(store.append({ full: bytes("data") })))
      expect(error.reason).toBe("Io")
      expect(error.method).toBe("append")
      expect(error.key).toBe("full")
      expect((error.cause as NodeJS.ErrnoException).code).toBe("ENOSPC")
      expect(text(yield* Store.getOneFrom(store, "fine"))).toBe("1")
    })
  )

  it.effect("a file where a directory should be is an Io error", () =>
    Effect.gen(function* () {
      const base = yield* tempBase
      const file = nodePath.join(base, "not-a-dir")
      fs.writeFileSync(file, "x")
      for (const path of [file, nodePath.join(file, "sub")]) {
        const error = storeError(yield* Effect.exit(open({ path })))
        expect(error.reason).toBe("Io")
        expect(["ENOTDIR", "EEXIST"]).toContain((error.cause as NodeJS.ErrnoException).code)
      }
      const dirFile = storeError(yield* Effect.exit(open({ dir: file })))
      expect(dirFile.reason).toBe("Io")
      // A key's directory that is a FIFO: ENOTDIR-like failures are not "missing".
      const dir = nodePath.join(base, "store")
      const { store } = yield* open({ path: dir })
      fs.symlinkSync("/dev/null", nodePath.join(dir, "dev"))
      const error = storeError(yield* Effect.exit(store.append({ "dev/x": bytes("x") })))
      expect(error.reason).toBe("Io")
      expect(error.key).toBe("dev/x")
      expect(storeError(yield* Effect.exit(store.get(["dev/x"]))).reason).toBe("Io")
    })
  )

  it.effect("only a missing file reads as empty", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const { store } = yield* open({ path: dir })
      yield* store.append({ a: bytes("leaf") })
      // "a" is a key's file, so "a/b" does not exist: empty, not an error.
      expect((yield* store.get(["missing", "a/b", "a/b/c"])).map((v) => v.byteLength)).toEqual([0, 0, 0])
      yield* store.delete(["missing", "a/b"])
      expect(text(yield* Store.getOneFrom(store, "a"))).toBe("leaf")
    })
  )
})

describe("File lifetime", () => {
  it.effect("a temp dir is removed when the scope closes, and its handles are closed", () =>
    Effect.gen(function* () {
      const base = yield* tempBase
      const { store, scope } = yield* open({ dir: base })
      yield* store.append({ a: bytes("1"), "b/c": bytes("2") })
      expect(fs.readdirSync(base)).toHaveLength(1)
      const dir = nodePath.join(base, fs.readdirSync(base)[0]!)
      expect(openFilesUnder(dir)).toBeGreaterThan(0)
      yield* Scope.close(scope, Exit.void)
      expect(fs.readdirSync(base)).toEqual([])
      expect(openFilesUnder(dir)).toBe(0)
    })
  )

  it.effect("a temp dir is removed when the program fails", () =>
    Effect.gen(function* () {
      const base = yield* tempBase
      const exit = yield* Effect.exit(
        Effect.gen(function* () {
          yield* Store.append({ a: bytes("1") })
          expect(fs.readdirSync(base)).toHaveLength(1)
          return yield* Effect.fail("boom")
        }).pipe(Effect.provide(File.layer({ dir: base })))
      )
      expect(Exit.isFailure(exit)).toBe(true)
      expect(fs.readdirSync(base)).toEqual([])
    })
  )

  it.live("a temp dir is removed when the program is interrupted", () =>
    Effect.gen(function* () {
      const base = yield* tempBase
      const fiber = yield* Effect.forkChild(
        Effect.gen(function* () {
          yield* Store.append({ a: bytes("1") })
          return yield* Effect.never
        }).pipe(Effect.provide(File.layer({ dir: base })))
      )
      while (fs.readdirSync(base).length === 0 || !fs.existsSync(nodePath.join(base, fs.readdirSync(base)[0]!, "a"))) {
        yield* Effect.sleep("5 millis")
      }
      yield* Fiber.interrupt(fiber)
      expect(fs.readdirSync(base)).toEqual([])
    })
  )

  it.effect("an explicit path is kept, or removed with dropOnClose", () =>
    Effect.gen(function* () {
      const base = yield* tempBase
      const kept = nodePath.join(base, "kept", "deeper")
      yield* Effect.provide(Store.append({ a: bytes("1") }), File.layer({ path: kept }))
      expect(fs.readFileSync(nodePath.join(kept, "a"), "utf8")).toBe("1")
      // Reopened, the data is still there.
      expect(text(yield* Effect.provide(Store.getOne("a"), File.layer({ path: kept })))).toBe("1")
      const dropped = nodePath.join(base, "dropped")
      yield* Effect.provide(Store.append({ a: bytes("1") }), File.layer({ path: dropped, dropOnClose: true }))
      expect(fs.existsSync(dropped)).toBe(false)
    })
  )
})

describe("File stores sharing a directory", () => {
  it.effect("an iset by one store is seen by another's cached handles (and by Python partd)", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const one = (yield* open({ path: dir })).store
      const two = (yield* open({ path: dir })).store
      yield* one.append({ k: bytes("old") })
      yield* two.iset("k", bytes("set"))
      yield* one.append({ k: bytes("+1") })
      expect(text(yield* Store.getOneFrom(two, "k"))).toBe("set+1")
      yield* one.iset("k", bytes("again"))
      yield* two.append({ k: bytes("+2") })
      expect(text(yield* Store.getOneFrom(one, "k"))).toBe("again+2")
      const out = runPython(requirePython(), "import sys, partd; print(partd.File(sys.argv[1]).get('k').decode())", [
        dir
      ])
      expect(out.trim()).toBe("again+2")
    })
  )

  it.effect("a delete by one store is seen by another's cached handles", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      // Two stores on one directory hold separate locks and handle caches, as two processes do.
      const one = (yield* open({ path: dir })).store
      const two = (yield* open({ path: dir })).store
      yield* one.append({ k: bytes("old"), j: bytes("j") })
      yield* two.delete(["k"])
      yield* one.append({ k: bytes("new") })
      expect(text(yield* Store.getOneFrom(two, "k"))).toBe("new")
      yield* one.append({ j: bytes("+") })
      yield* two.drop
      yield* one.append({ j: bytes("again") })
      expect(text(yield* Store.getOneFrom(two, "j"))).toBe("again")
    })
  )

  it.effect("the directory removed and recreated under a store (as Python partd's drop does)", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const { store } = yield* open({ path: dir })
      yield* store.append({ k: bytes("old") })
      fs.rmSync(dir, { recursive: true })
      fs.mkdirSync(dir)
      yield* store.append({ k: bytes("new") })
      expect(fs.readFileSync(nodePath.join(dir, "k"), "utf8")).toBe("new")
      expect(fs.existsSync(nodePath.join(dir, FileName.LOCK))).toBe(true)
      expect(text(yield* Store.getOneFrom(store, "k"))).toBe("new")
    })
  )
})
