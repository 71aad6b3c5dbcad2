/**
 * BufferPool: a few spare buffers for outgoing messages, so that writing a
 * message of some hundred KiB per call does not allocate a fresh buffer each
 * time (page faults and garbage collection cost more than filling it).
 *
 * A buffer goes back to the pool only once nothing reads it any more: for a
 * request written to a socket, once its reply has arrived (the peer replies
 * only after reading the whole request). {@link makeLender} keeps that
 * bookkeeping: buffers lent per request number, given back by number.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How many spare buffers to keep. */
  readonly spares: number
  /** The smallest buffer to allocate for the pool, so that it serves several sizes. */
  readonly minBytes: number
  /** Larger messages get a buffer of their own, not kept. */
  readonly maxBytes: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface BufferPool {
  /** A buffer of exactly `size` bytes, uninitialized: the caller writes every byte. */
  readonly take: (size: number) => Buffer
  /** Gives back a buffer from `take` that nothing reads any more. */
  readonly give: (buffer: Uint8Array) => void
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): BufferPool => {
  const spare: Array<Buffer> = []
  return {
    take: (size) => {
      if (size > options.maxBytes) return globalThis.Buffer.allocUnsafeSlow(size)
      // The smallest spare that fits.
      let best = -1
      for (let i = 0; i < spare.length; i++) {
        if (spare[i]!.byteLength >= size && (best === -1 || spare[i]!.byteLength < spare[best]!.byteLength)) best = i
      }
      // `allocUnsafeSlow`: memory of its own, never a slice of Node's shared pool.
      const whole =
        best === -1 ? globalThis.Buffer.allocUnsafeSlow(Math.max(size, options.minBytes)) : spare.splice(best, 1)[0]!
      return whole.subarray(0, size)
    },
    give: (buffer) => {
      // A buffer from `take` starts its own memory, which it may use only part of.
      const whole = globalThis.Buffer.from(buffer.buffer, 0, buffer.buffer.byteLength)
      if (buffer.byteOffset === 0 && whole.byteLength <= options.maxBytes && spare.length < options.spares) {
        spare.push(whole)
      }
    }
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface LenderOptions extends Options {
  /** The most buffers lent at once; beyond it, requests get buffers of their own. */
  readonly maxLent: number
}

/**
 * Buffers lent for numbered requests: `lend(id, size)` gives a buffer of
 * `size` bytes from the pool, `giveBack(id)` returns it once nothing reads it:
 * when the request's reply has arrived (even if its caller gave up waiting),
 * or when the request was dropped before it was written. The lender belongs
 * to one connection: a connection that is lost takes its buffers with it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lender {
  readonly lend: (id: number, size: number) => Uint8Array
  readonly giveBack: (id: number) => void
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeLender = (options: LenderOptions): Lender => {
  const pool = make(options)
  const lent = new Map<number, Uint8Array>()
  return {
    lend: (id, size) => {
      if (lent.size >= options.maxLent) return globalThis.Buffer.allocUnsafe(size)
      const buffer = pool.take(size)
      lent.set(id, buffer)
      return buffer
    },
    giveBack: (id) => {
      const buffer = lent.get(id)
      if (buffer === undefined) return
      lent.delete(id)
      pool.give(buffer)
    }
  }
}
