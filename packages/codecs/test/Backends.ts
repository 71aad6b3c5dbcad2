/**
 * The backends every codec runs over: memory and a directory of files.
 */
import { File } from "@partd/backend-file"
import { Dict } from "@partd/core"
import type { Backend } from "./CodecSuite.ts"

export const backends: ReadonlyArray<Backend> = [
  { name: "Dict", layer: () => Dict.layer },
  // A fresh temporary directory per store, removed when its scope closes.
  { name: "File", layer: () => File.layer() }
]
