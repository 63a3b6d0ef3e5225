// Key inspector: every replica's versions side by side (value, dot, clock), which replicas diverge, and
// for siblings a drawing of why they are concurrent.

import { getJSON } from "./api.js";
import { el, fill, nodeColours, showValue, when } from "./util.js";

const LANE_LEFT = 170;
const MAX_VERSIONS = 8; // per replica card; the rest is counted
const MAX_PAIRS = 3; // siblings up to this many get one sentence per pair, more get one sentence

export async function inspectKey(key) {
  return getJSON(`/v1/dashboard/keys/${encodeURIComponent(key)}`);
}

function replicaCard(name, placement, replica, data) {
  const role = placement ? placement.role : "replica";
  if (replica.error) {
    return el("div", { class: "replica error", dataset: { replica: name } },
      el("h3", {}, name, el("span", { class: "role" }, role)), el("p", { class: "error" }, replica.error));
  }
  const versions = data.versions.slice(0, MAX_VERSIONS).map((v, i) => {
    const cell = replica.cells[i];
    return el("div", { class: `version ${cell}`, dataset: { dot: v.dot, state: cell } },
      el("div", { class: "value" }, cell === "missing" ? "(never saw it)" : showValue(v.value)),
      el("span", { class: "dot" }, v.dot), " ", el("span", { class: "hint" }, `${cell} · written ${when(v.timestamp)}`));
  });
  const held = replica.cells.filter((c) => c === "held").length;
  const diverges = data.diverged && JSON.stringify(replica.cells) !== JSON.stringify(majority(data));
  return el("div", { class: `replica${diverges ? " diverges" : ""}`, dataset: { replica: name, held: String(held) } },
    el("h3", {}, name, el("span", { class: "role" }, `${role}${placement && !placement.up ? " · down" : ""}`)),
    versions.length ? versions : el("p", { class: "hint" }, "(no versions)"),
    data.versions.length > MAX_VERSIONS ? el("p", { class: "hint" }, `and ${data.versions.length - MAX_VERSIONS} older versions`) : "",
    el("div", { class: "clock" }, "clock ", Object.entries(replica.clock).map(([a, c]) => `${a}:${c}`).join(", ") || "{}"));
}

function majority(data) {
  const counts = new Map();
  for (const r of Object.values(data.replicas)) if (r.cells) {
    const k = JSON.stringify(r.cells);
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  let best = null, n = 0;
  for (const [k, c] of counts) if (c > n) { best = k; n = c; }
  return best ? JSON.parse(best) : [];
}

/** Lanes per actor: superseded dots grey, each sibling's dot in colour, and the pairs' "had not seen". */
function concurrencyDrawing(data) {
  const c = data.concurrency;
  const colours = nodeColours(data.siblings);
  const maxSeen = Math.max(...c.lanes.map((l) => l.seen));
  const step = Math.min(40, 520 / Math.max(1, maxSeen));
  const width = LANE_LEFT + step * maxSeen + 20, height = 34 * c.lanes.length + 10;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "lanes" });
  c.lanes.forEach((lane, row) => {
    const y = 14 + row * 34;
    svg.append(el("text", { x: 4, y: y + 4, "font-size": 12 }, `actor ${lane.actor}`));
    svg.append(el("line", { x1: LANE_LEFT, x2: LANE_LEFT + step * lane.seen, y1: y, y2: y, stroke: "#ccc" }));
    for (let n = 1; n <= lane.seen; n++) {
      const sib = lane.siblings.includes(n);
      const dot = `${lane.actor}:${n}`;
      const cx = LANE_LEFT + step * n - step / 2;
      svg.append(el("circle", { cx, cy: y, r: sib ? 8 : 5, fill: sib ? colours.get(dot) : "#bbb",
        stroke: sib ? "#000" : "none", "data-dot": dot }, el("title", {}, sib ? `${dot}: a sibling` : `${dot}: superseded`)));
      svg.append(el("text", { x: cx, y: y + 20, "text-anchor": "middle", "font-size": 10, fill: "#6b6f75" }, String(n)));
    }
  });
  return svg;
}

export function renderKey(data) {
  const box = document.getElementById("key-result");
  const byNode = new Map(data.placements.map((p) => [p.node, p]));
  const parts = [];
  const answered = Object.values(data.replicas).filter((r) => !r.error).length;
  parts.push(data.diverged
    ? el("div", { class: "banner warn", dataset: { diverged: "true" } }, "replicas diverge: a read (read repair), anti-entropy or the next write brings them together")
    : el("div", { class: "banner ok", dataset: { diverged: "false" } }, `replicas agree (${answered} of ${Object.keys(data.replicas).length} answered)`));
  parts.push(el("p", {}, "preference list: ", data.placements.map((p, i) => el("span", {}, i ? ", " : "", p.node, el("span", { class: "role" }, ` ${p.role}${p.up ? "" : " down"}`)))));
  parts.push(el("div", { class: "replicas" }, Object.entries(data.replicas).map(([n, r]) => replicaCard(n, byNode.get(n), r, data))));
  if (data.siblings.length > 1) {
    const byDot = new Map(data.versions.map((v) => [v.dot, v]));
    parts.push(el("h3", {}, `${data.siblings.length} siblings (concurrent writes): a read returns all of them`));
    const colours = nodeColours(data.siblings);
    parts.push(el("div", { class: "siblings" }, data.siblings.map((dot) =>
      el("div", { class: "sibling", style: `border-color:${colours.get(dot)}`, dataset: { sibling: dot } }, el("div", { class: "value" }, showValue(byDot.get(dot).value)), el("span", { class: "dot" }, dot)))));
    parts.push(el("h3", {}, "why they are concurrent"));
    parts.push(concurrencyDrawing(data));
    parts.push(data.siblings.length <= MAX_PAIRS
      ? el("ul", {}, data.concurrency.pairs.map((p) => el("li", {}, p.why)))
      : el("p", {}, `Each of these ${data.siblings.length} writes was made with a context that had seen none of the other siblings' dots, so none of them replaced another.`));
    parts.push(el("p", { class: "hint" }, "Grey dots: writes the key's clock has seen that a later write replaced; each sibling descends from some of them. "
      + "zkv keeps one clock per key, so which of them each sibling saw is not recorded. A write with the context of a read that returned all siblings replaces them."));
  } else if (data.siblings.length === 1) {
    const v = data.versions.find((x) => x.dot === data.siblings[0]);
    parts.push(el("p", {}, "one version: ", el("span", { class: "dot" }, data.siblings[0]), v && v.tombstone ? " (deleted)" : ""));
  } else {
    parts.push(el("p", { class: "hint" }, "no replica holds this key"));
  }
  fill(box, parts);
}
