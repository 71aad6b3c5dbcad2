/**
 * Interop with real Python partd (Debian's python3-partd, with python3-snappy,
 * python3-blosc, python3-numpy and python3-msgpack): for each codec, Python
 * reads through partd's own class what TypeScript appended into a File
 * directory, and TypeScript reads what Python appended, including tuple keys
 * (nested directories) and several appends per key (several frames).
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { File } from "@partd/backend-file"
import { Compression, Msgpack, TypedArrays } from "@partd/codecs"
import { Encode, Key, Store } from "@partd/core"
import { requirePython, runPython } from "@partd/test/Python"
import { Effect, Layer, Stream } from "effect"

const python = requirePython(["partd", "snappy", "blosc", "numpy", "msgpack"])

/** The Python side: `write` appends the fixture through a partd class, `read` prints what partd gets as JSON. */
const SCRIPT = `
import json, sys
import numpy as np
import partd
mode, kind, d = sys.argv[1:4]
f = partd.File(d)
classes = {
    "framing": lambda f: partd.Encode(lambda x: x, lambda x: x, b"".join, f),
    "zlib": partd.ZLib, "snappy": partd.Snappy, "blosc": partd.Blosc, "bz2": partd.BZ2,
    "msgpack": partd.Python, "numpy": partd.Numpy,
}
p = classes[kind](f)
keys = ["x", ("t", "u")]
if mode == "write":
    if kind == "msgpack":
        p.append({"x": [1, "two", b"\\x00\\xff", 2**40, -7, 1.5, None, True, {"k": [1, 2]}], ("t", "u"): ["a"]})
        p.append({"x": ["more"], ("t", "u"): [2**63 - 1]})
    elif kind == "numpy":
        p.append({"x": np.array([1.5, -2.25, 1e300], dtype="<f8"), ("t", "u"): np.arange(5, dtype="<i4")})
        p.append({"x": np.array([3.0], dtype="<f8"), ("t", "u"): np.array([-1], dtype="<i4")})
        p.append({"b": np.array([2**62, -1], dtype="<i8"), "f": np.array([0.5], dtype="<f4"), "u": np.array([65535], dtype="<u2")})
    else:
        p.append({"x": bytes(range(256)) * 40, ("t", "u"): b"hello "})
        p.append({"x": b"tail", ("t", "u"): b"world"})
else:
    out = {}
    for k in keys + ["b", "f", "u"] if kind == "numpy" else keys:
        v = p.get(k)
        name = "/".join(k) if isinstance(k, tuple) else k
        if kind == "msgpack":
            out[name] = [("bin:" + x.hex()) if isinstance(x, bytes) else x for x in v]
        elif kind == "numpy":
            out[name] = [v.dtype.str, [int(y) if v.dtype.kind in "iu" else float(y) for y in v]]
        else:
            out[name] = v.hex()
    print(json.dumps(out))
`

const tempDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "partd-codecs-interop-"))

const pythonWrite = (kind: string, dir: string): void => {
  runPython(python, SCRIPT, ["write", kind, dir])
}
const pythonRead = (kind: string, dir: string): Record<string, unknown> =>
  JSON.parse(runPython(python, SCRIPT, ["read", kind, dir])) as Record<string, unknown>

const hex = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString("hex")
const bytes = (s: string) => new TextEncoder().encode(s)
const range256x40 = Uint8Array.from({ length: 256 * 40 }, (_, i) => i % 256)
const tupleKey = Key.tuple("t", "u")

/** The fixture both sides append, in TypeScript: two calls, two keys (one a tuple). */
const writeBytes = Effect.gen(function* () {
  yield* Store.append([
    ["x", range256x40],
    [tupleKey, bytes("hello ")]
  ])
  yield* Store.append([
    ["x", bytes("tail")],
    [tupleKey, bytes("world")]
  ])
})
const expectedBytes = {
  x: hex(Buffer.concat([range256x40, bytes("tail")])),
  "t/u": hex(bytes("hello world"))
}

const byteLayers: ReadonlyArray<readonly [string, Layer.Layer<Store.Store, never, Store.Store>]> = [
  ["framing", Encode.layerStore(Encode.bytes)],
  ["zlib", Compression.layer("zlib")],
  ["snappy", Compression.layer("snappy")],
  ["blosc", Compression.layer("blosc")],
  ["bz2", Compression.layer("bz2")]
]

const onFile = <A, E, R>(dir: string, layer: Layer.Layer<R, never, Store.Store>, effect: Effect.Effect<A, E, R>) =>
  Effect.provide(effect, layer.pipe(Layer.provide(File.layer({ path: dir }))))

class Lists extends Encode.Tag<Lists, ReadonlyArray<unknown>, Array<unknown>, unknown>()("test/Interop/Lists") {}
class Arrays extends Encode.Tag<Arrays, TypedArrays.TypedArray>()("test/Interop/Arrays") {}

describe("interop with Python partd", () => {
  for (const [kind, layer] of byteLayers) {
    it.live(`${kind}: Python reads what TypeScript appended, TypeScript reads what Python appended`, () =>
      Effect.gen(function* () {
        const ours = tempDir()
        yield* onFile(ours, layer, writeBytes)
        expect(pythonRead(kind, ours)).toEqual(expectedBytes)

        const theirs = tempDir()
        pythonWrite(kind, theirs)
        const [x, tu] = yield* onFile(theirs, layer, Store.get(["x", tupleKey]))
        expect({ x: hex(x!), "t/u": hex(tu!) }).toEqual(expectedBytes)
        // Streamed, Python's frames decode one by one into the same bytes.
        const pieces = yield* onFile(theirs, layer, Stream.runCollect(Store.stream("x", { chunkBytes: 1000 })))
        expect(pieces.every((piece) => piece.byteLength <= 1000)).toBe(true)
        expect(hex(Buffer.concat(pieces))).toBe(expectedBytes.x)
        // The File layout is partd's: a tuple key is a nested file.
        expect(fs.existsSync(path.join(theirs, "t", "u"))).toBe(true)
        expect(fs.existsSync(path.join(ours, "t", "u"))).toBe(true)
        fs.rmSync(ours, { recursive: true, force: true })
        fs.rmSync(theirs, { recursive: true, force: true })
      })
    )
  }

  it.live("msgpack: partd.Python reads the lists TypeScript appended as one list, and the reverse", () =>
    Effect.gen(function* () {
      const ours = tempDir()
      yield* onFile(
        ours,
        Encode.layer(Lists, Msgpack.codec),
        Effect.gen(function* () {
          const lists = yield* Lists
          yield* lists.append([
            ["x", [1, "two", Uint8Array.of(0, 255), 2n ** 40n, -7, 1.5, null, true, { k: [1, 2] }]],
            [tupleKey, ["a"]]
          ])
          yield* lists.append([
            ["x", ["more"]],
            [tupleKey, [2n ** 63n - 1n]]
          ])
        })
      )
      const expectedPython = {
        x: [1, "two", "bin:00ff", 2 ** 40, -7, 1.5, null, true, { k: [1, 2] }, "more"],
        "t/u": ["a", 2 ** 63]
      }
      // JSON.parse reads Python's 2**63-1 as the nearest double: compare through the same parse.
      expect(pythonRead("msgpack", ours)).toEqual(JSON.parse(JSON.stringify(expectedPython)))

      const theirs = tempDir()
      pythonWrite("msgpack", theirs)
      const [x, tu] = yield* onFile(
        theirs,
        Encode.layer(Lists, Msgpack.codec),
        Effect.flatMap(Lists, (lists) => lists.get(["x", tupleKey]))
      )
      expect(x!.map((v) => (v instanceof Uint8Array ? `bin:${hex(v)}` : v))).toEqual([
        1,
        "two",
        "bin:00ff",
        2 ** 40,
        -7,
        1.5,
        null,
        true,
        { k: [1, 2] },
        "more"
      ])
      expect(tu).toEqual(["a", 2n ** 63n - 1n])
      // Streamed, Python's frames decode one by one into the same elements; keys and sizes are the directory's.
      const [streamed, keys, sizes] = yield* onFile(
        theirs,
        Encode.layer(Lists, Msgpack.codec),
        Effect.flatMap(Lists, (lists) =>
          Effect.all([
            Stream.runCollect(lists.stream("x", { chunkBytes: 5 })),
            Stream.runCollect(lists.keys),
            lists.size(["x", tupleKey])
          ])
        )
      )
      expect(streamed.map((v) => (v instanceof Uint8Array ? `bin:${hex(v)}` : v))).toEqual(
        x!.map((v) => (v instanceof Uint8Array ? `bin:${hex(v)}` : v))
      )
      expect(keys.slice().sort()).toEqual(["t/u", "x"])
      expect(sizes).toEqual([fs.statSync(path.join(theirs, "x")).size, fs.statSync(path.join(theirs, "t", "u")).size])
      fs.rmSync(ours, { recursive: true, force: true })
      fs.rmSync(theirs, { recursive: true, force: true })
    })
  )

  it.live("typed arrays: partd.Numpy gets the numpy arrays TypeScript appended, and the reverse", () =>
    Effect.gen(function* () {
      const ours = tempDir()
      yield* onFile(
        ours,
        TypedArrays.layer(Arrays),
        Effect.gen(function* () {
          const arrays = yield* Arrays
          yield* arrays.append([
            ["x", Float64Array.of(1.5, -2.25, 1e300)],
            [tupleKey, Int32Array.of(0, 1, 2, 3, 4)]
          ])
          yield* arrays.append([
            ["x", Float64Array.of(3)],
            [tupleKey, Int32Array.of(-1)]
          ])
          yield* arrays.append({
            b: BigInt64Array.of(2n ** 62n, -1n),
            f: Float32Array.of(0.5),
            u: Uint16Array.of(65535)
          })
        })
      )
      const expected = {
        x: ["<f8", [1.5, -2.25, 1e300, 3]],
        "t/u": ["<i4", [0, 1, 2, 3, 4, -1]],
        b: ["<i8", [2 ** 62, -1]],
        f: ["<f4", [0.5]],
        u: ["<u2", [65535]]
      }
      expect(pythonRead("numpy", ours)).toEqual(expected)
      // partd.Numpy's sidecar: the dtype string in "<key>.dtype", next to the raw bytes.
      expect(fs.readFileSync(path.join(ours, "x.dtype"), "utf8")).toBe("<f8")
      expect(fs.readFileSync(path.join(ours, "t", "u.dtype"), "utf8")).toBe("<i4")
      expect(fs.statSync(path.join(ours, "x")).size).toBe(4 * 8)

      const theirs = tempDir()
      pythonWrite("numpy", theirs)
      const got = yield* onFile(
        theirs,
        TypedArrays.layer(Arrays),
        Effect.flatMap(Arrays, (arrays) => arrays.get(["x", tupleKey, "b", "f", "u"]))
      )
      expect(got[0]).toBeInstanceOf(Float64Array)
      expect(got[1]).toBeInstanceOf(Int32Array)
      expect(got[2]).toBeInstanceOf(BigInt64Array)
      expect(got[3]).toBeInstanceOf(Float32Array)
      expect(got[4]).toBeInstanceOf(Uint16Array)
      expect(got.map((a) => Array.from(a as ArrayLike<number | bigint>))).toEqual([
        [1.5, -2.25, 1e300, 3],
        [0, 1, 2, 3, 4, -1],
        [2n ** 62n, -1n],
        [0.5],
        [65535]
      ])
      // Streamed in pieces that cut items in two: whole items only, in the key's dtype; no .dtype sidecar as a key.
      const [streamed, keys] = yield* onFile(
        theirs,
        TypedArrays.layer(Arrays),
        Effect.flatMap(Arrays, (arrays) =>
          Effect.all([Stream.runCollect(arrays.stream("x", { chunkBytes: 12 })), Stream.runCollect(arrays.keys)])
        )
      )
      expect(streamed.every((a) => a instanceof Float64Array)).toBe(true)
      expect(streamed.flatMap((a) => Array.from(a as Float64Array))).toEqual([1.5, -2.25, 1e300, 3])
      expect(keys.slice().sort()).toEqual(["b", "f", "t/u", "u", "x"])
      fs.rmSync(ours, { recursive: true, force: true })
      fs.rmSync(theirs, { recursive: true, force: true })
    })
  )
})

/**
 * blosc frames both ways across every inner format, shuffle and typesize:
 * Python's c-blosc writes frames that `BloscFrame` must read byte for byte,
 * and reads back the sealed frames this package writes.
 */
const BLOSC_SCRIPT = `
import blosc, json, random, sys
random.seed(7)
def data(n):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += bytes(random.getrandbits(8) for _ in range(50)) if (i // 500) % 3 == 2 else (b"partd %d " % (i % 97))
        i += 1
    return bytes(out[:n])
mode = sys.argv[1]
if mode == "write":
    cases = []
    for cname in ["blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd"]:
        for shuffle in [0, 1, 2]:
            for typesize in [1, 3, 8, 16]:
                for n, bs in [(0, 0), (7, 0), (1000, 0), (40001, 0), (40001, 4096)]:
                    blosc.set_blocksize(bs)
                    d = data(n)
                    f = blosc.compress(d, typesize=typesize, cname=cname, shuffle=shuffle, clevel=5)
                    cases.append([f.hex(), d.hex()])
    json.dump(cases, sys.stdout)
else:
    ok = [blosc.decompress(bytes.fromhex(f)).hex() == d for f, d in json.load(sys.stdin)]
    print(json.dumps(ok))
`

describe("interop with python-blosc", () => {
  it.live("TypeScript reads every frame c-blosc writes, and c-blosc reads every frame TypeScript writes", () =>
    Effect.gen(function* () {
      const theirs = JSON.parse(runPython(python, BLOSC_SCRIPT, ["write"])) as Array<[string, string]>
      expect(theirs.length).toBe(360)
      const reader = yield* Compression.codec("blosc")
      for (const [frame, content] of theirs) {
        const decoded = yield* Effect.promise(async () => await reader.decode(Buffer.from(frame, "hex")))
        expect(hex(decoded), frame.slice(0, 32)).toBe(content)
      }
      const ours: Array<[string, string]> = []
      for (const cname of ["blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd"] as const) {
        for (const shuffle of [0, 1, 2] as const) {
          for (const blocksize of [0, 4096]) {
            const writer = yield* Compression.codec("blosc", { cname, shuffle, blocksize, clevel: 5 })
            for (const [, content] of theirs.slice(0, 5)) {
              const bytes = Buffer.from(content, "hex")
              ours.push([hex(yield* Effect.promise(async () => await writer.encode(bytes))), content])
            }
          }
        }
      }
      const read = spawnSync(python, ["-c", BLOSC_SCRIPT, "read"], { input: JSON.stringify(ours), encoding: "utf8" })
      expect(read.status, read.stderr).toBe(0)
      expect(JSON.parse(read.stdout)).toEqual(ours.map(() => true))
    })
  )
})
