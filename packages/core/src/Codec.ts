/**
 * Codec: how values become bytes and come back, partd's `encode`, `decode`
 * and `join`, and the frames they are stored in.
 *
 * A {@link Codec} turns values of some type `A` into bytes and back, and
 * joins the values appended to one key into the value `get` returns (bytes
 * are concatenated, lists are concatenated, tables are stacked). Stored, every
 * encoded chunk is framed with partd's 8-byte length header (see `Framing`),
 * exactly as Python partd's `Encode` does, so a value written with a codec
 * here is read by the Python class with the same codec and the reverse.
 * {@link encodeFrames} and {@link decodeValues} do that framing for a whole
 * call; `Encode` applies them to stores.
 *
 * Failures are typed. A chunk that cannot be encoded, a frame that cannot be
 * decoded and a torn trailing frame (the process was killed in the middle of
 * an append) are a {@link CodecError}; a torn frame's error carries the join
 * of the complete frames before it in `recovered`, so nothing that was
 * completely written is lost and nothing half-written is decoded. Through a
 * byte `Store`, whose operations fail only with `StoreError`, the same
 * `CodecError` is the StoreError's `cause` ({@link codecErrorOf} finds it).
 *
 * Codecs run in plain loops, one Effect per call rather than per key. A codec
 * whose functions return promises (a WASM library that initializes lazily)
 * is awaited once per call, all chunks together.
 *
 * @since 0.1.0
 */
import { Effect, Schema, Stream } from "effect"
import * as Bytes from "./Bytes.ts"
import * as Framing from "./Framing.ts"
import * as Store from "./Store.ts"

/**
 * Why a codec failed.
 *
 * - `Encode`: a value could not be encoded (wrong type, invalid for the
 *   schema, too large for the library); nothing was written.
 * - `Decode`: stored bytes could not be decoded (corrupt, or written with
 *   another codec).
 * - `TornFrame`: a key's value ends in an incomplete frame, left by an
 *   append that was cut short; `recovered` holds the join of the complete
 *   frames before it.
 *
 * @since 0.1.0
 * @category errors
 */
export const CodecErrorReason = Schema.Literals(["Encode", "Decode", "TornFrame"])

/**
 * @since 0.1.0
 * @category errors
 */
export type CodecErrorReason = typeof CodecErrorReason.Type

/**
 * The error of a codec.
 *
 * @since 0.1.0
 * @category errors
 */
export class CodecError extends Schema.TaggedError<CodecError>("@partd/core/CodecError")("CodecError", {
  reason: CodecErrorReason,
  /** The codec's name. */
  codec: Schema.String,
  key: Schema.optional(Schema.String),
  description: Schema.optional(Schema.String),
  /** For `TornFrame`: the join of the complete frames before the torn one. */
  recovered: Schema.optional(Schema.Unknown),
  /** For `TornFrame`: the byte length of the complete frames. */
  validBytes: Schema.optional(Schema.Number),
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    const key = this.key === undefined ? "" : ` (key ${JSON.stringify(this.key)})`
    const description = this.description === undefined ? "" : `: ${this.description}`
    return `${this.reason} in codec ${this.codec}${key}${description}`
  }
}

/**
 * A codec: how values of type `A` become bytes, come back, and join into
 * a `J` (the same type for bytes, text and lists; an array of the appended
 * values for JSON and schema codecs).
 *
 * `encode` and `decode` may throw (the error becomes a {@link CodecError})
 * and may return a promise. `join` combines the decoded chunks of one key, in
 * append order, into the value `get` returns; `empty` is the value of a key
 * that holds nothing.
 *
 * @since 0.1.0
 * @category models
 */
export interface Codec<A, J = A, S = A> {
  readonly name: string
  readonly encode: (value: A) => Uint8Array | PromiseLike<Uint8Array>
  readonly decode: (bytes: Uint8Array) => A | PromiseLike<A>
  readonly join: (values: ReadonlyArray<A>) => J
  readonly empty: () => J
  /**
   * Optional: encodes a whole call's values at once (in worker threads, say).
   * Returns `undefined` to let `encode` run value by value for this call. A
   * rejection may carry the failing value's `index`.
   */
  readonly encodeAll?: (values: ReadonlyArray<A>) => PromiseLike<ReadonlyArray<Uint8Array>> | undefined
  /**
   * Optional: the items a typed store's `stream` yields for one decoded frame
   * (Msgpack: the list's elements; Arrow: the table's record batches).
   * Default: the decoded value itself.
   */
  readonly items?: (value: A) => ReadonlyArray<S>
  /** Optional: decodes a whole call's frames at once, like `encodeAll`. */
  readonly decodeAll?: (frames: ReadonlyArray<Uint8Array>) => PromiseLike<ReadonlyArray<A>> | undefined
}

/**
 * Where a failed batch (`encodeAll`, `decodeAll`) failed.
 *
 * @since 0.1.0
 * @category models
 */
export interface BatchFailure {
  readonly index?: number
}

/**
 * Makes a codec (an identity that checks the shape at the type level).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A, J = A, S = A>(codec: Codec<A, J, S>): Codec<A, J, S> => codec

/**
 * Raw bytes: chunks stored as they are (framed), joined by concatenation.
 *
 * @since 0.1.0
 * @category codecs
 */
export const bytes: Codec<Uint8Array> = {
  name: "bytes",
  encode: (value) => {
    if (!(value instanceof Uint8Array)) throw new TypeError(`expected a Uint8Array, got ${typeof value}`)
    return value
  },
  decode: (frame) => frame,
  join: (values) => Bytes.concat(values),
  empty: Bytes.empty
}

const isThenable = (u: unknown): u is PromiseLike<unknown> =>
  typeof u === "object" &&
  u !== null &&
  !(u instanceof Uint8Array) &&
  typeof (u as { then?: unknown }).then === "function"

const encodeError = (codec: string, key: string | undefined, cause: unknown): CodecError =>
  cause instanceof CodecError
    ? cause
    : new CodecError({
        reason: "Encode",
        codec,
        ...(key === undefined ? {} : { key }),
        description: Store.describeCause(cause),
        cause
      })

const decodeError = (codec: string, key: string | undefined, cause: unknown): CodecError =>
  cause instanceof CodecError
    ? cause
    : new CodecError({
        reason: "Decode",
        codec,
        ...(key === undefined ? {} : { key }),
        description: Store.describeCause(cause),
        cause
      })

/**
 * Encodes and frames one chunk per key, in order. Returns the framed chunks
 * or the error for the first value that fails.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeFrames = <A, J, S>(
  codec: Codec<A, J, S>,
  keys: ReadonlyArray<string>,
  values: ReadonlyArray<A>
): Effect.Effect<Array<Uint8Array>, CodecError> =>
  Effect.suspend(() => {
    const batch = codec.encodeAll?.(values)
    if (batch !== undefined) {
      return Effect.map(
        Effect.tryPromise({
          try: () => Promise.resolve(batch),
          catch: (cause) => encodeError(codec.name, keys[(cause as BatchFailure)?.index ?? -1], cause)
        }),
        frameCall
      )
    }
    const out = new Array<Uint8Array>(values.length)
    const pending: Array<number> = []
    const promises: Array<PromiseLike<Uint8Array>> = []
    for (let i = 0; i < values.length; i++) {
      let encoded: Uint8Array | PromiseLike<Uint8Array>
      try {
        encoded = codec.encode(values[i]!)
      } catch (cause) {
        return Effect.fail(encodeError(codec.name, keys[i], cause))
      }
      if (encoded instanceof Uint8Array) {
        out[i] = encoded
      } else if (isThenable(encoded)) {
        pending.push(i)
        promises.push(encoded)
      } else {
        return Effect.fail(encodeError(codec.name, keys[i], "the codec's encode did not return a Uint8Array"))
      }
    }
    if (pending.length === 0) return Effect.succeed(frameCall(out))
    return Effect.tryPromise({
      try: () => Promise.all(promises),
      catch: (cause) => encodeError(codec.name, undefined, cause)
    }).pipe(
      Effect.map((results) => {
        for (let j = 0; j < pending.length; j++) out[pending[j]!] = results[j]!
        return frameCall(out)
      })
    )
  })

/**
 * Frames a call's encoded chunks into one allocation: the frames are views
 * into it, one per chunk. One allocation per call rather than per chunk
 * keeps the garbage collector out of a shuffle's hot loop.
 */
const frameCall = (payloads: ReadonlyArray<Uint8Array>): Array<Uint8Array> => {
  let total = 0
  for (let i = 0; i < payloads.length; i++) total += Framing.HEADER_BYTES + payloads[i]!.byteLength
  const buffer = new Uint8Array(total)
  const out = new Array<Uint8Array>(payloads.length)
  let offset = 0
  for (let i = 0; i < payloads.length; i++) {
    const payload = payloads[i]!
    const end = offset + Framing.HEADER_BYTES + payload.byteLength
    Framing.writeHeader(buffer, offset, payload.byteLength)
    buffer.set(payload, offset + Framing.HEADER_BYTES)
    out[i] = buffer.subarray(offset, end)
    offset = end
  }
  return out
}

/** The key of the `index`-th frame of a call, for errors from `decodeAll`. */
const keyOfFrame = (
  splits: ReadonlyArray<Framing.Split>,
  keys: ReadonlyArray<string>,
  index: number | undefined
): string | undefined => {
  if (index === undefined) return undefined
  let seen = 0
  for (let k = 0; k < splits.length; k++) {
    seen += splits[k]!.frames.length
    if (index < seen) return keys[k]
  }
  return undefined
}

const joinOf = <A, J, S>(codec: Codec<A, J, S>, parts: ReadonlyArray<A>): J =>
  parts.length === 0 ? codec.empty() : codec.join(parts)

/**
 * Splits, decodes and joins the stored value of each key. A torn trailing
 * frame fails with a `TornFrame` error that carries the join of the complete
 * frames; the first key that fails decides the error.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeValues = <A, J, S>(
  codec: Codec<A, J, S>,
  keys: ReadonlyArray<string>,
  stored: ReadonlyArray<Uint8Array>
): Effect.Effect<Array<J>, CodecError> =>
  Effect.suspend(() => {
    const splits = new Array<Framing.Split>(stored.length)
    for (let k = 0; k < stored.length; k++) splits[k] = Framing.split(stored[k]!)
    if (codec.decodeAll !== undefined) {
      const frames = splits.flatMap((split) => split.frames)
      const batch = codec.decodeAll(frames)
      if (batch !== undefined) {
        return Effect.tryPromise({
          try: () => Promise.resolve(batch),
          catch: (cause) => decodeError(codec.name, keyOfFrame(splits, keys, (cause as BatchFailure)?.index), cause)
        }).pipe(
          Effect.flatMap((flat) => {
            const parts = new Array<ReadonlyArray<A>>(splits.length)
            let next = 0
            for (let k = 0; k < splits.length; k++) {
              const n = splits[k]!.frames.length
              parts[k] = flat.slice(next, next + n)
              next += n
            }
            return finish(parts)
          })
        )
      }
    }
    const decoded = new Array<Array<A | PromiseLike<A>>>(stored.length)
    let async = false
    for (let k = 0; k < stored.length; k++) {
      const split = splits[k]!
      const parts = new Array<A | PromiseLike<A>>(split.frames.length)
      for (let f = 0; f < split.frames.length; f++) {
        let value: A | PromiseLike<A>
        try {
          value = codec.decode(split.frames[f]!)
        } catch (cause) {
          return Effect.fail(decodeError(codec.name, keys[k], cause))
        }
        if (!async && isThenable(value)) async = true
        parts[f] = value
      }
      decoded[k] = parts
    }
    function finish(parts: ReadonlyArray<ReadonlyArray<A>>): Effect.Effect<Array<J>, CodecError> {
      const out = new Array<J>(parts.length)
      for (let k = 0; k < parts.length; k++) {
        let joined: J
        try {
          joined = joinOf(codec, parts[k]!)
        } catch (cause) {
          return Effect.fail(decodeError(codec.name, keys[k], cause))
        }
        const torn = splits[k]!.torn
        if (torn !== undefined) {
          return Effect.fail(
            new CodecError({
              reason: "TornFrame",
              codec: codec.name,
              ...(keys[k] === undefined ? {} : { key: keys[k] }),
              description: Framing.describeTorn(torn),
              recovered: joined,
              validBytes: torn.offset
            })
          )
        }
        out[k] = joined
      }
      return Effect.succeed(out)
    }
    if (!async) return finish(decoded as ReadonlyArray<ReadonlyArray<A>>)
    return Effect.tryPromise({
      try: () => Promise.all(decoded.map((parts) => Promise.all(parts))),
      catch: (cause) => decodeError(codec.name, undefined, cause)
    }).pipe(Effect.flatMap(finish))
  })

/**
 * Decodes one frame: the value, a promise of it, or the error.
 */
const decodeOne = <A, J, S>(codec: Codec<A, J, S>, key: string, frame: Uint8Array): Effect.Effect<A, CodecError> => {
  let value: A | PromiseLike<A>
  try {
    value = codec.decode(frame)
  } catch (cause) {
    return Effect.fail(decodeError(codec.name, key, cause))
  }
  if (!isThenable(value)) return Effect.succeed(value)
  return Effect.tryPromise({ try: () => Promise.resolve(value), catch: (cause) => decodeError(codec.name, key, cause) })
}

/**
 * The `TornFrame` error of a value streamed frame by frame, raised after its
 * complete frames were yielded (so it carries no `recovered` join).
 *
 * @since 0.1.0
 * @category errors
 */
export const tornFrameError = (codec: string, key: string, torn: Framing.Torn): CodecError =>
  new CodecError({
    reason: "TornFrame",
    codec,
    key,
    description: Framing.describeTorn(torn),
    validBytes: torn.offset
  })

/**
 * A key's stored bytes, read as a stream of pieces, decoded frame by frame:
 * each complete frame's value in order, holding one frame at a time. A torn
 * trailing frame fails the stream with `TornFrame` after every complete
 * frame's value.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeStream = <A, J, S, E, R>(
  codec: Codec<A, J, S>,
  key: string,
  stored: Stream.Stream<Uint8Array, E, R>
): Stream.Stream<A, E | CodecError, R> =>
  Stream.mapEffect(
    Framing.frames(stored, (torn) => tornFrameError(codec.name, key, torn)),
    (frame) => decodeOne(codec, key, frame)
  )

/**
 * A codec error as the `StoreError` a byte store fails with: a torn frame is
 * `Io` (the storage holds an interrupted write), undecodable bytes are
 * `Protocol`, an unencodable value is `BadValue`. The `CodecError` is the
 * cause.
 *
 * @since 0.1.0
 * @category errors
 */
export const toStoreError = (method: string, error: CodecError): Store.StoreError =>
  new Store.StoreError({
    reason: error.reason === "TornFrame" ? "Io" : error.reason === "Decode" ? "Protocol" : "BadValue",
    method,
    ...(error.key === undefined ? {} : { key: error.key }),
    description: error.message,
    cause: error
  })

/**
 * The `CodecError` behind an error: the error itself, or the cause of a
 * `StoreError` from a byte store. Use it to get `recovered` out of a torn
 * frame's error.
 *
 * @since 0.1.0
 * @category errors
 */
export const codecErrorOf = (error: unknown): CodecError | undefined => {
  if (error instanceof CodecError) return error
  if (error instanceof Store.StoreError && error.cause instanceof CodecError) return error.cause
  return undefined
}
