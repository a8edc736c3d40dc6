// The Similarity tab's plots: an N x N heatmap with a colour key, and a 2-D PCA map whose labels
// never overlap. Rendering only (the caller fetches); every text is set as text, never as HTML.
//
// Documents are numbered as everywhere on the page: by their index in the request (0, 1, …, as
// the API's "index" and the Playground's # column), the query is Q.
import { el } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// -- colour ------------------------------------------------------------------------------------
// Viridis (matplotlib's), sampled at 0, 0.1, …, 1: perceptually uniform, so equal steps in value
// look like equal steps in colour, and still ordered in greyscale and for most colour-blind
// readers. A rainbow's bright bands invent boundaries, and its red reads as an alarm.
const VIRIDIS = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884",
  "#44bf70", "#7ad151", "#bddf26", "#fde725"].map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));

export function viridis(t) {
  const x = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x)), f = x - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + (VIRIDIS[i + 1][k] - c) * f));
}

const rgb = (c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;

// WCAG relative luminance; black or white text, whichever contrasts more (at least 4.5:1 on
// any colour).
function luminance(c) {
  const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
export const textOn = (c) => ((luminance(c) + 0.05) / 0.05 >= 1.05 / (luminance(c) + 0.05) ? "#000000" : "#ffffff");

// -- heatmap -----------------------------------------------------------------------------------
// The scale spans the off-diagonal values, and the diagonal (each text with itself, always 1) is
// drawn neutral: it carries no information, and on the scale it would squash the comparisons
// that do into one end. The key shows the colours with the lowest and highest values.
export function drawHeatmap({ table: box, key }, texts, keys, m) {
  const off = m.flatMap((row, i) => row.filter((_, j) => j !== i));
  const lo = off.length ? Math.min(...off) : 0, hi = off.length ? Math.max(...off) : 1;
  const at = (x) => (hi - lo > 1e-9 ? (x - lo) / (hi - lo) : 1);
  const head = el("tr", {}, el("th", { class: "corner" }),
    ...texts.map((t, i) => el("th", { scope: "col", title: t, text: keys[i] })));
  const rows = m.map((row, i) => el("tr", {},
    el("th", { scope: "row", title: texts[i] }, el("span", { class: "key doc-num", text: keys[i] }),
      el("span", { class: "label", text: texts[i] })),
    ...row.map((x, j) => {
      const cell = { title: `${keys[i]} ${texts[i]} ↔ ${keys[j]} ${texts[j]}: ${x.toFixed(4)}`,
        "data-value": x.toFixed(4), text: x.toFixed(2) };
      if (i === j) return el("td", { ...cell, class: "self" });
      const c = viridis(at(x));
      return el("td", { ...cell, style: `background:${rgb(c)};color:${textOn(c)}` });
    })));
  box.replaceChildren(el("table", { style: `--n:${texts.length}` },
    el("thead", {}, head), el("tbody", {}, ...rows)));
  const swatches = Array.from({ length: 24 }, (_, i) => el("span", { style: `background:${rgb(viridis(i / 23))}` }));
  key.replaceChildren(
    el("span", { class: "key-name", text: "Cosine similarity" }),
    el("span", { class: "key-min", text: lo.toFixed(2) }),
    el("span", { class: "key-bar", "aria-hidden": "true" }, ...swatches),
    el("span", { class: "key-max", text: hi.toFixed(2) }),
    el("span", { class: "key-self" }, el("span", { class: "self-swatch" }), "a text with itself"));
}

// -- PCA ---------------------------------------------------------------------------------------
// Two principal components by power iteration on the centred vectors (no libraries needed).
export function pca2(vectors) {
  const n = vectors.length, d = vectors[0].length;
  const mean = Array.from({ length: d }, (_, j) => vectors.reduce((s, v) => s + v[j], 0) / n);
  const X = vectors.map((v) => v.map((x, j) => x - mean[j]));
  const comps = [];
  for (let c = 0; c < 2; c++) {
    let w = Array.from({ length: d }, (_, j) => Math.sin(j + 1 + c));
    for (let it = 0; it < 60; it++) {
      const proj = X.map((row) => row.reduce((s, x, j) => s + x * w[j], 0));
      let next = Array.from({ length: d }, (_, j) => X.reduce((s, row, i) => s + row[j] * proj[i], 0));
      for (const p of comps) {
        const dot = next.reduce((s, x, j) => s + x * p[j], 0);
        next = next.map((x, j) => x - dot * p[j]);
      }
      const norm = Math.hypot(...next) || 1;
      w = next.map((x) => x / norm);
    }
    comps.push(w);
  }
  return X.map((row) => comps.map((w) => row.reduce((s, x, j) => s + x * w[j], 0)));
}

// -- label placement -------------------------------------------------------------------------
const W = 400, H = 300, MARGIN = 18, GAP = 3, PAD = 1.5;
const overlaps = (a, b) => a.x < b.x + b.w + PAD && b.x < a.x + a.w + PAD &&
  a.y < b.y + b.h + PAD && b.y < a.y + a.h + PAD;

// Boxes for a w x h label around a marker of radius r at (px, py): beside it first (the eye reads
// a label on the right as belonging to the point), then diagonally, then above and below.
function candidates(px, py, r, w, h) {
  const right = px + r + GAP, left = px - r - GAP - w, mid = px - w / 2;
  const centre = py - h / 2, above = py - r - h, below = py + r;
  return [[right, centre], [left, centre], [right, above], [right, below], [left, above],
    [left, below], [mid, above - GAP], [mid, below + GAP]].map(([x, y]) => ({ x, y, w, h }));
}

// Greedy: each point in turn (the query first) takes the first candidate box that stays inside
// the plot and clears every marker and every label placed so far; a long text is shortened,
// then reduced to its number, then left out. Returns, per point, its box (with the text that
// fitted) or null.
function placeLabels(points, measure) {
  const markers = points.map((p) => ({ x: p.x - p.r, y: p.y - p.r, w: 2 * p.r, h: 2 * p.r }));
  const placed = [];
  return points.map((p) => {
    for (const rest of p.labels) {
      const { w, h, ascent } = measure(p.key, rest);
      const box = candidates(p.x, p.y, p.r, w, h).find((b) => b.x >= 1 && b.y >= 1 &&
        b.x + b.w <= W - 1 && b.y + b.h <= H - 1 && !markers.some((m) => overlaps(b, m)) &&
        !placed.some((q) => overlaps(b, q)));
      if (box) { placed.push(box); return { ...box, rest, ascent }; }
    }
    return null;
  });
}

// A label: the number in bold, then (where there is room) the text, shortened.
function label(key, rest, x, y) {
  const text = svg("text", { class: "label", x, y });
  const num = svg("tspan", { class: "num" });
  num.textContent = key;
  text.append(num, rest ? ` ${rest}` : "");
  return text;
}

const short = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

// The map: the query a diamond in its own colour, documents dots, each labelled with its number
// and text where that fits. Hovering or focusing a point shows its whole text. The card is shown
// first, since labels are measured as drawn.
export function drawMap({ svg: plot, legend, tip }, texts, keys, vectors, queryIndex) {
  plot.closest(".card").hidden = false;
  const pts = pca2(vectors);
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => MARGIN + (x - x0) / ((x1 - x0) || 1) * (W - 2 * MARGIN);
  const sy = (y) => H - MARGIN - (y - y0) / ((y1 - y0) || 1) * (H - 2 * MARGIN);
  const points = pts.map((p, i) => ({ x: sx(p[0]), y: sy(p[1]), r: i === queryIndex ? 7 : 4.5,
    key: keys[i], labels: [short(texts[i], 30), short(texts[i], 14), ""] }));

  const measure = (key, rest) => {
    const probe = label(key, rest, 0, 0);
    plot.replaceChildren(probe);
    const b = probe.getBBox();
    return { w: b.width, h: b.height, ascent: -b.y };
  };
  const boxes = placeLabels(points, measure);

  // Every text at the hovered place: identical texts share a point, and only one is on top.
  const show = (i, g) => {
    const p = points[i];
    tip.textContent = points.map((q, j) => j).filter((j) => Math.hypot(points[j].x - p.x,
      points[j].y - p.y) <= Math.max(p.r, points[j].r)).map((j) => `${keys[j]} · ${texts[j]}`).join("\n");
    tip.hidden = false;
    const card = tip.offsetParent.getBoundingClientRect(), at = g.getBoundingClientRect();
    const left = Math.min(at.right - card.left + 6, card.width - tip.offsetWidth - 8);
    tip.style.left = `${Math.max(8, left)}px`;
    tip.style.top = `${at.bottom - card.top + 4}px`;
  };
  const hide = () => { tip.hidden = true; };
  // Drawn in reverse so the query (first) is on top of any document at the same place.
  const groups = points.map((p, i) => {
    const query = i === queryIndex;
    const g = svg("g", { class: query ? "point query" : "point", tabindex: 0, "data-key": keys[i],
      "aria-label": `${query ? "Query" : `Document ${keys[i]}`}: ${texts[i]}` });
    g.append(query
      ? svg("path", { class: "marker", d: `M${p.x} ${p.y - p.r}L${p.x + p.r} ${p.y}L${p.x} ${p.y + p.r}L${p.x - p.r} ${p.y}Z` })
      : svg("circle", { class: "marker", cx: p.x, cy: p.y, r: p.r }));
    const box = boxes[i];
    if (box) g.append(label(keys[i], box.rest, box.x, box.y + box.ascent));
    for (const [on, fn] of [["pointerenter", () => show(i, g)], ["focus", () => show(i, g)],
      ["pointerleave", hide], ["blur", hide]]) g.addEventListener(on, fn);
    return g;
  });
  plot.replaceChildren(...groups.reverse());
  hide();

  const hidden = boxes.filter((b) => b === null).length;
  const marker = (query) => {
    const s = svg("svg", { viewBox: "0 0 14 14", width: 14, height: 14, "aria-hidden": "true",
      class: query ? "query" : "" });
    s.append(query ? svg("path", { class: "marker", d: "M7 0L14 7L7 14L0 7Z" })
      : svg("circle", { class: "marker", cx: 7, cy: 7, r: 4.5 }));
    return s;
  };
  legend.replaceChildren(
    ...(queryIndex == null ? [] : [el("span", { class: "legend-item" }, marker(true), "Query (Q)")]),
    el("span", { class: "legend-item" }, marker(false), "Document (its number)"),
    el("span", { class: "muted", text: "Nearer points are more similar. " +
      (hidden ? `${hidden} label${hidden > 1 ? "s" : ""} left out where they would overlap: ` : "") +
      "Hover or focus a point for its text." }));
}
