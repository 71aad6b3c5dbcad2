/**
 * The code blocks of a README, as the README test runs them: every ```ts
 * block, with the annotation of an HTML comment on the line before it
 * (`<!-- readme-test: server -->` for a block that serves until stopped,
 * `<!-- readme-test: vitest -->` for a block that is a test file).
 */
import * as fs from "node:fs"

/** How a block runs. */
export type Kind = "program" | "server" | "vitest"

/** One ```ts block of a README. */
export interface Block {
  readonly file: string
  /** The 1-based line of its opening fence. */
  readonly line: number
  readonly kind: Kind
  readonly code: string
}

const annotation = /^<!--\s*readme-test:\s*(server|vitest)\s*-->$/

/** The ```ts blocks of the markdown file at `file`, in order. */
export const blocks = (file: string): Array<Block> => {
  const lines = fs.readFileSync(file, "utf8").split("\n")
  const found: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== "```ts") continue
    const kind = (annotation.exec(lines[i - 1]?.trim() ?? "")?.[1] as Kind | undefined) ?? "program"
    const start = i
    const code: Array<string> = []
    for (i++; i < lines.length && lines[i]!.trim() !== "```"; i++) code.push(lines[i]!)
    if (i === lines.length) throw new Error(`${file}:${start + 1}: a ts block that is never closed`)
    found.push({ file, line: start + 1, kind, code: `${code.join("\n")}\n` })
  }
  return found
}
