/**
 * bzip2 (Python's `bz2.compress`, partd's `BZ2`), from @ledgerhq/compressjs.
 *
 * compressjs is an optional peer dependency: its GPL license stays out of
 * installs that do not use bz2, and the codec says how to install it when it
 * is missing. Each bzip2 block and the stream carry CRCs, which compressjs
 * checks. bzip2 can expand a few hundred bytes into a gigabyte, and its
 * header does not say how much, so decoding writes into an output that fails
 * as soon as it would pass `maxDecodedBytes`.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { byteCodec, type Common, checkDecodedSize, checkRange, type Definition, invalid } from "./Algorithm.ts"

/**
 * Options for bz2.
 *
 * @since 0.1.0
 * @category models
 */
export interface Bz2Options extends Common {
  /** 1 to 9: the block size in units of 100 kB; default 9, as Python's `bz2.compress`. */
  readonly level?: number
}

interface OutputStream {
  writeByte(byte: number): void
}

interface CompressJs {
  readonly Bzip2: {
    compressFile(input: Uint8Array, output: null, blockSizeLevel: number): Uint8Array | Array<number>
    decompressFile(input: Uint8Array, output: OutputStream): unknown
  }
}

// Untyped CommonJS package, and an optional peer dependency: imported by a non-literal name so the type
// checker does not look for types.
const COMPRESSJS: string = "@ledgerhq/compressjs"

const asBytes = (u: Uint8Array | Array<number>): Uint8Array => (u instanceof Uint8Array ? u : Uint8Array.from(u))

/** compressjs writes its output a byte at a time: into a buffer that doubles, up to the bound. */
class BoundedOutput implements OutputStream {
  buffer: Uint8Array
  length = 0
  readonly max: number
  constructor(initial: number, max: number) {
    this.max = max
    this.buffer = new Uint8Array(Math.min(initial, max))
  }
  writeByte(byte: number): void {
    if (this.length === this.buffer.byteLength) this.grow()
    this.buffer[this.length++] = byte
  }
  private grow(): void {
    checkDecodedSize("bz2", this.length + 1, this.max)
    const next = new Uint8Array(Math.min(Math.max(this.buffer.byteLength * 2, 1024), this.max))
    next.set(this.buffer)
    this.buffer = next
  }
}

const load = Effect.tryPromise((): Promise<unknown> => import(COMPRESSJS)).pipe(
  Effect.orElseSucceed(() => undefined),
  Effect.flatMap((module) =>
    module === undefined
      ? invalid(
          "bz2",
          "needs the optional peer dependency @ledgerhq/compressjs (GPL-licensed): npm install @ledgerhq/compressjs"
        )
      : Effect.succeed(((module as { default?: CompressJs }).default ?? module) as CompressJs)
  )
)

/**
 * bz2.
 *
 * @since 0.1.0
 * @category algorithms
 */
export const definition: Definition<Bz2Options> = (options, { name, maxDecodedBytes }) =>
  Effect.andThen(
    checkRange("bz2", "level", options.level, 1, 9),
    Effect.map(load, ({ Bzip2 }) => {
      const level = options.level ?? 9
      return byteCodec(
        name,
        (v) => asBytes(Bzip2.compressFile(v, null, level)),
        (b) => {
          const out = new BoundedOutput(b.byteLength * 4, maxDecodedBytes)
          Bzip2.decompressFile(b, out)
          return out.buffer.subarray(0, out.length)
        }
      )
    })
  )
