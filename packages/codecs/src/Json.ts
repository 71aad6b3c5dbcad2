/**
 * Json: any JSON value per append; `get` returns the array of the values
 * appended to the key, in order.
 *
 * Each appended value is one frame of UTF-8 JSON text. Values JSON cannot
 * represent (`undefined`, functions, symbols, bigints, cycles) fail with an
 * `Encode` CodecError and nothing is written.
 *
 * @since 0.1.0
 */
import { Encode } from "@partd/core"

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

/**
 * A JSON value.
 *
 * @since 0.1.0
 * @category models
 */
export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/**
 * The JSON codec for values of type `A` (any JSON-compatible type).
 *
 * @since 0.1.0
 * @category codecs
 */
export const codec = <A = Json>(): Encode.Codec<A, Array<A>> =>
  Encode.make({
    name: "json",
    encode: (value: A) => {
      const text = JSON.stringify(value)
      if (text === undefined) throw new TypeError(`${typeof value} is not a JSON value`)
      return encoder.encode(text)
    },
    decode: (bytes) => JSON.parse(decoder.decode(bytes)) as A,
    join: (values) => values.slice(),
    empty: () => []
  })
