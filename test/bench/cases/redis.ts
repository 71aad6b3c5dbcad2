/**
 * Benchmark rows for @partd/backend-redis: the store on a redis-server the
 * benchmark starts itself (persistence off, loopback), next to
 * `redis-benchmark -P 64` running `APPEND` with the same value size on the
 * same number of keys, against its own fresh server, in the same run. Python
 * partd has no Redis store, so the bar is against redis-benchmark: at least
 * half its ops/s. redis-benchmark pipelines its commands, so the bar is on the
 * pipelined store; the plain row shows what waiting for every answer costs.
 * The cluster rows run on a 3-master Redis Cluster the benchmark starts
 * (no replicas), next to `redis-benchmark --cluster` on a cluster of its own,
 * where `{tag}` in the key sends each client's commands to one master.
 */
import { spawnSync } from "node:child_process"
import { Redis } from "@partd/backend-redis"
import { Pipelined, Store } from "@partd/core"
import * as RedisServer from "@partd/test/RedisServer"
import type { Workload } from "@partd/test/Workload"
import { Effect, Layer } from "effect"
import type { BenchCase, Reference, ReferenceMeasurement } from "./model.ts"

const PIPELINE = 64

const redisBenchmark: Reference = {
  name: `redis-benchmark -P ${PIPELINE} APPEND (50 clients, same value size and key count)`,
  unavailable: () =>
    RedisServer.hasBinary("redis-benchmark") && RedisServer.hasBinary("redis-server")
      ? undefined
      : "redis-benchmark not installed (apt-get install redis-tools redis-server)",
  run: (workload: Workload): Promise<ReferenceMeasurement> =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* RedisServer.start()
          const requests = workload.keys * workload.calls
          const run = spawnSync(
            "redis-benchmark",
            [
              "-h",
              server.host,
              "-p",
              String(server.port),
              "-P",
              String(PIPELINE),
              "-n",
              String(requests),
              "-r",
              String(workload.keys),
              "--csv",
              "APPEND",
              "key:__rand_int__",
              "x".repeat(workload.valueBytes)
            ],
            { encoding: "utf8", maxBuffer: 16 * 1024 * 1024 }
          )
          if (run.status !== 0) return yield* Effect.die(new Error(`redis-benchmark failed: ${run.stderr}`))
          // --csv: a header line, then "APPEND …","<rps>",…
          const line = run.stdout.trim().split("\n").pop() ?? ""
          const rps = Number(line.split('","')[1])
          if (!Number.isFinite(rps)) return yield* Effect.die(new Error(`unreadable redis-benchmark output: ${line}`))
          return { opsPerSecond: rps, appendMBps: (rps * workload.valueBytes) / 1e6 }
        })
      )
    )
}

const redisBenchmarkCluster: Reference = {
  name: `redis-benchmark --cluster -P ${PIPELINE} APPEND (3 masters, 50 clients, same value size and key count)`,
  unavailable: redisBenchmark.unavailable,
  run: (workload: Workload): Promise<ReferenceMeasurement> =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const cluster = yield* RedisServer.cluster(3)
          const [node] = cluster.nodes
          const run = spawnSync(
            "redis-benchmark",
            [
              "--cluster",
              "-h",
              node!.host,
              "-p",
              String(node!.port),
              "-P",
              String(PIPELINE),
              "-n",
              String(workload.keys * workload.calls),
              "-r",
              String(workload.keys),
              "--csv",
              "APPEND",
              "key:{tag}:__rand_int__",
              "x".repeat(workload.valueBytes)
            ],
            { encoding: "utf8", maxBuffer: 16 * 1024 * 1024 }
          )
          if (run.status !== 0) return yield* Effect.die(new Error(`redis-benchmark --cluster failed: ${run.stderr}`))
          const line = run.stdout.trim().split("\n").pop() ?? ""
          const rps = Number(line.split('","')[1])
          if (!Number.isFinite(rps)) return yield* Effect.die(new Error(`unreadable redis-benchmark output: ${line}`))
          return { opsPerSecond: rps, appendMBps: (rps * workload.valueBytes) / 1e6 }
        })
      )
    )
}

/** The store on a 3-master cluster of its own, started and stopped with the Layer. */
const onOwnCluster = Layer.effect(
  Store.Store,
  Effect.gen(function* () {
    const cluster = yield* RedisServer.cluster(3)
    return yield* Redis.makeCluster({ nodes: cluster.nodes, prefix: "bench" })
  })
)

/** The store on a redis-server of its own, started and stopped with the Layer. */
const onOwnServer = Layer.effect(
  Store.Store,
  Effect.gen(function* () {
    const server = yield* RedisServer.start()
    return yield* Redis.makeServer({ port: server.port, prefix: "bench" })
  })
)

/** Appends on their way at once in the pipelined row. */
const PENDING = 4

export const redisCases: ReadonlyArray<BenchCase> = [
  {
    // Every append waits for Redis's answer before the next call is encoded.
    name: "Redis",
    layer: () => onOwnServer,
    workloads: ["W1", "W2"],
    reference: redisBenchmark
  },
  {
    // redis-benchmark -P 64 sends 64 commands before reading an answer: the
    // store's counterpart is a pipelined store, and this row carries the bar.
    name: `Pipelined(Redis), ${PENDING} in flight`,
    layer: () => Pipelined.layer({ maxPending: PENDING }).pipe(Layer.provide(onOwnServer)),
    workloads: ["W1", "W2"],
    reference: redisBenchmark,
    bars: [
      { workload: "W1", metric: "appendMBps", atLeastTimesReference: 0.5 },
      { workload: "W2", metric: "appendMBps", atLeastTimesReference: 0.5 }
    ]
  },
  {
    // One script per master per call, sent to the three at once.
    name: "Redis Cluster (3 masters)",
    layer: () => onOwnCluster,
    workloads: ["W1", "W2"],
    reference: redisBenchmarkCluster
  },
  {
    name: `Pipelined(Redis Cluster (3 masters)), ${PENDING} in flight`,
    layer: () => Pipelined.layer({ maxPending: PENDING }).pipe(Layer.provide(onOwnCluster)),
    workloads: ["W1", "W2"],
    reference: redisBenchmarkCluster
  }
]
