/**
 * Benchmark rows for Client and Server: a Client appending to a Server over
 * Buffer(Dict, File), against partd-py's zmq `Client` of a `Server` over the
 * same store (`serve(...)` in partd_bench.py).
 *
 * As on the Python side, where partd's Server runs in a thread of the
 * benchmark's process, the barred row runs the server in the benchmark's
 * process, over a Unix socket. The second row runs it as a separate
 * `partd-server` process, as a deployment would, for information. The TCP
 * rows measure what crossing machines costs, with that process on TCP
 * 127.0.0.1: plain, then TLS with a token (issue 19: within 1.5× of plain).
 */
import { spawn } from "node:child_process"
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

/**
 * A `partd-server` child process at `dir` (on a Unix socket unless `listen`
 * and `args` say otherwise); SIGTERM when the scope closes.
 */
const serverProcess = (
  dir: string,
  listen = `unix:${nodePath.join(dir, "server.sock")}`,
  args: ReadonlyArray<string> = [],
  env: Record<string, string> = {}
) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly address: string; readonly stop: Effect.Effect<void> }, Store.StoreError>((resume) => {
      const child = spawn(
        process.execPath,
        [
          // The workspace's packages from their sources, not a dist/ build.
          "--conditions=@partd/source",
          serverMain,
          "--listen",
          listen,
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
        if (listening !== null) {
          resume(
            Effect.succeed({
              address: listening[1]!,
              stop: Effect.callback<void>((done) => {
                child.on("exit", () => done(Effect.void))
                child.kill("SIGTERM")
              })
            })
          )
        }
      })
      child.on("exit", (code) => {
        resume(
          Effect.fail(
            new Store.StoreError({
              reason: "Unavailable",
              method: "bench",
              description: `partd-server exited with ${code}`
            })
          )
        )
      })
    }),
    (server) => server.stop
  )

/**
 * A Client of a `partd-server` process on TCP 127.0.0.1, plain or TLS with a
 * token: as across machines, the client's and the server's TLS work run in
 * two processes, not on one event loop.
 */
const overTcp = (dir: string, secured: boolean) => {
  const certs = secured ? Certificates.make() : undefined
  const secret = "bench-token"
  const server =
    certs === undefined
      ? serverProcess(dir, "127.0.0.1:0")
      : serverProcess(dir, "127.0.0.1:0", ["--tls-cert", certs.files.serverCert, "--tls-key", certs.files.serverKey], {
          PARTD_TOKEN: secret
        })
  return Layer.unwrap(
    Effect.map(server, (server) =>
      Client.layer({
        address: server.address,
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
    layer: (dir) => Layer.unwrap(Effect.map(serverProcess(dir), (server) => Client.layer({ address: server.address }))),
    python,
    workloads: ["W1", "W2"]
  },
  {
    name: "Client→partd-server process over TCP",
    layer: (dir) => overTcp(dir, false),
    python,
    workloads: ["W1", "W2"]
  },
  {
    name: "Client→partd-server process over TLS with a token",
    layer: (dir) => overTcp(dir, true),
    python,
    workloads: ["W1", "W2"]
  }
]
