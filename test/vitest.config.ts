import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

// The repository root, so that `vitest run --config test/vitest.config.ts` finds every package's tests.
const root = fileURLToPath(new URL("..", import.meta.url))

export default defineConfig({
  test: {
    root,
    include: ["packages/*/test/**/*.test.ts", "test/e2e/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks"
  }
})
