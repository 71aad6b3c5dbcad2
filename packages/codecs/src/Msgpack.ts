/**
 * Msgpack: lists of values, partd's `Python` encoding (msgpack via
 * msgpackr).
 *
 * Python partd's `partd.Python` appends Python lists, packed with
 * `msgpack.packb(x, use_bin_type=True)`, one frame per append, and `get`
 * returns the concatenation of the lists (a typed store's `stream` yields
 * their elements one by one). This codec does the same, so
 * `partd.Python(partd.File(dir)).get(key)` reads what is appended here and
 * the reverse:
 *
 * - strings are msgpack `str`, `Uint8Array`s are `bin` (Python `bytes`);
 * - objects are maps (Python `dict`), `null` and `undefined` are `nil`;
 * - a `number` with an integral value within 32 bits (2.0, -0 included) is
 *   a msgpack integer, any other `number` a float64: JS cannot tell 2 from
 *   2.0, so Python reads an `int` there;
 * - integers beyond 32 bits: pass a `bigint` to write a msgpack integer (a
 *   plain `number` that large is written as a float64, msgpackr's choice);
 *   msgpack integers too large for a safe `number` are read as `bigint`.
 *
 * When msgpack cannot hold a value, Python partd falls back to pickle for
 * that frame; such a frame fails here with a `Decode` CodecError that says
 * so, since pickle cannot be read outside Python.
 *
 * @since 0.1.0
 */
import { Encode } from "@partd/core"
import { Packr } from "msgpackr"

// No records or structure sharing: every frame must stand alone and be plain
// msgpack that Python's msgpack reads.
const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  encodeUndefinedAsNil: true,
  mapsAsObjects: true,
  variableMapSize: true,
  // "auto" (a bigint only when a number would lose precision) is supported at run time but missing from the types.
  int64AsType: "auto" as "bigint"
})

const isArrayHeader = (byte: number): boolean => (byte & 0xf0) === 0x90 || byte === 0xdc || byte === 0xdd

/**
 * The codec of partd's `Python` encoding: append lists, get their
 * concatenation.
 *
 * @since 0.1.0
 * @category codecs
 */
export const codec: Encode.Codec<ReadonlyArray<unknown>, Array<unknown>, unknown> = Encode.make<
  ReadonlyArray<unknown>,
  Array<unknown>,
  unknown
>({
  name: "msgpack",
  // A typed store's stream yields the appended lists' elements.
  items: (list) => list,
  encode: (value: ReadonlyArray<unknown>) => {
    if (!Array.isArray(value)) throw new TypeError(`partd's Python encoding appends lists, got ${typeof value}`)
    return packr.pack(value)
  },
  decode: (bytes) => {
    if (bytes.byteLength === 0 || !isArrayHeader(bytes[0]!)) {
      if (bytes[0] === 0x80 && bytes.byteLength > 2 && bytes[1]! >= 2 && bytes[1]! <= 5) {
        throw new TypeError("this frame is a Python pickle (partd.Python's fallback for values msgpack cannot hold)")
      }
      throw new TypeError("this frame is not a msgpack list")
    }
    return packr.unpack(bytes) as Array<unknown>
  },
  join: (lists) => {
    const out: Array<unknown> = []
    for (const list of lists) for (let i = 0; i < list.length; i++) out.push(list[i])
    return out
  },
  empty: () => []
})
