import { describe, expect, it } from "@effect/vitest"
import { BufferPool } from "@partd/core"

describe("BufferPool", () => {
  it("hands a given-back buffer out again for a size it fits, and keeps at most its spares", () => {
    const pool = BufferPool.make({ spares: 1, minBytes: 1024, maxBytes: 4096 })
    const first = pool.take(100)
    expect(first.byteLength).toBe(100)
    // Nothing given back yet: a second buffer of its own.
    const second = pool.take(2000)
    expect(second.buffer).not.toBe(first.buffer)
    pool.give(first)
    pool.give(second)
    // One spare kept (the first given back); it serves a size up to its 1024 bytes.
    const again = pool.take(1000)
    expect(again.buffer).toBe(first.buffer)
    expect(again.byteLength).toBe(1000)
    expect(pool.take(1000).buffer).not.toBe(second.buffer)
  })

  it("never keeps a buffer larger than maxBytes", () => {
    const pool = BufferPool.make({ spares: 4, minBytes: 16, maxBytes: 64 })
    const big = pool.take(100)
    pool.give(big)
    expect(pool.take(100).buffer).not.toBe(big.buffer)
  })
})
