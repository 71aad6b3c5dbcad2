/**
 * Text: UTF-8 strings, appended strings joined by concatenation.
 *
 * Each appended string is one frame of UTF-8 bytes; `get` decodes every
 * frame (bytes that are not valid UTF-8 fail with a `Decode` CodecError
 * rather than turning into replacement characters) and concatenates them.
 *
 * @since 0.1.0
 */
import { Encode } from "@partd/core"

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/**
 * The UTF-8 text codec.
 *
 * @since 0.1.0
 * @category codecs
 */
export const codec: Encode.Codec<string> = Encode.make({
  name: "text",
  encode: (value: string) => {
    if (typeof value !== "string") throw new TypeError(`expected a string, got ${typeof value}`)
    return encoder.encode(value)
  },
  decode: (bytes) => decoder.decode(bytes),
  join: (values) => values.join(""),
  empty: () => ""
})
