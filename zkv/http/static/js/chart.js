// A small SVG line chart for the last few minutes of one-second points (no library: ~80 lines).

import { el } from "./util.js";

const W = 900, H = 170, LEFT = 48, RIGHT = 8, TOP = 8, BOTTOM = 20;

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/**
 * Draw ``series`` ([{name, colour, points: [[unixSeconds, value], ...]}]) over the ``span`` seconds
 * ending at ``now`` into ``container`` (an element that gets one <svg>).
 */
export function drawChart(container, series, { now, span = 300, unit = "" }) {
  const start = now - span;
  let top = 0;
  for (const s of series) for (const [t, v] of s.points) if (t >= start && v > top) top = v;
  top = niceMax(top * 1.1);
  const x = (t) => LEFT + ((t - start) / span) * (W - LEFT - RIGHT);
  const y = (v) => TOP + (1 - v / top) * (H - TOP - BOTTOM);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    svg.append(el("line", { x1: LEFT, x2: W - RIGHT, y1: y(v), y2: y(v), stroke: "#e4e4e0", "stroke-width": 1 }));
    svg.append(el("text", { x: LEFT - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b6f75" },
      `${+v.toPrecision(3)}${unit}`));
  }
  for (let m = 0; m * 60 <= span; m++) {
    const t = now - m * 60;
    svg.append(el("text", { x: x(t), y: H - 5, "text-anchor": m === 0 ? "end" : "middle", "font-size": 11, fill: "#6b6f75" },
      m === 0 ? "now" : `-${m}m`));
  }
  for (const s of series) {
    const pts = s.points.filter(([t]) => t >= start).map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    if (pts.length === 1) pts.push(pts[0]);
    if (pts.length) {
      svg.append(el("polyline", { points: pts.join(" "), fill: "none", stroke: s.colour, "stroke-width": 1.8,
        "stroke-dasharray": s.dashed ? "4 3" : null, "data-series": s.name }));
    }
  }
  container.replaceChildren(svg);
}

/** A palette for series that are not nodes (op/level labels, error codes). */
export function seriesColour(i) {
  const palette = ["#2457c5", "#1a7f37", "#b26a00", "#8e44ad", "#c62828", "#00838f", "#6d4c41", "#546e7a"];
  return palette[i % palette.length];
}
