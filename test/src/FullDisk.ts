/**
 * Real full disks for fault tests: a small tmpfs mounted for the test (the
 * tests run as root) and filled with a file, so that writes fail with ENOSPC
 * exactly as on a real full disk.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { Effect, type Scope } from "effect"

/** Mounts a tmpfs of `bytes` at a fresh directory; unmounted and removed when the scope closes. */
export const tmpfs = (bytes: number): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "partd-full-disk-"))
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir])
      return dir
    }),
    (dir) =>
      Effect.sync(() => {
        execFileSync("umount", ["-l", dir])
        fs.rmSync(dir, { recursive: true, force: true })
      })
  )

/**
 * Fills the disk under `dir` with the file `dir/filler`, then frees `room`
 * bytes of it (a multiple of the page size leaves exactly that much room).
 * Returns the filler's path: delete it to free the disk.
 */
export const fill = (dir: string, room = 0): string => {
  const filler = nodePath.join(dir, "filler")
  const fd = fs.openSync(filler, "w")
  const block = new Uint8Array(64 * 1024)
  let size = 0
  try {
    while (true) size += fs.writeSync(fd, block)
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOSPC") throw error
  }
  try {
    if (room > 0) fs.ftruncateSync(fd, Math.max(0, size - room))
  } finally {
    fs.closeSync(fd)
  }
  return filler
}
