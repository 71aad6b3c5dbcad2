/**
 * Every benchmark row, one module per package.
 */
import { codecsCases } from "./codecs.ts"
import { coreCases } from "./core.ts"
import { fileCases } from "./file.ts"
import type { BenchCase } from "./model.ts"
import { observeCases } from "./observe.ts"
import { redisCases } from "./redis.ts"
import { serverCases } from "./server.ts"

export type { Bar, BenchCase, Metric } from "./model.ts"

export const cases: ReadonlyArray<BenchCase> = [
  ...coreCases,
  ...fileCases,
  ...redisCases,
  ...codecsCases,
  ...serverCases,
  ...observeCases
]
