/**
 * Benchmark rows for Client and Server: a Client appending to a Server over
 * Buffer(Dict, File), against partd-py's zmq `Client` of a `Server` over the
 * same store (`serve(...)` in partd_bench.py).
 *
 * As on the Python side, where partd's Server runs in a thread of the
 * benchmark's process, the barred row runs the server in the benchmark's
 * process, over a Unix socket. The second row runs it as a separate
 * `partd-server` process, as a deployment would, for information: one
 * process serving the warm-up pass and the measured pass, as a long-running
 * server serves a shuffle's calls. The TCP rows measure what crossing
 * machines costs, with such a process on TCP 127.0.0.1: plain, then TLS
 * with a token (issue 19: within 1.5× of plain).
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import type * as Net from "node:net"
import * as os from "node:os"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"
import { File } from "@partd/backend-file"
import { Buffer, Client, Dict, Server, Store } from "@partd/core"
import * as Certificates from "@partd/test/Certificates"
import { Effect, Layer, Redacted } from "effect"
import type { BenchCase } from "./model.ts"

// partd.Buffer's default available_memory, so that both sides do the same work.
const availableMemory = 1e9
const python = "serve(partd.Buffer(partd.Dict(), partd.File(tmpdir)))"
const serverMain = nodePath.resolve(
  nodePath.dirname(fileURLToPath(import.meta.url)),
  "../../../packages/backend-file/src/partd-server.ts"
)

/** The `partd-server` processes of this benchmark process, by how they were started: their addresses. */
const servers = new Map<string, Promise<string>>()

/**
 * A `partd-server` child process, on a Unix socket in a directory of its own
 * unless `listen` and `args` say otherwise, started once per benchmark
 * process and shared by the warm-up pass and the measured pass (each drops
 * what it stored), as a deployment's long-running server is: its code is as
 * warm as an in-process server's after the warm-up pass, not compiled afresh
 * for the measured one. It is stopped (SIGTERM, which flushes and releases
 * everything) and its directory removed when this process has nothing left
 * to do.
 */
const sharedServer = (
  listen: "unix" | "tcp",
  args: ReadonlyArray<string> = [],
  env: Record<string, string> = {}
): Effect.Effect<string, Store.StoreError> => {
  const key = JSON.stringify([listen, args, env])
  let address = servers.get(key)
  if (address === undefined) {
    address = startServer(listen, args, env)
    servers.set(key, address)
  }
  const started = address
  return Effect.tryPromise({
    try: () => started,
    catch: (cause) =>
      new Store.StoreError({ reason: "Unavailable", method: "bench", description: String(cause), cause })
  })
}

const startServer = (listen: "unix" | "tcp", args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<string>((resolve, reject) => {
    const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-bench-server-"))
    const child = spawn(
      process.execPath,
      [
        // The workspace's packages from their sources, not a dist/ build.
        "--conditions=@partd/source",
        serverMain,
        "--listen",
        listen === "unix" ? `unix:${nodePath.join(dir, "server.sock")}` : "127.0.0.1:0",
        "--dir",
        nodePath.join(dir, "data"),
        "--memory",
        String(availableMemory),
        ...args
      ],
      { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } }
    )
    let out = ""
    child.stdout.on("data", (d: Uint8Array) => {
      out += String(d)
      const listening = /listening on (\S+)/.exec(out)
      if (listening === null) return
      out = ""
      // Running, it keeps nothing of this process alive; stopped when this process is done.
      child.unref()
      ;(child.stdout as Net.Socket).unref()
      resolve(listening[1]!)
    })
    child.on("exit", (code) => {
      fs.rmSync(dir, { recursive: true, force: true })
      reject(new Error(`partd-server exited with ${code}`))
    })
    process.once("beforeExit", () => {
      child.ref()
      ;(child.stdout as Net.Socket).ref()
      child.kill("SIGTERM")
    })
    // An explicit exit skips beforeExit: the server still stops (its directory stays).
    process.once("exit", () => child.kill("SIGTERM"))
  })

/**
 * A Client of a shared `partd-server` process on TCP 127.0.0.1, plain or
 * TLS with a token: as across machines, the client's and the server's TLS
 * work run in two processes, not on one event loop.
 */
const overTcp = (secured: boolean) => {
  const certs = secured ? Certificates.make() : undefined
  const secret = "bench-token"
  const server =
    certs === undefined
      ? sharedServer("tcp")
      : sharedServer("tcp", ["--tls-cert", certs.files.serverCert, "--tls-key", certs.files.serverKey], {
          PARTD_TOKEN: secret
        })
  return Layer.unwrap(
    Effect.map(server, (address) =>
      Client.layer({
        address,
        ...(certs === undefined ? {} : { token: Redacted.make(secret), tls: { ca: certs.ca } })
      })
    )
  )
}

export const serverCases: ReadonlyArray<BenchCase> = [
  {
    name: "Client→Server(Buffer(Dict, File))",
    layer: (dir) => {
      const address = { path: nodePath.join(dir, "server.sock") }
      const served = Server.layer({ address }).pipe(
        Layer.provide(Buffer.layer({ fast: Dict.layer, slow: File.layer({ dir }), availableMemory }))
      )
      return Client.layer({ address }).pipe(Layer.provide(served))
    },
    python,
    workloads: ["W1", "W2"],
    bars: [
      { workload: "W1", metric: "appendMBps", atLeastTimesPartd: 5 },
      { workload: "W2", metric: "appendMBps", atLeastTimesPartd: 5 }
    ]
  },
  {
    name: "Client→partd-server process",
    layer: () => Layer.unwrap(Effect.map(sharedServer("unix"), (address) => Client.layer({ address }))),
    python,
    workloads: ["W1", "W2"]
  },
  {
    name: "Client→partd-server process over TCP",
    layer: () => overTcp(false),
    python,
    workloads: ["W1", "W2"]
  },
  {
    name: "Client→partd-server process over TLS with a token",
    layer: () => overTcp(true),
    python,
    workloads: ["W1", "W2"]
  }
]
