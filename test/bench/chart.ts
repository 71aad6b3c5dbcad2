/**
 * The benchmark's picture: an SVG chart of every row, our append and get
 * throughput beside Python partd's, on a logarithmic MB/s scale (the rows
 * range from a few MB/s to tens of GB/s), with our/partd ratio at the end of
 * each pair of bars. `npm run bench` writes it next to its JSON results; any
 * browser opens it.
 */

/** One side's throughput on a row. */
export interface Throughput {
  readonly appendMBps: number
  readonly getMBps: number
}

/** One row of the chart: a store on a workload. */
export interface ChartRow {
  readonly label: string
  /** Ours, or why it was not measured. */
  readonly ours: Throughput | string
  /** Python partd's, when the row has it. */
  readonly partd?: Throughput | string | undefined
}

const LABEL_WIDTH = 330
const PANEL_WIDTH = 300
const RATIO_WIDTH = 70
const ROW_HEIGHT = 30
const BAR_HEIGHT = 10
const TOP = 64
const OURS_COLOR = "#2f6bd8"
const PARTD_COLOR = "#e0892b"

const metrics = [
  { key: "appendMBps", title: "append MB/s" },
  { key: "getMBps", title: "get MB/s" }
] as const

/** Escapes text for SVG content and attribute values. */
export const escapeXml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const fmt = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(1))

/** The decades a logarithmic axis spans to hold every positive value. */
const decades = (values: ReadonlyArray<number>): { readonly low: number; readonly high: number } => {
  const positive = values.filter((v) => Number.isFinite(v) && v > 0)
  if (positive.length === 0) return { low: 0, high: 1 }
  const low = Math.floor(Math.log10(Math.min(...positive)))
  const high = Math.max(low + 1, Math.ceil(Math.log10(Math.max(...positive))))
  return { low, high }
}

/**
 * The chart, as a standalone SVG document: rows top to bottom, an append
 * panel and a get panel, ours above partd-py in each.
 */
export const chartSvg = (rows: ReadonlyArray<ChartRow>, title: string): string => {
  const measured = (t: Throughput | string | undefined): Throughput | undefined =>
    typeof t === "object" ? t : undefined
  const all = rows.flatMap((row) =>
    [measured(row.ours), measured(row.partd)].flatMap((t) => (t === undefined ? [] : [t.appendMBps, t.getMBps]))
  )
  const { low, high } = decades(all)
  const x = (panel: number, mbps: number): number => {
    const start = LABEL_WIDTH + panel * (PANEL_WIDTH + RATIO_WIDTH)
    const clamped = Math.min(Math.max(Math.log10(mbps), low), high)
    return start + ((clamped - low) / (high - low)) * PANEL_WIDTH
  }
  const width = LABEL_WIDTH + metrics.length * (PANEL_WIDTH + RATIO_WIDTH) + 10
  const height = TOP + rows.length * ROW_HEIGHT + 30
  const out: Array<string> = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    `<rect x="10" y="32" width="12" height="${BAR_HEIGHT}" fill="${OURS_COLOR}"/>`,
    `<text x="27" y="41">partd-ts</text>`,
    `<rect x="90" y="32" width="12" height="${BAR_HEIGHT}" fill="${PARTD_COLOR}"/>`,
    `<text x="107" y="41">partd-py</text>`,
    `<text x="180" y="41" fill="#555">ratio = partd-ts / partd-py, log scale</text>`
  )
  metrics.forEach((metric, panel) => {
    const start = LABEL_WIDTH + panel * (PANEL_WIDTH + RATIO_WIDTH)
    out.push(`<text x="${start}" y="${TOP - 8}" font-weight="bold">${metric.title}</text>`)
    for (let d = low; d <= high; d++) {
      const gx = x(panel, 10 ** d).toFixed(1)
      out.push(
        `<line x1="${gx}" y1="${TOP}" x2="${gx}" y2="${TOP + rows.length * ROW_HEIGHT}" stroke="#ddd"/>`,
        `<text x="${gx}" y="${TOP + rows.length * ROW_HEIGHT + 14}" text-anchor="middle" fill="#555">${fmt(10 ** d)}</text>`
      )
    }
  })
  rows.forEach((row, r) => {
    const y = TOP + r * ROW_HEIGHT
    out.push(`<text x="10" y="${y + ROW_HEIGHT / 2 + 4}">${escapeXml(row.label)}</text>`)
    const ours = measured(row.ours)
    const partd = measured(row.partd)
    metrics.forEach((metric, panel) => {
      const start = LABEL_WIDTH + panel * (PANEL_WIDTH + RATIO_WIDTH)
      const bars: ReadonlyArray<readonly [Throughput | undefined, string, number]> = [
        [ours, OURS_COLOR, y + 4],
        [partd, PARTD_COLOR, y + 5 + BAR_HEIGHT]
      ]
      for (const [side, color, by] of bars) {
        if (side === undefined) continue
        const value = side[metric.key]
        const w = Math.max(1, x(panel, value) - start).toFixed(1)
        out.push(
          `<rect x="${start}" y="${by}" width="${w}" height="${BAR_HEIGHT}" fill="${color}"><title>${fmt(value)} MB/s</title></rect>`
        )
      }
      const rx = start + PANEL_WIDTH + 6
      if (ours === undefined) {
        out.push(`<text x="${rx}" y="${y + 18}" fill="#b00">failed</text>`)
      } else if (partd !== undefined) {
        const ratio = ours[metric.key] / partd[metric.key]
        out.push(`<text x="${rx}" y="${y + 18}" fill="${ratio >= 1 ? "#197a2c" : "#b00"}">${ratio.toFixed(2)}×</text>`)
      }
    })
  })
  out.push("</svg>")
  return `${out.join("\n")}\n`
}
