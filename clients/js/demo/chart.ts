/**
 * The balance of one offer group over time, drawn as plain SVG by the page itself (no chart
 * library to download): each ledger entry's balanceAfter holds until the next entry, the
 * last one until now, so the line is a staircase.
 */
import { svg } from "./dom.js";

export interface Point {
  /** When the movement committed, in milliseconds since the epoch. */
  at: number;
  balance: number;
}

const WIDTH = 320;
const HEIGHT = 120;
const LEFT = 44;
const RIGHT = 8;
const TOP = 10;
const BOTTOM = 20;

/** The chart of `points` (oldest first) up to `now`. Its `data-points` and `data-last`
 * say what it shows, for a reader that cannot see it. */
export function balanceChart(group: string, points: Point[], now: number): SVGSVGElement {
  const last = points.at(-1);
  const chart = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-label": `${group} balance over time`,
    "data-points": String(points.length),
    "data-last": last === undefined ? "" : String(last.balance),
  }) as SVGSVGElement;
  if (last === undefined) {
    chart.append(label(WIDTH / 2, HEIGHT / 2, "No movements yet", "middle"));
    return chart;
  }
  const start = points[0]!.at;
  const end = Math.max(now, last.at);
  const span = Math.max(end - start, 1);
  const balances = points.map((p) => p.balance);
  const high = Math.max(...balances, 1);
  const low = Math.min(...balances, 0);
  const x = (at: number) => LEFT + ((at - start) / span) * (WIDTH - LEFT - RIGHT);
  const y = (balance: number) => TOP + ((high - balance) / (high - low)) * (HEIGHT - TOP - BOTTOM);

  let line = `M${x(start).toFixed(1)},${y(points[0]!.balance).toFixed(1)}`;
  for (const point of points.slice(1)) {
    line += ` H${x(point.at).toFixed(1)} V${y(point.balance).toFixed(1)}`;
  }
  line += ` H${x(end).toFixed(1)}`;
  const area = `${line} V${y(low).toFixed(1)} H${x(start).toFixed(1)} Z`;
  chart.append(
    svg("title", {}, `${group}: ${last.balance} now, after ${points.length} movements`),
    svg("line", {
      class: "axis",
      x1: String(LEFT),
      x2: String(WIDTH - RIGHT),
      y1: String(y(0)),
      y2: String(y(0)),
    }),
    svg("path", { class: "area", d: area }),
    svg("path", { class: "line", d: line }),
    label(LEFT - 4, y(high) + 4, compact(high), "end"),
    label(LEFT - 4, y(low) + 4, compact(low), "end"),
    label(LEFT, HEIGHT - 4, since(start, end), "start"),
    label(WIDTH - RIGHT, HEIGHT - 4, "now", "end"),
  );
  return chart;
}

function label(x: number, y: number, text: string, anchor: string): SVGElement {
  return svg("text", { x: String(x), y: String(y), "text-anchor": anchor }, text);
}

/** Where the chart starts: its time of day within a day of now, else its date. */
function since(start: number, end: number): string {
  const date = new Date(start);
  return end - start < 86_400_000 ? date.toLocaleTimeString() : date.toLocaleDateString();
}

function compact(value: number): string {
  return new Intl.NumberFormat("en", { notation: "compact" }).format(value);
}
