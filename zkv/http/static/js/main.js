// The dashboard: one live feed, six views; only the view on screen is redrawn on each tick.

import { AuthError, getJSON, setToken } from "./api.js";
import { initCluster, renderCluster } from "./cluster.js";
import { startFeed } from "./feed.js";
import { renderHealing } from "./healing.js";
import { inspectKey, renderKey } from "./inspector.js";
import { initRates, onTick, renderRates } from "./rates.js";
import { ensureRing, renderRing, setRingKey } from "./ring.js";
import { statusCounts } from "./util.js";
import { clearViews, fetchViews, initViews, renderViews } from "./views.js";

const HISTORY = 300;
const VIEWS_REFRESH_MS = 2000;
const state = { latest: null, history: [], view: "cluster", role: "client" };
window.zkvDashboard = state; // for a look from the browser's console (and the tests)
let stopFeed = null;
let viewsTimer = null;

// what a view fetches before it can draw (the ring's tokens, once per membership change)
const prepare = {
  ring: async (s) => { if (s.latest) await ensureRing(s.latest.ring_version); },
};
// each draws its view and returns whether it could (false: its data has not arrived yet)
const renderers = {
  cluster: renderCluster,
  ring: (s) => s.latest !== null && renderRing(s),
  rates: renderRates,
  healing: renderHealing,
  inspector: () => true,
  views: renderViews,
};
let shownAt = 0; // when the view on screen was chosen: its first full draw is timed from here

function showError(err) {
  console.warn(err);
}

async function render(view = state.view) {
  try {
    if (prepare[view]) await prepare[view](state);
    const started = performance.now();
    const drawn = renderers[view](state);
    const section = document.getElementById(`view-${view}`);
    if (drawn && section.dataset.ready !== "true") {
      // first full draw since the view was chosen: the whole wait (fetches included), and the drawing
      section.dataset.ready = "true";
      section.dataset.renderMs = String(Math.round(performance.now() - shownAt));
      section.dataset.drawMs = String(Math.round(performance.now() - started));
    }
  } catch (err) {
    if (err instanceof AuthError) askToken();
    else showError(err);
  }
}

function route() {
  const view = (location.hash || "#cluster").slice(1);
  state.view = view in renderers ? view : "cluster";
  shownAt = performance.now();
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.dataset.view !== state.view;
    if (section.hidden) section.dataset.ready = "false";
  }
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === state.view);
  clearInterval(viewsTimer);
  if (state.view === "views") {
    clearViews();
    const refresh = () => fetchViews().then(() => render("views")).catch((err) => err instanceof AuthError ? askToken() : showError(err));
    refresh();
    viewsTimer = setInterval(refresh, VIEWS_REFRESH_MS);
  }
  render();
}

function onEvent(event, data) {
  if (event === "hello") {
    state.history = data.history;
    if (data.latest) state.latest = data.latest;
  } else if (event === "tick") {
    state.latest = data;
    if (data.dt > 0) {
      state.history.push({ t: data.t, cluster: data.cluster });
      if (state.history.length > HISTORY) state.history.shift();
      onTick(data);
    }
  } else if (event === "unreachable") {
    setLive("unreachable", data.message);
    return;
  }
  if (state.latest) {
    document.getElementById("summary").textContent = statusCounts(state.latest.nodes);
    document.body.dataset.tick = String(state.latest.t);
  }
  render();
}

function setLive(which, title) {
  const live = document.getElementById("live");
  live.dataset.state = which;
  live.textContent = which;
  live.title = title || "the live feed";
}

function askToken(message) {
  if (stopFeed) { stopFeed(); stopFeed = null; }
  const dialog = document.getElementById("login");
  document.getElementById("login-error").textContent = message || "";
  if (!dialog.open) dialog.showModal();
}

async function start() {
  try {
    state.role = (await getJSON("/v1/dashboard/whoami")).role;
  } catch (err) {
    if (err instanceof AuthError) { askToken(); return; }
    state.role = "client"; // unknown: offer no admin action
  }
  stopFeed = startFeed("/v1/dashboard/events", {
    onEvent,
    onState: (s) => (s === "unauthorized" ? askToken("the gateway refused this token") : setLive(s)),
  });
}

async function inspect(key) {
  const data = await inspectKey(key);
  renderKey(data);
  setRingKey(data);
  const link = document.getElementById("key-on-ring");
  link.hidden = false;
  document.getElementById("view-inspector").dataset.key = key;
  return data;
}

function init() {
  initCluster(() => render("cluster"));
  initRates(state, () => render("rates"));
  initViews(() => render("views"));
  document.getElementById("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = document.getElementById("key-input").value;
    if (key) inspect(key).catch((err) => {
      document.getElementById("key-result").textContent = `${err.code || "error"}: ${err.message}`;
    });
  });
  document.getElementById("ring-key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = document.getElementById("ring-key-input").value;
    if (key) inspectKey(key).then((data) => { setRingKey(data); render("ring"); }).catch(showError);
  });
  document.getElementById("key-on-ring").addEventListener("click", () => {
    document.getElementById("ring-key-input").value = document.getElementById("key-input").value;
  });
  document.getElementById("login-form").addEventListener("submit", () => {
    setToken(document.getElementById("token-input").value.trim());
    start();
  });
  window.addEventListener("hashchange", route);
  route();
  start();
}

init();
