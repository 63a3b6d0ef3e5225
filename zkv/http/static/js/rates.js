// Live rates: requests/s by op and consistency, errors/s by code and p50/p99, for the whole cluster or one
// node, over the last five minutes. Points arrive once a second on the feed; nothing polls.

import { getJSON } from "./api.js";
import { drawChart, seriesColour } from "./chart.js";
import { el, fill, ms, natural, rate } from "./util.js";

const SPAN_S = 300;
let scope = "";
let scopeHistory = null; // [{t, node}] for a node scope, else null
let options = "";

export function initRates(state, rerender) {
  document.getElementById("rates-scope").addEventListener("change", async (e) => {
    scope = e.target.value;
    scopeHistory = null;
    if (scope) {
      const data = await getJSON(`/v1/dashboard/history?node=${encodeURIComponent(scope)}`);
      scopeHistory = data.history;
    }
    rerender();
  });
}

/** Keep the points of the chosen node as ticks arrive (the cluster's are kept by main.js). */
export function onTick(tick) {
  if (scope && scopeHistory && tick.per_node[scope]) {
    scopeHistory.push({ t: tick.t, node: tick.per_node[scope] });
    if (scopeHistory.length > SPAN_S) scopeHistory.shift();
  }
}

function seriesOf(points, pick) {
  const names = new Set();
  for (const p of points) for (const name of Object.keys(pick(p) || {})) names.add(name);
  return [...names].sort(natural).map((name, i) => ({
    name, colour: seriesColour(i), points: points.map((p) => [p.t, (pick(p) || {})[name] || 0]),
  }));
}

function legend(id, series, unit) {
  fill(document.getElementById(id), series.map((s) => {
    const last = s.points.length ? s.points[s.points.length - 1][1] : 0;
    return el("span", { dataset: { series: s.name, rate: String(last) } },
      el("span", { class: "swatch", style: `background:${s.colour}` }), ` ${s.name} `, el("b", {}, unit === "ms" ? ms(last) : `${rate(last)}/s`));
  }));
}

export function renderRates(state) {
  const select = document.getElementById("rates-scope");
  const names = state.latest ? state.latest.nodes.map((n) => n.name).sort(natural) : [];
  if (names.join(",") !== options) {
    options = names.join(",");
    fill(select, [el("option", { value: "" }, "whole cluster"), ...names.map((n) => el("option", { value: n, selected: n === scope }, n))]);
  }
  const points = scope
    ? (scopeHistory || []).map((h) => ({ t: h.t, ...h.node }))
    : state.history.map((h) => ({ t: h.t, ...h.cluster }));
  const now = state.latest ? state.latest.t : Date.now() / 1000;
  const requests = seriesOf(points, (p) => p.requests);
  const errors = seriesOf(points, (p) => p.errors);
  const latency = [
    { name: "p50", colour: "#2457c5", dashed: true, points: points.filter((p) => p.p50_ms !== null && p.p50_ms !== undefined).map((p) => [p.t, p.p50_ms]) },
    { name: "p99", colour: "#c62828", points: points.filter((p) => p.p99_ms !== null && p.p99_ms !== undefined).map((p) => [p.t, p.p99_ms]) },
  ];
  drawChart(document.getElementById("chart-requests"), requests, { now, span: SPAN_S });
  drawChart(document.getElementById("chart-errors"), errors, { now, span: SPAN_S });
  drawChart(document.getElementById("chart-latency"), latency, { now, span: SPAN_S, unit: "" });
  legend("legend-requests", requests, "/s");
  legend("legend-errors", errors.length ? errors : [], "/s");
  if (!errors.length) fill(document.getElementById("legend-errors"), [el("span", { class: "hint" }, "no errors")]);
  legend("legend-latency", latency, "ms");
  const last = points.length ? points[points.length - 1] : null;
  const total = last ? last.ops || 0 : 0;
  const box = document.getElementById("rates");
  box.dataset.t = last ? String(last.t) : "";
  box.dataset.ops = String(total);
  box.dataset.scope = scope || "cluster";
  box.dataset.points = String(points.length);
  document.getElementById("rates-total").textContent = `— ${rate(total)} ops/s now`;
  return state.latest !== null;
}
