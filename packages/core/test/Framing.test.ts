import { describe, expect, it } from "@effect/vitest"
import { Framing } from "@partd/core"
import * as fc from "fast-check"

/** Several payloads framed one after the other: what a value holds after appending each in turn. */
const frameAll = (payloads: ReadonlyArray<Uint8Array>): Uint8Array =>
  new Uint8Array(globalThis.Buffer.concat(payloads.map((payload) => Framing.frame(payload))))

describe("Framing", () => {
  it("frames are an 8-byte little-endian length then the payload, as partd's struct.pack('Q')", () => {
    const framed = Framing.frame(Uint8Array.of(7, 8, 9))
    expect(Array.from(framed)).toEqual([3, 0, 0, 0, 0, 0, 0, 0, 7, 8, 9])
    const header = new Uint8Array(8)
    Framing.writeHeader(header, 0, 2 ** 40 + 5)
    expect(Array.from(header)).toEqual([5, 0, 0, 0, 0, 1, 0, 0])
    expect(Framing.readHeader(header, 0)).toBe(2 ** 40 + 5)
  })

  it("split inverts frameAll for any payloads", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 10 }), (payloads) => {
        const { frames, torn } = Framing.split(frameAll(payloads))
        expect(torn).toBeUndefined()
        expect(frames.map((f) => Array.from(f))).toEqual(payloads.map((p) => Array.from(p)))
      })
    )
  })

  it("any cut inside the last frame is reported as torn, with every complete frame before it", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 20 }), { minLength: 1, maxLength: 6 }),
        fc.nat(),
        (payloads, at) => {
          const whole = frameAll(payloads)
          const lastStart = whole.byteLength - 8 - payloads[payloads.length - 1]!.byteLength
          const cut = lastStart + 1 + (at % (whole.byteLength - lastStart - 1 || 1))
          if (cut >= whole.byteLength) return
          const { frames, torn } = Framing.split(whole.subarray(0, cut))
          expect(frames.length).toBe(payloads.length - 1)
          expect(torn?.offset).toBe(lastStart)
          expect(torn?.available).toBe(cut - lastStart)
          expect(Framing.describeTorn(torn!)).toMatch(/torn trailing frame/)
        }
      )
    )
  })

  it("a header that announces more than any buffer holds is torn, not a huge allocation", () => {
    const bad = new Uint8Array(16).fill(0xff)
    const { frames, torn } = Framing.split(bad)
    expect(frames).toEqual([])
    expect(torn?.declared).toBeGreaterThan(Number.MAX_SAFE_INTEGER)
  })
})
