// Small DOM and formatting helpers shared by every view.

/** el("td", {class: "num", dataset: {node: "n1"}}, "text", child) */
export function el(tag, attrs = {}, ...children) {
  const node = tag === "svg" || SVG_TAGS.has(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG_TAGS = new Set(["g", "path", "line", "polyline", "circle", "text", "rect", "title"]);

/** Replace the children of ``parent`` (one DOM write instead of many). */
export function fill(parent, children) {
  parent.replaceChildren(...children);
}

/** A value from JSON: text stays text, {"base64": ...} is shown as such, null is a tombstone. */
export function showValue(value) {
  if (value === null || value === undefined) return "(tombstone)";
  if (typeof value === "object" && "base64" in value) return `base64:${value.base64}`;
  return value;
}

export function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  if (seconds < 120) return `${Math.round(seconds)}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}

export function rate(value) {
  if (value === null || value === undefined) return "–";
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

export function ms(value) {
  return value === null || value === undefined ? "–" : `${value.toFixed(value < 10 ? 2 : 1)} ms`;
}

export function pct(share) {
  return `${(share * 100).toFixed(1)}%`;
}

export function when(unixSeconds) {
  const d = new Date(unixSeconds * 1000);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

/** One colour per node, stable for a name set: golden-angle hues, in sorted order. */
export function nodeColours(names) {
  const out = new Map();
  [...names].sort(natural).forEach((name, i) => out.set(name, `hsl(${(i * 137.508) % 360} 62% 48%)`));
  return out;
}

/** n2 before n10. */
export function natural(a, b) {
  return a.localeCompare(b, undefined, { numeric: true });
}

/** "4 up, 1 down, 1 joining" like nodetool status' footer. */
export function statusCounts(rows) {
  const counts = new Map([["up", 0], ["down", 0]]);
  for (const row of rows) counts.set(row.status, (counts.get(row.status) || 0) + 1);
  return [...counts].filter(([s, n]) => n || s === "up" || s === "down").map(([s, n]) => `${n} ${s}`).join(", ");
}
