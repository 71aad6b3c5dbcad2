import { describe, expect, it } from "@effect/vitest"
import { Key } from "@partd/core"

/** A fresh list of keys, as `Object.keys` hands one over on every call. */
const list = (prefix: string, n = 4): Array<string> => Array.from({ length: n }, (_, i) => `${prefix}-${i}`)

const paths = (keys: Array<unknown>): ReadonlyArray<Key.Path> => {
  const result = Key.toPathList(keys)
  if (result instanceof Key.InvalidAt) throw new Error(`unexpected ${result.invalid.problem}`)
  return result
}

describe("Key.toPathList", () => {
  it("hands back one frozen array for a list of keys repeated call after call", () => {
    const first = paths(list("rep"))
    expect(Object.isFrozen(first)).toBe(false)
    const second = paths(list("rep"))
    const third = paths(list("rep"))
    expect(Object.isFrozen(second)).toBe(true)
    expect(third).toBe(second)
    expect([...third]).toEqual(list("rep"))
  })

  it("tells a list from a remembered one that differs in any key, or in length", () => {
    paths(list("near"))
    paths(list("near"))
    const last = [...list("near").slice(0, 3), "near-x"]
    expect([...paths(last)]).toEqual(last)
    expect([...paths(list("near", 5))]).toEqual(list("near", 5))
    expect([...paths(list("near", 3))]).toEqual(list("near", 3))
  })

  it("fails a bad key in a list like a remembered one, at its index", () => {
    paths(list("warm"))
    paths(list("warm"))
    for (const bad of ["..", "warm-3/", "", "a\u0000b"]) {
      const result = Key.toPathList([...list("warm").slice(0, 3), bad])
      expect(result).toBeInstanceOf(Key.InvalidAt)
      expect((result as Key.InvalidAt).index).toBe(3)
    }
    // Still bad when seen again: a bad key is never remembered.
    expect(Key.toPathList(["..", "ok"])).toBeInstanceOf(Key.InvalidAt)
    expect(Key.toPathList(["..", "ok"])).toBeInstanceOf(Key.InvalidAt)
    expect(Key.toPath("..")).toBeInstanceOf(Key.Invalid)
  })

  it("remembers only a few lists: the oldest is forgotten, and still right", () => {
    paths(list("old"))
    const frozen = paths(list("old"))
    expect(paths(list("old"))).toBe(frozen)
    for (let i = 0; i < 8; i++) paths(list(`other${i}`))
    // Forgotten: validated again, as a new candidate.
    const again = paths(list("old"))
    expect(again).not.toBe(frozen)
    expect(Object.isFrozen(again)).toBe(false)
    expect([...again]).toEqual(list("old"))
    // Recently used lists stay: using one moves it to the front.
    paths(list("keep"))
    const kept = paths(list("keep"))
    for (let i = 0; i < 7; i++) {
      paths(list(`more${i}`))
      expect(paths(list("keep"))).toBe(kept)
    }
  })

  it("gives numbers and tuples their paths, in an array of their own, never remembered", () => {
    const keys: Array<unknown> = ["a", 7, ["b", 2.5], "c"]
    const first = paths(keys)
    expect([...first]).toEqual(["a", "7", "b/2.5", "c"])
    expect(first).not.toBe(keys)
    const second = paths(["a", 7, ["b", 2.5], "c"])
    expect(Object.isFrozen(second)).toBe(false)
    expect(Key.toPathList(["a", Number.POSITIVE_INFINITY])).toBeInstanceOf(Key.InvalidAt)
  })

  it("validates every key right past the bound of remembered key strings", () => {
    // More distinct valid strings than the cache holds, then bad ones and the first ones again.
    for (let i = 0; i < 20_000; i++) expect(Key.toPath(`many-${i}`)).toBe(`many-${i}`)
    for (let i = 0; i < 20_000; i += 997) expect(Key.toPath(`many-${i}`)).toBe(`many-${i}`)
    expect(Key.toPath("many-1/..")).toBeInstanceOf(Key.Invalid)
    expect(Key.toPath(`${"x".repeat(300)}/..`)).toBeInstanceOf(Key.Invalid)
    const long = "y".repeat(300)
    expect(Key.toPath(long)).toBe(long)
    expect(Key.toPath(long)).toBe(long)
  })

  it("an empty list is empty", () => {
    expect(paths([])).toEqual([])
  })
})
