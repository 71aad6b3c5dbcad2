/**
 * The `partd-server` process and durability: a final flush that fails on a
 * real full disk makes the process exit non-zero and say what was lost, and
 * `--flush-after-ms` puts bytes on disk before a `kill -9` can take them.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Client } from "@partd/core"
import * as Child from "@partd/test/Child"
import { fill, tmpfs } from "@partd/test/FullDisk"
import { Effect, Exit, Scope } from "effect"

const here = nodePath.dirname(fileURLToPath(import.meta.url))
const serverMain = nodePath.resolve(here, "../src/partd-server.ts")

/** Starts `partd-server` with `args`; resolves once it listens, killed when the scope closes. */
const startServer = (args: ReadonlyArray<string>) =>
  Effect.map(Child.start([serverMain, ...args], /listening on (\S+)/), (started) => ({
    ...started,
    address: /listening on (\S+)/.exec(started.output())![1]!
  }))

/** Appends through a client that is closed afterwards (every append answered). */
const appendAll = (address: string, data: ReadonlyArray<readonly [string, Uint8Array]>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const client = yield* Client.make({ address }).pipe(Scope.provide(scope))
    yield* client.append(data)
    yield* Scope.close(scope, Exit.void)
  })

describe("partd-server on a full disk", () => {
  it.live("a final flush that fails exits non-zero and prints how many bytes of which keys were lost", () =>
    Effect.gen(function* () {
      const mount = yield* tmpfs(1024 * 1024)
      const dir = nodePath.join(mount, "data")
      const { child, output, address } = yield* startServer([
        "--listen",
        `unix:${nodePath.join(os.tmpdir(), `partd-lost-${process.pid}.sock`)}`,
        "--dir",
        dir
      ])
      const mib = 1024 * 1024
      yield* appendAll(address, [
        ["a", new Uint8Array(2 * mib).fill(1)],
        ["b", new Uint8Array(mib).fill(2)]
      ])
      fill(mount)
      child.kill("SIGTERM")
      const code = yield* Child.exitOf(child)
      expect(code, output()).not.toBe(0)
      expect(output()).not.toContain("data flushed")
      expect(output()).toContain(`DATA LOST: ${3 * mib} bytes of 2 keys`)
      expect(output()).toContain(`"a": ${2 * mib} bytes`)
      expect(output()).toContain(`"b": ${mib} bytes`)
    })
  )
})

describe("partd-server --flush-after-ms", () => {
  it.live("acknowledged appends reach the directory while the server runs, so kill -9 keeps them", () =>
    Effect.gen(function* () {
      const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-hold-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(base, { recursive: true, force: true })))
      const dir = nodePath.join(base, "data")
      const { child, address } = yield* startServer([
        "--listen",
        `unix:${nodePath.join(base, "s.sock")}`,
        "--dir",
        dir,
        "--flush-after-ms",
        "200"
      ])
      yield* appendAll(address, [["k", new TextEncoder().encode("kept")]])
      yield* Effect.sleep("600 millis")
      child.kill("SIGKILL")
      yield* Child.exitOf(child)
      expect(fs.readFileSync(nodePath.join(dir, "k"), "utf8")).toBe("kept")
    })
  )
})
