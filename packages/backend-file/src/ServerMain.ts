/**
 * The `partd-server` program: runs `ServerCommand`'s command on Node. SIGINT and SIGTERM
 * interrupt the server, which flushes and releases everything before the process exits:
 * with code 0 when everything was flushed, 1 when a final flush failed (the lost bytes of
 * each key are printed) or the server could not start (one line on stderr saying why, e.g.
 * a non-loopback address without a token). Started by the `partd-server` bin once it has
 * checked the Node version.
 *
 * @since 0.1.0
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Store } from "@partd/core"
import { Cause, Console, Effect, Exit } from "effect"
import { Command } from "effect/cli"
import { command } from "./ServerCommand.ts"

// A server that could not start says why in one line, not as a logged stack trace.
let refused = false

Command.run(command, { version: "0.1.0" }).pipe(
  Effect.catchIf(
    (error): error is Store.StoreError => error instanceof Store.StoreError,
    (error) =>
      Effect.andThen(
        Console.error(`partd-server: ${error.message}`),
        Effect.sync(() => {
          refused = true
        })
      )
  ),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain({
    // Stopped by a signal is a clean stop: everything was flushed on the way out.
    teardown: (exit, onExit) =>
      onExit(!refused && (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) ? 0 : 1)
  })
)
