/**
 * The packages as a user meets them: built, packed with `npm pack`, and
 * installed into a fresh app outside the workspace next to registry packages
 * only. There the README's first example runs as plain JavaScript and as
 * TypeScript under Node's type stripping, type-checks with `strict`, `nodenext`
 * and `skipLibCheck: false`, and the installed `partd-server` bin serves an
 * append and flushes it on SIGTERM. publint and arethetypeswrong check each
 * tarball.
 */
import { type ChildProcess, type SpawnSyncOptions, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Readme from "@partd/test/Readme"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const binOf = (pkg: string, bin: string) => path.join(root, "node_modules", pkg, bin)
const packages = ["core", "backend-file", "backend-redis", "codecs"] as const
const versionOf = (pkg: string): string =>
  JSON.parse(fs.readFileSync(path.join(root, "node_modules", pkg, "package.json"), "utf8")).version

// What a user's machine has: this Node (22) first on PATH, and none of the workspace's resolution settings.
const { NODE_OPTIONS: _workspaceOnly, ...inherited } = process.env
const env = { ...inherited, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ""}` }

const run = (command: string, args: ReadonlyArray<string>, options: SpawnSyncOptions = {}) => {
  const result = spawnSync(command, args, { env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, ...options })
  return { status: result.status, output: `${result.stdout ?? ""}\n${result.stderr ?? ""}`, stdout: `${result.stdout}` }
}

describe("the packed packages in a fresh app", () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "partd-consumer-"))
  const packs = path.join(base, "packs")
  const app = path.join(base, "app")
  const tarballs: Record<string, string> = {}
  const example = Readme.blocks(path.join(root, "README.md")).find((b) => b.code.includes("Buffer.layer"))!
  let server: ChildProcess | undefined

  beforeAll(() => {
    const built = run(process.execPath, [binOf("typescript", "bin/tsc"), "-b", "tsconfig.build.json"], { cwd: root })
    expect(built.status, built.output).toBe(0)
    fs.mkdirSync(packs)
    for (const p of packages) {
      const packed = run("npm", ["pack", "--json", "--workspace", `@partd/${p}`, "--pack-destination", packs], {
        cwd: root
      })
      expect(packed.status, packed.output).toBe(0)
      tarballs[p] = path.join(packs, JSON.parse(packed.stdout)[0].filename)
    }
    fs.mkdirSync(app)
    fs.writeFileSync(
      path.join(app, "package.json"),
      JSON.stringify({
        name: "partd-consumer",
        private: true,
        type: "module",
        allowScripts: { "zstd-napi": true, "msgpackr-extract": true, "fs-ext-extra-prebuilt": true }
      })
    )
    const installed = run(
      "npm",
      [
        "install",
        "--no-audit",
        "--no-fund",
        ...packages.map((p) => tarballs[p]!),
        `effect@${versionOf("effect")}`,
        `@effect/platform-node@${versionOf("@effect/platform-node")}`,
        `@types/node@${versionOf("@types/node")}`
      ],
      { cwd: app }
    )
    expect(installed.status, installed.output).toBe(0)
  }, 300_000)

  afterAll(() => {
    server?.kill("SIGKILL")
    fs.rmSync(base, { recursive: true, force: true })
  })

  it("each tarball holds dist, src, its README and LICENSE, and no tests", () => {
    for (const p of packages) {
      const listed = run("tar", ["tzf", tarballs[p]!])
      expect(listed.status, listed.output).toBe(0)
      const files = listed.stdout.split("\n").filter((f) => f.length > 0)
      expect(files).toContain("package/dist/index.js")
      expect(files).toContain("package/dist/index.d.ts")
      expect(files).toContain("package/README.md")
      expect(files).toContain("package/LICENSE")
      expect(files.filter((f) => /test|\.tsbuildinfo$/.test(f))).toEqual([])
    }
  })

  it("the README's first example runs as plain JavaScript", () => {
    fs.writeFileSync(path.join(app, "first.mjs"), example.code)
    const ran = run(process.execPath, ["first.mjs"], { cwd: app })
    expect(ran.status, ran.output).toBe(0)
    expect(ran.stdout).toContain("Hello, world! 123456")
  })

  it("the README's first example runs as TypeScript under Node's type stripping", () => {
    fs.writeFileSync(path.join(app, "first.ts"), example.code)
    const ran = run(process.execPath, ["first.ts"], { cwd: app })
    expect(ran.status, ran.output).toBe(0)
    expect(ran.stdout).toContain("Hello, world! 123456")
  })

  it("type-checks with strict, nodenext and skipLibCheck: false", () => {
    fs.writeFileSync(path.join(app, "first.ts"), example.code)
    fs.writeFileSync(
      path.join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "es2023",
          module: "nodenext",
          moduleResolution: "nodenext",
          strict: true,
          skipLibCheck: false,
          noEmit: true,
          types: ["node"]
        },
        files: ["first.ts"]
      })
    )
    const checked = run(process.execPath, [binOf("typescript", "bin/tsc"), "-p", app], { cwd: app })
    expect(checked.status, checked.output).toBe(0)
  })

  it("the installed partd-server serves an append and flushes it on SIGTERM", async () => {
    const socket = path.join(base, "server.sock")
    const dir = path.join(base, "data")
    const child = spawn(
      path.join(app, "node_modules", ".bin", "partd-server"),
      ["--listen", `unix:${socket}`, "--dir", dir],
      { cwd: app, env, stdio: ["ignore", "pipe", "pipe"] }
    )
    server = child
    let out = ""
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString()
        if (/listening on/.test(out)) resolve()
      })
      child.stderr!.on("data", (d: Buffer) => {
        out += d.toString()
      })
      void exited.then((code) => reject(new Error(`partd-server exited with ${code}:\n${out}`)))
    })
    fs.writeFileSync(
      path.join(app, "worker.mjs"),
      [
        `import { Client, Store } from "@partd/core"`,
        `import { Effect } from "effect"`,
        `const worker = Store.append({ x: new TextEncoder().encode("served") })`,
        `await Effect.runPromise(worker.pipe(Effect.provide(Client.layer({ address: ${JSON.stringify(`unix:${socket}`)} }))))`,
        ""
      ].join("\n")
    )
    const worked = run(process.execPath, ["worker.mjs"], { cwd: app })
    expect(worked.status, worked.output).toBe(0)
    child.kill("SIGTERM")
    expect(await exited, out).toBe(0)
    expect(fs.readFileSync(path.join(dir, "x"), "utf8")).toBe("served")
  }, 60_000)

  it("the installed partd-server says in one line which Node it needs on an older Node", () => {
    // Node 20 as the bin sees it: the version is what it checks before loading anything else.
    const older = 'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.19.0"})'
    const bin = path.join(app, "node_modules", "@partd", "backend-file", "dist", "partd-server.js")
    const ran = run(process.execPath, ["--import", older, bin, "--help"], { cwd: app })
    expect(ran.status).toBe(1)
    expect(ran.output.trim()).toBe("partd-server: needs Node.js 22.19 or newer, this is Node.js 20.19.0")
  })

  it("publint and arethetypeswrong find nothing to report", () => {
    for (const p of packages) {
      const linted = run(process.execPath, [binOf("publint", "src/cli.js"), "run", "--strict", tarballs[p]!])
      expect(linted.status, linted.output).toBe(0)
      expect(linted.output).toContain("All good!")
      const attw = run(process.execPath, [
        binOf("@arethetypeswrong/cli", "dist/index.js"),
        tarballs[p]!,
        "--profile",
        "esm-only"
      ])
      expect(attw.status, attw.output).toBe(0)
    }
  }, 120_000)
})
