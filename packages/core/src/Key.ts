/**
 * Keys of a partd store, and the one place where they are validated.
 *
 * partd keys are strings or tuples. A tuple is a nested path: `["a", "b"]`
 * names the same value as the string `"a/b"`, exactly as Python partd's File
 * backend lays it out on disk (`a/b`). Every backend stores a key under its
 * canonical *path*: the segments joined by `/`. Because no segment may contain
 * `/`, the join is injective, so Dict, Redis and the wire protocol can use the
 * path as a flat name without collisions, while File can split it back into
 * directories.
 *
 * Validation is uniform across backends, so a program that works against Dict
 * in tests works unchanged against File or Redis in production: empty
 * segments, `.` and `..`, NUL bytes and `/` inside a tuple element are rejected
 * (they would let a key name something outside a File store's directory).
 *
 * @since 0.1.0
 */

/**
 * One element of a tuple key. Numbers are written in their shortest decimal
 * form (`1`, `2.5`), as `String(n)` prints them.
 *
 * @since 0.1.0
 * @category models
 */
export type Segment = string | number

/**
 * A tuple key: a nested path of segments.
 *
 * @since 0.1.0
 * @category models
 */
export type Tuple = ReadonlyArray<Segment>

/**
 * A key: a string (`/` separates nested segments), a number, or a tuple.
 *
 * @since 0.1.0
 * @category models
 */
export type Key = string | number | Tuple

/**
 * The canonical form of a valid key: its segments joined by `/`.
 *
 * @since 0.1.0
 * @category models
 */
export type Path = string

const TupleTypeId: unique symbol = Symbol.for("@partd/core/Key/Tuple")

/**
 * A tuple marked as a key, for the nested form of `get`, where plain arrays
 * are lists of keys (as Python lists are in partd) and a tuple key must be told
 * apart from them.
 *
 * @since 0.1.0
 * @category models
 */
export interface MarkedTuple extends Tuple {
  readonly [TupleTypeId]: true
}

/**
 * Marks a tuple key so that the nested form of `get` reads it as one key.
 *
 * @example
 * ```ts
 * Store.getNested(["x", [Key.tuple("y", 1), "z"]])
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const tuple = (...segments: ReadonlyArray<Segment>): MarkedTuple => {
  const out = segments.slice()
  Object.defineProperty(out, TupleTypeId, { value: true })
  return Object.freeze(out) as unknown as MarkedTuple
}

/**
 * Whether a value is a tuple marked with {@link tuple}.
 *
 * @since 0.1.0
 * @category guards
 */
export const isMarkedTuple = (u: unknown): u is MarkedTuple =>
  Array.isArray(u) && (u as unknown as Record<symbol, unknown>)[TupleTypeId] === true

/**
 * Why the segment `segment.slice(start, end)` is rejected, or `undefined`
 * when it is valid: it may not be empty, `.` or `..`. It cannot contain `/`
 * (the caller splits at every `/`); NUL anywhere in a key is rejected by
 * `pathProblem`, and `/` inside a tuple element by `toPath`.
 */
const segmentProblem = (segment: string, start: number, end: number): string | undefined => {
  const length = end - start
  if (length === 0) return "empty segment"
  if (
    segment.charCodeAt(start) === 46 /* . */ &&
    (length === 1 || (length === 2 && segment.charCodeAt(start + 1) === 46))
  ) {
    return `segment "${segment.slice(start, end)}" is not allowed`
  }
  return undefined
}

/**
 * Validates a path string (segments joined by `/`) and returns the reason it
 * is invalid, or `undefined` when it is valid. A plain loop, because this runs
 * once per key per call on the hot path.
 */
const pathProblem = (path: string): string | undefined => {
  let start = 0
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (c === 0) return "key contains a NUL character"
    if (c === 47 /* / */) {
      const problem = segmentProblem(path, start, i)
      if (problem !== undefined) return problem
      start = i + 1
    }
  }
  return segmentProblem(path, start, path.length)
}

const segmentToString = (segment: unknown): string | undefined => {
  if (typeof segment === "string") return segment
  if (typeof segment === "number" && Number.isFinite(segment)) return String(segment)
  return undefined
}

/**
 * Why a key is invalid: what {@link toPath} returns for a bad key.
 *
 * @since 0.1.0
 * @category models
 */
export class Invalid {
  readonly problem: string
  constructor(problem: string) {
    this.problem = problem
  }
}

/** How many valid key strings {@link toPath} remembers. */
const VALID_STRINGS = 1 << 14
/** The longest key string it remembers (so that the cache stays small). */
const VALID_STRING_LENGTH = 256

/**
 * Valid key strings seen recently, oldest first (a `Set` iterates in
 * insertion order): a string key seen before is not scanned again. Only valid
 * strings are kept, so a bad key is always scanned, and fails.
 */
const validStrings = new Set<string>()

/** Why a string key is invalid, or undefined when it is valid (remembering it). */
const stringProblem = (key: string): string | undefined => {
  if (validStrings.has(key)) return undefined
  const problem = pathProblem(key)
  if (problem === undefined && key.length <= VALID_STRING_LENGTH) {
    if (validStrings.size >= VALID_STRINGS) validStrings.delete(validStrings.values().next().value!)
    validStrings.add(key)
  }
  return problem
}

/**
 * Validates a key and returns its canonical path, or {@link Invalid}. A valid
 * string key is its own path, so the common case allocates nothing, and a
 * string key validated recently is not scanned again.
 *
 * @since 0.1.0
 * @category validation
 */
export const toPath = (key: unknown): Path | Invalid => {
  if (typeof key === "string") {
    const problem = stringProblem(key)
    return problem === undefined ? key : new Invalid(problem)
  }
  if (typeof key === "number") {
    return Number.isFinite(key) ? String(key) : new Invalid("a numeric key must be finite")
  }
  if (Array.isArray(key)) {
    if (key.length === 0) return new Invalid("empty tuple")
    const parts: Array<string> = []
    for (const element of key) {
      const segment = segmentToString(element)
      if (segment === undefined) return new Invalid("a tuple element must be a string or a finite number")
      if (segment.includes("/")) return new Invalid(`tuple element "${segment}" contains "/"`)
      parts.push(segment)
    }
    const path = parts.join("/")
    const problem = pathProblem(path)
    return problem === undefined ? path : new Invalid(problem)
  }
  return new Invalid(`a key must be a string, a number or a tuple, got ${key === null ? "null" : typeof key}`)
}

/**
 * Why the key at `index` of a list is invalid: what {@link toPathList}
 * returns for a list with a bad key.
 *
 * @since 0.1.0
 * @category models
 */
export class InvalidAt {
  readonly index: number
  readonly invalid: Invalid
  constructor(index: number, invalid: Invalid) {
    this.index = index
    this.invalid = invalid
  }
}

/** How many recently validated key sequences {@link toPathList} remembers. */
const SEQUENCES = 8
/** The longest key sequence it remembers; longer ones are validated key by key. */
const SEQUENCE_KEYS = 1 << 16

/**
 * A sequence of valid string keys seen recently. A string is its own path,
 * and comparing two strings compares their values, so a list matches exactly
 * when every key is the same valid key.
 *
 * Seen once, a sequence is a candidate and its array is handed back as it
 * is. Seen again, that array is frozen and handed back on every later call,
 * so that backends' {@link keySetCache}s hit for records appended to the same
 * keys call after call. Lists are compared with `keys`, an array never handed
 * out, because V8 reads a frozen array's elements several times slower.
 */
interface Sequence {
  keys: ReadonlyArray<Path>
  frozen: ReadonlyArray<Path> | undefined
}

/** Recent sequences, most recently used first. */
const sequences: Array<Sequence> = []

const sameSequence = (a: ReadonlyArray<unknown>, b: ReadonlyArray<unknown>): boolean => {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** The frozen paths of the remembered sequence equal to `keys` (moved to the front), or undefined. */
const recall = (keys: Array<unknown>): ReadonlyArray<Path> | undefined => {
  const n = keys.length
  const first = keys[0]
  for (let s = 0; s < sequences.length; s++) {
    const sequence = sequences[s]!
    const known = sequence.keys
    if (known.length !== n || known[0] !== first || !sameSequence(known, keys)) continue
    if (s !== 0) {
      sequences.splice(s, 1)
      sequences.unshift(sequence)
    }
    if (sequence.frozen === undefined) {
      // Seen twice: the candidate's array, handed out once unfrozen, becomes the
      // frozen one, and this call's own array (never handed out) the one to compare with.
      sequence.frozen = Object.freeze(known)
      sequence.keys = keys as Array<Path>
    }
    return sequence.frozen
  }
  return undefined
}

const remember = (keys: Array<Path>): void => {
  if (keys.length > SEQUENCE_KEYS) return
  if (sequences.length === SEQUENCES) sequences.pop()
  sequences.unshift({ keys, frozen: undefined })
}

/**
 * Validates a list of keys into their paths, or returns the first bad key's
 * index and problem. The same rules as {@link toPath}, faster for keys seen
 * before: a list of string keys equal to one of the last few is answered
 * without validating again, and as the same frozen array each time (see
 * {@link keySetCache}); other valid strings are remembered, boundedly, so a
 * new list of known keys is not validated again either. A bad key is never
 * remembered, so it always fails.
 *
 * `keys` is handed over: the caller must not change it afterwards, since the
 * result may be `keys` itself.
 *
 * @since 0.1.0
 * @category validation
 */
export const toPathList = (keys: Array<unknown>): ReadonlyArray<Path> | InvalidAt => {
  if (keys.length === 0) return keys as Array<Path>
  const known = recall(keys)
  if (known !== undefined) return known
  let paths: Array<Path> | undefined
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]
    if (typeof key === "string") {
      const problem = stringProblem(key)
      if (problem !== undefined) return new InvalidAt(i, new Invalid(problem))
      if (paths !== undefined) paths[i] = key
      continue
    }
    const path = toPath(key)
    if (path instanceof Invalid) return new InvalidAt(i, path)
    // Not every key is its own path: the paths go in an array of their own.
    if (paths === undefined) paths = (keys as Array<Path>).slice(0, i)
    paths[i] = path
  }
  if (paths !== undefined) return paths
  remember(keys as Array<Path>)
  return keys as Array<Path>
}

const KeySetTypeId: unique symbol = Symbol.for("@partd/core/Key/KeySet")

/**
 * A list of keys validated once, for appending to the same keys call after
 * call, as a shuffle does: `Store.columns(keySet, values)` appends
 * `values[i]` to the i-th key without validating the keys again. Its `paths`
 * array is frozen and the same object on every call, so backends can cache
 * what they resolve per key (a Dict's slots, a File store's handles).
 *
 * @since 0.1.0
 * @category models
 */
export interface KeySet {
  readonly [KeySetTypeId]: true
  /** The canonical paths, in the order the keys were given. */
  readonly paths: ReadonlyArray<Path>
}

/**
 * Validates a list of keys into a {@link KeySet}, or returns the first
 * problem with the key it concerns.
 *
 * @since 0.1.0
 * @category constructors
 */
export const toKeySet = (keys: ReadonlyArray<Key>): KeySet | { readonly key: unknown; readonly invalid: Invalid } => {
  const paths = new Array<Path>(keys.length)
  for (let i = 0; i < keys.length; i++) {
    const path = toPath(keys[i])
    if (path instanceof Invalid) return { key: keys[i], invalid: path }
    paths[i] = path
  }
  return Object.freeze({ [KeySetTypeId]: true as const, paths: Object.freeze(paths) })
}

/**
 * Whether a value is a {@link KeySet}.
 *
 * @since 0.1.0
 * @category guards
 */
export const isKeySet = (u: unknown): u is KeySet =>
  typeof u === "object" && u !== null && (u as Record<symbol, unknown>)[KeySetTypeId] === true

/**
 * Values computed once per key set and reused on later calls.
 *
 * The rule every backend relies on: a frozen paths array handed to a
 * `Backend` is a key set's (`Store.columns`) or a repeated list of keys'
 * (see {@link toPathList}), the same object on every call and never changed. What a backend resolves from it (a Dict's slots, a File
 * store's handles, Redis's encoded keys) can be kept beside it in a `WeakMap`
 * and dropped with it. Any other array is fresh on each call and is resolved
 * each time.
 *
 * A cached value stays valid until {@link KeySetCache.invalidate} is called,
 * which a backend does whenever what the values were computed from changes
 * (a key removed, a handle closed).
 *
 * @since 0.1.0
 * @category models
 */
export interface KeySetCache<P, A> {
  /** The value for `paths`: the cached one for a frozen key set, else computed now. */
  readonly get: (paths: ReadonlyArray<P>) => A
  /** Makes every cached value stale. */
  readonly invalidate: () => void
}

/**
 * Makes a {@link KeySetCache} over `compute`.
 *
 * @example
 * ```ts
 * const slots = Key.keySetCache((paths: ReadonlyArray<Key.Path>) => paths.map(slotOf))
 * slots.get(paths) // resolved once per key set
 * slots.invalidate() // after a delete
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const keySetCache = <P, A>(compute: (paths: ReadonlyArray<P>) => A): KeySetCache<P, A> => {
  const cached = new WeakMap<ReadonlyArray<P>, { readonly generation: number; readonly value: A }>()
  let generation = 0
  return {
    get: (paths) => {
      if (!Object.isFrozen(paths)) return compute(paths)
      let entry = cached.get(paths)
      if (entry === undefined || entry.generation !== generation) {
        entry = { generation, value: compute(paths) }
        cached.set(paths, entry)
      }
      return entry.value
    },
    invalidate: () => {
      generation++
    }
  }
}

/**
 * A human-readable rendering of any key, for error messages.
 *
 * @since 0.1.0
 * @category destructors
 */
export const show = (key: unknown): string => {
  if (typeof key === "string") return key
  if (Array.isArray(key)) return `(${key.map((k) => JSON.stringify(k)).join(", ")})`
  try {
    return String(key)
  } catch {
    return typeof key
  }
}
