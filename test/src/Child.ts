/**
 * Node child processes for tests: started on the workspace's sources, ready
 * once their output says so, killed when the test's scope closes.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { Effect } from "effect"

/** A started child and everything it has printed so far (stdout and stderr). */
export interface Started {
  readonly child: ChildProcess
  readonly output: () => string
}

/**
 * Starts `node --conditions=@partd/source ...args`; succeeds once its output
 * matches `ready`, fails if it exits first. The scope's close resumes it (in
 * case a test stopped it) and kills it.
 */
export const start = (args: ReadonlyArray<string>, ready: RegExp) =>
  Effect.acquireRelease(
    Effect.callback<Started, Error>((resume) => {
      const child = spawn(process.execPath, ["--conditions=@partd/source", ...args], {
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      let done = false
      const onData = (d: Uint8Array) => {
        out += d.toString()
        if (!done && ready.test(out)) {
          done = true
          resume(Effect.succeed({ child, output: () => out }))
        }
      }
      child.stdout!.on("data", onData)
      child.stderr!.on("data", onData)
      child.on("exit", (code, signal) => {
        if (!done) {
          done = true
          resume(Effect.fail(new Error(`child exited with ${code ?? signal} before it was ready:\n${out}`)))
        }
      })
    }),
    ({ child }) =>
      Effect.sync(() => {
        child.kill("SIGCONT")
        child.kill("SIGKILL")
      })
  )

/** The child's exit code, or the signal that ended it. */
export const exitOf = (child: ChildProcess) =>
  Effect.callback<number | string>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resume(Effect.succeed(child.exitCode ?? child.signalCode!))
      return
    }
    child.on("exit", (code, signal) => resume(Effect.succeed(code ?? signal!)))
  })

/** What a child run to its end gave: its exit code (or signal), stdout as bytes, stderr as text. */
export interface Ran {
  readonly code: number | string
  readonly stdout: Uint8Array
  readonly stderr: string
}

/**
 * Runs `node --conditions=@partd/source ...args` to its end (a one-shot
 * command such as `partd ls`), killed if it outlives `timeoutMs`.
 */
export const run = (
  args: ReadonlyArray<string>,
  options: { readonly env?: Readonly<Record<string, string>>; readonly timeoutMs?: number } = {}
) =>
  Effect.callback<Ran, Error>((resume) => {
    const child = spawn(process.execPath, ["--conditions=@partd/source", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...options.env }
    })
    const out: Array<Uint8Array> = []
    let err = ""
    child.stdout!.on("data", (d: Uint8Array) => out.push(d))
    child.stderr!.on("data", (d: Uint8Array) => {
      err += d.toString()
    })
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000)
    child.on("error", (error) => resume(Effect.fail(error)))
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code: code ?? signal!, stdout: Buffer.concat(out), stderr: err }))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })
