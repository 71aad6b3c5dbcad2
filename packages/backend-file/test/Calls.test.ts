/**
 * File's durable call ids: an append with an id the directory has recorded
 * applies nothing, in this process, in another store instance (another
 * process's view), after a reopen and after `drop`; within the window of
 * `Calls.CAPACITY` ids; and through a crash at either side of the commit:
 * real `kill -9`s of a process mid-append, then the same calls retried.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { FileName } from "@partd/backend-file"
import * as Calls from "@partd/backend-file/Calls"
import * as Intent from "@partd/backend-file/Intent"
import * as Lock from "@partd/backend-file/Lock"
import { Effect } from "effect"
import { bytes, openStore as open, openScoped, tempDir, text, wholeRecords } from "./Helpers.ts"

const idAppender = fileURLToPath(new URL("./fixtures/id-appender.ts", import.meta.url))

const tempBase = tempDir("partd-file-calls-")

/** Record `n` of the id appender: its number as a u32, then `size - 4` bytes of `n & 0xff`. */
const record = (n: number, size: number): Uint8Array => {
  const out = new Uint8Array(size).fill(n & 0xff)
  new DataView(out.buffer).setUint32(0, n)
  return out
}

describe("File call ids", () => {
  it.effect("a repeated id applies once; other ids and calls without one apply", () =>
    Effect.gen(function* () {
      const store = yield* open({ dir: yield* tempBase })
      yield* store.append({ a: bytes("1;"), b: bytes("x") }, { id: "one" })
      yield* store.append({ a: bytes("1;"), b: bytes("x") }, { id: "one" })
      yield* store.append({ a: bytes("2;") }, { id: "two" })
      yield* store.append({ a: bytes("3;") })
      yield* store.append({ a: bytes("3;") })
      yield* store.append({ a: bytes("2;") }, { id: "two" })
      expect((yield* store.get(["a", "b"])).map(text)).toEqual(["1;2;3;3;", "x"])
    })
  )

  it.effect("ids are the directory's: seen by another instance, after a reopen, and after drop", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const first = yield* openScoped({ path: dir })
      const second = yield* openScoped({ path: dir })
      yield* first.store.append({ a: bytes("1;") }, { id: "one" })
      // The second instance learns of "one" from the file, not from memory.
      yield* second.store.append({ a: bytes("1;") }, { id: "one" })
      yield* second.store.append({ a: bytes("2;") }, { id: "two" })
      yield* first.store.append({ a: bytes("2;") }, { id: "two" })
      expect(text((yield* first.store.get(["a"]))[0]!)).toBe("1;2;")
      yield* first.close
      yield* second.close
      const reopened = yield* openScoped({ path: dir })
      yield* reopened.store.append({ a: bytes("1;") }, { id: "one" })
      expect(text((yield* reopened.store.get(["a"]))[0]!)).toBe("1;2;")
      // Ids are per call: after a drop, a repeat is still a repeat.
      yield* reopened.store.drop
      yield* reopened.store.append({ a: bytes("2;") }, { id: "two" })
      yield* reopened.store.append({ a: bytes("3;") }, { id: "three" })
      expect(text((yield* reopened.store.get(["a"]))[0]!)).toBe("3;")
      yield* reopened.close
    })
  )

  it.live(
    `the window is the last ${Calls.CAPACITY} ids of the directory, also for an instance that fell behind`,
    () =>
      Effect.gen(function* () {
        const dir = nodePath.join(yield* tempBase, "store")
        const writer = yield* openScoped({ path: dir })
        const behind = yield* openScoped({ path: dir })
        const one = bytes("x")
        yield* behind.store.append({ k: one }, { id: "c-0" })
        const total = Calls.CAPACITY + 100
        for (let n = 1; n < total; n++) yield* writer.store.append({ k: one }, { id: `c-${n}` })
        expect((yield* writer.store.get(["k"]))[0]!.byteLength).toBe(total)
        // `behind` knew only c-0; a ring's worth went by: it must reload, not trust its memory.
        yield* behind.store.append({ k: one }, { id: `c-${total - 1}` })
        yield* behind.store.append({ k: one }, { id: `c-${total - Calls.CAPACITY}` })
        expect((yield* behind.store.get(["k"]))[0]!.byteLength).toBe(total)
        // The oldest ids have left the window: applied again.
        yield* behind.store.append({ k: one }, { id: "c-0" })
        yield* writer.store.append({ k: one }, { id: "c-1" })
        expect((yield* writer.store.get(["k"]))[0]!.byteLength).toBe(total + 2)
        yield* writer.close
        yield* behind.close
      }),
    120_000
  )
})

/** Leaves what a call with an id killed after its writes leaves: the record, and the slot when `recorded`. */
const leaveCall = (dir: string, id: string, before: number, added: number, recorded: boolean): void => {
  const lock = Lock.open(nodePath.join(dir, FileName.LOCK))
  const calls = Calls.make(nodePath.join(dir, FileName.CALLS), false)
  try {
    expect(lock.tryAcquire()).toBe(true)
    const call = calls.prepare(id)!
    expect(call).toBeDefined()
    // The record as the append writes it; then the key's bytes, as the dead call wrote them.
    const writer = Intent.writer(lock, false)
    const lengths = writer.begin(1, Intent.names(["a"]), call)
    lengths[0] = before
    lengths[1] = added
    writer.commit()
    fs.appendFileSync(nodePath.join(dir, "a"), "x".repeat(added))
    if (recorded) calls.commit(call)
    lock.release()
  } finally {
    calls.close()
    lock.close()
  }
}

describe("File call ids through a crash", () => {
  it.effect("killed before its id was recorded: the call is undone, and its retry applies", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const first = yield* openScoped({ path: dir })
      yield* first.store.append({ a: bytes("a;") }, { id: "before" })
      yield* first.close
      leaveCall(dir, "dead", 2, 4, false)
      const store = yield* open({ path: dir })
      expect(text((yield* store.get(["a"]))[0]!)).toBe("a;")
      yield* store.append({ a: bytes("xxxx") }, { id: "dead" })
      yield* store.append({ a: bytes("xxxx") }, { id: "dead" })
      yield* store.append({ a: bytes("a;") }, { id: "before" })
      expect(text((yield* store.get(["a"]))[0]!)).toBe("a;xxxx")
    })
  )

  it.effect("killed after its id was recorded: the call's bytes stay, and its retry is a repeat", () =>
    Effect.gen(function* () {
      const dir = nodePath.join(yield* tempBase, "store")
      const first = yield* openScoped({ path: dir })
      yield* first.store.append({ a: bytes("a;") }, { id: "before" })
      yield* first.close
      leaveCall(dir, "dead", 2, 4, true)
      const store = yield* open({ path: dir })
      expect(text((yield* store.get(["a"]))[0]!)).toBe("a;xxxx")
      yield* store.append({ a: bytes("xxxx") }, { id: "dead" })
      expect(text((yield* store.get(["a"]))[0]!)).toBe("a;xxxx")
    })
  )

  it.live(
    "a process killed mid-append (kill -9), rerun from call 0 with the same ids: every call applied exactly once",
    () =>
      Effect.gen(function* () {
        const dir = nodePath.join(yield* tempBase, "store")
        const size = 1024 * 1024 + 13
        let last = 0
        for (const afterMs of [40, 90, 160]) {
          yield* Effect.promise(() => killMidAppend(dir, size, afterMs))
          const { store, close } = yield* openScoped({ path: dir })
          const [a, b] = yield* store.get(["a", "b"])
          // The runs so far applied calls 0 … count-1 once each, whatever they retried.
          const count = wholeRecords(a!, size)
          expect(wholeRecords(b!, size)).toBe(count)
          expect(count).toBeGreaterThanOrEqual(last)
          last = count
          yield* close
        }
        // Retry every call the runs could have started, and two more: only the new ones apply.
        const { store, close } = yield* openScoped({ path: dir })
        for (let n = 0; n < last + 2; n++) {
          const value = record(n, size)
          yield* store.append(
            [
              ["a", value],
              ["b", value]
            ],
            { id: `call-${n}` }
          )
        }
        const [a, b] = yield* store.get(["a", "b"])
        expect(wholeRecords(a!, size)).toBe(last + 2)
        expect(wholeRecords(b!, size)).toBe(last + 2)
        yield* close
      }),
    120_000
  )
})

/** Runs the id appender on `dir` until it has appended a while, then SIGKILLs it. */
const killMidAppend = (dir: string, size: number, afterMs: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, ["--conditions=@partd/source", idAppender, dir, String(size)], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stderr = ""
    child.stderr!.on("data", (d) => {
      stderr += d
    })
    child.stdout!.on("data", (d: Buffer) => {
      if (d.toString().includes("appending")) setTimeout(() => child.kill("SIGKILL"), afterMs)
    })
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL") resolve()
      else reject(new Error(`the appender exited with ${code} before it was killed: ${stderr}`))
    })
  })
