/**
 * BloscFrame: a strict reader of blosc 1 frames (c-blosc 1.x's format 2).
 *
 * numcodecs' WASM build of c-blosc, which writes this package's blosc frames,
 * ignores the status of its own decoder: a corrupt, truncated or random frame
 * decodes "successfully" to other bytes, to nothing, or to whatever its
 * allocator last held, and a frame that claims gigabytes gets them. So frames
 * are read here instead, following c-blosc's own decoder step for step
 * (header, block starts, splits, the inner codec, unshuffle), and every check
 * c-blosc makes, plus the ones its callers are trusted to make, fails with a
 * `BloscFrameError`: the header must be a version-2 header whose compressed
 * size is the frame's length and whose sizes agree with each other; every
 * block start and split length must lie inside the frame; every split must
 * decode to exactly its share of the block; and the decoded size must be at
 * most the caller's bound, checked before anything is allocated.
 *
 * blosc 1 carries no checksum, so on its own a flipped byte inside a literal
 * run or a match offset still decodes to other bytes of the right size. The
 * frames this package writes therefore carry one where c-blosc leaves room
 * for it without knowing ({@link seal}): c-blosc finds each block through the
 * table of block starts and never reads the bytes between the table and the
 * first block, so a marker and the CRC-32 of the content sit there, and
 * Python's `blosc.decompress` reads the frame as it reads any other. A frame
 * that carries the marker must match its checksum; frames from Python have
 * none and get every structural check, and so do frames blosc stored
 * uncompressed (there is no room in them).

 * The inner codecs: blosclz and LZ4 blocks are decoded here (a few dozen
 * lines each, with every bound checked); snappy, zlib and zstd splits go to
 * the libraries this package already uses for those formats.
 *
 * @since 0.1.0
 */
import * as zlib from "node:zlib"

/**
 * A frame that is not a valid blosc frame, or decodes past the bound.
 *
 * @since 0.1.0
 * @category errors
 */
export class BloscFrameError extends RangeError {
  override readonly name = "BloscFrameError"
}

/**
 * Decoders for the inner formats that come from libraries. Each returns the
 * decoded bytes of one split, or throws.
 *
 * @since 0.1.0
 * @category models
 */
export interface InnerDecoders {
  readonly snappy: (split: Uint8Array, size: number) => Uint8Array
  readonly zstd: (split: Uint8Array, size: number) => Uint8Array
}

/**
 * The fields of a blosc header.
 *
 * @since 0.1.0
 * @category models
 */
export interface Header {
  readonly flags: number
  readonly typesize: number
  readonly nbytes: number
  readonly blocksize: number
  readonly cbytes: number
}

const HEADER_BYTES = 16
const VERSION_FORMAT = 2
const INNER_VERSION_FORMAT = 1
const DOSHUFFLE = 0x1
const MEMCPYED = 0x2
const DOBITSHUFFLE = 0x4
const FUTURE_FLAG = 0x8
const DONT_SPLIT = 0x10
const MAX_SPLITS = 16
const MIN_BUFFERSIZE = 128
const MAX_BUFFERSIZE = 0x7fffffff - HEADER_BYTES
const BLOSCLZ = 0
const LZ4 = 1
const SNAPPY = 2
const ZLIB = 3
const ZSTD = 4

// The checksum this package writes into the frames it compresses (see `seal`): a marker, then the
// CRC-32 of the content, between the block starts and the first block.
const CHECKSUM_BYTES = 8
const CHECKSUM_MARKER = 0x6b636470 // "pdck", little-endian

const fail = (description: string): never => {
  throw new BloscFrameError(`blosc: ${description}`)
}

const u32 = (b: Uint8Array, at: number): number =>
  (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0

/**
 * Reads and checks a frame's header against the frame's length and the
 * bound on decoded bytes, before anything is allocated.
 *
 * @since 0.1.0
 * @category decoding
 */
export const readHeader = (frame: Uint8Array, maxDecodedBytes: number): Header => {
  if (frame.byteLength < HEADER_BYTES) fail(`a frame of ${frame.byteLength} bytes is shorter than a blosc header`)
  const version = frame[0]!
  const flags = frame[2]!
  const typesize = frame[3]!
  const nbytes = u32(frame, 4)
  const blocksize = u32(frame, 8)
  const cbytes = u32(frame, 12)
  if (version !== VERSION_FORMAT) fail(`format version ${version}, not ${VERSION_FORMAT}`)
  if (cbytes !== frame.byteLength) fail(`the header says ${cbytes} bytes, the frame has ${frame.byteLength}`)
  if (nbytes > MAX_BUFFERSIZE) fail(`a decoded size of ${nbytes} bytes is over blosc's limit`)
  if (nbytes > maxDecodedBytes) fail(`the frame declares ${nbytes} bytes, over maxDecodedBytes (${maxDecodedBytes})`)
  if (nbytes === 0) return { flags, typesize, nbytes, blocksize, cbytes }
  if (typesize === 0) fail("typesize 0")
  if (blocksize === 0 || blocksize > nbytes) fail(`block size ${blocksize} for ${nbytes} bytes`)
  if ((flags & FUTURE_FLAG) !== 0) fail(`unknown flags 0x${flags.toString(16)}`)
  if ((flags & MEMCPYED) !== 0) {
    if (cbytes !== nbytes + HEADER_BYTES) fail(`a stored frame of ${cbytes} bytes cannot hold ${nbytes}`)
  } else {
    if (frame[1]! !== INNER_VERSION_FORMAT) fail(`inner format version ${frame[1]}`)
    if (flags >>> 5 > ZSTD) fail(`unknown inner format ${flags >>> 5}`)
    const nblocks = Math.ceil(nbytes / blocksize)
    if (nblocks > (cbytes - HEADER_BYTES) / 4) fail(`${cbytes} bytes cannot hold the starts of ${nblocks} blocks`)
  }
  return { flags, typesize, nbytes, blocksize, cbytes }
}

/**
 * Decodes a blosc frame, or throws a {@link BloscFrameError}.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (frame: Uint8Array, maxDecodedBytes: number, inner: InnerDecoders): Uint8Array => {
  const header = readHeader(frame, maxDecodedBytes)
  const { flags, nbytes, blocksize } = header
  if (nbytes === 0) return new Uint8Array(0)
  if ((flags & MEMCPYED) !== 0) return frame.slice(HEADER_BYTES)
  const nblocks = Math.ceil(nbytes / blocksize)
  const checksum = readChecksum(frame, nblocks)
  checkLayout(frame, header, nblocks, checksum === undefined ? 0 : CHECKSUM_BYTES)
  const out = new Uint8Array(nbytes)
  const shuffled = (flags & DOSHUFFLE) !== 0 || (flags & DOBITSHUFFLE) !== 0
  const tmp = shuffled ? new Uint8Array(blocksize) : undefined
  for (let j = 0; j < nblocks; j++) {
    const dest = out.subarray(j * blocksize, Math.min((j + 1) * blocksize, nbytes))
    const { doshuffle, dobitshuffle } = shuffling(header, dest.byteLength)
    const target = doshuffle || dobitshuffle ? tmp!.subarray(0, dest.byteLength) : dest
    forEachSplit(frame, header, j, (at, size, s, neblock) => {
      const part = target.subarray(s * neblock, (s + 1) * neblock)
      const src = frame.subarray(at, at + size)
      if (size === neblock) part.set(src)
      else decodeSplit(flags >>> 5, src, part, inner)
    })
    if (doshuffle) unshuffle(header.typesize, target, dest)
    else if (dobitshuffle) bitunshuffle(header.typesize, target, dest)
  }
  if (checksum !== undefined && zlib.crc32(out) !== checksum) fail("the content does not match its checksum")
  return out
}

// The most one compressed byte of each inner format can expand to (zstd has no such bound).
const MAX_RATIO = [256, 255, 22, 1032, Number.POSITIVE_INFINITY]

/**
 * Checks the frame's layout before anything is allocated: every split lies
 * inside the frame and can hold what it must decode to, and the blocks tile
 * the frame from the end of the block starts (and checksum) to its last
 * byte, without gaps or overlaps, as c-blosc writes them (in any order: its
 * threads write blocks as they finish).
 */
const checkLayout = (frame: Uint8Array, header: Header, nblocks: number, gap: number): void => {
  const ratio = MAX_RATIO[header.flags >>> 5]!
  const extents = new Array<readonly [number, number]>(nblocks)
  for (let j = 0; j < nblocks; j++) {
    const start = u32(frame, HEADER_BYTES + 4 * j)
    const end = forEachSplit(frame, header, j, (_at, size, _s, neblock) => {
      if (size !== neblock && neblock > ratio * size + 512) fail(`a split of ${size} bytes cannot hold ${neblock}`)
    })
    extents[j] = [start, end]
  }
  extents.sort((x, y) => x[0] - y[0])
  let at = HEADER_BYTES + 4 * nblocks + gap
  for (const [start, end] of extents) {
    if (start !== at) fail(`a block starts at ${start}, where ${at} was expected`)
    at = end
  }
  if (at !== frame.byteLength) fail(`the blocks end at ${at}, the frame at ${frame.byteLength}`)
}

/** How block `bsize` bytes long is shuffled, as c-blosc decides. */
const shuffling = (header: Header, bsize: number) => {
  const doshuffle = (header.flags & DOSHUFFLE) !== 0 && header.typesize > 1
  return { doshuffle, dobitshuffle: !doshuffle && (header.flags & DOBITSHUFFLE) !== 0 && bsize >= header.typesize }
}

/**
 * Walks block `j`'s splits (each a 4-byte length, then that many bytes),
 * checking each lies inside the frame; calls `f` with each split's offset,
 * length, index and decoded length. Returns where the block ends.
 */
const forEachSplit = (
  frame: Uint8Array,
  header: Header,
  j: number,
  f: (at: number, size: number, s: number, neblock: number) => void
): number => {
  const { flags, typesize, nbytes, blocksize, cbytes } = header
  const leftover = j === Math.ceil(nbytes / blocksize) - 1 && nbytes % blocksize !== 0
  const bsize = leftover ? nbytes % blocksize : blocksize
  const split = (flags & DONT_SPLIT) === 0 && typesize <= MAX_SPLITS && bsize / typesize >= MIN_BUFFERSIZE && !leftover
  const nsplits = split ? typesize : 1
  if (bsize % nsplits !== 0) fail(`a block of ${bsize} bytes does not split into ${nsplits}`)
  const neblock = bsize / nsplits
  let at = u32(frame, HEADER_BYTES + 4 * j)
  for (let s = 0; s < nsplits; s++) {
    if (at < HEADER_BYTES || at > cbytes - 4) fail(`a split starts at ${at}, outside the frame`)
    const size = u32(frame, at)
    at += 4
    if (size > cbytes - at) fail(`a split of ${size} bytes at ${at} runs past the frame's ${cbytes}`)
    f(at, size, s, neblock)
    at += size
  }
  return at
}

/**
 * The checksum a sealed frame carries, or `undefined` for a frame as c-blosc
 * writes it (its first block right after the block starts).
 */
const readChecksum = (frame: Uint8Array, nblocks: number): number | undefined => {
  const table = HEADER_BYTES + 4 * nblocks
  let first = Number.POSITIVE_INFINITY
  for (let j = 0; j < nblocks; j++) first = Math.min(first, u32(frame, HEADER_BYTES + 4 * j))
  if (first === table) return undefined
  if (first === table + CHECKSUM_BYTES && u32(frame, table) === CHECKSUM_MARKER) return u32(frame, table + 4)
  return fail(`the first block starts at ${first}, not after the ${nblocks} block starts`)
}

/**
 * Adds a checksum of the content to a frame c-blosc wrote: the block starts
 * move 8 bytes on, and the marker and CRC-32 of `content` go in between.
 * c-blosc reads blocks where the block starts say, so python-blosc (and
 * partd's `Blosc`) reads a sealed frame as it reads any other; this reader
 * verifies the checksum. Frames blosc stored uncompressed, and empty frames,
 * have no room for one and are returned as they are.
 *
 * @since 0.1.0
 * @category encoding
 */
export const seal = (frame: Uint8Array, content: Uint8Array): Uint8Array => {
  const header = readHeader(frame, Number.MAX_SAFE_INTEGER)
  if (header.nbytes === 0 || (header.flags & MEMCPYED) !== 0) return frame
  const nblocks = Math.ceil(header.nbytes / header.blocksize)
  const table = HEADER_BYTES + 4 * nblocks
  const out = new Uint8Array(frame.byteLength + CHECKSUM_BYTES)
  const view = new DataView(out.buffer)
  out.set(frame.subarray(0, table))
  view.setUint32(12, out.byteLength, true)
  for (let j = 0; j < nblocks; j++) {
    view.setUint32(HEADER_BYTES + 4 * j, u32(frame, HEADER_BYTES + 4 * j) + CHECKSUM_BYTES, true)
  }
  view.setUint32(table, CHECKSUM_MARKER, true)
  view.setUint32(table + 4, zlib.crc32(content), true)
  out.set(frame.subarray(table), table + CHECKSUM_BYTES)
  return out
}

/** One split with its inner format, which must fill `part` exactly. */
const decodeSplit = (format: number, src: Uint8Array, part: Uint8Array, inner: InnerDecoders): void => {
  let written: number
  switch (format) {
    case BLOSCLZ:
      written = blosclz(src, part)
      break
    case LZ4:
      written = lz4Block(src, part)
      break
    default: {
      const decoded =
        format === SNAPPY
          ? inner.snappy(src, part.byteLength)
          : format === ZLIB
            ? zlib.inflateSync(src, { maxOutputLength: Math.max(part.byteLength, 1) })
            : inner.zstd(src, part.byteLength)
      if (decoded.byteLength === part.byteLength) part.set(decoded)
      written = decoded.byteLength
    }
  }
  if (written !== part.byteLength) fail(`a split decoded to ${written} bytes, not ${part.byteLength}`)
}

/**
 * blosclz (c-blosc's FastLZ variant): returns the bytes written to `out`, or
 * -1 where c-blosc's decoder returns its error.
 */
const blosclz = (src: Uint8Array, out: Uint8Array): number => {
  const end = src.byteLength
  const limit = out.byteLength
  if (end === 0) return 0
  let ip = 0
  let op = 0
  let ctrl = src[ip++]! & 31
  for (;;) {
    if (ctrl >= 32) {
      let len = (ctrl >>> 5) - 1
      let ofs = (ctrl & 31) << 8
      if (len === 6) {
        let code: number
        do {
          if (ip + 1 >= end) return -1
          code = src[ip++]!
          len += code
        } while (code === 255)
      } else if (ip + 1 >= end) return -1
      const code = src[ip++]!
      len += 3
      let ref = op - ofs - code
      if (code === 255 && ofs === 31 << 8) {
        if (ip + 1 >= end) return -1
        ofs = (src[ip]! << 8) + src[ip + 1]!
        ip += 2
        ref = op - ofs - 8191
      }
      if (op + len > limit || ref - 1 < 0) return -1
      if (ip >= end) break
      ctrl = src[ip++]!
      ref--
      op = copyMatch(out, op, ref, len)
    } else {
      ctrl++
      if (op + ctrl > limit || ip + ctrl > end) return -1
      out.set(src.subarray(ip, ip + ctrl), op)
      op += ctrl
      ip += ctrl
      if (ip >= end) break
      ctrl = src[ip++]!
    }
  }
  return op
}

/** A raw LZ4 block (`LZ4_decompress_safe`): the bytes written, or -1. */
const lz4Block = (src: Uint8Array, out: Uint8Array): number => {
  const end = src.byteLength
  const limit = out.byteLength
  let ip = 0
  let op = 0
  // A length's extension bytes: each 255 continues it. -1 when the block ends inside it.
  const extension = (): number => {
    let sum = 0
    let b: number
    do {
      if (ip >= end) return -1
      b = src[ip++]!
      sum += b
    } while (b === 255)
    return sum
  }
  for (;;) {
    if (ip >= end) return -1
    const token = src[ip++]!
    let literals = token >>> 4
    if (literals === 15) {
      const more = extension()
      if (more < 0) return -1
      literals += more
    }
    if (ip + literals > end || op + literals > limit) return -1
    out.set(src.subarray(ip, ip + literals), op)
    ip += literals
    op += literals
    if (ip === end) return op
    if (ip + 2 > end) return -1
    const offset = src[ip]! | (src[ip + 1]! << 8)
    ip += 2
    if (offset === 0 || offset > op) return -1
    let len = token & 15
    if (len === 15) {
      const more = extension()
      if (more < 0) return -1
      len += more
    }
    len += 4
    if (op + len > limit) return -1
    op = copyMatch(out, op, op - offset, len)
  }
}

/**
 * Copies an LZ match of `len` bytes from `ref` to `op` (which may overlap:
 * a byte run, or a repeated pattern); returns the new `op`.
 */
const copyMatch = (out: Uint8Array, op: number, ref: number, len: number): number => {
  if (len < 16) {
    for (let i = 0; i < len; i++) out[op + i] = out[ref + i]!
  } else if (ref === op - 1) {
    out.fill(out[ref]!, op, op + len)
  } else if (op - ref >= len) {
    out.copyWithin(op, ref, ref + len)
  } else {
    // Overlapping: a repeated pattern, copied one period (already written) at a time.
    const period = op - ref
    for (let done = 0; done < len; done += period) {
      out.copyWithin(op + done, ref + done, ref + done + Math.min(period, len - done))
    }
  }
  return op + len
}

/** Byte unshuffle: byte j of element i is at `j * n + i`; trailing bytes are copied. */
const unshuffle = (typesize: number, src: Uint8Array, dest: Uint8Array): void => {
  const n = Math.floor(src.byteLength / typesize)
  // Element by element: the output is written in order, from one input stream per byte of the type.
  let k = 0
  for (let i = 0; i < n; i++) {
    for (let row = i; row < typesize * n; row += n) dest[k++] = src[row]!
  }
  const tail = n * typesize
  dest.set(src.subarray(tail), tail)
}

/**
 * Bit unshuffle (bitshuffle's transpose, undone): bit `r` of element `i` is
 * bit `r * n + i` of the input, bits counted from the low bit of each byte.
 * Only whole groups of 8 elements are transposed; the rest is copied.
 */
const bitunshuffle = (typesize: number, src: Uint8Array, dest: Uint8Array): void => {
  const size = Math.floor(src.byteLength / typesize)
  if (size % 8 !== 0) {
    dest.set(src)
    return
  }
  const n = size * typesize
  dest.fill(0, 0, n)
  const rowBytes = size >>> 3
  for (let r = 0; r < 8 * typesize; r++) {
    const row = r * rowBytes
    const byte = r >>> 3
    const bit = r & 7
    for (let i = 0; i < size; i++) {
      const at = i * typesize + byte
      dest[at] = dest[at]! | (((src[row + (i >>> 3)]! >>> (i & 7)) & 1) << bit)
    }
  }
  dest.set(src.subarray(n), n)
}
