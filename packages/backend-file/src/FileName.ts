/**
 * File names: where a key's bytes live inside a File store's directory.
 *
 * A key path (segments joined by `/`, see `Key`) becomes a relative file
 * path: each segment is escaped into one file name, and the names are joined
 * by `/`, so a tuple key `["a", "b"]` is the file `b` in the directory `a`,
 * exactly as Python partd lays it out.
 *
 * The escaping, per segment:
 *
 * - the characters Python partd keeps in file names (`-_.() `, ASCII letters
 *   and digits) are kept as they are, so every key Python partd stores
 *   plainly has the same file name here and both read each other's stores;
 * - every other character is written as `%XX` for each byte of its UTF-8
 *   encoding, uppercase hex (`a:b` → `a%3Ab`, `é` → `%C3%A9`, `%` → `%25`).
 *   Python partd instead drops such characters (`a:b` → `ab`), which makes
 *   distinct keys share a file; here the mapping is injective and reversible
 *   ({@link toPath}).
 * - the segment `.lock`, which would be the store's lock file (Python partd's
 *   name for it), is written `%2Elock`.
 *
 * Escaped names use only `-_.() %`, letters and digits, and `%` is always
 * followed by two uppercase hex digits, so names outside that form, like
 * {@link LEAF} and the lock file, can never be a key's name.
 *
 * A name longer than the filesystem allows (255 bytes), or a whole path
 * longer than `PATH_MAX`, makes the key invalid for this store: it fails with
 * `BadKey` rather than with a late `ENAMETOOLONG` halfway through a call.
 *
 * @since 0.1.0
 */

/**
 * The longest file name, in bytes, on the filesystems this runs on (Linux
 * `NAME_MAX`).
 *
 * @since 0.1.0
 * @category constants
 */
export const NAME_MAX = 255

/**
 * The longest path, in bytes, including the terminating NUL (Linux
 * `PATH_MAX`).
 *
 * @since 0.1.0
 * @category constants
 */
export const PATH_MAX = 4096

/**
 * The name of the store's lock file, the one Python partd (through `locket`)
 * uses too.
 *
 * @since 0.1.0
 * @category constants
 */
export const LOCK = ".lock"

/**
 * The name of the lock's state file: the generation stamp and the intent
 * record of a running append (see `Lock` and `Intent`). Python partd keeps
 * only `-_.() `, letters and digits in names, and escaped names here follow
 * `%` with two uppercase hex digits, so no key of either names this file.
 *
 * @since 0.1.0
 * @category constants
 */
export const STATE = ".lock%state"

/**
 * The name of the file of recorded append call ids (see `Calls`): like
 * {@link STATE}, a name no key of this store or of Python partd has.
 *
 * @since 0.1.0
 * @category constants
 */
export const CALLS = ".lock%calls"

/**
 * The name, inside a directory, of the value of the key that names that
 * directory. A key `a` and a key `a/b` can both hold bytes, but `a` cannot
 * be both a file and a directory: once `a/b` exists, the bytes of `a` live in
 * `a/%self`. Python partd cannot store both keys at all (its append fails),
 * so stores it writes never need this.
 *
 * @since 0.1.0
 * @category constants
 */
export const LEAF = "%self"

/** Char codes kept as they are: `-_.() `, ASCII letters and digits. */
const PLAIN: ReadonlyArray<boolean> = (() => {
  const table = new Array<boolean>(128).fill(false)
  for (const c of "-_.() ") table[c.charCodeAt(0)] = true
  for (let c = 48; c <= 57; c++) table[c] = true
  for (let c = 65; c <= 90; c++) table[c] = true
  for (let c = 97; c <= 122; c++) table[c] = true
  return table
})()

const HEX = "0123456789ABCDEF"
const encoder = new TextEncoder()

/**
 * Why a key cannot be stored here: what {@link toRelative} returns for a key
 * that has no file name.
 *
 * @since 0.1.0
 * @category models
 */
export class Unnameable {
  readonly problem: string
  constructor(problem: string) {
    this.problem = problem
  }
}

/** Whether `s` holds an unpaired UTF-16 surrogate, which UTF-8 cannot encode. */
const hasLoneSurrogate = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) i++
      else return true
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return true
    }
  }
  return false
}

const escapeSlow = (segment: string): string | Unnameable => {
  if (hasLoneSurrogate(segment)) return new Unnameable("a key may not contain an unpaired UTF-16 surrogate")
  let out = ""
  for (const byte of encoder.encode(segment)) {
    out += byte < 128 && PLAIN[byte] ? String.fromCharCode(byte) : `%${HEX[byte >> 4]}${HEX[byte & 15]}`
  }
  return out
}

/**
 * The file name of one key segment.
 *
 * @since 0.1.0
 * @category encoding
 */
export const escapeSegment = (segment: string): string | Unnameable => {
  let plain = true
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i)
    if (c >= 128 || !PLAIN[c]) {
      plain = false
      break
    }
  }
  const name = plain ? segment : escapeSlow(segment)
  if (name instanceof Unnameable) return name
  if (name === LOCK) return "%2Elock"
  if (name.length > NAME_MAX) {
    return new Unnameable(`the file name of segment "${segment.slice(0, 40)}…" would be over ${NAME_MAX} bytes`)
  }
  return name
}

/**
 * The path, relative to the store's directory, of a key's file. Escaped
 * names are ASCII, so its length is its size in bytes.
 *
 * @since 0.1.0
 * @category encoding
 */
export const toRelative = (path: string): string | Unnameable => {
  let start = 0
  let out = ""
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path.charCodeAt(i) === 47 /* / */) {
      const name = escapeSegment(path.slice(start, i))
      if (name instanceof Unnameable) return name
      out = start === 0 ? name : `${out}/${name}`
      start = i + 1
    }
  }
  return out
}

/**
 * The key segment a file name stands for, or `undefined` when the name is not
 * one this module produces (the lock file, {@link LEAF}, foreign files).
 *
 * @since 0.1.0
 * @category decoding
 */
export const unescapeSegment = (name: string): string | undefined => {
  if (name === LOCK || name.length === 0) return undefined
  if (!name.includes("%")) {
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i)
      if (c >= 128 || !PLAIN[c]) return undefined
    }
    return name
  }
  const bytes: Array<number> = []
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if (c === 37 /* % */) {
      if (i + 2 >= name.length) return undefined
      const hi = HEX.indexOf(name[i + 1]!)
      const lo = HEX.indexOf(name[i + 2]!)
      if (hi < 0 || lo < 0) return undefined
      const byte = hi * 16 + lo
      // A plain character is never escaped, except the `.` of `.lock`; no key holds NUL or `/`.
      if (byte < 128 && PLAIN[byte] && !(byte === 46 && i === 0 && name === "%2Elock")) return undefined
      if (byte === 0 || byte === 47) return undefined
      bytes.push(byte)
      i += 2
    } else if (c < 128 && PLAIN[c]) {
      bytes.push(c)
    } else {
      return undefined
    }
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bytes))
  } catch {
    return undefined
  }
}

/**
 * The key path a relative file path stands for (the inverse of
 * {@link toRelative}), or `undefined` when it is not a key's file.
 *
 * @since 0.1.0
 * @category decoding
 */
export const toPath = (relative: string): string | undefined => {
  const names = relative.split("/")
  if (names.length > 1 && names[names.length - 1] === LEAF) names.pop()
  const segments: Array<string> = []
  for (const name of names) {
    const segment = unescapeSegment(name)
    if (segment === undefined) return undefined
    segments.push(segment)
  }
  return segments.join("/")
}
