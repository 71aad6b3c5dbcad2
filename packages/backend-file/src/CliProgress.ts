/**
 * Progress lines for long `partd` commands, on stderr when it is a terminal:
 * one line rewritten in place at most ten times a second, cleared when the
 * work is done. Elsewhere (a pipe, a log file) nothing is printed, so output
 * stays clean for scripts.
 *
 * @since 0.1.0
 */

/**
 * Whether progress is shown: stderr is a terminal.
 *
 * @since 0.1.0
 * @category accessors
 */
export const shows = (): boolean => process.stderr.isTTY === true

const units = ["B", "KiB", "MiB", "GiB", "TiB"] as const

/**
 * A byte count for people: `512 B`, `1.5 KiB`, `12.0 MiB`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const bytes = (n: number): string => {
  let value = n
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`
}

/**
 * A progress meter.
 *
 * @since 0.1.0
 * @category models
 */
export interface Meter {
  /** Counts `n` more units done; redraws at most every 100 ms. */
  readonly advance: (n: number) => void
  /** Clears the line. */
  readonly done: () => void
}

/**
 * A meter for `total` units (`bytes` shows sizes, anything else counts),
 * labelled `label`, drawn on stderr.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (label: string, total: number, unit = "bytes"): Meter => {
  let done = 0
  let drawnAt = 0
  const show = (n: number) => (unit === "bytes" ? bytes(n) : `${n} ${unit}`)
  const draw = () => {
    const percent = total > 0 ? ` (${Math.floor((done / total) * 100)}%)` : ""
    process.stderr.write(`\r\u001b[2Kpartd ${label}: ${show(done)} of ${show(total)}${percent}`)
  }
  return {
    advance: (n) => {
      done += n
      const now = performance.now()
      if (now - drawnAt >= 100) {
        drawnAt = now
        draw()
      }
    },
    done: () => {
      if (drawnAt > 0) process.stderr.write("\r\u001b[2K")
    }
  }
}
