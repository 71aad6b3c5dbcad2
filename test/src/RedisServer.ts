/**
 * Throwaway Redis servers for tests and the benchmark: `redis-server` on a
 * free loopback port with persistence off, in a temporary directory, stopped
 * (and the directory removed) when the scope closes. `cluster` starts masters
 * with `cluster-enabled yes` (and replicas when asked) and joins them with
 * `redis-cli --cluster create`; `awaitReplicas` waits for a master's replicas
 * to be in sync.
 *
 * A missing binary is a failure whose message says how to install it: tests
 * that need Redis never skip.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Scope } from "effect"

export const HOST = "127.0.0.1"

const INSTALL_HINT = "install it with `sudo apt-get install redis-server redis-tools` (Debian/Ubuntu)"

/** Throws with an install hint when `binary` cannot be run. */
export const requireBinary = (binary: "redis-server" | "redis-cli" | "redis-benchmark"): void => {
  const probe = spawnSync(binary, ["--version"], { stdio: "ignore" })
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      `${binary} is not installed or does not run (${probe.error?.message ?? `exit ${probe.status}`}): ${INSTALL_HINT}`
    )
  }
}

/** Whether `binary` runs here (the benchmark's optional reference). */
export const hasBinary = (binary: string): boolean => spawnSync(binary, ["--version"], { stdio: "ignore" }).status === 0

/** A port that was free a moment ago on the loopback interface. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, HOST, () => {
      const address = server.address()
      server.close(() =>
        typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))
      )
    })
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Sends one inline command and returns the raw reply text once it is whole
 * (a simple string, an error, or a bulk string).
 */
export const command = (port: number, line: string, timeoutMs = 2000): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = net.connect(port, HOST)
    let data = ""
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no reply to ${line} from port ${port}`))
    }, timeoutMs)
    const finish = (error: Error | undefined, reply?: string) => {
      clearTimeout(timer)
      socket.destroy()
      if (error !== undefined) reject(error)
      else resolve(reply!)
    }
    socket.on("error", (error) => finish(error))
    socket.on("connect", () => socket.write(`${line}\r\n`))
    socket.on("data", (chunk) => {
      data += chunk.toString("latin1")
      const end = data.indexOf("\r\n")
      if (end === -1) return
      if (data[0] === "$") {
        const length = Number(data.slice(1, end))
        if (length < 0) return finish(undefined, "")
        if (data.length >= end + 2 + length + 2) finish(undefined, data.slice(end + 2, end + 2 + length))
      } else if (data[0] === "-") {
        finish(new Error(data.slice(1, end)))
      } else {
        finish(undefined, data.slice(1, end))
      }
    })
  })

/** A running throwaway server. */
export interface Server {
  readonly host: string
  readonly port: number
  /** Extra `redis-server` arguments it was started with. */
  readonly args: ReadonlyArray<string>
  /** Kills the server (SIGKILL: no goodbye to clients) and starts it again on the same port, empty. */
  readonly restart: Effect.Effect<void>
  /** Kills the server; a later `restart` brings it back. */
  readonly kill: Effect.Effect<void>
}

interface Process {
  child: ChildProcess | undefined
  output: string
}

const spawnServer = async (
  port: number,
  dir: string,
  args: ReadonlyArray<string>,
  auth: string | undefined
): Promise<Process> => {
  const child = spawn(
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      HOST,
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--daemonize",
      "no",
      "--loglevel",
      "warning",
      // a replica syncs at once instead of after the default 5 s wait for more replicas
      "--repl-diskless-sync-delay",
      "0",
      ...args
    ],
    { stdio: ["ignore", "pipe", "pipe"] }
  )
  const process_: Process = { child, output: "" }
  const collect = (chunk: Buffer) => {
    process_.output = (process_.output + chunk.toString()).slice(-4000)
  }
  child.stdout?.on("data", collect)
  child.stderr?.on("data", collect)
  let exited = false
  child.on("exit", () => {
    exited = true
  })
  const deadline = Date.now() + 10_000
  for (;;) {
    if (exited) throw new Error(`redis-server on port ${port} exited: ${process_.output.trim()}`)
    try {
      const reply = await command(port, auth === undefined ? "PING" : `AUTH ${auth}`, 500)
      if (reply === "PONG" || reply === "OK") return process_
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`redis-server on port ${port} did not answer within 10 s: ${process_.output.trim()}`)
    }
    await sleep(20)
  }
}

const killProcess = (p: Process): Promise<void> =>
  new Promise((resolve) => {
    const child = p.child
    p.child = undefined
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGKILL")
  })

/** Starts a server on a free port (retrying on a port taken in the meantime). */
const startOn = async (
  args: ReadonlyArray<string>,
  auth: string | undefined,
  port?: number
): Promise<{ port: number; dir: string; process: Process }> => {
  requireBinary("redis-server")
  for (let attempt = 0; ; attempt++) {
    const p = port ?? (await freePort())
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "partd-redis-"))
    try {
      return { port: p, dir, process: await spawnServer(p, dir, args, auth) }
    } catch (error) {
      fs.rmSync(dir, { recursive: true, force: true })
      if (attempt >= 4 || port !== undefined || !String(error).includes("in use")) throw error
    }
  }
}

/**
 * Starts a throwaway `redis-server` in the scope. `args` are extra server
 * arguments (`["--requirepass", "secret"]`); `auth` is what the readiness
 * probe sends with `AUTH` when the server requires it.
 */
export const start = (
  options: { readonly args?: ReadonlyArray<string>; readonly auth?: string } = {}
): Effect.Effect<Server, never, Scope.Scope> =>
  Effect.gen(function* () {
    const args = options.args ?? []
    const started = yield* Effect.acquireRelease(
      Effect.promise(() => startOn(args, options.auth)),
      (s) =>
        Effect.promise(async () => {
          await killProcess(s.process)
          fs.rmSync(s.dir, { recursive: true, force: true })
        })
    )
    const kill = Effect.promise(() => killProcess(started.process))
    return {
      host: HOST,
      port: started.port,
      args,
      kill,
      restart: Effect.andThen(
        kill,
        Effect.promise(async () => {
          const again = await spawnServer(started.port, started.dir, args, options.auth)
          started.process.child = again.child
          started.process.output = again.output
        })
      )
    } satisfies Server
  })

/** A running throwaway cluster. */
export interface Cluster {
  /** Every node, masters first (as `redis-cli --cluster create` assigned them at the start). */
  readonly nodes: ReadonlyArray<{ readonly host: string; readonly port: number }>
  /** The nodes' servers, in the order of `nodes`: kill or restart one to fail it over. */
  readonly servers: ReadonlyArray<Server>
}

/** Resolves once the server on `port` reports `n` replicas online, or rejects after `timeoutMs`. */
const replicasOnline = async (port: number, n: number, timeoutMs: number): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const info = await command(port, "INFO replication").catch(() => "")
    const online = info.split("\n").filter((line) => /^slave\d+:.*state=online/.test(line)).length
    if (online >= n) return
    if (Date.now() > deadline) throw new Error(`port ${port} has ${online} of ${n} replicas online: ${info}`)
    await sleep(50)
  }
}

/** Waits (up to 20 s) until the server on `port` has `n` replicas online. */
export const awaitReplicas = (port: number, n: number, timeoutMs = 20_000): Effect.Effect<void> =>
  Effect.promise(() => replicasOnline(port, n, timeoutMs))

/**
 * Starts `masters` cluster-enabled servers, and `replicas` more per master,
 * and joins them with `redis-cli --cluster create`
 * (`--cluster-node-timeout 2000`); returns once every node reports
 * `cluster_state:ok` and every master has its replicas online.
 */
export const cluster = (
  masters = 3,
  options: { readonly replicas?: number } = {}
): Effect.Effect<Cluster, never, Scope.Scope> =>
  Effect.gen(function* () {
    requireBinary("redis-cli")
    const replicas = options.replicas ?? 0
    const total = masters * (1 + replicas)
    const nodes: Array<{ host: string; port: number }> = []
    const servers: Array<Server> = []
    for (let i = 0; i < total; i++) {
      // The cluster bus gets its own free port (by default it is port + 10000, which may be taken).
      const bus = yield* Effect.promise(freePort)
      const server = yield* start({
        args: [
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          "nodes.conf",
          "--cluster-node-timeout",
          "2000",
          "--cluster-port",
          String(bus)
        ]
      })
      nodes.push({ host: server.host, port: server.port })
      servers.push(server)
    }
    yield* Effect.promise(async () => {
      const create = spawnSync(
        "redis-cli",
        [
          "--cluster",
          "create",
          ...nodes.map((n) => `${n.host}:${n.port}`),
          "--cluster-replicas",
          String(replicas),
          "--cluster-yes"
        ],
        { encoding: "utf8", timeout: 30_000 }
      )
      if (create.status !== 0) {
        throw new Error(`redis-cli --cluster create failed: ${create.stdout}\n${create.stderr}`)
      }
      const deadline = Date.now() + 20_000
      for (;;) {
        const states = await Promise.all(nodes.map((n) => command(n.port, "CLUSTER INFO").catch(() => "")))
        if (states.every((s) => s.includes("cluster_state:ok") && s.includes(`cluster_known_nodes:${total}`))) break
        if (Date.now() > deadline) throw new Error(`the cluster did not become ok: ${states.join(" | ")}`)
        await sleep(50)
      }
      if (replicas > 0) await Promise.all(nodes.slice(0, masters).map((n) => replicasOnline(n.port, replicas, 20_000)))
    })
    return { nodes, servers }
  })

/**
 * For a test file that shares one server (or cluster) between its cases:
 * starts it in `beforeAll`, stops it in `afterAll`, and returns a getter.
 */
export const shared = <A>(
  hooks: {
    readonly beforeAll: (f: () => Promise<void>, timeout?: number) => void
    readonly afterAll: (f: () => Promise<void>) => void
  },
  acquire: Effect.Effect<A, never, Scope.Scope>
): (() => A) => {
  const scope = Scope.makeUnsafe()
  let value: A | undefined
  hooks.beforeAll(async () => {
    value = await Effect.runPromise(Scope.provide(scope)(acquire))
  }, 60_000)
  hooks.afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  return () => {
    if (value === undefined) throw new Error("the shared Redis server is not started yet")
    return value
  }
}
