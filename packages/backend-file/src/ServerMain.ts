/**
 * The `partd-server` program: runs `ServerCommand`'s command on Node. SIGINT and SIGTERM
 * interrupt the server, which flushes and releases everything before the process exits:
 * with code 0 when everything was flushed, 1 when a final flush failed (the lost bytes of
 * each key are printed). Started by the `partd-server` bin once it has checked the Node
 * version.
 *
 * @since 0.1.0
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Effect, Exit } from "effect"
import { Command } from "effect/cli"
import { command } from "./ServerCommand.ts"

Command.run(command, { version: "0.1.0" }).pipe(
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain({
    // Stopped by a signal is a clean stop: everything was flushed on the way out.
    teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
  })
)
