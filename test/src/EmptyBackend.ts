/**
 * A backend that holds nothing, with some operations replaced: for tests of
 * what wraps a backend (metrics, spans, the server) when one operation fails,
 * waits or looks around. Every other operation answers as an empty store does.
 */
import type { Store } from "@partd/core"
import { Effect, Stream } from "effect"

export const emptyBackend = (overrides: Partial<Store.Backend>): Store.Backend => ({
  append: () => Effect.void,
  get: (paths) => Effect.succeed(paths.map(() => new Uint8Array(0))),
  iset: () => Effect.void,
  delete: () => Effect.void,
  drop: Effect.void,
  stream: () => Stream.empty,
  keys: Stream.empty,
  size: (paths) => Effect.succeed(paths.map(() => 0)),
  ...overrides
})
