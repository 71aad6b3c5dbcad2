/**
 * RESP encoding of the append script's `EVAL` command, for the hot path.
 *
 * ioredis encodes a command by building a list of strings and buffers, one
 * pair per argument, and concatenating them; for an append of a thousand
 * small chunks that costs more than everything else the client does. Here the
 * command is written straight into one buffer of the exact size: the prefix's
 * bytes once per key (keys are never concatenated into strings), each chunk
 * copied once.
 *
 * @since 0.1.0
 */

const CR = 13
const LF = 10

/** Bytes needed for the decimal digits of a non-negative integer. */
const digits = (n: number): number => (n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : String(n).length)

/** Writes `\r\n` at `offset`; returns the offset after it. */
const crlf = (buf: Buffer, offset: number): number => {
  buf[offset] = CR
  buf[offset + 1] = LF
  return offset + 2
}

/** Writes `<marker><n>\r\n` at `offset`; returns the offset after it. */
const header = (buf: Buffer, offset: number, marker: number, n: number): number => {
  buf[offset++] = marker
  const length = digits(n)
  for (let i = length - 1; i >= 0; i--) {
    buf[offset + i] = 48 + (n % 10)
    n = Math.floor(n / 10)
  }
  return crlf(buf, offset + length)
}

/** Writes the bulk string `$<n>\r\n<bytes>\r\n` at `offset`; returns the offset after it. */
const bulk = (buf: Buffer, offset: number, bytes: Uint8Array): number => {
  offset = header(buf, offset, 36 /* $ */, bytes.byteLength)
  buf.set(bytes, offset)
  return crlf(buf, offset + bytes.byteLength)
}

/** The length of a string that is all ASCII (its UTF-8 byte length), or -1. */
const asciiLength = (s: string): number => {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return -1
  return s.length
}

/** Size of a bulk string of `n` bytes: `$<n>\r\n<bytes>\r\n`. */
const bulkSize = (n: number): number => 1 + digits(n) + 2 + n + 2

/**
 * Encodes the key arguments `<prefix+paths[i]>` for `i` in `[start, end)`
 * as RESP bulk strings, for {@link evalWithId}. A shuffle appends to the
 * same keys on every call, so the store keeps this per key set.
 *
 * @since 0.1.0
 * @category encoding
 */
export const keyBlock = (prefix: Buffer, paths: ReadonlyArray<string>, start: number, end: number): Buffer => {
  const count = end - start
  const pathBytes = new Array<number>(count)
  const prefixLength = prefix.byteLength
  let size = 0
  for (let i = 0; i < count; i++) {
    const path = paths[start + i]!
    const ascii = asciiLength(path)
    const n = ascii < 0 ? Buffer.byteLength(path, "utf8") : ascii
    pathBytes[i] = n
    size += bulkSize(prefixLength + n)
  }
  const buf = Buffer.allocUnsafe(size)
  let offset = 0
  for (let i = 0; i < count; i++) {
    const path = paths[start + i]!
    const n = pathBytes[i]!
    offset = header(buf, offset, 36 /* $ */, prefixLength + n)
    // Prefixes and keys are short: copying them here beats a native call per key.
    for (let j = 0; j < prefixLength; j++) buf[offset + j] = prefix[j]!
    offset += prefixLength
    if (n === path.length) {
      // UTF-8 is as long as UTF-16 only when every character is ASCII.
      for (let j = 0; j < n; j++) buf[offset + j] = path.charCodeAt(j)
      offset += n
    } else {
      offset += buf.write(path, offset, n, "utf8")
    }
    offset = crlf(buf, offset)
  }
  return buf
}

/**
 * Encodes `EVAL <script> 1 <idKey> <window> <keys…> <values[i]…>` for `i` in
 * `[start, end)`, where `keys` is the {@link keyBlock} of the same range,
 * into a buffer of exactly the command's size from `allocate` (whose
 * contents need not be initialized: every byte is written). The one
 * declared key is the call's id key (a cluster node routes and checks the
 * script by it); the chunks' keys follow as arguments.
 *
 * @since 0.1.0
 * @category encoding
 */
export const evalWithId = (
  script: Buffer,
  idKey: string,
  window: string,
  keys: Buffer,
  values: ReadonlyArray<Uint8Array>,
  start: number,
  end: number,
  allocate: (size: number) => Buffer = Buffer.allocUnsafe
): Buffer => {
  const count = end - start
  const idBytes = Buffer.byteLength(idKey, "utf8")
  let size =
    1 +
    digits(5 + 2 * count) +
    2 +
    bulkSize(4) +
    bulkSize(script.byteLength) +
    bulkSize(1) +
    bulkSize(idBytes) +
    bulkSize(window.length) +
    keys.byteLength
  for (let i = start; i < end; i++) size += bulkSize(values[i]!.byteLength)
  const buf = allocate(size)
  let offset = header(buf, 0, 42 /* * */, 5 + 2 * count)
  offset = header(buf, offset, 36 /* $ */, 4)
  offset += buf.write("EVAL\r\n", offset, "latin1")
  offset = bulk(buf, offset, script)
  offset += buf.write("$1\r\n1\r\n", offset, "latin1")
  offset = header(buf, offset, 36, idBytes)
  offset += buf.write(idKey, offset, idBytes, "utf8")
  offset = crlf(buf, offset)
  offset = header(buf, offset, 36, window.length)
  offset += buf.write(window, offset, "latin1")
  offset = crlf(buf, offset)
  offset += keys.copy(buf, offset)
  for (let i = start; i < end; i++) offset = bulk(buf, offset, values[i]!)
  return buf
}
