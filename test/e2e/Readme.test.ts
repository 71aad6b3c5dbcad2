/**
 * The READMEs' examples run as pasted: every ```ts block of the root README
 * and of each package's README is written to a file of its own, type-checked
 * with the workspace's settings, and run with Node against the real backends
 * (Redis blocks against a throwaway `redis-server`, through REDIS_URL). A
 * block annotated as a server keeps running while the blocks after it run
 * (its workers), and must stop cleanly on SIGTERM at the end.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Readme from "@partd/test/Readme"
import * as RedisServer from "@partd/test/RedisServer"
import { Effect, Exit, Scope } from "effect"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const require = createRequire(import.meta.url)
const tsc = path.join(path.dirname(require.resolve("typescript/package.json")), "bin", "tsc")
const vitest = path.join(path.dirname(require.resolve("vitest/package.json")), "vitest.mjs")

const readmes = [
  "README.md",
  ...fs
    .readdirSync(path.join(root, "packages"))
    .map((p) => path.join("packages", p, "README.md"))
    .filter((f) => fs.existsSync(path.join(root, f)))
]

/** Where a block's file lives: inside the workspace, so that its imports resolve as a user's would in an app. */
const fileName = (block: Readme.Block): string =>
  `${block.file.replace(/[/.]/g, "_")}_${block.line}${block.kind === "vitest" ? ".test" : ""}.ts`

const output = (result: { stdout: string | Buffer; stderr: string | Buffer }): string =>
  `${result.stdout.toString()}\n${result.stderr.toString()}`

describe("README examples", () => {
  const work = path.join(root, "test", ".readme-tmp", `${process.pid}`)
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "partd-readme-"))
  const scope = Effect.runSync(Scope.make())
  const servers: Array<{ readonly name: string; readonly child: ChildProcess; readonly output: () => string }> = []
  let env: NodeJS.ProcessEnv = {}
  const all = readmes
    .flatMap((f) => Readme.blocks(path.join(root, f)))
    .map((b) => ({
      ...b,
      file: path.relative(root, b.file)
    }))

  beforeAll(async () => {
    fs.mkdirSync(work, { recursive: true })
    for (const block of all) fs.writeFileSync(path.join(work, fileName(block)), block.code)
    const redis = await Effect.runPromise(Scope.provide(RedisServer.start(), scope))
    env = { ...process.env, TMPDIR: tmp, REDIS_URL: `redis://${redis.host}:${redis.port}` }
  })

  afterAll(async () => {
    for (const { child } of servers) child.kill("SIGKILL")
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(work, { recursive: true, force: true })
    fs.rmSync(tmp, { recursive: true, force: true })
  })

  it("finds the examples", () => {
    expect(all.filter((b) => b.file === "README.md").length).toBeGreaterThanOrEqual(10)
    expect(all.some((b) => b.kind === "server")).toBe(true)
  })

  it("every example type-checks (strict, nodenext)", () => {
    fs.writeFileSync(
      path.join(work, "tsconfig.json"),
      JSON.stringify({ extends: path.join(root, "tsconfig.json"), include: ["*.ts"], exclude: [] })
    )
    const result = spawnSync(process.execPath, [tsc, "-p", work], { cwd: work, encoding: "utf8" })
    expect(result.status, output(result)).toBe(0)
  })

  for (const block of all) {
    it(`${block.file}:${block.line} runs (${block.kind})`, async () => {
      const file = path.join(work, fileName(block))
      if (block.kind === "server") {
        servers.push(await startServer(`${block.file}:${block.line}`, file, env))
        return
      }
      if (block.kind === "vitest") {
        const config = path.join(work, `${path.basename(file, ".ts")}.config.ts`)
        fs.writeFileSync(
          config,
          [
            `import base from ${JSON.stringify(path.join(root, "test", "vitest.config.ts"))}`,
            `export default { ...base, test: { ...base.test, include: [${JSON.stringify(path.relative(root, file))}] } }`,
            ""
          ].join("\n")
        )
        const result = spawnSync(process.execPath, [vitest, "run", "--config", config], {
          cwd: root,
          env: { ...env, NO_COLOR: "1", FORCE_COLOR: "0" },
          encoding: "utf8"
        })
        expect(result.status, output(result)).toBe(0)
        expect(result.stdout).toMatch(/Tests\s+\d+ passed/)
        return
      }
      // A worker of a server block may start before the server listens: try a few times.
      let result = spawnSync(process.execPath, [file], { cwd: work, env, encoding: "utf8", timeout: 60_000 })
      for (let attempt = 0; attempt < 5 && result.status !== 0 && servers.length > 0; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 1000))
        result = spawnSync(process.execPath, [file], { cwd: work, env, encoding: "utf8", timeout: 60_000 })
      }
      expect(result.status, output(result)).toBe(0)
    })
  }

  it("the server examples stop cleanly on SIGTERM", async () => {
    for (const server of servers) {
      expect(server.child.exitCode, `${server.name} exited early:\n${server.output()}`).toBe(null)
      server.child.kill("SIGTERM")
      const code = await new Promise<number | null>((resolve) => server.child.once("exit", (c) => resolve(c)))
      // runMain exits 0 on success and 130 when interrupted by a signal, as a shell reports SIGINT.
      expect([0, 130, 143], `${server.name}:\n${server.output()}`).toContain(code)
    }
  })
})

/** Starts a server block; resolves once it has run for a while without exiting. */
const startServer = (name: string, file: string, env: NodeJS.ProcessEnv) =>
  new Promise<{ readonly name: string; readonly child: ChildProcess; readonly output: () => string }>(
    (resolve, reject) => {
      const child = spawn(process.execPath, [file], { cwd: path.dirname(file), env, stdio: ["ignore", "pipe", "pipe"] })
      let out = ""
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString()
      })
      child.stderr!.on("data", (d: Buffer) => {
        out += d.toString()
      })
      const started = setTimeout(() => resolve({ name, child, output: () => out }), 1500)
      child.once("exit", (code) => {
        clearTimeout(started)
        reject(new Error(`${name} exited with ${code} before the blocks after it ran:\n${out}`))
      })
    }
  )
