// Healing: hints waiting for their owners, read repairs, anti-entropy rounds and the keys still differing
// per peer, join/leave transfers. The busiest nodes first, at most ROWS of each, so 150 nodes stay light.

import { ago, el, fill, rate } from "./util.js";

const ROWS = 40;

function rows(id, items, render, empty, columns) {
  const shown = items.slice(0, ROWS).map(render);
  if (!items.length) shown.push(el("tr", {}, el("td", { colspan: columns, class: "hint" }, empty)));
  if (items.length > ROWS) shown.push(el("tr", {}, el("td", { colspan: columns, class: "hint" }, `and ${items.length - ROWS} more`)));
  fill(document.getElementById(id), shown);
}

/** A repair asked for (the Cluster view's button, zkv-node repair): a full pass with every peer. */
function fullPass(x) {
  const p = x.full_pass || {};
  const remaining = (p.remaining || []).length;
  if (!remaining && !p.passes) return "";
  const text = remaining ? ` · full pass ${p.done}/${p.peers} peers` : ` · ${p.passes} full pass${p.passes > 1 ? "es" : ""} done`;
  return el("span", { class: "hint full-pass", dataset: { remaining: String(remaining), passes: String(p.passes || 0) } }, text);
}

export function renderHealing(state) {
  const h = state.latest && state.latest.healing;
  if (!h) return false;
  const hints = [...h.hints].sort((a, b) => b.count - a.count);
  rows("hint-rows", hints, (x) => el("tr", { dataset: { holder: x.holder, target: x.target } },
    el("td", {}, x.holder), el("td", {}, x.target), el("td", { class: "num" }, x.count),
    x.exact
      ? el("td", { class: "num age", title: "age of the oldest hint the holder keeps for this owner" }, ago(x.age_s))
      : el("td", { class: "num age", title: "since this gateway first saw hints for this owner" }, `≥ ${ago(x.age_s)}`)),
  "no hints pending: every write reached its owners", 4);
  rows("transfer-rows", h.transfers, (x) => el("tr", {},
    el("td", {}, x.node), el("td", {}, x.kind),
    el("td", {}, x.kind === "join"
      ? `${(x.done || []).length}/${(x.sources || []).length} sources done, ${x.keys_received} keys received, ${x.retries} retries`
      : `${x.position}/${x.keys} keys handed over (${x.keys_sent} sent, ${x.retries} retries)`)),
  "no join or leave in progress", 3);
  const repairs = [...h.repairs].sort((a, b) => b.read_repairs_s - a.read_repairs_s || b.read_repairs - a.read_repairs);
  rows("repair-rows", repairs, (x) => el("tr", { dataset: { node: x.node } },
    el("td", {}, x.node), el("td", { class: "num" }, x.read_repairs), el("td", { class: "num" }, rate(x.read_repairs_s)),
    el("td", { class: "num" }, x.hints_delivered), el("td", { class: "num" }, x.hints_dropped), el("td", { class: "num" }, x.hints_received)),
  "no node answered", 6);
  const differing = (x) => Object.values(x.differing).reduce((a, b) => a + b, 0);
  const aae = [...h.anti_entropy].sort((a, b) => differing(b) - differing(a) || b.rounds_s - a.rounds_s);
  rows("aae-rows", aae, (x) => el("tr", { dataset: { node: x.node } },
    el("td", {}, x.node, x.indexing ? el("span", { class: "hint" }, " (indexing)") : "", fullPass(x)),
    el("td", { class: "num" }, x.rounds), el("td", { class: "num" }, rate(x.rounds_s)),
    el("td", { class: "num" }, x.keys_sent), el("td", { class: "num" }, x.keys_received),
    el("td", { class: "chips" }, Object.keys(x.differing).length
      ? Object.entries(x.differing).map(([peer, n]) => el("span", { class: n ? "hot" : null, dataset: { peer } },
          `${peer}: ${n} keys` + (peer in x.leaves_differing ? `, ${x.leaves_differing[peer]} leaves` : "")
          + (x.since_round_s && peer in x.since_round_s ? ` · ${ago(x.since_round_s[peer])} ago` : "")))
      : el("span", {}, "no round yet"))),
  "no node answered", 6);
  return true;
}
