/**
 * SchemaCodec: values described by an Effect Schema, validated both ways.
 *
 * Each appended value is encoded with the schema's canonical JSON codec
 * (`Schema.toCodecJson`) and stored as one frame of JSON text; `get` decodes
 * every frame with the schema and returns the array of the key's values, in
 * append order. A value the schema rejects fails `append` with an `Encode`
 * CodecError (nothing is written); stored data the schema rejects fails
 * `get` with a `Decode` CodecError, never an unchecked value.
 *
 * @since 0.1.0
 */
import { Encode } from "@partd/core"
import { Schema } from "effect"

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

/**
 * A schema that needs no services to encode or decode.
 *
 * @since 0.1.0
 * @category models
 */
export type Codable = Schema.Top & { readonly DecodingServices: never; readonly EncodingServices: never }

/**
 * The codec for a schema's values.
 *
 * @since 0.1.0
 * @category codecs
 */
export const codec = <S extends Codable>(
  schema: S,
  options?: { readonly name?: string }
): Encode.Codec<S["Type"], Array<S["Type"]>> => {
  const json = Schema.toCodecJson(schema)
  const encodeJson = Schema.encodeUnknownSync(json as any) as (value: unknown) => unknown
  const decodeJson = Schema.decodeUnknownSync(json as any) as (value: unknown) => S["Type"]
  return Encode.make({
    name: options?.name ?? "schema",
    encode: (value: S["Type"]) => encoder.encode(JSON.stringify(encodeJson(value))),
    decode: (bytes) => decodeJson(JSON.parse(decoder.decode(bytes))),
    join: (values) => values.slice(),
    empty: () => []
  })
}
