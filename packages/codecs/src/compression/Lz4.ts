/**
 * LZ4: size-prefixed blocks from lz4-wasm-nodejs (lz4_flex compiled to WASM
 * by its author), or standard LZ4 frames from lz4-napi (also lz4_flex).
 *
 * Blocks (the default) are python-lz4's `lz4.block.compress(store_size=True)`
 * layout: the decoded size as a little-endian uint32, then the block. Blocks
 * come from WASM rather than Node-API because a shuffle's small chunks pay
 * for every crossing into native code. The format has no checksum, so a
 * corrupt literal decodes to other bytes; the size prefix is checked here,
 * before the library sees it, against `maxDecodedBytes` and against what a
 * block of its length can hold (WASM memory never shrinks, so it must not
 * grow to a size a corrupt prefix claims).
 *
 * Frames carry a checksum of their content by default (`contentChecksum`),
 * which the decoder verifies. A frame that declares its content size is
 * checked against `maxDecodedBytes` before decoding; any frame's output is
 * bounded by LZ4's 255-fold expansion and checked against the bound after.
 *
 * @since 0.1.0
 */
import { Store } from "@partd/core"
import { Effect } from "effect"
import { byteCodec, bytesOf, type Common, checkDecodedSize, type Definition } from "./Algorithm.ts"

/**
 * Options for lz4.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lz4Options extends Common {
  /**
   * `"block"` (default): an LZ4 block prefixed with its uncompressed size as
   * a little-endian uint32, python-lz4's `lz4.block.compress(store_size=True)`
   * layout, the fastest. `"frame"`: the standard LZ4 frame format.
   */
  readonly format?: "block" | "frame"
  /** Frame format only: append a checksum of the content (default true). */
  readonly contentChecksum?: boolean
}

// An LZ4 sequence's length bytes add at most 255 output bytes each: no block decompresses to more.
const MAX_LZ4_EXPANSION = 255

/**
 * The content size an LZ4 frame's header declares (FLG's C.Size bit, then 8
 * bytes after FLG and BD), or 0 when it declares none.
 */
const frameContentSize = (frame: Uint8Array): number =>
  frame.byteLength >= 14 && (frame[4]! & 0x08) !== 0 ? Number(bytesOf(frame).readBigUInt64LE(6)) : 0

const frameCodec = (options: Lz4Options, name: string, maxDecodedBytes: number) =>
  Effect.map(
    Effect.promise(() => import("lz4-napi")),
    (lz4) => {
      const frameOptions = { contentChecksum: options.contentChecksum !== false }
      return byteCodec(
        name,
        (v) => lz4.compressFrameSync(bytesOf(v), frameOptions),
        (b) => {
          checkDecodedSize("lz4", frameContentSize(b), maxDecodedBytes)
          const out = lz4.decompressFrameSync(bytesOf(b))
          checkDecodedSize("lz4", out.byteLength, maxDecodedBytes)
          return out
        }
      )
    }
  )

const blockCodec = (name: string, maxDecodedBytes: number) =>
  Effect.map(
    Effect.promise(() => import("lz4-wasm-nodejs")),
    (lz4) =>
      byteCodec(
        name,
        (v) => lz4.compress(v),
        (b) => {
          const declared = b.byteLength < 4 ? 0 : bytesOf(b).readUInt32LE(0)
          if (declared > MAX_LZ4_EXPANSION * b.byteLength + 64) {
            throw new RangeError(`lz4: a block of ${b.byteLength} bytes cannot hold the ${declared} it declares`)
          }
          checkDecodedSize("lz4", declared, maxDecodedBytes)
          try {
            return lz4.decompress(b)
          } catch (cause) {
            // The library throws strings.
            throw new Error(`lz4: ${Store.describeCause(cause)}`, { cause })
          }
        }
      )
  )

/**
 * lz4.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const definition: Definition<Lz4Options> = (options, { name, maxDecodedBytes }) =>
  options.format === "frame" ? frameCodec(options, name, maxDecodedBytes) : blockCodec(name, maxDecodedBytes)
