import { describe, expect, it } from "@effect/vitest"
import { Arrow, Json, Msgpack, SchemaCodec, Text, TypedArrays } from "@partd/codecs"
import { Dict, Encode, Framing, Store } from "@partd/core"
import { Table as ArrowTable, RecordBatch, type Table, tableFromArrays } from "apache-arrow"
import { Effect, Exit, Layer, Schema, Stream } from "effect"
import * as fc from "fast-check"
import { backends } from "./Backends.ts"
import { codecSuite } from "./CodecSuite.ts"

const typed =
  <A, J, S>(codec: Encode.Codec<A, J, S>) =>
  (inner: Store.Shape) =>
    Encode.makeEncoded(codec, inner)

codecSuite(
  {
    name: "bytes",
    make: typed(Encode.bytes),
    joinStreamed: (values) => Encode.bytes.join(values as ReadonlyArray<Uint8Array>),
    arbitrary: fc.uint8Array({ maxLength: 64 }),
    expected: (values) => Buffer.concat(values).toString("hex"),
    normalize: (u: Uint8Array) => Buffer.from(u).toString("hex"),
    invalid: ["text", 1]
  },
  backends
)

codecSuite(
  {
    name: "text",
    make: typed(Text.codec),
    joinStreamed: (values) => values.join(""),
    arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }),
    expected: (values) => values.join(""),
    invalid: [42, new Uint8Array(2)]
  },
  backends
)

const jsonValue = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.parse(JSON.stringify(v)) as Json.Json)

codecSuite(
  {
    name: "json",
    make: typed(Json.codec<Json.Json>()),
    joinStreamed: (values) => values.slice(),
    arbitrary: jsonValue,
    expected: (values) => values.slice(),
    invalid: [undefined, () => 1, 10n]
  },
  backends
)

const msgpackValue = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.string({ maxLength: 20 }),
  fc.boolean(),
  fc.constant(null),
  fc.uint8Array({ maxLength: 16 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 })
)

/**
 * msgpack `bin` reads back as a Buffer: compare bytes as hex. A JS number that is integral is written as a
 * msgpack integer, so -0 reads back as 0.
 */
const binAsHex = (u: unknown): unknown =>
  u instanceof Uint8Array ? `bin:${Buffer.from(u).toString("hex")}` : Object.is(u, -0) ? 0 : u

codecSuite(
  {
    name: "msgpack",
    make: typed(Msgpack.codec),
    // The lists' elements, one by one.
    joinStreamed: (elements) => elements.slice(),
    arbitrary: fc.array(msgpackValue, { maxLength: 6 }),
    expected: (lists) => lists.flat().map(binAsHex),
    normalize: (list: Array<unknown>) => list.map(binAsHex),
    invalid: ["not a list", { a: 1 }]
  },
  backends
)

const Event = Schema.Struct({ id: Schema.Number, name: Schema.String, tags: Schema.Array(Schema.String) })
type Event = typeof Event.Type
const eventArb = fc.record({
  id: fc.integer(),
  name: fc.string({ maxLength: 10 }),
  tags: fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 })
})

codecSuite(
  {
    name: "schema",
    make: typed(SchemaCodec.codec(Event)),
    joinStreamed: (values) => values.slice(),
    arbitrary: eventArb,
    expected: (values) => values.slice(),
    invalid: [{ id: "not a number", name: "x", tags: [] }, { id: 1 }, null]
  },
  backends
)

const tableArb = fc
  .array(fc.record({ x: fc.integer({ min: -1000, max: 1000 }), y: fc.string({ maxLength: 6 }) }), {
    minLength: 1,
    maxLength: 8
  })
  .map((rows) => tableFromArrays({ x: Int32Array.from(rows.map((r) => r.x)), y: rows.map((r) => r.y) }))
const rowsOf = (table: Table): unknown => table.toArray().map((row) => ({ ...row.toJSON() }))

codecSuite(
  {
    name: "arrow",
    make: typed(Arrow.codec),
    // Record batches, joined back into one table.
    joinStreamed: (batches) => {
      const tables = (batches as Array<RecordBatch>).map((batch) => new ArrowTable(batch))
      return tables.length === 0 ? new ArrowTable() : tables[0]!.concat(...tables.slice(1))
    },
    arbitrary: tableArb,
    expected: (tables) => tables.flatMap((t) => rowsOf(t as Table) as Array<unknown>),
    normalize: rowsOf,
    invalid: ["not a table", [1, 2]],
    runs: 10
  },
  backends
)

/** Per key, one kind of array (a key holds one dtype), so the suite draws one kind per run. */
for (const [name, arb] of [
  ["Float64Array", fc.float64Array({ maxLength: 10, noNaN: true })],
  ["Int32Array", fc.int32Array({ maxLength: 10 })],
  ["Uint16Array", fc.uint16Array({ maxLength: 10 })],
  ["Int8Array", fc.int8Array({ maxLength: 10 })],
  ["BigUint64Array", fc.bigUint64Array({ maxLength: 5 })],
  ["Float32Array", fc.float32Array({ maxLength: 10, noNaN: true })]
] as ReadonlyArray<readonly [string, fc.Arbitrary<TypedArrays.TypedArray>]>) {
  codecSuite(
    {
      name: `typed arrays (${name})`,
      make: TypedArrays.make,
      joinStreamed: (arrays) => arrays.flatMap((a) => Array.from(a as ArrayLike<number | bigint>)) as never,
      arbitrary: arb,
      expected: (values) => values.flatMap((v) => Array.from(v as ArrayLike<number | bigint>)),
      normalize: (v) => Array.from(v as ArrayLike<number | bigint>),
      invalid: ["text", [1, 2, 3]],
      // An append cut short leaves a partial item (1-byte items cannot tear).
      tearAppend: (inner, key) => inner.append({ [key]: new Uint8Array(1) }),
      tearable: name !== "Int8Array",
      runs: 10
    },
    backends
  )
}

class Events extends Encode.Tag<Events, Event, Array<Event>>()("test/Events") {}
class Arrays extends Encode.Tag<Arrays, TypedArrays.TypedArray>()("test/Arrays") {}

describe("typed streams", () => {
  it.effect("yield each frame's items as it is read: Msgpack the lists' elements, Arrow record batches", () =>
    Effect.gen(function* () {
      const inner = yield* Dict.make
      const lists = yield* Encode.makeEncoded(Msgpack.codec, inner)
      yield* lists.append({ l: [1, "two"] }, { id: "lists-1" })
      yield* lists.append({ l: [{ three: 3 }] })
      yield* lists.append({ l: [1, "two"] }, { id: "lists-1" })
      expect(yield* Stream.runCollect(lists.stream("l", { chunkBytes: 2 }))).toEqual([1, "two", { three: 3 }])
      const tables = yield* Encode.makeEncoded(Arrow.codec, inner)
      const first = tableFromArrays({ x: Int32Array.of(1, 2) })
      const second = tableFromArrays({ x: Int32Array.of(3) })
      yield* tables.append({ t: first })
      yield* tables.append({ t: second.batches[0]! })
      const batches = yield* Stream.runCollect(tables.stream("t", { chunkBytes: 64 }))
      expect(batches.every((batch) => batch instanceof RecordBatch)).toBe(true)
      expect(batches.map((batch) => Array.from(batch.getChild("x")!.toArray() as Int32Array))).toEqual([[1, 2], [3]])
      // keys and size are the byte store's.
      expect((yield* Stream.runCollect(tables.keys)).slice().sort()).toEqual(["l", "t"])
      expect(yield* tables.size(["t"])).toEqual([(yield* Store.getOneFrom(inner, "t")).byteLength])
    }).pipe(Effect.scoped)
  )

  it.effect("a frame that does not decode fails the stream with Decode after the frames before it", () =>
    Effect.gen(function* () {
      const inner = yield* Dict.make
      const texts = yield* Encode.makeEncoded(Text.codec, inner)
      yield* texts.append({ k: "fine" })
      yield* inner.append({ k: Framing.frame(Uint8Array.of(0xff, 0xfe)) })
      const seen: Array<string> = []
      const exit = yield* Effect.exit(
        Stream.runForEach(texts.stream("k"), (value) => Effect.sync(() => seen.push(value)))
      )
      expect(seen).toEqual(["fine"])
      const error = Exit.isFailure(exit) ? Exit.findErrorOption(exit) : undefined
      expect(error).toMatchObject({ _tag: "Some", value: { _tag: "CodecError", reason: "Decode", key: "k" } })
    }).pipe(Effect.scoped)
  )
})

describe("typed stores bound to your own service", () => {
  it.effect("one call binds a codec to a service; another binds typed arrays next to it on the same store", () =>
    Effect.gen(function* () {
      const events = yield* Events
      const arrays = yield* Arrays
      yield* events.append({ log: { id: 1, name: "start", tags: [] } })
      yield* events.append([["log", { id: 2, name: "stop", tags: ["x"] }]])
      expect(yield* events.getOne("log")).toEqual([
        { id: 1, name: "start", tags: [] },
        { id: 2, name: "stop", tags: ["x"] }
      ])
      // Columns over a key set validated once, as a shuffle appends.
      const keys = yield* Store.keySet(["c1", ["c", 2]])
      yield* events.append(
        Encode.columns(keys, [
          { id: 3, name: "a", tags: [] },
          { id: 4, name: "b", tags: [] }
        ])
      )
      yield* events.append(
        Encode.columns(keys, [
          { id: 5, name: "c", tags: [] },
          { id: 6, name: "d", tags: [] }
        ])
      )
      expect((yield* events.get(["c1", "c/2"])).map((list) => list.map((e) => e.id))).toEqual([
        [3, 5],
        [4, 6]
      ])
      const wrongLength = yield* Effect.flip(events.append(Encode.columns(keys, [{ id: 7, name: "e", tags: [] }])))
      expect(wrongLength._tag === "StoreError" && wrongLength.reason).toBe("BadValue")
      yield* arrays.append({ xs: Float64Array.of(1.5, 2.5) })
      yield* arrays.append({ xs: Float64Array.of(3.5) })
      const xs = yield* arrays.getOne("xs")
      expect(xs).toBeInstanceOf(Float64Array)
      expect(Array.from(xs as Float64Array)).toEqual([1.5, 2.5, 3.5])
      // The dtype sits in the sidecar key, as partd.Numpy keeps it.
      expect(new TextDecoder().decode(yield* Store.getOne("xs.dtype"))).toBe("<f8")
    }).pipe(
      Effect.provide(
        Layer.mergeAll(Encode.layer(Events, SchemaCodec.codec(Event)), TypedArrays.layer(Arrays)).pipe(
          Layer.provideMerge(Dict.layer)
        )
      )
    )
  )

  it.effect("a schema rejects invalid data both ways with a typed CodecError", () =>
    Effect.gen(function* () {
      const events = yield* Events
      const exit = yield* Effect.exit(events.append({ log: { id: "x" } as unknown as Event }))
      expect(Exit.isFailure(exit) && Exit.findErrorOption(exit)).toBeTruthy()
      const stored = yield* Store.Store
      yield* Store.append({ log: Uint8Array.of() }) // nothing yet
      const json = new TextEncoder().encode(JSON.stringify({ id: "not a number", name: "x", tags: [] }))
      const frame = new Uint8Array(8 + json.byteLength)
      frame[0] = json.byteLength
      frame.set(json, 8)
      yield* stored.append({ log: frame })
      const read = yield* Effect.flip(events.getOne("log"))
      expect(read._tag).toBe("CodecError")
      expect((read as Encode.CodecError).reason).toBe("Decode")
    }).pipe(Effect.provide(Encode.layer(Events, SchemaCodec.codec(Event)).pipe(Layer.provideMerge(Dict.layer))))
  )

  it.effect("appending another dtype to a key fails instead of reinterpreting bytes", () =>
    Effect.gen(function* () {
      const arrays = yield* Arrays
      yield* arrays.append({ xs: Float64Array.of(1) })
      const error = yield* Effect.flip(arrays.append({ xs: Int32Array.of(1) }))
      expect(Encode.codecErrorOf(error)?.reason).toBe("Encode")
      const error2 = yield* Effect.flip(
        arrays.append([
          ["ys", Int32Array.of(1)],
          ["ys", Uint8Array.of(1)]
        ])
      )
      expect(Encode.codecErrorOf(error2)?.reason).toBe("Encode")
      expect(Array.from((yield* arrays.getOne("xs")) as Float64Array)).toEqual([1])
      expect((yield* arrays.getOne("ys")).byteLength).toBe(0)
      yield* arrays.delete(["xs"])
      expect((yield* Store.getOne("xs.dtype")).byteLength).toBe(0)
      yield* arrays.append({ xs: Int32Array.of(7) })
      expect(Array.from((yield* arrays.getOne("xs")) as Int32Array)).toEqual([7])
    }).pipe(Effect.provide(TypedArrays.layer(Arrays).pipe(Layer.provideMerge(Dict.layer))))
  )

  it.effect("big-endian and datetime dtypes written by numpy are read", () =>
    Effect.gen(function* () {
      const arrays = yield* Arrays
      yield* Store.append({ be: Uint8Array.of(0, 0, 0, 1, 0, 0, 1, 0), "be.dtype": new TextEncoder().encode(">i4") })
      expect(Array.from((yield* arrays.getOne("be")) as Int32Array)).toEqual([1, 256])
      const t = new BigInt64Array([1_700_000_000_000_000n])
      yield* Store.append({ t: new Uint8Array(t.buffer), "t.dtype": new TextEncoder().encode("<M8[us]") })
      expect(Array.from((yield* arrays.getOne("t")) as BigInt64Array)).toEqual([1_700_000_000_000_000n])
      yield* Store.append({ o: Uint8Array.of(1), "o.dtype": new TextEncoder().encode("|O") })
      expect(Encode.codecErrorOf(yield* Effect.flip(arrays.getOne("o")))?.reason).toBe("Decode")
    }).pipe(Effect.provide(TypedArrays.layer(Arrays).pipe(Layer.provideMerge(Dict.layer))))
  )

  it.effect("msgpack says so when a frame is partd.Python's pickle fallback", () =>
    Effect.gen(function* () {
      const store = yield* Encode.makeEncoded(Msgpack.codec, yield* Store.Store)
      const pickle = Uint8Array.of(0x80, 0x04, 0x95, 0x05, 0, 0, 0, 0, 0, 0, 0, 0x5d, 0x94, 0x2e)
      const frame = new Uint8Array(8 + pickle.byteLength)
      frame[0] = pickle.byteLength
      frame.set(pickle, 8)
      yield* Store.append({ p: frame })
      const error = yield* Effect.flip(store.getOne("p"))
      expect(error.message).toMatch(/pickle/)
    }).pipe(Effect.provide(Dict.layer))
  )
})

describe("typed stores read records as every store does", () => {
  /** A record with one own key and one enumerable key it inherits. */
  const withInherited = <A>(own: A, inherited: A): Record<string, A> => {
    const record = Object.create({ inherited }) as Record<string, A>
    record.own = own
    return record
  }

  it.effect("a typed store appends a record's own keys, not ones it inherits", () =>
    Effect.gen(function* () {
      const inner = yield* Dict.make
      const json = yield* Encode.makeEncoded(Json.codec<number>(), inner)
      yield* json.append(withInherited(1, 2))
      expect(yield* json.get(["own", "inherited"])).toEqual([[1], []])
      expect((yield* inner.get(["inherited"]))[0]!.byteLength).toBe(0)
      const arraysInner = yield* Dict.make
      const arrays = yield* TypedArrays.make(arraysInner)
      yield* arrays.append(withInherited(Float64Array.of(1), Float64Array.of(2)))
      const [own, inherited] = yield* arrays.get(["own", "inherited"])
      expect(Array.from(own as Float64Array)).toEqual([1])
      expect(inherited!.byteLength).toBe(0)
      expect((yield* arraysInner.get(["inherited", "inherited.dtype"])).map((v) => v.byteLength)).toEqual([0, 0])
    })
  )
})

// The service key states the types; `Encode.layer` checks the codec against
// them rather than widening the key's (tsc runs over the tests: an
// `@ts-expect-error` that no longer errors fails the build).
class Lists extends Encode.Tag<Lists, ReadonlyArray<unknown>, Array<unknown>, unknown>()("test/Lists") {}
class ListsStreamingLists extends Encode.Tag<ListsStreamingLists, ReadonlyArray<unknown>, Array<unknown>>()(
  "test/ListsStreamingLists"
) {}
class ListsAsText extends Encode.Tag<ListsAsText, ReadonlyArray<unknown>, string, unknown>()("test/ListsAsText") {}

describe("Encode.layer's types", () => {
  it("reject a codec whose types differ from the service key's", () => {
    // Msgpack streams a list's elements (`unknown`), not lists.
    // @ts-expect-error the key's stream type is ReadonlyArray<unknown>
    const streams = () => Encode.layer(ListsStreamingLists, Msgpack.codec)
    // @ts-expect-error Msgpack's get joins into an array, not a string
    const gets = () => Encode.layer(ListsAsText, Msgpack.codec)
    expect([typeof streams, typeof gets]).toEqual(["function", "function"])
  })

  it.effect("accept the codec's own types", () =>
    Effect.gen(function* () {
      const lists = yield* Lists
      yield* lists.append({ l: [1, "two"] })
      expect(yield* Stream.runCollect(lists.stream("l"))).toEqual([1, "two"])
    }).pipe(Effect.provide(Encode.layer(Lists, Msgpack.codec).pipe(Layer.provide(Dict.layer))))
  )
})
