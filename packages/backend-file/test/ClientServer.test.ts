/**
 * Client→Server over a File store: the conformance suite, and what the wire
 * adds to stream, keys and size — pieces that move at the reader's pace (the
 * server pulls the store only when asked), a cursor per stream closed with
 * the reader, key listings in parts, the append's call id in its frame (also
 * for an append sent in parts), and a typed `Protocol` error for every
 * malformed cursor, size or call id request.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as nodePath from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { File } from "@partd/backend-file"
import { Client, Server, Store, Wire } from "@partd/core"
import * as Handshake from "@partd/core/Handshake"
import * as ServerStream from "@partd/core/ServerStream"
import { suite } from "@partd/test/StoreSuite"
import { Context, Effect, Exit, Layer, Scope, Stream } from "effect"
import { bytes, tempDir, text } from "./Helpers.ts"

let socketCounter = 0
const socketPath = (): string => nodePath.join(os.tmpdir(), `partd-fcs-${process.pid}-${socketCounter++}.sock`)

suite(
  "Client→Server(File) over a Unix socket",
  Layer.unwrap(
    Effect.sync(() => {
      const path = socketPath()
      const served = Server.layer({ address: { path } }).pipe(Layer.provide(File.layer()))
      return Client.layer({ address: { path } }).pipe(Layer.provide(served))
    })
  ),
  { propertyRuns: 10 }
)

const join = (pieces: ReadonlyArray<Uint8Array>): Uint8Array => Buffer.concat(pieces)

const pattern = (start: number, length: number): Uint8Array => {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = (start + i) % 251
  return out
}

const tempBase = tempDir("partd-fcs-")

/** How many of this process's file descriptors point into `dir`. */
const openFilesUnder = (dir: string): number =>
  fs.readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`)
    } catch {
      return false
    }
  }).length

/** Counts what the server pulls from the served store's streams. */
interface Counted {
  pulledPieces: number
  pulledBytes: number
}

/** A File store at `dir`, served in a scope of its own, wrapped so that its stream pulls are counted. */
const serve = (dir: string, options: Partial<Server.Options> = {}) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const file = Context.get(yield* Layer.buildWithScope(File.layer({ path: dir }), scope), Store.Store)
    const counted: Counted = { pulledPieces: 0, pulledBytes: 0 }
    const store: Store.Shape = {
      ...file,
      stream: (key, streamOptions) =>
        file.stream(key, streamOptions).pipe(
          Stream.tap((piece) =>
            Effect.sync(() => {
              counted.pulledPieces++
              counted.pulledBytes += piece.byteLength
            })
          )
        )
    }
    const address = { path: socketPath() }
    const info = yield* Server.make(store, { address, ...options }).pipe(Scope.provide(scope))
    return { address: info.address, counted, close: Scope.close(scope, Exit.void) }
  })

const openClient = (address: Server.Address, options: Omit<Client.Options, "address"> = {}) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const store = yield* Client.make({ address, ...options }).pipe(Scope.provide(scope))
    return { store, close: Scope.close(scope, Exit.void) }
  })

describe("Client→Server stream", () => {
  it.live("pieces equal get, at most chunkBytes, and capped to what fits a frame", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const server = yield* serve(dir, { maxFrameBytes: 256 * 1024 })
      const { store } = yield* openClient(server.address, { maxFrameBytes: 256 * 1024 })
      // 2 MB, more than a reply of get could carry under this frame limit.
      const n = 2_000_003
      for (let at = 0; at < n; at += 150_000) yield* store.append({ big: pattern(at, Math.min(150_000, n - at)) })
      yield* store.append({ small: bytes("small") })
      const big = pattern(0, n)
      for (const chunkBytes of [1000, 65536, 1024 * 1024]) {
        const pieces = yield* Stream.runCollect(store.stream("big", { chunkBytes }))
        expect(pieces.every((p) => p.byteLength >= 1 && p.byteLength <= chunkBytes)).toBe(true)
        expect(pieces.every((p) => p.byteLength <= 256 * 1024 - Wire.envelopeHeadroomBytes)).toBe(true)
        expect(Buffer.from(join(pieces)).equals(Buffer.from(big))).toBe(true)
      }
      expect(text(join(yield* Stream.runCollect(store.stream("small"))))).toBe("small")
      expect(yield* Stream.runCollect(store.stream("missing"))).toEqual([])
      yield* server.close
    })
  )

  it.live("a slow reader makes the server pull one piece at a time, not the value; the value is fixed at start", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const server = yield* serve(dir)
      const { store } = yield* openClient(server.address)
      const other = yield* openClient(server.address)
      const mib = 1024 * 1024
      for (let i = 0; i < 16; i++) yield* store.append({ big: pattern(i * 65536, 65536) })
      const pull = yield* Stream.toPull(store.stream("big", { chunkBytes: 65536 }))
      const got: Array<Uint8Array> = [...(yield* pull)]
      yield* other.store.append({ big: bytes("after the start") })
      // The reader dawdles: the server must not read ahead of it.
      yield* Effect.sleep("50 millis")
      expect(server.counted.pulledPieces).toBeLessThanOrEqual(got.length + 1)
      got.push(...(yield* pull))
      yield* Effect.sleep("50 millis")
      expect(server.counted.pulledPieces).toBeLessThanOrEqual(got.length + 1)
      expect(server.counted.pulledBytes).toBeLessThan(mib)
      for (;;) {
        const exit = yield* Effect.exit(pull)
        if (Exit.isFailure(exit)) break
        got.push(...exit.value)
      }
      expect(Buffer.from(join(got)).equals(Buffer.from(pattern(0, mib)))).toBe(true)
      yield* server.close
    }).pipe(Effect.scoped)
  )

  it.live("a reader that stops early closes its cursor: the server's file is closed", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const server = yield* serve(dir)
      const { store } = yield* openClient(server.address)
      yield* store.append({ big: pattern(0, 100_000) })
      const before = openFilesUnder(dir)
      const first = yield* Stream.runCollect(store.stream("big", { chunkBytes: 1000 }).pipe(Stream.take(3)))
      expect(first.length).toBe(3)
      // The Close request is answered before the stream's scope finishes closing.
      yield* Effect.sleep("20 millis")
      expect(openFilesUnder(dir)).toBe(before)
      // Many streams opened and abandoned do not pile up on the server.
      for (let i = 0; i < 300; i++)
        yield* Stream.runCollect(store.stream("big", { chunkBytes: 10 }).pipe(Stream.take(1)))
      yield* Effect.sleep("20 millis")
      expect(openFilesUnder(dir)).toBe(before)
      yield* server.close
    })
  )

  it.live(`a connection holds at most ${ServerStream.maxCursors} open streams; one more is a Protocol error`, () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const server = yield* serve(dir)
      const { store } = yield* openClient(server.address)
      yield* store.append({ big: pattern(0, 10_000) })
      const pulls = []
      for (let i = 0; i < ServerStream.maxCursors; i++) {
        const pull = yield* Stream.toPull(store.stream("big", { chunkBytes: 100 }))
        yield* pull
        pulls.push(pull)
      }
      const extra = yield* Stream.toPull(store.stream("big", { chunkBytes: 100 }))
      expect(((yield* Effect.flip(extra)) as Store.StoreError).reason).toBe("Protocol")
      // The open ones still read.
      expect((yield* pulls[0]!)[0]!.byteLength).toBe(100)
      yield* server.close
    }).pipe(Effect.scoped)
  )

  it.live("a connection lost mid-stream fails the stream with Io, typed", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const server = yield* serve(dir)
      const { store } = yield* openClient(server.address)
      yield* store.append({ big: pattern(0, 100_000) })
      const pull = yield* Stream.toPull(store.stream("big", { chunkBytes: 1000 }))
      yield* pull
      yield* server.close
      const error = yield* Effect.flip(pull)
      expect(error).toBeInstanceOf(Store.StoreError)
      expect(["Io", "Unavailable"]).toContain((error as Store.StoreError).reason)
    }).pipe(Effect.scoped)
  )
})

describe("Client→Server keys and size", () => {
  it.live(
    "keys come in parts, each key once; size equals get through the server",
    () =>
      Effect.gen(function* () {
        const dir = nodePath.join(yield* tempBase, "store")
        const server = yield* serve(dir)
        const { store } = yield* openClient(server.address)
        const n = 20_000
        const keys = Array.from({ length: n }, (_, i) => `k${i}`)
        yield* store.append(keys.map((key, i) => [key, pattern(i, 1 + (i % 7))] as const))
        yield* store.append([
          [["t", "u"], bytes("tuple")],
          ["a:b é", bytes("escaped")]
        ])
        yield* store.delete(["k0"])
        const listed = yield* Stream.runCollect(store.keys)
        expect(listed.length).toBe(n + 1)
        expect(new Set(listed)).toEqual(new Set([...keys.slice(1), "t/u", "a:b é"]))
        const probe = ["k0", "k1", "k6", "t/u", "a:b é", "missing"]
        const sizes = yield* store.size(probe)
        expect(sizes).toEqual((yield* store.get(probe)).map((v) => v.byteLength))
        expect(sizes).toEqual([0, 2, 7, 5, 7, 0])
        // More keys than one request carries go in several Size requests.
        const many = yield* openClient(server.address, { maxChunksPerFrame: 1000 })
        expect(yield* many.store.size(keys.slice(0, 2500))).toEqual(
          keys.slice(0, 2500).map((_, i) => (i === 0 ? 0 : 1 + (i % 7)))
        )
        yield* server.close
      }),
    60_000
  )
})

describe("Client→Server append ids", () => {
  it.live("the id travels in the append frame: a repeat applies once, also for an append sent in parts", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const server = yield* serve(dir, { maxFrameBytes: 256 * 1024 })
      const { store } = yield* openClient(server.address, { maxFrameBytes: 256 * 1024 })
      yield* store.append({ a: bytes("1;") }, { id: "one" })
      yield* store.append({ a: bytes("1;") }, { id: "one" })
      const big = pattern(0, 100_000)
      // Five chunks of 100 kB: three parts under a 256 KiB frame.
      const parts = Array.from({ length: 5 }, () => ["b", big] as const)
      yield* store.append(parts, { id: "parts" })
      yield* store.append(parts, { id: "parts" })
      const [a] = yield* store.get(["a"])
      expect(text(a!)).toBe("1;")
      expect(yield* store.size(["b"])).toEqual([500_000])
      // Another client, another connection: the store remembers the ids.
      const other = yield* openClient(server.address)
      yield* other.store.append({ a: bytes("1;") }, { id: "one" })
      expect(text((yield* other.store.get(["a"]))[0]!)).toBe("1;")
      yield* server.close
    })
  )
})

/** Sends raw frames to the server; resolves with the replies to `count` requests. */
const rawExchange = (address: Server.Address, messages: ReadonlyArray<object>, count: number) =>
  Effect.callback<Array<Wire.Reply>, Error>((resume) => {
    const socket = net.createConnection("path" in address ? { path: address.path } : { port: address.port })
    const parser = Wire.makeParser()
    const replies: Array<Wire.Reply> = []
    socket.on("data", (chunk: Uint8Array) => {
      for (const message of parser.decode(chunk)) {
        // The server's greeting comes first (see Handshake).
        const reply = Wire.toReply(message)
        if (reply !== undefined) replies.push(reply)
      }
      if (replies.length >= count) {
        socket.destroy()
        resume(Effect.succeed(replies))
      }
    })
    socket.on("error", (error) => resume(Effect.fail(error)))
    socket.write(Handshake.clientHello())
    for (const message of messages) socket.write(Wire.encode(message))
    return Effect.sync(() => socket.destroy())
  })

describe("Client→Server malformed cursor, size and id requests", () => {
  it.live("each is answered with a typed Protocol error, and the connection goes on", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const server = yield* serve(dir)
      const bad = [
        { _tag: "Stream", id: 1, path: "k", chunkBytes: 0 },
        { _tag: "Stream", id: 2, path: 7, chunkBytes: 10 },
        { _tag: "Next", id: 3, cursor: 99 },
        { _tag: "Next", id: 4 },
        { _tag: "Close", id: 5, cursor: -1 },
        { _tag: "Size", id: 6, paths: "a\u0000b", count: 3 },
        { _tag: "Append", id: 7, paths: "a", values: [bytes("x")], call: "x".repeat(129) },
        { _tag: "Append", id: 8, paths: "a", values: [bytes("x")], call: 12 }
      ]
      const replies = yield* rawExchange(
        server.address,
        [...bad, { _tag: "Size", id: 9, paths: "a", count: 1 }],
        bad.length + 1
      )
      expect(replies.map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9])
      for (const reply of replies.slice(0, bad.length)) {
        expect(reply._tag).toBe("Failed")
        expect(Wire.decodeError((reply as { error: unknown }).error).reason).toBe("Protocol")
      }
      // Nothing of the bad appends was applied; the connection still answers.
      expect(replies[bad.length]).toEqual({ _tag: "Done", id: 9, sizes: [0] })
      yield* server.close
    })
  )
})
