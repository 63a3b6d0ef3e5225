// Every node's view side by side (the shell's `views`): where two nodes disagree about a member, the row
// is marked. Paged by observers (columns) so 150 nodes stay readable.

import { getJSON } from "./api.js";
import { ago, el, fill, natural } from "./util.js";

const COLUMNS = 10;
let page = 0;
let onlyDisagree = false;
let last = null;

export function initViews(rerender) {
  document.getElementById("views-disagree").addEventListener("change", (e) => { onlyDisagree = e.target.checked; rerender(); });
  document.getElementById("views-prev").addEventListener("click", () => { page = Math.max(0, page - 1); rerender(); });
  document.getElementById("views-next").addEventListener("click", () => { page += 1; rerender(); });
}

/** Forget the last views (they may be minutes old when the tab is opened again). */
export function clearViews() {
  last = null;
}

/** {observer: {member: row} | {error}} from the gateway's views route. */
export async function fetchViews() {
  last = normalise(await getJSON("/v1/cluster/views"));
  return last;
}

function normalise(body) {
  const views = body.views || body;
  const out = {};
  for (const [observer, view] of Object.entries(views)) {
    if (view && (view.error || view.message) && !view.nodes) out[observer] = { error: view.message || view.error };
    else {
      const rows = Array.isArray(view) ? view : view.nodes || Object.values(view);
      out[observer] = Object.fromEntries(rows.map((r) => [r.name, r]));
    }
  }
  return out;
}

export function renderViews() {
  if (!last) return false;
  const observers = Object.keys(last).sort(natural);
  const members = new Set();
  for (const v of Object.values(last)) if (!v.error) for (const m of Object.keys(v)) members.add(m);
  const pages = Math.max(1, Math.ceil(observers.length / COLUMNS));
  page = Math.min(page, pages - 1);
  const cols = observers.slice(page * COLUMNS, (page + 1) * COLUMNS);
  const rows = [];
  let disagreements = 0;
  for (const member of [...members].sort(natural)) {
    const seen = observers.filter((o) => !last[o].error && last[o][member]).map((o) => last[o][member].status);
    const counts = new Map();
    for (const st of seen) counts.set(st, (counts.get(st) || 0) + 1);
    const disagree = counts.size > 1;
    const majority = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
    if (disagree) disagreements++;
    if (onlyDisagree && !disagree) continue;
    rows.push(el("tr", { class: disagree ? "row-disagree" : null, dataset: { member, disagree: String(disagree) } }, el("th", {}, member),
      cols.map((o) => {
        const v = last[o];
        if (v.error) return el("td", { class: "st-down" }, "unreachable");
        const r = v[member];
        if (!r) return el("td", { class: disagree ? "disagree" : null }, "not a member");
        const odd = disagree && r.status !== majority; // this observer sees it unlike most
        return el("td", { class: `st-${r.status}${odd ? " disagree" : ""}${o === member ? " self" : ""}`, dataset: { observer: o } },
          o === member ? `${r.status} (self)` : `${r.status} · ${ago(r.heartbeat_age)}`);
      })));
  }
  const answered = observers.filter((o) => !last[o].error).length;
  const head = el("tr", {}, el("th", {}, "member \\ seen by"), cols.map((o) => el("th", {}, o)));
  fill(document.getElementById("views-result"), [
    el("p", { class: disagreements ? "banner warn" : "banner ok" },
      disagreements ? `${disagreements} member(s) seen differently by different nodes (row marked; in red, the nodes that see it unlike most)`
        : answered === observers.length ? `all ${observers.length} nodes agree on every member's status`
          : `the ${answered} nodes that answered agree on every member's status (${observers.length - answered} unreachable)`),
    el("div", { class: "matrix-scroll" }, el("table", { class: "matrix" }, el("thead", {}, head), el("tbody", {}, rows))),
  ]);
  document.getElementById("views-page").textContent = `nodes ${page * COLUMNS + 1}–${Math.min(observers.length, (page + 1) * COLUMNS)} of ${observers.length}`;
  return true;
}
