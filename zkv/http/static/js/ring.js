// The token ring: each node's vnodes in its colour (a canvas drawn once per membership change), and on
// an SVG overlay a key's place with its preference list walked clockwise (primaries, then fallbacks).

import { getJSON } from "./api.js";
import { el, fill, natural, nodeColours, pct } from "./util.js";

const C = 280, R_OUT = 190, R_IN = 150;
let ring = null; // {members, ownership, replication_factor, vnodes, points: [[frac, name]], colours}
let drawnVersion = null;
let keyInfo = null;
let needsDraw = false;

const angle = (frac) => frac * 2 * Math.PI - Math.PI / 2;
const at = (frac, r) => [C + r * Math.cos(angle(frac)), C + r * Math.sin(angle(frac))];

export function ringData() { return ring; }

/** Fetch and draw the ring when the membership changed since it was last drawn. */
export async function ensureRing(version) {
  if (ring && version === drawnVersion) return ring;
  const data = await getJSON("/v1/dashboard/ring");
  const points = [];
  for (const m of data.members) for (const t of m.tokens) points.push([t, m.name]);
  points.sort((a, b) => a[0] - b[0]);
  // the share of the ring each node is primary for (the arcs' lengths); ownership counts every replica
  const primary = new Map();
  points.forEach(([t, name], i) => {
    const from = i === 0 ? points[points.length - 1][0] - 1 : points[i - 1][0];
    primary.set(name, (primary.get(name) || 0) + (t - from));
  });
  ring = { ...data, points, primary, colours: nodeColours(data.members.map((m) => m.name)) };
  drawnVersion = version;
  needsDraw = true; // drawn by the next renderRing, on screen
  return ring;
}

function drawRing() {
  window.zkvDashboard.ringDraws = (window.zkvDashboard.ringDraws || 0) + 1;
  const canvas = document.getElementById("ring-canvas");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const pts = ring.points;
  // a token owns the arc from the previous token up to itself: keys hashing there have it as primary;
  // one path per node (all its arcs), so 150 nodes of 64 vnodes are 150 fills, not 9,600
  const paths = new Map();
  for (let i = 0; i < pts.length; i++) {
    const from = i === 0 ? pts[pts.length - 1][0] - 1 : pts[i - 1][0];
    const [to, name] = pts[i];
    if (!paths.has(name)) paths.set(name, new Path2D());
    const path = paths.get(name);
    const [x, y] = at(from, R_OUT);
    path.moveTo(x, y);
    path.arc(C, C, R_OUT, angle(from), angle(to));
    path.arc(C, C, R_IN, angle(to), angle(from), true);
    path.closePath();
  }
  for (const [name, path] of paths) {
    ctx.fillStyle = ring.colours.get(name);
    ctx.fill(path);
  }
  ctx.fillStyle = "#1d1f21";
  ctx.font = "15px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.fillText(`${ring.members.length} nodes · ${pts.length} vnodes`, C, C - 8);
  ctx.fillStyle = "#6b6f75";
  ctx.font = "13px system-ui, sans-serif";
  ctx.fillText(`replication factor ${ring.replication_factor}`, C, C + 14);
}

/** The preference list walked on the ring from the key's position: the first token of each node met. */
function walk(position, placements) {
  const pts = ring.points;
  let i = pts.findIndex(([t]) => t >= position);
  if (i < 0) i = 0;
  const wanted = new Set(placements.map((p) => p.node));
  const first = new Map();
  for (let step = 0; step < pts.length && first.size < wanted.size; step++) {
    const [t, name] = pts[(i + step) % pts.length];
    if (wanted.has(name) && !first.has(name)) first.set(name, t);
  }
  return first;
}

export function setRingKey(info) {
  keyInfo = info;
}

export function renderRing(state) {
  if (!ring) return false;
  if (needsDraw) { drawRing(); needsDraw = false; }
  const statusOf = new Map((state.latest ? state.latest.nodes : []).map((n) => [n.name, n.status]));
  const legend = [...ring.members].sort((a, b) => natural(a.name, b.name)).map((m) =>
    el("tr", { dataset: { node: m.name, status: statusOf.get(m.name) || "?" } },
      el("td", {}, el("span", { class: "swatch", style: `background:${ring.colours.get(m.name)}` })),
      el("td", {}, m.name), el("td", {}, m.tokens.length),
      el("td", { class: "num" }, pct(ring.primary.get(m.name) || 0)),
      el("td", { class: "num" }, pct(ring.ownership[m.name] || 0)),
      el("td", { class: "status" }, statusOf.get(m.name) || "?")));
  fill(document.getElementById("ring-legend"), legend);
  document.getElementById("ring-info").textContent = `${ring.vnodes} vnodes per node; each arc: the keys whose primary is that vnode's node`;
  const overlay = document.getElementById("ring-overlay");
  const info = document.getElementById("ring-key-info");
  if (!keyInfo) { overlay.replaceChildren(); info.replaceChildren(); return true; }
  const first = walk(keyInfo.position, keyInfo.placements);
  const marks = [];
  const [kx, ky] = at(keyInfo.position, R_OUT + 4);
  const [kx2, ky2] = at(keyInfo.position, R_IN - 10);
  const [lx, ly] = at(keyInfo.position, R_IN - 40);
  marks.push(el("line", { x1: kx, y1: ky, x2: kx2, y2: ky2, stroke: "#000", "stroke-width": 4, "data-key-mark": "" }));
  marks.push(el("circle", { cx: kx2, cy: ky2, r: 5, fill: "#000" }));
  marks.push(el("text", { x: lx, y: ly + 4, "text-anchor": "middle", "font-size": 12, "font-weight": 700 }, "key"));
  const last = Math.max(...keyInfo.placements.map((p) => first.get(p.node) ?? keyInfo.position));
  let end = last < keyInfo.position ? last + 1 : last;
  const large = end - keyInfo.position > 0.5 ? 1 : 0;
  const [sx, sy] = at(keyInfo.position, R_IN - 22);
  const [ex, ey] = at(end % 1, R_IN - 22);
  marks.push(el("path", { d: `M ${sx} ${sy} A ${R_IN - 22} ${R_IN - 22} 0 ${large} 1 ${ex} ${ey}`, fill: "none", stroke: "#000", "stroke-width": 2, "stroke-dasharray": "5 4" }));
  // each placement's first token on the walk: a tick on the ring, and a numbered label outside it
  // (staggered outwards, since the first tokens of the walk often lie close together)
  let primary = 0;
  keyInfo.placements.forEach((p, i) => {
    const t = first.get(p.node);
    if (t === undefined) return;
    const label = p.role === "primary" ? String(++primary) : "F";
    const [ax, ay] = at(t, R_IN);
    const [bx, by] = at(t, R_OUT);
    const [x, y] = at(t, R_OUT + 18 + 25 * (i % 4));
    const colour = ring.colours.get(p.node);
    marks.push(el("line", { x1: ax, y1: ay, x2: x, y2: y, stroke: "#000", "stroke-width": 1.5 }));
    marks.push(el("line", { x1: ax, y1: ay, x2: bx, y2: by, stroke: "#000", "stroke-width": 3 }));
    marks.push(el("circle", { cx: x, cy: y, r: 11, fill: "#fff", stroke: colour, "stroke-width": 4,
      "stroke-dasharray": p.role === "primary" ? null : "4 2", "data-placement": p.node, "data-role": p.role },
      el("title", {}, `${p.node}: ${p.role}`)));
    marks.push(el("text", { x, y: y + 4, "text-anchor": "middle", "font-size": 12, "font-weight": 700, fill: "#000" }, label));
  });
  fill(overlay, marks);
  fill(info, [
    el("h3", {}, `key ${keyInfo.key} at ${(keyInfo.position * 100).toFixed(2)}% of the ring`),
    el("ol", {}, keyInfo.placements.map((p) => el("li", {},
      el("span", { class: "swatch", style: `background:${ring.colours.get(p.node)}` }), ` ${p.node} — ${p.role}`,
      p.up ? "" : el("span", { class: "st-down" }, " (down)")))),
    el("p", { class: "hint" }, "Walk clockwise from the key: the first distinct nodes are its primaries; the next ones take writes while a primary is down (fallbacks)."),
  ]);
  return true;
}
