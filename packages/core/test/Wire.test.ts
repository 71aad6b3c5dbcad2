import { describe, expect, it } from "@effect/vitest"
import { Store, Wire } from "@partd/core"
import * as fc from "fast-check"

const chunkArb = fc.uint8Array({ maxLength: 3000 })
const requestArb = fc.oneof(
  fc.record({
    _tag: fc.constant("Append"),
    id: fc.nat(),
    paths: fc.string(),
    values: fc.array(chunkArb, { maxLength: 40 })
  }),
  fc.record({ _tag: fc.constant("Iset"), id: fc.nat(), path: fc.string(), value: chunkArb }),
  fc.record({ _tag: fc.constant("Drop"), id: fc.nat() })
)

/** The stream cut into pieces at the given points, each piece a fresh buffer as a socket read is. */
const cut = (stream: Uint8Array, points: ReadonlyArray<number>): Array<Uint8Array> => {
  const at = [...new Set(points.map((p) => p % (stream.byteLength + 1)))].sort((a, b) => a - b)
  const pieces: Array<Uint8Array> = []
  let start = 0
  for (const p of [...at, stream.byteLength]) {
    // A copy: a Node Buffer's `slice` would be a view, and views side by side in one memory are one piece.
    if (p > start) pieces.push(new Uint8Array(stream.subarray(start, p)))
    start = p
  }
  return pieces
}

/** Plain arrays for comparison: a decoded chunk may be a view, a Buffer or a copy. */
const plain = (message: unknown): unknown =>
  JSON.parse(JSON.stringify(message, (_, v) => (v instanceof Uint8Array ? Array.from(v) : v)))

describe("Wire framing", () => {
  it("decodes frames cut anywhere (across socket reads) into the messages sent", () => {
    fc.assert(
      fc.property(fc.array(requestArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat()), (messages, points) => {
        const stream = globalThis.Buffer.concat(messages.map((m) => Wire.encode(m)))
        const receiver = Wire.makeParser()
        const decoded = cut(stream, points).flatMap((piece) => receiver.decode(piece))
        expect(decoded.map(plain)).toEqual(messages.map(plain))
        for (const message of decoded) expect(Wire.toRequest(message)).toHaveProperty("_tag")
      }),
      { numRuns: 300 }
    )
  })

  it("hands out chunks within one read as views of it, and chunks across two reads as copies", () => {
    const values = Array.from({ length: 50 }, (_, i) => new Uint8Array(1500).fill(i))
    const stream = Wire.encode({ _tag: "Append", id: 1, paths: "k", values })
    const receiver = Wire.makeParser()
    // The chunks are the frame's last 50 × 1500 bytes: chunk i starts at end - (50 - i) × 1500.
    const end = stream.byteLength
    const start = (i: number) => end - (50 - i) * 1500
    // Inside chunk 40; on the boundary of chunks 29 and 30; twice inside chunk 20 (a 1-byte read).
    const pieces = cut(stream, [start(40) + 700, start(30), start(20) + 1, start(20) + 2])
    const [message] = pieces.flatMap((piece) => receiver.decode(piece)) as Array<{ values: Array<Uint8Array> }>
    const isView = (v: Uint8Array) => pieces.some((p) => p.buffer === v.buffer)
    const views = message!.values.filter(isView)
    const copies = message!.values.filter((v) => !isView(v))
    expect(message!.values.map((v) => (isView(v) ? "view" : "copy"))).toEqual(
      values.map((_, i) => (i === 20 || i === 40 ? "copy" : "view"))
    )
    // Socket reads are fresh buffers nobody reuses: writing over them here shows which is which.
    for (const piece of pieces) piece.fill(0xff)
    for (const v of views) expect(v.every((b) => b === 0xff)).toBe(true)
    for (const v of copies) expect(v.every((b) => b === v[0] && b !== 0xff)).toBe(true)
  })

  /** Reads `stream` through the parser's own read buffers (as Node's `onread` does), at most `step(i)` bytes a read. */
  const readThrough = (parser: Wire.Parser, stream: Uint8Array, step: (i: number) => number) => {
    const decoded: Array<unknown> = []
    const buffers = new Set<ArrayBufferLike>()
    for (let at = 0, i = 0; at < stream.byteLength; i++) {
      const into = parser.readBuffer()
      buffers.add(into.buffer)
      const n = Math.max(1, Math.min(step(i), into.byteLength, stream.byteLength - at))
      into.set(stream.subarray(at, at + n))
      at += n
      decoded.push(...parser.decodeRead(n))
    }
    return { decoded, buffers }
  }

  it("decodes frames read into its own buffers, cut anywhere, into the messages sent", () => {
    fc.assert(
      fc.property(fc.array(requestArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(70_000)), (messages, steps) => {
        const stream = globalThis.Buffer.concat(messages.map((m) => Wire.encode(m)))
        const { decoded } = readThrough(Wire.makeParser(), stream, (i) => steps[i % Math.max(1, steps.length)] ?? 1)
        expect(decoded.map(plain)).toEqual(messages.map(plain))
      }),
      { numRuns: 300 }
    )
  })

  it("reads a large frame into a few growing segments: its chunks are views, copied only across two segments", () => {
    // 20 MB in 1000 values of 20 000 bytes, read 16 KiB at a time (a TLS record's worth).
    const values = Array.from({ length: 1000 }, (_, i) => new Uint8Array(20_000).fill(i % 251))
    const stream = Wire.encode({ _tag: "Done", id: 7, values })
    const parser = Wire.makeParser()
    const { decoded, buffers } = readThrough(parser, stream, () => 16 * 1024)
    const [message] = decoded as Array<{ values: Array<Uint8Array> }>
    expect(message!.values.map((v) => v[0])).toEqual(values.map((_, i) => i % 251))
    // Segments grow with what the frame has sent: a handful, not one per read (1221 reads).
    expect(buffers.size).toBeLessThan(15)
    const viewed = message!.values.filter((v) => buffers.has(v.buffer)).length
    expect(viewed).toBeGreaterThan(1000 - buffers.size)
  })

  it("holds no more for a large frame announced than the frame has sent, and still refuses bad frames", () => {
    const parser = Wire.makeParser({ maxFrameBytes: 256 * 1024 * 1024 })
    // A header announcing 200 MB, then nothing: the next read gets 64 KiB, not 200 MB.
    const header = new Uint8Array(4)
    new DataView(header.buffer).setUint32(0, 200_000_000, true)
    parser.readBuffer().set(header)
    expect(parser.decodeRead(4)).toEqual([])
    expect(parser.readBuffer().byteLength).toBeLessThanOrEqual(64 * 1024)
    const small = Wire.makeParser({ maxFrameBytes: 1024 })
    small.readBuffer().set(header)
    expect(() => small.decodeRead(4)).toThrow(Wire.FrameError)
  })

  it("rejects input it cannot take with a FrameError, whatever the bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), (bytes) => {
        const parser = Wire.makeParser({ maxFrameBytes: 1024 })
        try {
          for (const message of parser.decode(bytes)) Wire.toRequest(message)
        } catch (error) {
          expect(error).toBeInstanceOf(Wire.FrameError)
        }
      }),
      { numRuns: 500 }
    )
  })

  it("carries a StoreError there and back in a reply; a reply without one reads as a Protocol error", () => {
    const sent = new Store.StoreError({
      reason: "Io",
      method: "append",
      key: "a/b",
      description: "disk full",
      cause: new Error("ENOSPC")
    })
    const client = Wire.makeParser()
    const [reply] = client.decode(Wire.encode({ _tag: "Failed", id: 7, error: Wire.encodeError(sent) }))
    const read = Wire.toReply(reply)
    expect(read?._tag).toBe("Failed")
    const received = read?._tag === "Failed" ? Wire.decodeError(read.error) : undefined
    expect(received).toBeInstanceOf(Store.StoreError)
    expect(received).toMatchObject({ reason: "Io", method: "append", key: "a/b", description: "disk full" })
    expect(String(received?.cause)).toContain("ENOSPC")
    expect(Wire.decodeError({ nonsense: true })).toMatchObject({ reason: "Protocol" })
  })

  it("refuses a frame with more chunks than its bound, naming the request, before it builds them", () => {
    const frame = Wire.encode({
      _tag: "Append",
      id: 42,
      paths: "k",
      values: Array.from({ length: 6 }, () => new Uint8Array(1))
    })
    const error = (() => {
      try {
        Wire.makeParser({ maxChunksPerFrame: 5 }).decode(frame)
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(Wire.FrameError)
    expect(error).toMatchObject({ id: 42 })
    expect(String(error)).toContain("exceeds the limit of 5")
    expect(Wire.makeParser({ maxChunksPerFrame: 6 }).decode(frame)).toHaveLength(1)
  })

  it("refuses a chunk table whose lengths add up to more than the frame holds", () => {
    const frame = Wire.encode({
      _tag: "Append",
      id: 3,
      paths: "a\u0000b",
      values: [new Uint8Array(10), new Uint8Array(10)]
    })
    // The table sits right before the chunks' 20 bytes: make its first length lie.
    new DataView(frame.buffer, frame.byteOffset).setUint32(frame.byteLength - 20 - 8, 1_000_000, true)
    expect(() => Wire.makeParser().decode(frame)).toThrow(/exceeds the frame/)
  })

  it("refuses an envelope of many small items (a million empty maps would be a million objects)", () => {
    const junk = Array.from({ length: 100_000 }, () => ({}))
    const frame = Wire.encode({ _tag: "Drop", id: 1, junk })
    expect(() => Wire.makeParser().decode(frame)).toThrow(Wire.FrameError)
    // A request of ordinary size passes.
    expect(Wire.makeParser().decode(Wire.encode({ _tag: "Drop", id: 1, junk: junk.slice(0, 100) }))).toHaveLength(1)
  })

  it("reports what each decoded message holds: its frame, and the overhead of each chunk", () => {
    const frame = Wire.encode({
      _tag: "Append",
      id: 1,
      paths: "a\u0000b",
      values: [new Uint8Array(100), new Uint8Array(0)]
    })
    const costs: Array<number> = []
    Wire.makeParser().decode(frame, costs)
    expect(costs).toEqual([frame.byteLength + 2 * Wire.chunkOverheadBytes])
  })
})

describe("Wire cursor, size and call id messages", () => {
  it("well-formed requests are taken as they are", () => {
    for (const request of [
      { _tag: "Size", id: 1, paths: "a\u0000b", count: 2 },
      { _tag: "Stream", id: 2, path: "a/b", chunkBytes: 1 },
      { _tag: "Keys", id: 3 },
      { _tag: "Next", id: 4, cursor: 0 },
      { _tag: "Close", id: 5, cursor: 7 },
      { _tag: "Append", id: 6, paths: "a", values: [new Uint8Array(1)], call: "x".repeat(128) }
    ]) {
      expect(Wire.toRequest(request)).toBe(request)
    }
  })

  it("malformed ones are answered with a Protocol error for their request number", () => {
    for (const request of [
      { _tag: "Size", id: 1, paths: "a", count: -1 },
      { _tag: "Stream", id: 2, path: "a", chunkBytes: 0 },
      { _tag: "Stream", id: 3, path: "a", chunkBytes: 1.5 },
      { _tag: "Next", id: 4, cursor: "0" },
      { _tag: "Close", id: 5 },
      { _tag: "Append", id: 6, paths: "a", values: [new Uint8Array(1)], call: "" },
      { _tag: "Append", id: 7, paths: "a", values: [new Uint8Array(1)], call: "x".repeat(129) }
    ]) {
      const result = Wire.toRequest(request)
      expect("error" in result && result.error.reason).toBe("Protocol")
      expect(result.id).toBe(request.id)
    }
  })

  it("a Done reply with a malformed field is not a reply", () => {
    expect(Wire.toReply({ _tag: "Done", id: 1, sizes: [0, 3], cursor: 2, end: false })).toBeDefined()
    expect(Wire.toReply({ _tag: "Done", id: 1, paths: "a\u0000b", count: 2, end: true })).toBeDefined()
    for (const reply of [
      { _tag: "Done", id: 1, sizes: [-1] },
      { _tag: "Done", id: 1, sizes: [0.5] },
      { _tag: "Done", id: 1, sizes: "3" },
      { _tag: "Done", id: 1, paths: "a" },
      { _tag: "Done", id: 1, cursor: -1 },
      { _tag: "Done", id: 1, end: "yes" }
    ]) {
      expect(Wire.toReply(reply)).toBeUndefined()
    }
  })

  it("a Done reply's fields survive the frame", () => {
    const message = { _tag: "Done", id: 9, values: [Uint8Array.of(1, 2)], cursor: 3, end: false }
    const [decoded] = Wire.makeParser().decode(Wire.encode(message))
    expect(Wire.toReply(decoded)).toMatchObject({ _tag: "Done", id: 9, cursor: 3, end: false })
  })
})
