import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

// The repository root, so that `vitest run --config test/vitest.config.ts` finds every package's tests.
const root = fileURLToPath(new URL("..", import.meta.url))

// The workspace runs its packages from `src` (their `@partd/source` export condition), never a stale `dist`: the
// tests through Vite's resolver, and every process a test starts (servers, appenders, Python's peers' helpers)
// through the inherited NODE_OPTIONS.
const condition = "@partd/source"
if (!(process.env.NODE_OPTIONS ?? "").includes(`--conditions=${condition}`)) {
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --conditions=${condition}`.trim()
}

export default defineConfig({
  resolve: { conditions: [condition, "module", "node", "development|production"] },
  ssr: { resolve: { conditions: [condition, "module", "node", "development|production"] } },
  test: {
    root,
    include: ["packages/*/test/**/*.test.ts", "test/e2e/**/*.test.ts", "test/bench/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks"
  }
})
