/**
 * The server against hostile clients, and the client against a server that
 * stops answering, with real server processes:
 *
 * - a frame that claims 31 million empty chunks (under the default frame
 *   limit) is refused with a typed error, and the `partd-server` process
 *   lives on with the appends it had acknowledged;
 * - a bounded fuzz of frames crafted to amplify (huge chunk counts, lying
 *   lengths, replies never read, partial frames, parts never finished):
 *   the server's resident memory stays under a stated bound, and another
 *   client is served correctly throughout;
 * - a server paused with SIGSTOP: calls fail within `requestTimeout`, with
 *   `Io` when they were sent and `Unavailable` when they were not, and a
 *   call that was not sent when its caller stopped waiting is never
 *   applied, also after the server resumes.
 */
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Client, type Server, type Store, Wire } from "@partd/core"
import * as Handshake from "@partd/core/Handshake"
import * as Child from "@partd/test/Child"
import { Effect, Exit, Fiber, Schedule, Scope } from "effect"

const here = nodePath.dirname(fileURLToPath(import.meta.url))
const serverFixture = nodePath.join(here, "fixtures", "server.ts")
const serverMain = nodePath.resolve(here, "../../packages/backend-file/src/partd-server.ts")
const MiB = 1024 * 1024

/** A field of /proc/PID/status, in bytes (`VmRSS`, or `VmHWM` for the peak). */
const memoryOf = (pid: number, field: "VmRSS" | "VmHWM"): number => {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)
  return Number(kib![1]) * 1024
}

const alive = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null

const tempSocket = (name: string) => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), `partd-${name}-`))
  return { dir, path: nodePath.join(dir, "s.sock") }
}

// ---------------------------------------------------------------------------
// Crafted frames: the envelope written by hand, so that it may lie.
// ---------------------------------------------------------------------------

type Plain = string | number | boolean | { readonly [key: string]: Plain }

/** MessagePack for the few shapes an envelope needs (strings, uint32, booleans, small maps). */
const msgpack = (value: Plain): Array<number> => {
  if (typeof value === "boolean") return [value ? 0xc3 : 0xc2]
  if (typeof value === "number")
    return [0xce, (value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff]
  if (typeof value === "string") {
    const bytes = [...globalThis.Buffer.from(value)]
    return bytes.length < 32 ? [0xa0 | bytes.length, ...bytes] : [0xd9, bytes.length, ...bytes]
  }
  const entries = Object.entries(value)
  return [0x80 | entries.length, ...entries.flatMap(([k, v]) => [...msgpack(k), ...msgpack(v)])]
}

const u32le = (n: number): Uint8Array => {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, n, true)
  return out
}

/** A frame around raw envelope bytes and a raw tail. */
const rawFrame = (envelope: Uint8Array, tail: Uint8Array): Uint8Array =>
  new Uint8Array(
    globalThis.Buffer.concat([
      u32le(4 + envelope.byteLength + tail.byteLength),
      u32le(envelope.byteLength),
      envelope,
      tail
    ])
  )

/** An append frame whose chunk list claims `count` chunks, followed by `tail` (the table and bytes). */
const appendClaiming = (id: number, count: number, tail: Uint8Array, more = false): Uint8Array =>
  rawFrame(
    Uint8Array.from(
      msgpack({ _tag: "Append", id, paths: "", values: { "\u0001": count }, ...(more ? { more: true } : {}) })
    ),
    tail
  )

/** Writes `frames` on a fresh connection and collects the replies until the server closes it (or `waitMs`). */
const rawExchange = (path: string, frames: ReadonlyArray<Uint8Array>, waitMs: number) =>
  Effect.promise(
    () =>
      new Promise<{ readonly replies: Array<Wire.Reply>; readonly closed: boolean }>((resolve) => {
        const parser = Wire.makeParser()
        const replies: Array<Wire.Reply> = []
        const socket = net.createConnection({ path })
        const timer = setTimeout(() => {
          socket.destroy()
          resolve({ replies, closed: false })
        }, waitMs)
        socket.on("error", () => {})
        socket.on("data", (chunk: Uint8Array) => {
          for (const message of parser.decode(chunk)) {
            if ((message as { _tag?: unknown })._tag !== "Hello") replies.push(Wire.toReply(message)!)
          }
        })
        socket.on("close", () => {
          clearTimeout(timer)
          resolve({ replies, closed: true })
        })
        socket.write(Handshake.clientHello())
        for (const frame of frames) socket.write(frame)
      })
  )

const reasonOf = (reply: Wire.Reply | undefined) =>
  reply?._tag === "Failed" ? Wire.decodeError(reply.error).reason : reply?._tag

const openClient = (address: string, options: Omit<Client.Options, "address"> = {}) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const store = yield* Client.make({ address, ...options }).pipe(Scope.provide(scope))
    return { store, close: Scope.close(scope, Exit.void) }
  })

const text = (u: Uint8Array) => new TextDecoder().decode(u)
const bytes = (s: string) => new TextEncoder().encode(s)

describe("the server validates before it allocates", () => {
  it.live(
    "a 118 MiB frame claiming 31M empty chunks gets a Protocol error; partd-server lives on with what it acknowledged",
    () =>
      Effect.gen(function* () {
        const { dir, path } = tempSocket("oom")
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        // The default limits (128 MiB frames); a heap bound so that a server that builds an
        // object per chunk dies in seconds instead of after eating gigabytes.
        const { child } = yield* Child.start(
          ["--max-old-space-size=512", serverMain, "--listen", `unix:${path}`, "--dir", nodePath.join(dir, "data")],
          /listening on/
        )
        const address = `unix:${path}`
        const { store, close } = yield* openClient(address)
        yield* store.append({ acknowledged: bytes("held in the buffer") })

        const count = 31_000_000
        const attack = appendClaiming(7, count, new Uint8Array(4 * count))
        expect(attack.byteLength).toBeLessThan(128 * MiB)
        const { replies, closed } = yield* rawExchange(path, [attack], 30_000)

        expect(alive(child)).toBe(true)
        expect(closed).toBe(true)
        expect(replies.map((r) => [r.id, reasonOf(r)])).toEqual([[7, "Protocol"]])
        // What it had acknowledged is still there, and it serves on.
        expect(text((yield* store.get(["acknowledged"]))[0]!)).toBe("held in the buffer")
        yield* store.append({ after: bytes("fine") })
        expect(text((yield* store.get(["after"]))[0]!)).toBe("fine")
        yield* close
        // The frame itself is held until complete (118 MiB); nothing is built from its 31M entries.
        expect(memoryOf(child.pid!, "VmHWM")).toBeLessThan(400 * MiB)
      }),
    90_000
  )
})

/** The limits of the fuzzed server, and the bound on its resident memory they imply. */
const fuzzLimits = {
  maxFrameBytes: 4 * MiB,
  maxChunksPerFrame: 4096,
  maxQueuedBytes: 8 * MiB,
  maxUnreadBytes: 2 * MiB,
  maxAppendBytes: 8 * MiB
} satisfies Omit<Server.Options, "address">

/** A deterministic pseudo-random sequence (xorshift32), so that a failing run can be replayed. */
const random = (seed: number) => {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 0x1_0000_0000
  }
}

/** One hostile connection's frames: each kind built to make the server hold or build much from little. */
const hostileFrames = (kind: number, next: () => number): { frames: Array<Uint8Array>; read: boolean } => {
  const { maxFrameBytes, maxChunksPerFrame } = fuzzLimits
  switch (kind) {
    case 0: {
      // A chunk count near what the frame could hold, of empty chunks.
      const count = Math.floor((maxFrameBytes - 64) / 4)
      return { frames: [appendClaiming(1, count, new Uint8Array(4 * count))], read: true }
    }
    case 1: {
      // Lying lengths: a table that promises more bytes than follow.
      const table = new Uint8Array(4 * 100).fill(0xff)
      return { frames: [appendClaiming(1, 100, table)], read: true }
    }
    case 2: {
      // Never-read replies: gets of a 1 MiB value and appends of whole frames, as fast as it can
      // write (to a key the store refuses, so that the store itself does not grow).
      const get = Wire.encode({ _tag: "Get", id: 1, paths: "big", count: 1 })
      const append = Wire.encode({
        _tag: "Append",
        id: 2,
        paths: "../flood",
        values: [new Uint8Array(maxFrameBytes - 80 * 1024)]
      })
      return {
        frames: [...Array.from({ length: 40 }, () => get), ...Array.from({ length: 12 }, () => append)],
        read: false
      }
    }
    case 3: {
      // A partial frame: a header that announces a whole frame, then half of it, then silence.
      return { frames: [u32le(maxFrameBytes), new Uint8Array(maxFrameBytes / 2)], read: false }
    }
    case 4: {
      // Parts of an append of empty chunks that never sees its last part.
      const part = Wire.encode({
        _tag: "Append",
        id: 1,
        paths: Array.from({ length: maxChunksPerFrame }, () => "e").join("\u0000"),
        values: Array.from({ length: maxChunksPerFrame }, () => new Uint8Array(0)),
        more: true
      })
      return { frames: Array.from({ length: 40 }, () => part), read: true }
    }
    case 5: {
      // An envelope of 2^20 empty maps: 1 MiB that would decode to a million objects.
      const envelope = new Uint8Array(5 + (1 << 20)).fill(0x80)
      envelope.set([0xdd, 0x00, 0x10, 0x00, 0x00])
      return { frames: [rawFrame(envelope, new Uint8Array(0))], read: true }
    }
    default: {
      // A valid frame with some of its bytes flipped.
      const frame = Wire.encode({
        _tag: "Append",
        id: 3,
        paths: "x\u0000y",
        values: [new Uint8Array(1000), new Uint8Array(10)]
      })
      for (let i = 0; i < 8; i++) frame[Math.floor(next() * frame.byteLength)] = Math.floor(next() * 256)
      return { frames: [frame], read: true }
    }
  }
}

/** Runs one hostile connection for at most `ms`; never throws. */
const hostile = (path: string, kind: number, next: () => number, ms: number) =>
  Effect.promise(
    () =>
      new Promise<void>((resolve) => {
        const { frames, read } = hostileFrames(kind, next)
        const socket = net.createConnection({ path })
        const timer = setTimeout(() => socket.destroy(), ms)
        socket.on("error", () => {})
        socket.on("close", () => {
          clearTimeout(timer)
          resolve()
        })
        if (read) socket.on("data", () => {})
        else socket.pause()
        socket.write(Handshake.clientHello())
        for (const frame of frames) socket.write(frame)
      })
  )

describe("a fuzz of the server with frames crafted to amplify", () => {
  it.live(
    "the server's resident memory stays under its bound, and another client is served correctly throughout",
    () =>
      Effect.gen(function* () {
        const { dir, path } = tempSocket("fuzz")
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        // A bounded heap too: a server that kept what it should not would die of it.
        const { child } = yield* Child.start(
          ["--max-old-space-size=192", serverFixture, path, JSON.stringify(fuzzLimits)],
          /listening/
        )
        const address = `unix:${path}`
        const setup = yield* openClient(address)
        yield* setup.store.append({ big: new Uint8Array(MiB).fill(9) })
        yield* setup.close
        const baseline = memoryOf(child.pid!, "VmRSS")

        // Hostile connections, a few at a time, for a bounded count and time.
        const next = random(0x5eed)
        const connections = 48
        const concurrent = 6
        let peak = 0
        const sample = Effect.sync(() => {
          peak = Math.max(peak, memoryOf(child.pid!, "VmRSS"))
        })
        const attacks = Effect.forEach(
          Array.from({ length: connections }, (_, i) => i),
          (i) => Effect.andThen(hostile(path, i % 7, next, 1500), sample),
          { concurrency: concurrent, discard: true }
        )
        // Meanwhile a good client appends and reads back, and must see exactly what it wrote.
        const good = Effect.gen(function* () {
          const { store, close } = yield* openClient(address, { requestTimeout: "20 seconds" })
          let rounds = 0
          const startedAt = Date.now()
          while (Date.now() - startedAt < 8000) {
            yield* store.append({ good: bytes(`${rounds};`) })
            rounds++
            yield* sample
            yield* Effect.sleep(20)
          }
          const [value] = yield* store.get(["good"])
          yield* close
          return { value: text(value!), rounds }
        })
        const [, served] = yield* Effect.all([attacks, good], { concurrency: "unbounded" })

        expect(alive(child)).toBe(true)
        expect(served.value).toBe(Array.from({ length: served.rounds }, (_, r) => `${r};`).join(""))
        expect(served.rounds).toBeGreaterThan(10)
        // Per connection at most a frame being received, the queue (plus the frame that
        // crossed its limit), the unread replies (plus one) and an append's parts:
        // 4 + 8 + 4 + 2 + 4 + 8 = 30 MiB, for 6 hostile connections at once; and, since
        // resident memory also counts garbage not yet collected (the socket reads of
        // connections already closed), V8's 64 MiB allowance of external memory between
        // collections.
        const bound = baseline + concurrent * 30 * MiB + 64 * MiB
        const peakHWM = memoryOf(child.pid!, "VmHWM")
        const figures = `baseline ${(baseline / MiB).toFixed(0)} MiB, peak ${(Math.max(peak, peakHWM) / MiB).toFixed(0)} MiB`
        expect(peak, figures).toBeLessThan(bound)
        expect(peakHWM, figures).toBeLessThan(bound)
      }),
    90_000
  )
})

describe("Client: bounded waits, no ghost writes", () => {
  it.live(
    "with the server stopped, calls fail in time (Io if sent, Unavailable if not), and a call not sent is never applied",
    () =>
      Effect.gen(function* () {
        const { dir, path } = tempSocket("stop")
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const { child } = yield* Child.start(
          [serverMain, "--listen", `unix:${path}`, "--dir", nodePath.join(dir, "data"), "--store", "file"],
          /listening on/
        )
        const address = `unix:${path}`
        const { store, close } = yield* openClient(address, { requestTimeout: "1 second" })
        yield* store.append({ before: bytes("ok") })

        child.kill("SIGSTOP")
        // A guard, so that a client without a timeout fails this test instead of hanging it.
        const guarded = <A>(effect: Effect.Effect<A, Store.StoreError>) =>
          Effect.exit(Effect.timeout(effect, "6 seconds"))
        const descriptionOf = (exit: Exit.Exit<unknown, unknown>) => (Exit.isFailure(exit) ? String(exit.cause) : "")
        // A small append fits the socket's buffer: it is sent, and may be applied.
        const small = yield* guarded(store.append({ sent: bytes("small") }))
        // A large one fills the socket; the ones behind it wait in the client and are not sent.
        const startedAt = Date.now()
        const [large, ...behind] = yield* Effect.all(
          [
            guarded(store.append({ large: new Uint8Array(16 * MiB).fill(1) })),
            guarded(store.append({ ghost: bytes("one") })),
            guarded(store.append({ ghost: bytes("two") }))
          ],
          { concurrency: "unbounded" }
        )
        const waited = Date.now() - startedAt
        // A call behind the large one whose caller is interrupted is taken back too.
        const interrupted = yield* Effect.forkChild(store.append({ ghost: bytes("three") }))
        yield* Effect.sleep(50)
        yield* Fiber.interrupt(interrupted)
        // Sent: Io, may have been applied. Not sent: Unavailable, not applied.
        for (const exit of [small, large]) {
          expect(descriptionOf(exit)).toContain("Io")
          expect(descriptionOf(exit)).toContain("may have been applied")
        }
        for (const exit of behind) {
          expect(descriptionOf(exit)).toContain("Unavailable")
          expect(descriptionOf(exit)).toContain("not sent")
        }
        // Within the timeout, not the guard.
        expect(waited).toBeLessThan(5000)

        child.kill("SIGCONT")
        // The same client carries on; what was sent was applied, what was not sent never is.
        const read = yield* store
          .get(["before", "sent", "large", "ghost"])
          .pipe(Effect.retry({ times: 10, schedule: Schedule.spaced("100 millis") }))
        expect(text(read[0]!)).toBe("ok")
        expect(text(read[1]!)).toBe("small")
        expect([0, 16 * MiB]).toContain(read[2]!.byteLength)
        yield* Effect.sleep(300)
        const [ghost] = yield* store.get(["ghost"])
        expect(ghost!.byteLength).toBe(0)
        yield* close
      }),
    60_000
  )
})
