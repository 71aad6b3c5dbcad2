/**
 * Listing: the keys a File store's directory holds, found by walking it and
 * mapping file names back to keys with `FileName.toPath`.
 *
 * A key is listed when its file is a regular file (or a link to one) that
 * holds at least one byte. Names no key maps to are never listed: the lock
 * file and its sidecars (`.lock`, `.lock%state`, `.lock%calls`), a value
 * being replaced (`…%iset`) or moved (`…%moving`), and foreign files whose
 * names this store would not produce. A directory's `%self` is the value of
 * the key that names the directory. The walk does not follow links to
 * directories. It runs synchronously under the store's lock (see `File`),
 * so a concurrent call never moves a key out of its sight halfway.
 *
 * Python partd's directories read the same: its file names are the names
 * this store gives plain keys, and a tuple key is a path of directories.
 * Its Numpy layer's `x.dtype` files are keys at this level (the byte store
 * holds them); typed stores that keep such sidecars hide them themselves.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import type { Key } from "@partd/core"
import * as FileName from "./FileName.ts"

/**
 * The key paths under the directory `root` that hold bytes, in no
 * particular order. Throws system errors as they come (a directory that
 * vanished while walked reads as empty).
 *
 * @since 0.1.0
 * @category reading
 */
export const keys = (root: string): Array<Key.Path> => {
  const out: Array<Key.Path> = []
  const walk = (dir: string, relative: string): void => {
    let entries: Array<fs.Dirent>
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true })
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === "ENOENT" || code === "ENOTDIR") return
      throw error
    }
    for (const entry of entries) {
      const name = entry.name
      const full = `${dir}/${name}`
      const child = relative === "" ? name : `${relative}/${name}`
      if (entry.isDirectory()) {
        walk(full, child)
        continue
      }
      let size: number
      if (entry.isFile() || entry.isSymbolicLink()) {
        const stats = fs.statSync(full, { throwIfNoEntry: false })
        if (stats === undefined || !stats.isFile()) continue
        size = stats.size
      } else {
        continue
      }
      if (size === 0) continue
      const path = FileName.toPath(child)
      if (path !== undefined) out.push(path)
    }
  }
  walk(root, "")
  return out
}
