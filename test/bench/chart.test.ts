import { describe, expect, it } from "@effect/vitest"
import { chartSvg, escapeXml } from "./chart.ts"

/** Checks that every tag is closed in order and returns the element names seen. */
const wellFormed = (svg: string): Array<string> => {
  const stack: Array<string> = []
  const seen: Array<string> = []
  for (const match of svg.matchAll(/<(\/?)([a-zA-Z]+)((?:[^>"]|"[^"]*")*?)(\/?)>/g)) {
    const [, closing, name, , selfClosing] = match
    if (closing === "/") {
      expect(stack.pop(), `</${name}>`).toBe(name)
    } else {
      seen.push(name!)
      if (selfClosing !== "/") stack.push(name!)
    }
  }
  expect(stack).toEqual([])
  return seen
}

describe("bench chart", () => {
  const rows = [
    {
      label: "Dict [record input] W1",
      ours: { appendMBps: 9000, getMBps: 800 },
      partd: { appendMBps: 12000, getMBps: 900 }
    },
    {
      label: "Buffer(Dict, File, 64 MiB) W2",
      ours: { appendMBps: 420, getMBps: 1.5 },
      partd: { appendMBps: 200, getMBps: 3 }
    },
    { label: "Redis <pipelined> & co W1", ours: { appendMBps: 60, getMBps: 70 }, partd: undefined },
    { label: "Client→partd-server process W2", ours: "exit 1: it broke", partd: { appendMBps: 50, getMBps: 40 } }
  ]
  const svg = chartSvg(rows, "a title & more")

  it("is one well-formed SVG document", () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true)
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true)
    const elements = wellFormed(svg)
    expect(elements.filter((e) => e === "svg")).toHaveLength(1)
    expect(svg).not.toMatch(/NaN|Infinity|undefined/)
  })

  it("labels every row, escaped, and gives each measured pair its ratio", () => {
    for (const row of rows) expect(svg).toContain(`>${escapeXml(row.label)}<`)
    expect(svg).toContain("Redis &lt;pipelined&gt; &amp; co W1")
    expect(svg).toContain("a title &amp; more")
    // Append and get ratios of the two rows measured on both sides.
    for (const ratio of ["0.75×", "0.89×", "2.10×", "0.50×"]) expect(svg).toContain(`>${ratio}<`)
    expect(svg).toContain(">failed<")
  })

  it("draws a bar per measured side and metric, longer for more MB/s", () => {
    const widths = [
      ...svg.matchAll(
        /<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)" height="10" fill="#[0-9a-f]+"><title>([\d.]+) MB\/s/g
      )
    ].map((m) => [Number(m[1]), Number(m[2])] as const)
    // Rows 1 and 2: both sides, two metrics; row 3: ours only; row 4: partd-py only.
    expect(widths).toHaveLength(4 + 4 + 2 + 2)
    const sorted = [...widths].sort((a, b) => a[1] - b[1])
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]![0]).toBeGreaterThanOrEqual(sorted[i - 1]![0])
  })

  it("draws an empty chart for no rows", () => {
    wellFormed(chartSvg([], "nothing"))
  })
})
