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

/** The other admin actions (zkv/http/actions.py): repair now, fault injection, drain and restart. */
const ACTIONS = {
  repair: { confirm: null, done: (n, r) => `${n}: full anti-entropy pass started with ${r.peers} peers (progress in Healing)` },
  isolate: { confirm: (n) => `Isolate ${n}? Every other node drops what it sends and receives from it until healed.`,
    done: (n, r) => `${n} is cut off from ${r.isolated_from.join(", ")}: they will see it down and keep hints for it` },
  heal: { confirm: null, done: (n) => `${n}: its fault rules and the others' rules about it are removed` },
  restart: { confirm: (n) => `Restart ${n}? It drains (refuses new reads and writes for a request timeout), stops and is started again by its supervisor.`,
    done: (n) => `${n} is draining, then restarts` },
};

async function act(action, name) {
  const spec = ACTIONS[action];
  if (spec.confirm && !window.confirm(spec.confirm(name))) return;
  const note = document.getElementById("cluster-note");
  try {
    const reply = await postJSON(`/v1/dashboard/nodes/${encodeURIComponent(name)}/${action}`);
    note.textContent = spec.done(name, reply);
    note.dataset.action = action;
  } catch (err) {
    note.textContent = `${action} ${name}: ${err.message}`;
    note.dataset.action = "error";
  }
}

function button(action, name, label) {
  return el("button", { class: `action ${action}`, dataset: { node: name, action }, onclick: () => act(action, name) }, label || action);
}

function hasFaults(n) {
  return (n.dropped_by || []).length > 0 || faultsNote(n.faults) !== null;
}

function adminCell(n, tick) {
  const heal = hasFaults(n) ? button("heal", n.name) : null; // offered even when the cut makes it look down
  if (n.status !== "up") return heal || "";
  return [
    button("repair", n.name),
    heal || button("isolate", n.name),
    button("restart", n.name),
    n.name !== tick.seen_by
      ? el("button", { class: "decommission", dataset: { node: n.name }, onclick: () => decommission(n.name) }, "decommission")
      : "",
  ];
}

function faultsNote(faults) {
  if (!faults) return null;
  const parts = Object.entries(faults).filter(([, rules]) => Object.keys(rules).length)
    .map(([kind, rules]) => `${kind}: ${Object.keys(rules).sort(natural).join(", ")}`);
  return parts.length ? parts.join("; ") : null;
}

function faultsTitle(n) {
  const parts = [];
  const own = faultsNote(n.faults);
  if (own) parts.push(`its fault filter: ${own}`);
  if ((n.dropped_by || []).length) parts.push(`dropped by ${n.dropped_by.join(", ")}`);
  return parts.length ? parts.join("; ") : null;
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
      el("td", { class: "status", title: faultsTitle(n) }, n.status,
        hasFaults(n) ? el("span", { class: "faults", dataset: { faults: "on" } }, " faults") : ""),
      el("td", { class: "heartbeat", title: n.phi ? `phi ${n.phi.toFixed(2)}` : null }, n.name === tick.seen_by ? "self" : ago(n.heartbeat_age)),
      el("td", {}, n.vnodes),
      el("td", { class: "num" }, pct(n.ownership)),
      el("td", { class: "num" }, n.keys === null || n.keys === undefined ? "?" : n.keys),
      el("td", { class: "num ops" }, rate(n.ops)),
      el("td", { class: "num" }, ms(n.p50_ms)),
      el("td", { class: "num" }, ms(n.p99_ms)),
      admin ? el("td", { class: "admin-only actions" }, adminCell(n, tick)) : null,
    ));
  fill(document.getElementById("node-rows"), rows);
  document.getElementById("seen-by").textContent = tick.seen_by ? `as ${tick.seen_by} sees it` : "";
  document.getElementById("page-info").textContent = `${page + 1}/${pages}`;
  const total = all.reduce((sum, n) => sum + (n.ops || 0), 0);
  document.getElementById("node-footer").textContent =
    `${statusCounts(all)} · ${all.length} nodes · ${rate(total)} ops/s` + (filter ? ` · ${shown.length} match the filter` : "");
  return true;
}
