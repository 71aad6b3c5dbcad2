import { describe, expect, it } from "@effect/vitest"
import { FileName } from "@partd/backend-file"
import { Key } from "@partd/core"
import * as fc from "fast-check"

describe("FileName", () => {
  it("keeps the names Python partd gives plain keys", () => {
    for (const plain of ["x", "key-1", "a_b.c", "(1 2)", "a b", "ABCxyz0189", "..a", "a.."]) {
      expect(FileName.toRelative(plain)).toBe(plain)
    }
    expect(FileName.toRelative("a/b/c")).toBe("a/b/c")
  })

  it("escapes every other character as %XX of its UTF-8 bytes", () => {
    expect(FileName.toRelative("a:b")).toBe("a%3Ab")
    expect(FileName.toRelative("café")).toBe("caf%C3%A9")
    expect(FileName.toRelative("100%")).toBe("100%25")
    expect(FileName.toRelative("🔑")).toBe("%F0%9F%94%91")
    expect(FileName.toRelative("a\\b")).toBe("a%5Cb")
    expect(FileName.toRelative(".lock")).toBe("%2Elock")
    expect(FileName.toRelative("x/.lock")).toBe("x/%2Elock")
  })

  it("never produces the names it keeps for itself", () => {
    for (const key of ["%self", "self", ".lock", "%2Elock", "%moving", ".lock%state", FileName.STATE]) {
      const relative = FileName.toRelative(key) as string
      expect(relative).not.toBe(FileName.LEAF)
      expect(relative).not.toBe(FileName.LOCK)
      expect(relative).not.toBe(FileName.STATE)
      expect(FileName.toPath(FileName.STATE)).toBeUndefined()
      expect(relative.endsWith("%moving")).toBe(false)
    }
  })

  it("is reversible: toPath(toRelative(path)) is the path", () => {
    const segment = fc
      .string({ unit: "grapheme", minLength: 1, maxLength: 12 })
      .filter((s) => !s.includes("/") && !s.includes("\u0000") && s !== "." && s !== "..")
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 3 }), (segments) => {
        const path = Key.toPath(segments)
        if (path instanceof Key.Invalid) return
        const relative = FileName.toRelative(path)
        expect(relative).toBeTypeOf("string")
        expect(FileName.toPath(relative as string)).toBe(path)
        expect(FileName.toPath(`${relative as string}/${FileName.LEAF}`)).toBe(path)
      }),
      { numRuns: 300 }
    )
  })

  it("is injective on distinct keys", () => {
    const keys = ["a:b", "ab", "a%3Ab", "café", "cafe\u0301", "A", "a", "%41", ".lock", "%2Elock"]
    const names = keys.map((k) => FileName.toRelative(k))
    expect(new Set(names).size).toBe(keys.length)
  })

  it("refuses names over the filesystem limit and unpaired surrogates", () => {
    expect(FileName.toRelative("x".repeat(255))).toBe("x".repeat(255))
    expect(FileName.toRelative("x".repeat(256))).toBeInstanceOf(FileName.Unnameable)
    // 43 × "é" is 86 bytes of UTF-8, 258 characters escaped.
    expect(FileName.toRelative("é".repeat(43))).toBeInstanceOf(FileName.Unnameable)
    expect(FileName.toRelative("a\uD800b")).toBeInstanceOf(FileName.Unnameable)
    expect(FileName.toRelative("a\uDC00")).toBeInstanceOf(FileName.Unnameable)
  })

  it("does not decode names it would not produce", () => {
    for (const name of ["%", "%4", "%zz", "%00", "%2F", "%41", "a%2eb", "a:b", FileName.LOCK]) {
      expect(FileName.unescapeSegment(name)).toBeUndefined()
    }
  })
})
