/**
 * The `partd` command end to end, as a real process: on a directory written
 * by this package's File store, on one written by Python partd, against a
 * throwaway redis-server, and as `partd serve`. Failures must be one line on
 * stderr and a non-zero exit code, never a stack trace.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { File } from "@partd/backend-file"
import { Redis } from "@partd/backend-redis"
import { Compression } from "@partd/codecs"
import { Client, Store } from "@partd/core"
import * as Child from "@partd/test/Child"
import { requirePython, runPython } from "@partd/test/Python"
import * as RedisServer from "@partd/test/RedisServer"
import { Context, Effect, Exit, Layer, Scope } from "effect"

const here = nodePath.dirname(fileURLToPath(import.meta.url))
const partd = nodePath.resolve(here, "../../packages/backend-file/src/partd.ts")

/** Slow on a busy machine: each command is a Node process loading the sources. */
const slow = 120_000

const cli = (...args: ReadonlyArray<string>) => Child.run([partd, ...args])

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** A fresh directory, removed with the scope. */
const tempDir = (name: string) =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(nodePath.join(os.tmpdir(), `partd-cli-${name}-`))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

/** Runs `body` with a store built from `layer`, closed afterwards (its lock released). */
const withStore = <A, E>(
  layer: Layer.Layer<Store.Store, E>,
  body: (store: Store.Shape) => Effect.Effect<A, Store.StoreError>
) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(layer, scope)
    const result = yield* body(Context.get(context, Store.Store))
    yield* Scope.close(scope, Exit.void)
    return result
  })

/** Expects a failed run: exit code 1 and exactly one line on stderr, starting with `partd: `. */
const expectOneLineFailure = (ran: Child.Ran, contains: string) => {
  expect(ran.code, ran.stderr).toBe(1)
  const lines = ran.stderr.trimEnd().split("\n")
  expect(lines, ran.stderr).toHaveLength(1)
  expect(lines[0]).toMatch(/^partd: /)
  expect(lines[0]).toContain(contains)
  expect(ran.stderr).not.toMatch(/\n\s+at /)
}

const random = (n: number) => {
  const bytes = new Uint8Array(n)
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(bytes.subarray(i, Math.min(n, i + 65536)))
  return bytes
}

describe("partd --help", () => {
  it.live(
    "lists every subcommand, and each subcommand's flags with their defaults",
    () =>
      Effect.gen(function* () {
        const top = yield* cli("--help")
        expect(top.code).toBe(0)
        for (const sub of ["ls", "cat", "du", "rm", "drop", "serve"])
          expect(text(top.stdout)).toMatch(new RegExp(`\\n\\s+${sub}\\s`))
        const cat = yield* cli("cat", "--help")
        expect(cat.code).toBe(0)
        for (const flag of ["--codec", "--redis", "--prefix", "--chunk-bytes", "--timeout-ms"]) {
          expect(text(cat.stdout)).toContain(flag)
        }
        expect(text(cat.stdout)).toContain("default: 1048576")
        expect(text(cat.stdout)).toContain("default: 5000")
        // serve is partd-server: its flags, with their defaults.
        const serve = yield* cli("serve", "--help")
        expect(serve.code).toBe(0)
        expect(text(serve.stdout)).toContain("--listen")
        expect(text(serve.stdout)).toContain("--dir")
      }),
    slow
  )
})

/** A directory written by this package's File store: plain, tuple, escaped and large keys. */
const written = (dir: string, big: Uint8Array) =>
  withStore(File.layer({ path: dir }), (store) =>
    store.append([
      ["a", new TextEncoder().encode("alpha")],
      [["t", "u"], new TextEncoder().encode("tuple")],
      ["needs escape?*", new TextEncoder().encode("odd")],
      ["big", big],
      ["a", new TextEncoder().encode("!")]
    ])
  )

describe("partd on a directory written by this store", () => {
  it.live(
    "ls, ls --json, du, cat (bytes as stored, tuple and escaped keys)",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const dir = yield* tempDir("ts")
          const big = random(3 * 1024 * 1024 + 17)
          yield* written(dir, big)
          const listed = yield* cli("ls", dir, "--json")
          expect(listed.code, listed.stderr).toBe(0)
          expect(JSON.parse(text(listed.stdout))).toEqual([
            { key: "a", bytes: 6 },
            { key: "big", bytes: big.byteLength },
            { key: "needs escape?*", bytes: 3 },
            { key: "t/u", bytes: 5 }
          ])
          const human = text((yield* cli("ls", dir)).stdout)
          expect(human).toMatch(/^\s*6 B {2}a$/m)
          expect(human).toMatch(/^\s*3\.0 MiB {2}big$/m)
          expect(human).toMatch(/^\s*5 B {2}t\/u$/m)

          const du = yield* cli("du", dir, "--json")
          expect(du.code, du.stderr).toBe(0)
          const totals = JSON.parse(text(du.stdout))
          expect(totals.keys).toBe(4)
          expect(totals.bytes).toBe(6 + 5 + 3 + big.byteLength)
          expect(totals.files).toBeGreaterThanOrEqual(4)

          const cat = yield* cli("cat", dir, "big", "--chunk-bytes", "65536")
          expect(cat.code, cat.stderr).toBe(0)
          expect(Buffer.compare(cat.stdout, big)).toBe(0)
          expect(text((yield* cli("cat", dir, "t/u")).stdout)).toBe("tuple")
        })
      ),
    slow
  )

  it.live(
    "cat of a missing key is empty; rm removes keys (missing ones are fine); drop empties the store, keeps the directory",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const dir = yield* tempDir("ts-rm")
          yield* written(dir, random(1000))
          const missing = yield* cli("cat", dir, "missing")
          expect(missing.code, missing.stderr).toBe(0)
          expect(missing.stdout.byteLength).toBe(0)
          const rm = yield* cli("rm", dir, "a", "t/u", "never-there")
          expect(rm.code, rm.stderr).toBe(0)
          expect(JSON.parse(text((yield* cli("ls", dir, "--json")).stdout)).map((e: { key: string }) => e.key)).toEqual(
            ["big", "needs escape?*"]
          )
          const drop = yield* cli("drop", dir)
          expect(drop.code, drop.stderr).toBe(0)
          expect(JSON.parse(text((yield* cli("ls", dir, "--json")).stdout))).toEqual([])
          expect(fs.statSync(dir).isDirectory()).toBe(true)
        })
      ),
    slow
  )

  it.live(
    "cat --codec reads a compressed store's values, decoded",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const dir = yield* tempDir("codec")
          const value = new TextEncoder().encode("compressed ".repeat(10_000))
          yield* withStore(Compression.layer("zlib").pipe(Layer.provide(File.layer({ path: dir }))), (store) =>
            store.append({ z: value })
          )
          const cat = yield* cli("cat", dir, "z", "--codec", "zlib")
          expect(cat.code, cat.stderr).toBe(0)
          expect(Buffer.compare(cat.stdout, value)).toBe(0)
          expectOneLineFailure(yield* cli("cat", dir, "z", "--codec", "nope"), "unknown compression nope")
        })
      ),
    slow
  )

  it.live(
    "on a terminal, cat into a file shows its progress on stderr",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const dir = yield* tempDir("tty")
          const big = random(2 * 1024 * 1024)
          yield* withStore(File.layer({ path: dir }), (store) => store.append({ big }))
          const out = nodePath.join(dir, "..", `${nodePath.basename(dir)}.out`)
          yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(out, { force: true })))
          // `script` gives the command a terminal; stdout goes to a file, as in `partd cat DIR KEY > file`.
          const command = `${process.execPath} --conditions=@partd/source ${partd} cat ${dir} big --chunk-bytes 4096 > ${out}`
          const ran = yield* onTerminal(command)
          expect(ran.code, ran.output).toBe(0)
          expect(ran.output).toContain("partd cat big:")
          expect(ran.output).toContain("of 2.0 MiB")
          expect(Buffer.compare(fs.readFileSync(out), big)).toBe(0)
        })
      ),
    slow
  )
})

/** Runs a shell command on a terminal (`script`), stdout as the command line redirects it; gives what the terminal showed. */
const onTerminal = (command: string) =>
  Effect.callback<{ code: number | null; output: string }>((resume) => {
    const child = spawn("script", ["-qec", command, "/dev/null"], { stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (d: Uint8Array) => {
      output += d.toString()
    })
    child.on("close", (code) => resume(Effect.succeed({ code, output })))
  })

/** Runs `partd ARGS | wc -c` under /usr/bin/time: the bytes it wrote and its peak RSS in KiB. */
const measured = (dir: string, args: string) =>
  Effect.callback<{ code: number | null; bytes: number; maxRssKiB: number; output: string }>((resume) => {
    const rss = nodePath.join(dir, "..", `${nodePath.basename(dir)}.rss`)
    const command = `/usr/bin/time -f %M -o ${rss} ${process.execPath} --conditions=@partd/source ${partd} ${args} | wc -c`
    const child = spawn("sh", ["-c", command], { stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (d: Uint8Array) => {
      output += d.toString()
    })
    child.stderr.on("data", (d: Uint8Array) => {
      output += d.toString()
    })
    child.on("close", (code) => {
      const maxRssKiB = Number(fs.readFileSync(rss, "utf8").trim().split("\n").pop())
      fs.rmSync(rss, { force: true })
      resume(Effect.succeed({ code, bytes: Number(output.trim().split("\n").pop()), maxRssKiB, output }))
    })
  })

describe("partd cat in bounded memory", () => {
  it.live(
    "cat of a 128 MiB key holds a few pieces, not the value: its peak RSS stays within 64 MiB of ls's",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const dir = yield* tempDir("big")
          const mib = 1024 * 1024
          const piece = new Uint8Array(mib).fill(7)
          // The key's file, as File and Python partd lay it out: the file named by the key.
          const fd = fs.openSync(nodePath.join(dir, "big"), "w")
          for (let i = 0; i < 128; i++) fs.writeSync(fd, piece)
          fs.closeSync(fd)
          const ls = yield* measured(dir, `ls ${dir}`)
          expect(ls.code, ls.output).toBe(0)
          const cat = yield* measured(dir, `cat ${dir} big`)
          expect(cat.code, cat.output).toBe(0)
          expect(cat.bytes).toBe(128 * mib)
          expect(cat.maxRssKiB - ls.maxRssKiB, `cat ${cat.maxRssKiB} KiB, ls ${ls.maxRssKiB} KiB`).toBeLessThan(
            64 * 1024
          )
        })
      ),
    slow
  )
})

describe("partd drop on a terminal", () => {
  it.live(
    "counts the keys it removes on stderr, then drops the store",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const dir = yield* tempDir("drop-tty")
          const keys = Array.from({ length: 2500 }, (_, i) => `k${i}`)
          yield* withStore(File.layer({ path: dir }), (store) =>
            store.append(keys.map((key) => [key, new Uint8Array([1])] as const))
          )
          const ran = yield* onTerminal(`${process.execPath} --conditions=@partd/source ${partd} drop ${dir}`)
          expect(ran.code, ran.output).toBe(0)
          expect(ran.output).toContain("partd drop:")
          expect(ran.output).toContain("of 2500 keys")
          expect(fs.readdirSync(dir).filter((name) => name.startsWith("k"))).toEqual([])
        })
      ),
    slow
  )
})

describe("partd on a directory written by Python partd", () => {
  it.live(
    "ls lists its keys (tuple keys as paths), du counts them, cat gives the bytes Python wrote",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const dir = yield* tempDir("py")
          const python = requirePython()
          runPython(
            python,
            `import sys, partd
p = partd.File(sys.argv[1])
p.append({"x": b"hello", ("a", "b"): b"tuple", "y": b"1" * 3000})
p.append({"x": b" world"})`,
            [dir]
          )
          const listed = yield* cli("ls", dir, "--json")
          expect(listed.code, listed.stderr).toBe(0)
          expect(JSON.parse(text(listed.stdout))).toEqual([
            { key: "a/b", bytes: 5 },
            { key: "x", bytes: 11 },
            { key: "y", bytes: 3000 }
          ])
          const du = JSON.parse(text((yield* cli("du", dir, "--json")).stdout))
          expect(du.keys).toBe(3)
          expect(du.bytes).toBe(3016)
          expect(text((yield* cli("cat", dir, "x")).stdout)).toBe("hello world")
          expect(text((yield* cli("cat", dir, "a/b")).stdout)).toBe("tuple")
          // What partd rm leaves, Python reads.
          expect((yield* cli("rm", dir, "x")).code).toBe(0)
          expect(runPython(python, "import sys, partd; print(partd.File(sys.argv[1]).get('x'))", [dir]).trim()).toBe(
            "b''"
          )
        })
      ),
    slow
  )
})

describe("partd errors", () => {
  it.live(
    "a missing directory, a bad key, a file given as directory: one line, exit code 1",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const dir = yield* tempDir("errors")
          expectOneLineFailure(yield* cli("ls", nodePath.join(dir, "missing")), "no such directory")
          // Nothing was created where the directory was missing.
          expect(fs.existsSync(nodePath.join(dir, "missing"))).toBe(false)
          fs.writeFileSync(nodePath.join(dir, "plain"), "x")
          expectOneLineFailure(yield* cli("du", nodePath.join(dir, "plain")), "not a directory")
          expectOneLineFailure(yield* cli("rm", dir, "a//b"), "BadKey")
          expectOneLineFailure(yield* cli("cat", dir, ".."), "BadKey")
          expectOneLineFailure(yield* cli("ls"), "give the store's directory, or --redis URL --prefix P")
          const unknown = yield* cli("frobnicate")
          expect(unknown.code).not.toBe(0)
          expect(unknown.stderr + text(unknown.stdout)).toContain("frobnicate")
        })
      ),
    slow
  )

  it.live(
    "an unreachable Redis, and --redis without --prefix: one line, exit code 1, no password echoed",
    () =>
      Effect.gen(function* () {
        const port = yield* Effect.promise(() => RedisServer.freePort())
        const url = `redis://user:hunter2@127.0.0.1:${port}`
        const ran = yield* cli("ls", "--redis", url, "--prefix", "p", "--timeout-ms", "300")
        expectOneLineFailure(ran, "Unavailable")
        expect(ran.stderr).not.toContain("hunter2")
        expectOneLineFailure(yield* cli("ls", "--redis", url), "--redis needs --prefix")
      }),
    slow
  )
})

describe("partd against a throwaway redis-server", () => {
  it.live(
    "ls, du and cat list and read a Redis store's keys; rm and drop remove them",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* RedisServer.start()
          const url = `redis://${server.host}:${server.port}`
          const layer = Redis.layer({ host: server.host, port: server.port, prefix: "shuffle" })
          const big = random(300_000)
          yield* withStore(layer, (store) =>
            store.append([
              ["a", new TextEncoder().encode("alpha")],
              [["t", "u"], new TextEncoder().encode("tuple")],
              ["big", big]
            ])
          )
          // Another prefix: never listed, never removed.
          yield* withStore(Redis.layer({ host: server.host, port: server.port, prefix: "other" }), (store) =>
            store.append({ keep: new TextEncoder().encode("kept") })
          )
          const redis = ["--redis", url, "--prefix", "shuffle"]
          const listed = yield* cli("ls", ...redis, "--json")
          expect(listed.code, listed.stderr).toBe(0)
          expect(JSON.parse(text(listed.stdout))).toEqual([
            { key: "a", bytes: 5 },
            { key: "big", bytes: big.byteLength },
            { key: "t/u", bytes: 5 }
          ])
          const du = JSON.parse(text((yield* cli("du", ...redis, "--json")).stdout))
          expect(du).toEqual({ keys: 3, bytes: 10 + big.byteLength })
          const cat = yield* cli("cat", ...redis, "big", "--chunk-bytes", "65536")
          expect(cat.code, cat.stderr).toBe(0)
          expect(Buffer.compare(cat.stdout, big)).toBe(0)

          expect((yield* cli("rm", ...redis, "a")).code).toBe(0)
          expect((yield* withStore(layer, (store) => store.get(["a", "t/u"]))).map(text)).toEqual(["", "tuple"])
          const drop = yield* cli("drop", ...redis)
          expect(drop.code, drop.stderr).toBe(0)
          expect((yield* withStore(layer, (store) => store.get(["t/u", "big"]))).map((v) => v.byteLength)).toEqual([
            0, 0
          ])
          const other = Redis.layer({ host: server.host, port: server.port, prefix: "other" })
          expect(text((yield* withStore(other, (store) => store.get(["keep"])))[0]!)).toBe("kept")
        })
      ),
    slow
  )
})

describe("partd serve", () => {
  it.live(
    "is partd-server: it serves the directory until SIGTERM, then exits 0 with the data on disk",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const dir = yield* tempDir("serve")
          const socket = nodePath.join(dir, "s.sock")
          const data = nodePath.join(dir, "data")
          const { child, output } = yield* Child.start(
            [partd, "serve", "--listen", `unix:${socket}`, "--dir", data, "--store", "file"],
            /listening on/
          )
          yield* Effect.scoped(
            Effect.gen(function* () {
              const client = yield* Client.make({ address: `unix:${socket}` })
              yield* client.append({ k: new TextEncoder().encode("served") })
            })
          )
          child.kill("SIGTERM")
          expect(yield* Child.exitOf(child), output()).toBe(0)
          expect(fs.readFileSync(nodePath.join(data, "k"), "utf8")).toBe("served")
        })
      ),
    slow
  )
})
