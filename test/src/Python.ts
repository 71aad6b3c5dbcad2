/**
 * Finding the Python that has partd. Debian's python3-partd installs into
 * /usr/bin/python3's site-packages, while `python3` on PATH may be another
 * interpreter (pyenv), so both are probed. Interop tests fail, with the
 * install command, when neither works: they never skip silently.
 */
import { spawnSync } from "node:child_process"

const CANDIDATES = ["python3", "/usr/bin/python3"]

/** The first python3 that can import every module in `modules`, or undefined. */
export const findPython = (modules: ReadonlyArray<string> = ["partd"]): string | undefined => {
  const probe = modules.map((m) => `import ${m}`).join("; ")
  for (const candidate of CANDIDATES) {
    if (spawnSync(candidate, ["-c", probe], { stdio: "ignore" }).status === 0) return candidate
  }
  return undefined
}

/** Like findPython, but throws an error that says how to install what is missing. */
export const requirePython = (modules: ReadonlyArray<string> = ["partd"]): string => {
  const python = findPython(modules)
  if (python === undefined) {
    throw new Error(
      `no python3 here can import ${modules.join(", ")}: install Debian's packages, e.g. ` +
        "`apt-get install python3-partd python3-numpy python3-snappy python3-blosc python3-msgpack python3-zmq`"
    )
  }
  return python
}

/** Runs a Python script with arguments; returns stdout, throws with stderr on failure. */
export const runPython = (python: string, script: string, args: ReadonlyArray<string> = []): string => {
  const result = spawnSync(python, ["-c", script, ...args], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 })
  if (result.status !== 0) throw new Error(`python failed (${result.status}): ${result.stderr}`)
  return result.stdout
}
