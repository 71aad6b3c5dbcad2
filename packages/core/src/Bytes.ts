/**
 * Byte chunks: the concatenations every backend returns from `get`.
 *
 * @since 0.1.0
 */

/**
 * The empty value: what `get` returns for a key that holds nothing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const empty = (): Uint8Array => new Uint8Array(0)

const NodeBuffer = (globalThis as { Buffer?: { allocUnsafeSlow(size: number): Uint8Array } }).Buffer

/**
 * A fresh array of `size` bytes whose contents are garbage, for callers that
 * overwrite all of it. Zero-filling large arrays costs as much as copying into
 * them, so on Node large arrays skip it (`Buffer.allocUnsafeSlow`: its own
 * memory, never a slice of Node's shared pool). The result is a plain
 * `Uint8Array` over that memory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const allocUninitialized = (size: number): Uint8Array => {
  if (size < 4096 || NodeBuffer === undefined) return new Uint8Array(size)
  const buffer = NodeBuffer.allocUnsafeSlow(size)
  return new Uint8Array(buffer.buffer, buffer.byteOffset, size)
}

/**
 * Concatenates chunks into one fresh array. Always copies, so the result never
 * aliases memory the caller or a store still owns.
 *
 * @since 0.1.0
 * @category combinators
 */
export const concat = (chunks: ReadonlyArray<Uint8Array>, totalLength?: number): Uint8Array => {
  let total = totalLength ?? 0
  if (totalLength === undefined) {
    for (let i = 0; i < chunks.length; i++) total += chunks[i]!.byteLength
  }
  const out = allocUninitialized(total)
  let offset = 0
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i]!
    out.set(chunk, offset)
    offset += chunk.byteLength
  }
  return out
}
