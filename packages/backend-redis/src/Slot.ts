/**
 * Redis Cluster's key → hash slot mapping: CRC16 (XMODEM) of the key's UTF-8
 * bytes, modulo 16384, hashing only the `{tag}` when the key has a non-empty
 * one. The store groups multi-key calls by the node that serves each slot, so
 * this runs once per key per call on a cluster: a table-driven loop over the
 * string's code units, without encoding the key into a Buffer first.
 *
 * @since 0.1.0
 */

/**
 * How many hash slots a Redis Cluster has.
 *
 * @since 0.1.0
 * @category constants
 */
export const SLOTS = 16384

const table = (() => {
  const t = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    t[i] = crc
  }
  return t
})()

const step = (crc: number, byte: number): number => ((crc << 8) & 0xffff) ^ table[((crc >>> 8) ^ byte) & 0xff]!

/** CRC16 of the UTF-8 encoding of `key.slice(start, end)`. */
const crc16 = (key: string, start: number, end: number): number => {
  let crc = 0
  for (let i = start; i < end; i++) {
    let c = key.charCodeAt(i)
    if (c < 0x80) {
      crc = step(crc, c)
    } else if (c < 0x800) {
      crc = step(crc, 0xc0 | (c >> 6))
      crc = step(crc, 0x80 | (c & 0x3f))
    } else {
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < end) {
        const low = key.charCodeAt(i + 1)
        if (low >= 0xdc00 && low <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00)
          i++
          crc = step(crc, 0xf0 | (c >> 18))
          crc = step(crc, 0x80 | ((c >> 12) & 0x3f))
          crc = step(crc, 0x80 | ((c >> 6) & 0x3f))
          crc = step(crc, 0x80 | (c & 0x3f))
          continue
        }
      }
      // A lone surrogate is encoded as U+FFFD, as Buffer.from(key) does.
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd
      crc = step(crc, 0xe0 | (c >> 12))
      crc = step(crc, 0x80 | ((c >> 6) & 0x3f))
      crc = step(crc, 0x80 | (c & 0x3f))
    }
  }
  return crc
}

/**
 * The hash slot of a Redis key, as the cluster computes it.
 *
 * @since 0.1.0
 * @category hashing
 */
export const of = (key: string): number => {
  const open = key.indexOf("{")
  if (open !== -1) {
    const close = key.indexOf("}", open + 1)
    if (close > open + 1) return crc16(key, open + 1, close) % SLOTS
  }
  return crc16(key, 0, key.length) % SLOTS
}
