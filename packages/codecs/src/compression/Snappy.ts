/**
 * Snappy raw blocks (python-snappy's `snappy.compress`, partd's `Snappy`),
 * from the snappy package (napi-rs bindings to the snap crate).
 *
 * partd stores raw blocks, not snappy's framing format, so there is no CRC to
 * turn on without breaking Python's reads: a corrupt literal decodes to other
 * bytes. What a raw block allows is checked: its leading varint declares the
 * decoded size, which must be within `maxDecodedBytes` and within what a
 * block of its length can expand to, before the library allocates it; the
 * library then checks that the block decodes to exactly that size.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { byteCodec, type Common, checkDecodedSize, type Definition } from "./Algorithm.ts"

/**
 * Options for snappy (it has none of its own).
 *
 * @since 0.1.0
 * @category models
 */
export type SnappyOptions = Common

// A 3-byte copy element writes at most 64 bytes; nothing in a block expands more.
const MAX_SNAPPY_RATIO = 22

/**
 * The decoded size a raw snappy block declares (its leading varint), or
 * throws when it cannot be read.
 *
 * @since 0.1.0
 * @category decoding
 */
export const declaredSize = (block: Uint8Array): number => {
  let size = 0
  for (let i = 0; i < 5 && i < block.byteLength; i++) {
    const b = block[i]!
    size += (b & 0x7f) * 2 ** (7 * i)
    if (b < 0x80) return size
  }
  throw new RangeError("snappy: the block does not start with its length")
}

/**
 * Checks a block's declared size against the bound and its own length.
 *
 * @since 0.1.0
 * @category validation
 */
export const checkBlock = (block: Uint8Array, maxDecodedBytes: number): number => {
  const size = declaredSize(block)
  checkDecodedSize("snappy", size, maxDecodedBytes)
  if (size > MAX_SNAPPY_RATIO * block.byteLength) {
    throw new RangeError(`snappy: a block of ${block.byteLength} bytes cannot hold the ${size} it declares`)
  }
  return size
}

/**
 * snappy.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const definition: Definition<SnappyOptions> = (_options, { name, maxDecodedBytes }) =>
  Effect.map(
    Effect.promise(() => import("snappy")),
    (snappy) =>
      byteCodec(
        name,
        (v) => snappy.compressSync(v),
        (b) => {
          checkBlock(b, maxDecodedBytes)
          return snappy.uncompressSync(b, { asBuffer: true }) as Buffer
        }
      )
  )
