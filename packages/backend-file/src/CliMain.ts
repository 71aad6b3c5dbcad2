/**
 * The `partd` program: runs `Cli`'s command on Node, or, for `partd serve …`,
 * the `partd-server` command (`ServerCommand`) with the rest of the
 * arguments, so `serve` takes every flag `partd-server` takes.
 *
 * A failure of a store command is one line on stderr, `partd: …`, and exit
 * code 1; a command line effect/cli cannot parse prints its error and the
 * usage, and exits with code 1 too. A reader that goes away (`partd cat … |
 * head`) ends the program quietly. Started by the `partd` bin once it has
 * checked the Node version.
 *
 * @since 0.1.0
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Console, Effect, Exit } from "effect"
import { Command } from "effect/cli"
import { command } from "./Cli.ts"
import { CliError } from "./CliStore.ts"

const version = "0.1.0"

process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0)
  process.stderr.write(`partd: stdout: ${error.message}\n`)
  process.exit(1)
})

const args = process.argv.slice(2)

if (args[0] === "serve") {
  // Loaded only here: the store commands start faster without the server's modules.
  const ServerCommand = await import("./ServerCommand.ts")
  Command.runWith(ServerCommand.command, { version })(args.slice(1)).pipe(
    Effect.provide(NodeServices.layer),
    NodeRuntime.runMain({
      // Stopped by a signal is a clean stop: everything was flushed on the way out.
      teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
    })
  )
} else {
  Command.runWith(command, { version })(args).pipe(
    Effect.catch((error: unknown) =>
      error instanceof CliError
        ? Effect.andThen(Console.error(`partd: ${error.line}`), Effect.fail(error))
        : // effect/cli has shown its own parse errors with the usage.
          Effect.fail(error)
    ),
    Effect.provide(NodeServices.layer),
    NodeRuntime.runMain({
      disableErrorReporting: true,
      teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) ? 0 : Cause.hasInterruptsOnly(exit.cause) ? 130 : 1)
    })
  )
}
