/**
 * The backends the codec tests run over. File joins Dict once the File
 * backend is on this branch.
 */
import { Dict } from "@partd/core"
import type { Backend } from "./CodecSuite.ts"

export const backends: ReadonlyArray<Backend> = [{ name: "Dict", layer: () => Dict.layer }]
