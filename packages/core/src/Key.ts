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

/**
 * Validates a key and returns its canonical path, or {@link Invalid}. A valid
 * string key is its own path, so the common case allocates nothing.
 *
 * @since 0.1.0
 * @category validation
 */
export const toPath = (key: unknown): Path | Invalid => {
  if (typeof key === "string") {
    const problem = pathProblem(key)
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
 * `Backend` is a key set's (`Store.columns`), the same object on every call
 * and never changed. What a backend resolves from it (a Dict's slots, a File
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
