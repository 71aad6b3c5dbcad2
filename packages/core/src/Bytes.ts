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
  const out = new Uint8Array(total)
  let offset = 0
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i]!
    out.set(chunk, offset)
    offset += chunk.byteLength
  }
  return out
}

/**
 * A copy of `bytes` that owns its own memory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const copy = (bytes: Uint8Array): Uint8Array => bytes.slice()
