// Cluster: every node as the gateway's node sees it, paged so 150 nodes stay light, and a footer like
// nodetool status' ("4 up, 1 down").

import { postJSON } from "./api.js";
import { ago, el, fill, ms, natural, pct, rate, statusCounts } from "./util.js";

const PAGE = 50;
let page = 0;
let filter = "";

export function initCluster(rerender) {
  document.getElementById("node-filter").addEventListener("input", (e) => { filter = e.target.value.trim(); page = 0; rerender(); });
  document.getElementById("page-prev").addEventListener("click", () => { page = Math.max(0, page - 1); rerender(); });
  document.getElementById("page-next").addEventListener("click", () => { page += 1; rerender(); });
}

/** The shell's decommission: the node hands its data to the others and leaves the cluster. */
async function decommission(name) {
  if (!window.confirm(`Decommission ${name}? It hands its data to the other nodes and leaves the cluster.`)) return;
  const note = document.getElementById("cluster-note");
  try {
    await postJSON(`/v1/dashboard/nodes/${encodeURIComponent(name)}/decommission`);
    note.textContent = `${name} is leaving: it streams its ranges to their new owners, then stops.`;
  } catch (err) {
    note.textContent = `decommission ${name}: ${err.message}`;
  }
}

export function renderCluster(state) {
  const tick = state.latest;
  if (!tick) return false;
  const all = [...tick.nodes].sort((a, b) => natural(a.name, b.name));
  const shown = filter ? all.filter((n) => n.name.includes(filter) || n.address.includes(filter) || n.status === filter) : all;
  const pages = Math.max(1, Math.ceil(shown.length / PAGE));
  page = Math.min(page, pages - 1);
  const admin = state.role === "admin"; // admin-only actions: hidden for client tokens
  for (const th of document.querySelectorAll("#view-cluster th.admin-only")) th.hidden = !admin;
  const rows = shown.slice(page * PAGE, (page + 1) * PAGE).map((n) =>
    el("tr", { dataset: { node: n.name, status: n.status }, class: n.name === tick.seen_by ? "self" : null },
      el("td", {}, n.name),
      el("td", { class: "addr" }, n.address),
      el("td", { class: "status" }, n.status),
      el("td", { class: "heartbeat", title: n.phi ? `phi ${n.phi.toFixed(2)}` : null }, n.name === tick.seen_by ? "self" : ago(n.heartbeat_age)),
      el("td", {}, n.vnodes),
      el("td", { class: "num" }, pct(n.ownership)),
      el("td", { class: "num" }, n.keys === null || n.keys === undefined ? "?" : n.keys),
      el("td", { class: "num ops" }, rate(n.ops)),
      el("td", { class: "num" }, ms(n.p50_ms)),
      el("td", { class: "num" }, ms(n.p99_ms)),
      admin ? el("td", { class: "admin-only" }, n.status === "up" && n.name !== tick.seen_by
        ? el("button", { class: "decommission", dataset: { node: n.name }, onclick: () => decommission(n.name) }, "decommission")
        : "") : null,
    ));
  fill(document.getElementById("node-rows"), rows);
  document.getElementById("seen-by").textContent = tick.seen_by ? `as ${tick.seen_by} sees it` : "";
  document.getElementById("page-info").textContent = `${page + 1}/${pages}`;
  const total = all.reduce((sum, n) => sum + (n.ops || 0), 0);
  document.getElementById("node-footer").textContent =
    `${statusCounts(all)} · ${all.length} nodes · ${rate(total)} ops/s` + (filter ? ` · ${shown.length} match the filter` : "");
  return true;
}
