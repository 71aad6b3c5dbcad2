#!/usr/bin/env node
/**
 * The `partd` bin. It checks the Node version before it loads anything else,
 * so that an older Node says in one line what it needs instead of failing
 * somewhere inside Effect; then it runs `CliMain`.
 *
 * @since 0.1.0
 */
const needed = [22, 19] as const
const [major = 0, minor = 0] = process.versions.node.split(".").map(Number)
if (major < needed[0] || (major === needed[0] && minor < needed[1])) {
  process.stderr.write(`partd: needs Node.js ${needed.join(".")} or newer, this is Node.js ${process.versions.node}\n`)
  process.exit(1)
}
await import("./CliMain.ts")
