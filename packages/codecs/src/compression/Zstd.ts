/**
 * Zstandard, from zstd-napi's bindings to libzstd.
 *
 * Not node:zlib's zstd: its one-shot functions build a fresh context for
 * every chunk, which costs several times the compression itself on a
 * shuffle's small chunks; here one context each way lives as long as the
 * codec.
 *
 * Frames carry a checksum of their content by default (`checksum: true`,
 * zstd's `checksumFlag`), which libzstd verifies on decode, so a corrupt
 * frame fails instead of decoding to other bytes; frames written without one
 * (by node:zlib, or with `checksum: false`) still read. Decoding goes through
 * the low-level binding rather than zstd-napi's `Decompressor`, which
 * allocates whatever size a frame header claims: here the claimed size is
 * checked against `maxDecodedBytes` first, and a frame that does not declare
 * its size is decoded in bounded steps that stop at the bound.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { byteCodec, bytesOf, type Common, checkDecodedSize, checkRange, type Definition } from "./Algorithm.ts"

/**
 * Options for zstd.
 *
 * @since 0.1.0
 * @category models
 */
export interface ZstdOptions extends Common {
  /** Negative (fastest) to 22 (best); default 3, zstd's default. */
  readonly level?: number
  /** Append a checksum of the content to each frame (default true). */
  readonly checksum?: boolean
}

type Binding = typeof import("zstd-napi/binding.js")

/**
 * A decoder of zstd frames (one or more, concatenated) that never allocates
 * past `maxDecodedBytes`. The context is reused call after call.
 *
 * @since 0.1.0
 * @category constructors
 */
export const boundedDecoder = (binding: Binding, maxDecodedBytes: number): ((frame: Uint8Array) => Buffer) => {
  const dctx = new binding.DCtx()
  const step = binding.dStreamOutSize()
  const streamed = (input: Buffer): Buffer => {
    dctx.reset(binding.ResetDirective.sessionOnly)
    const parts: Array<Buffer> = []
    let produced = 0
    let remaining = input
    let hint = 1
    let full = false
    while (remaining.byteLength > 0 || full) {
      const out = Buffer.allocUnsafe(Math.min(step, maxDecodedBytes - produced + 1))
      const [ret, written, consumed] = dctx.decompressStream(out, remaining)
      if (written === 0 && consumed === 0) break
      hint = ret
      produced += written
      checkDecodedSize("zstd", produced, maxDecodedBytes)
      parts.push(out.subarray(0, written))
      remaining = remaining.subarray(consumed)
      full = written === out.byteLength
    }
    if (hint !== 0) throw new RangeError("zstd: the frame ends before its last block")
    return Buffer.concat(parts, produced)
  }
  return (frame) => {
    const input = bytesOf(frame)
    let total = 0
    let rest = input
    while (rest.byteLength > 0) {
      const size = binding.getFrameContentSize(rest)
      if (size === null) return streamed(input)
      total += size
      checkDecodedSize("zstd", total, maxDecodedBytes)
      rest = rest.subarray(binding.findFrameCompressedSize(rest))
    }
    const out = Buffer.allocUnsafe(total)
    const written = dctx.decompress(out, input)
    if (written !== total) throw new RangeError(`zstd: the frame decoded to ${written} bytes, not ${total}`)
    return out
  }
}

/**
 * zstd.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const definition: Definition<ZstdOptions> = (options, { name, maxDecodedBytes }) =>
  Effect.andThen(
    checkRange("zstd", "level", options.level, -131072, 22),
    Effect.map(
      // The binding is a CommonJS native module: its functions are on the default export.
      Effect.promise(() => Promise.all([import("zstd-napi"), import("zstd-napi/binding.js")])),
      ([zstd, binding]) => {
        const compressor = new zstd.Compressor()
        compressor.setParameters({ compressionLevel: options.level ?? 3, checksumFlag: options.checksum !== false })
        const decode = boundedDecoder((binding as unknown as { default: Binding }).default, maxDecodedBytes)
        return byteCodec(name, (v) => compressor.compress(bytesOf(v)), decode)
      }
    )
  )
