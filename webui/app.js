// localembed playground: a thin client of the documented HTTP API.
// Every user-visible string that came from a user or the server is set with textContent, never
// innerHTML, so pasted HTML or <script> is shown as text.
"use strict";
// Long work (progress, cancel) and messages live in their own modules.
import { clippedCell } from "./clip.js";
import { el } from "./dom.js";
import { watchHealth } from "./health.js";
import { banner, placeFor, say } from "./notify.js";
import { inChunks, track } from "./work.js";
import { drawHeatmap, drawMap } from "./plots.js";
import { setupSearch } from "./search.js";

const $ = (id) => document.getElementById(id);
const state = { key: localStorage.getItem("localembed.key") || "", models: [], vectors: null,
  keyRequired: false };


// The page-wide banner, for problems not tied to one button (notify.js says the others).
function showError(message) { banner(message); }
function clearError() { $("error").hidden = true; }

// ``signal`` (an AbortSignal) cancels the request: the server drops the work of a client that
// went away. A cancel is rethrown as it is, not as "cannot reach the server".
async function api(method, path, body, signal) {
  const headers = { "Content-Type": "application/json" };
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  let response;
  try {
    response = await fetch(path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    if (signal && signal.aborted) throw err;
    throw new Error(`Cannot reach the server: ${err.message}`);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    if (response.status === 401) { state.keyRequired = true; $("keybox").hidden = false; }
    // OpenAI's {"error": {"message"}}, Ollama's and TEI's {"error": "..."}, Cohere's {"message"}.
    const msg = data && data.error ? (data.error.message || data.error)
      : data && data.message ? data.message : `${response.status} ${response.statusText}`;
    throw Object.assign(new Error(msg), { status: response.status });
  }
  return data;
}

// Progress, elapsed time and any error are shown beside ``button`` (work.js); ``fn`` gets
// {signal, progress}. options.cancellable adds a Cancel (for fns that pass the signal on).
function run(button, fn, options) {
  return track(button, fn, options);
}

// -- work the server runs in the background (a model's download, a collection's index run) ---------
// Followed by polling its progress route (GET /v1/pull/{id}, GET /v1/collections/{name}/index),
// not by its event stream: an EventSource cannot send the API key's header. One follower per
// ``key``: following a key again stops the earlier one, so a list drawn again does not double
// the polls. ``get()`` is asked every ``every`` ms, one request at a time, and each answer goes
// to ``render`` until ``final(answer)``, then to ``done``; a failed request stops the following
// and goes to ``failed``.
const followers = new Map();
const FINAL = ["done", "error", "cancelled"];
function follow(key, get, { render, final = (p) => FINAL.includes(p.status), done = () => {},
  failed = () => {}, every = 400 }) {
  unfollow(key);
  let timer = null;
  const stop = () => { clearTimeout(timer); if (followers.get(key) === stop) followers.delete(key); };
  followers.set(key, stop);
  const tick = async () => {
    let answer;
    try { answer = await get(); } catch (err) { if (followers.get(key) === stop) { stop(); failed(err); } return; }
    if (followers.get(key) !== stop) return;  // stopped meanwhile
    render(answer);
    if (final(answer)) { stop(); done(answer); } else timer = setTimeout(tick, every);
  };
  timer = setTimeout(tick, every);
}
function unfollow(key) { const stop = followers.get(key); if (stop) stop(); }
// Seconds left as m:ss, for an ETA; "" while unknown.
const clock = (s) => (s == null || !Number.isFinite(s) ? ""
  : `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`);

const fmtBytes = (n) => n == null ? "?" : n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` :
  n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} KB` : `${n} B`;
const lines = (id) => $(id).value.split("\n").map((s) => s.trim()).filter(Boolean);

// -- tabs, theme, key ---------------------------------------------------------------------------
for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => {
    for (const b of document.querySelectorAll("#tabs button")) b.setAttribute("aria-selected", b === button);
    for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== button.dataset.tab;
    if (button.dataset.tab === "models") refreshModels().catch((e) => (e.status === 401 ? askForKey(false) : showError(e.message)));
    if (button.dataset.tab === "search") search.refresh().catch((e) => (e.status === 401 ? askForKey(false) : showError(e.message)));
  });
}
const savedTheme = localStorage.getItem("localembed.theme");
if (savedTheme) document.documentElement.dataset.theme = savedTheme;
$("theme").addEventListener("click", () => {
  const dark = document.documentElement.dataset.theme === "dark" ||
    (!document.documentElement.dataset.theme && matchMedia("(prefers-color-scheme: dark)").matches);
  document.documentElement.dataset.theme = dark ? "light" : "dark";
  localStorage.setItem("localembed.theme", document.documentElement.dataset.theme);
});
$("error-close").addEventListener("click", clearError);
$("api-key-save").addEventListener("click", () => {
  state.key = $("api-key").value.trim();
  localStorage.setItem("localembed.key", state.key);
  init();
});
$("api-key").addEventListener("keydown", (e) => { if (e.key === "Enter") $("api-key-save").click(); });

// -- models for the selects -----------------------------------------------------------------------
// A model's kind, as the server says it: "embedding" (vectors) or "reranker" (a relevance score
// per query-document pair); null for a model whose file could not be read.
const kindOf = (m) => m.kind || null;
const modelsOf = (kind) => state.models.filter((m) => kindOf(m) === kind);

// Each select lists the models of its data-kind. An optional one (the Similarity tab's) may be
// set to "none", and its label is hidden while no model of its kind is installed.
function fillSelects() {
  for (const select of document.querySelectorAll(".model-select")) {
    const models = modelsOf(select.dataset.kind);
    const optional = Boolean(select.dataset.optional);
    const current = select.value;
    const hadNone = optional && select.options.length > 0 && current === "";
    const options = models.map((m) =>
      el("option", { value: m.id, text: `${m.id}${m.default ? " (default)" : ""}` }));
    if (optional) options.push(el("option", { value: "", text: "none" }));
    select.replaceChildren(...options);
    const preferred = models.find((m) => m.default) || models[0];
    select.value = models.some((m) => m.id === current) || (hadNone && models.length) ? current
      : (preferred ? preferred.id : "");
    if (optional) select.closest("label").hidden = models.length === 0;
  }
  fillDims();
}
function fillDims() {
  const model = state.models.find((m) => m.id === $("pg-model").value);
  $("pg-dims").replaceChildren(...dimensionChoices(model).map((d, i) => el("option", { value: i === 0 ? "" : d, text: i === 0 ? `${d} (full)` : d })));
}
// The sizes to offer, full width first: the trained ones (matryoshka_dimensions), or, where any
// size from min_dimensions up is allowed, every multiple of 64 and the smallest.
function dimensionChoices(model) {
  if (!model || !model.dimensions) return [];
  if (model.matryoshka_dimensions) return model.matryoshka_dimensions;
  const sizes = [model.dimensions];
  for (let d = model.dimensions - 1; model.min_dimensions && d >= model.min_dimensions; d--) {
    if (d % 64 === 0 || d === model.min_dimensions) sizes.push(d);
  }
  return sizes;
}
$("pg-model").addEventListener("change", fillDims);
// The tasks the server takes, with their labels, as it lists them (GET /v1/info); "none"
// sends no task (raw text) and is there before the list arrives.
function fillTasks(tasks) {
  const choices = [{ id: "", label: "none (raw text)" }, ...tasks];
  for (const select of document.querySelectorAll(".task-select")) {
    const current = select.value;
    select.replaceChildren(...choices.map((t) => el("option", { value: t.id, text: t.label })));
    if (choices.some((t) => t.id === current)) select.value = current;
  }
}
fillTasks([]);
async function loadTasks() {
  fillTasks((await api("GET", "/v1/info")).tasks);
}

async function loadModels() {
  const data = await api("GET", "/v1/models");
  state.models = data.data;
  fillSelects();
  search.modelsChanged();
}

// -- playground -------------------------------------------------------------------------------
// Many texts go in chunks, a few requests at a time (so the server still batches them), and
// the page counts "n of N texts"; a text's vector does not depend on the texts sent with it.
const EMBED_CHUNK = 32, EMBED_PARALLEL = 3;
$("pg-run").addEventListener("click", (e) => run(e.target, async ({ signal, progress }) => {
  const texts = lines("pg-texts");
  if (!texts.length) throw new Error("Type at least one text.");
  $("pg-result").hidden = true;  // the last run's vectors are not these texts'
  const body = { model: $("pg-model").value || "default", input: texts };
  if ($("pg-task").value) body.task = $("pg-task").value;
  if ($("pg-dims").value) body.dimensions = Number($("pg-dims").value);
  const started = performance.now();
  const parts = await inChunks(texts, EMBED_CHUNK, EMBED_PARALLEL,
    (chunk, s) => api("POST", "/v1/embeddings", { ...body, input: chunk }, s), { signal, progress });
  const data = { model: parts[0].model, data: parts.flatMap((p) => p.data),
    usage: { total_tokens: parts.reduce((n, p) => n + p.usage.total_tokens, 0) } };
  const ms = performance.now() - started;
  state.vectors = data.data.map((d) => d.embedding);
  // Cut as /v1/embeddings cuts a text longer than the model takes: the count the model saw.
  const tokens = await api("POST", "/tokenize", { model: body.model, content: texts, task: body.task, truncate: "end" }, signal);
  $("pg-meta").textContent = `${data.model} · ${data.usage.total_tokens} tokens · ${ms.toFixed(0)} ms`;
  $("pg-rows").replaceChildren(...data.data.map((d, i) => {
    const preview = d.embedding.slice(0, 6).map((x) => x.toFixed(4)).join(", ");
    const copy = el("button", { class: "copy", text: "Copy", onclick: () => copyText(JSON.stringify(d.embedding)) });
    return el("tr", { "data-index": i },
      el("td", { text: i }), clippedCell(texts[i], { class: "text" }),
      el("td", { class: "tokens", text: tokens.tokens[i].length }),
      el("td", { text: d.embedding.length }),
      el("td", {}, el("span", { class: "preview", text: `[${preview}, …]` })), el("td", {}, copy));
  }));
  $("pg-result").hidden = false;
}, { cancellable: true }));
$("pg-copy").addEventListener("click", () => copyText(JSON.stringify(state.vectors)));
async function copyText(text) {
  try { await navigator.clipboard.writeText(text); } catch { showError("The browser refused clipboard access."); }
}

// -- similarity, reranking, heatmap, PCA -----------------------------------------------------------
async function timed(promise) {
  const started = performance.now();
  const data = await promise;
  return { data, ms: performance.now() - started };
}

// One ranked list: items are {index, score} best first; `other` maps a document's index to its
// place in the other list (when both are shown), so moves between the two orders are visible.
function renderOrder(list, items, docs, other, otherName) {
  list.replaceChildren(...items.map((d) => {
    const li = el("li", { "data-index": d.index },
      el("span", { class: "doc-num", title: "Document number (its index in the request)", text: d.index }),
      el("span", { class: "score", text: d.score.toFixed(3) }), el("span", { class: "doc", text: docs[d.index] }));
    if (other) li.append(el("span", { class: "elsewhere", title: `Place in the ${otherName} order`,
      text: `#${other.get(d.index) + 1} by ${otherName}` }));
    li.append(el("div", { class: "bar", style: `width:${Math.max(0, Math.min(1, d.score)) * 100}%` }));
    return li;
  }));
}
const places = (items) => new Map(items.map((d, i) => [d.index, i]));
const meta = (model, tokens, ms) => [model, tokens == null ? "" : `${tokens} tokens`, `${ms.toFixed(0)} ms`]
  .filter(Boolean).join(" · ");

$("sim-run").addEventListener("click", (e) => run(e.target, async ({ signal }) => {
  const docs = lines("sim-docs");
  const query = $("sim-query").value;
  const embedder = $("sim-model").value, reranker = $("sim-reranker").value;
  if (!embedder && !reranker) throw new Error("Install or choose an embedding model or a reranker to rank with.");
  if (!docs.length) throw new Error("Type at least one document.");
  $("sim-result").hidden = true;  // the last ranking is not of these texts
  const [sims, ranks] = await Promise.all([
    embedder ? timed(api("POST", "/v1/similarity", { model: embedder, query, documents: docs }, signal)) : null,
    reranker ? timed(api("POST", "/v1/rerank", { model: reranker, query, documents: docs, return_documents: false }, signal)) : null]);
  const byCosine = sims ? sims.data.data.map((d) => ({ index: d.index, score: d.score })) : null;
  const byReranker = ranks ? ranks.data.results.map((r) => ({ index: r.index, score: r.relevance_score })) : null;
  if (sims) {
    $("sim-meta").textContent = meta(sims.data.model, sims.data.usage.total_tokens, sims.ms);
    renderOrder($("sim-rows"), byCosine, docs, byReranker && places(byReranker), "reranker");
  }
  if (ranks) {
    const usage = ranks.data.usage || (ranks.data.meta && ranks.data.meta.tokens) || {};
    const tokens = usage.total_tokens ?? usage.input_tokens ?? null;
    $("rr-meta").textContent = meta(ranks.data.model || reranker, tokens, ranks.ms);
    renderOrder($("rr-rows"), byReranker, docs, byCosine && places(byCosine), "embedding");
  }
  $("sim-embed-order").hidden = !sims;
  $("sim-rerank-order").hidden = !ranks;
  $("sim-result").hidden = false;
}, { cancellable: true }));

$("sim-map").addEventListener("click", (e) => run(e.target, async ({ signal }) => {
  const model = $("sim-model").value;
  if (!model) throw new Error("The heatmap and the map compare vectors: choose an embedding model.");
  const query = $("sim-query").value;
  const docs = lines("sim-docs");
  const texts = [query, ...docs].filter(Boolean);
  $("heat-card").hidden = $("pca-card").hidden = true;  // the last map is not of these texts
  // The server computes the similarities (as for the ranking); the vectors feed the PCA map.
  const [sims, data] = await Promise.all([
    api("POST", "/v1/similarity/matrix", { model, texts }, signal),
    api("POST", "/v1/embeddings", { model, input: texts }, signal)]);
  // Documents keep their index (as in the ranking and the API), the query is Q.
  const keys = texts.map((_, i) => (query ? (i === 0 ? "Q" : String(i - 1)) : String(i)));
  drawHeatmap({ table: $("heatmap"), key: $("heat-key") }, texts, keys, sims.matrix);
  $("heat-card").hidden = false;
  drawMap({ svg: $("pca"), legend: $("pca-legend"), tip: $("pca-tip") }, texts, keys,
    data.data.map((d) => d.embedding), query ? 0 : null);
}, { cancellable: true }));

// -- models -------------------------------------------------------------------------------------
function kindBadge(kind) {
  return el("span", { class: `kind kind-${kind || "unknown"}`, text: kind || "unknown kind",
    title: kind === "reranker" ? "Scores query-document pairs (POST /v1/rerank)"
      : kind === "embedding" ? "Makes vectors (POST /v1/embeddings)" : "Not described" });
}

async function refreshModels() {
  await loadModels();
  const [catalog, pulls] = await Promise.all([api("GET", "/v1/catalog"), api("GET", "/v1/pull")]);
  $("installed-rows").replaceChildren(...state.models.map((m) => {
    const actions = el("td", { class: "actions" });
    if (!m.default) actions.append(el("button", { text: "Set as default", onclick: (e) => run(e.target, async () => {
      await api("POST", "/v1/default", { model: m.id }); await refreshModels(); }) }));
    if (!m.loaded) actions.append(el("button", { text: "Load", onclick: (e) => run(e.target, async () => {
      await api("POST", `/v1/models/${encodeURIComponent(m.id)}/load`, {}); await refreshModels(); }) }));
    else if (!m.default) actions.append(el("button", { text: "Unload", onclick: (e) => run(e.target, async () => {
      await api("POST", `/v1/models/${encodeURIComponent(m.id)}/unload`, {}); await refreshModels(); }) }));
    if (!m.default) actions.append(el("button", { class: "danger", text: "Delete", onclick: (e) => confirmDelete(e.target, m.id) }));
    const kind = kindOf(m);
    return el("tr", { "data-model": m.id, "data-kind": kind || "unknown" },
      el("td", {}, el("span", { class: "name", text: m.id }), " ", kindBadge(kind)),
      el("td", { text: m.family || "?" }),
      el("td", { text: m.dimensions || (kind === "reranker" ? "—" : "?") }), el("td", { text: fmtBytes(m.size_bytes) }),
      el("td", { text: [m.default && "default", m.loaded && "loaded"].filter(Boolean).join(" · ") }), actions);
  }));
  const running = Object.fromEntries(pulls.data.map((p) => [p.model, p]));
  $("catalog").replaceChildren(...catalog.data.map((entry) => {
    const kind = entry.kind;
    const card = el("div", { class: "model", "data-model": entry.id, "data-kind": kind },
      el("div", { class: "model-head" }, el("h3", { text: entry.id }), kindBadge(kind)),
      el("span", { class: "badge", text: [entry.family, entry.quantization, entry.dimensions ? `${entry.dimensions} dims` : "",
        entry.size_bytes ? fmtBytes(entry.size_bytes) : ""].filter(Boolean).join(" · ") }),
      el("span", { class: "muted", text: entry.description }));
    const slot = el("div", { class: "pull" });
    card.append(slot);
    if (entry.installed) slot.append(el("span", { class: "muted", text: entry.builtin ? "built in" : "installed" }));
    else slot.append(el("button", { class: "primary", text: "Download", onclick: (e) => run(e.target, async () => {
      const p = await api("POST", "/v1/pull", { model: entry.id }); watchPull(entry.id, slot, p); }) }));
    const p = running[entry.id];
    if (p && !["done", "error", "cancelled"].includes(p.status)) watchPull(entry.id, slot, p);
    return card;
  }));
}

function renderPull(slot, p) {
  const bar = el("progress", { max: 100, value: p.percent });
  const eta = p.eta == null ? "" : ` · ETA ${clock(p.eta)}`;
  const info = el("span", { class: "muted pull-info",
    text: `${p.status} · ${p.percent.toFixed(1)}% · ${fmtBytes(p.downloaded)} / ${fmtBytes(p.total)} · ${fmtBytes(p.speed)}/s${eta}` });
  const cancel = el("button", { text: "Cancel", onclick: (e) => run(e.target, () => api("DELETE", `/v1/pull/${encodeURIComponent(p.model)}`)) });
  // Why an earlier source was passed over (e.g. a file without EmbeddingGemma's dense layers).
  const notice = p.notice ? [el("span", { class: "muted pull-notice", text: p.notice })] : [];
  if (p.status === "error" || p.status === "cancelled") {
    // Said in the model's card, with the way on: Retry (a pull resumes what it already has).
    const again = el("button", { class: "primary", text: p.status === "error" ? "Retry" : "Download",
      onclick: (e) => run(e.target, async () => watchPull(p.model, slot,
        await api("POST", "/v1/pull", { model: p.model }))) });
    slot.replaceChildren(el("div", { class: "pull-actions" }, again), ...notice);
    say(slot, p.status === "error" ? `Download failed: ${p.error}` : "Download cancelled.",
      p.status === "error" ? "error" : "info", { scroll: false });
    return;
  }
  slot.replaceChildren(bar, info, ...notice, ...(p.status === "done" ? [] : [cancel]));
}

function watchPull(id, slot, first) {
  renderPull(slot, first);
  follow(`pull:${id}`, () => api("GET", `/v1/pull/${encodeURIComponent(id)}`), {
    render: (p) => renderPull(slot, p),
    done: (p) => { if (p.status === "done") setTimeout(() => refreshModels().catch((e) => showError(e.message)), 600); },
    failed: (err) => say(slot, err.message, "error", { scroll: false }) });
}

// Asks before deleting (the dialog's Delete button), then runs ``action`` as ``button``'s work.
function confirmThen(button, text, action) {
  $("confirm-text").textContent = text;
  const dialog = $("confirm");
  $("confirm-yes").onclick = () => { dialog.close(); run(button, action); };
  $("confirm-no").onclick = () => dialog.close();
  dialog.showModal();
}
function confirmDelete(button, id) {
  confirmThen(button, `Delete ${id} from disk?`, async () => {
    await api("DELETE", `/v1/models/${encodeURIComponent(id)}?force=true`); await refreshModels(); });
}

$("import-form").addEventListener("submit", (e) => {
  e.preventDefault();
  run(e.submitter || $("import-form").querySelector("button"), async () => {
    await api("POST", "/v1/models/import", { path: $("import-path").value.trim() });
    $("import-path").value = "";
    await refreshModels();
  });
});

// -- search (collections) -------------------------------------------------------------------------
// The Search tab lives in search.js; it gets the page's shared helpers from here.
const search = setupSearch({ api, run, follow, clock, fmtBytes, modelsOf, confirmThen,
  drawMap });

// -- API snippets -------------------------------------------------------------------------------
function renderSnippets() {
  const base = location.origin;
  const key = state.keyRequired ? "YOUR_API_KEY" : "unused";
  const auth = state.keyRequired ? ` -H "Authorization: Bearer ${key}"` : "";
  $("api-url").textContent = base;
  $("api-key-state").textContent = state.keyRequired ? "required (send Authorization: Bearer …)" : "not required";
  const snippets = [
    ["curl", `curl ${base}/v1/embeddings${auth} \\\n  -H "Content-Type: application/json" \\\n  -d '{"input": ["hello", "world"], "model": "default"}'`],
    ["OpenAI Python SDK", `from openai import OpenAI\n\nclient = OpenAI(base_url="${base}/v1", api_key="${key}")\nresponse = client.embeddings.create(model="default", input=["hello", "world"])\nvectors = [d.embedding for d in response.data]`],
    ["LangChain", `from langchain_openai import OpenAIEmbeddings\n\n# check_embedding_ctx_length=False makes LangChain send text, not tiktoken ids.\nembeddings = OpenAIEmbeddings(\n    model="default",\n    base_url="${base}/v1",\n    api_key="${key}",\n    check_embedding_ctx_length=False,\n)\nvectors = embeddings.embed_documents(["hello", "world"])`],
    ["Rerank (Cohere/Jina shape)", `curl ${base}/v1/rerank${auth} \\\n  -H "Content-Type: application/json" \\\n  -d '{"model": "${(modelsOf("reranker")[0] || { id: "YOUR_RERANKER" }).id}", "query": "how do I cook pasta?", "documents": ["Boil it in salted water.", "Stocks fell."], "top_n": 1}'`],
    ["Ollama-speaking tools", `# Point the tool's Ollama URL at ${base}\ncurl ${base}/api/embed${auth} -d '{"model": "default", "input": ["hello", "world"]}'`],
  ];
  $("snippets").replaceChildren(...snippets.map(([title, code]) => el("div", { class: "snippet" },
    el("div", { class: "row" }, el("h3", { text: title }),
      el("button", { class: "copy", text: "Copy", onclick: () => copyText(code) })),
    el("pre", {}, el("code", { text: code })))));
}

// -- start ---------------------------------------------------------------------------------------
// The pill follows /health by itself (health.js); when the server is back, the models and
// tasks are asked for again (it may have restarted with others).
watchHealth($("server-status"), () => Promise.all([loadModels(), loadTasks()]).catch(() => {}));

// A server that needs a key is met with a question, not an error: a first visit has no key yet.
// Only a key that was tried and refused is said to be wrong.
async function init() {
  try {
    await Promise.all([loadModels(), loadTasks()]);
    $("keybox").hidden = true;
  } catch (err) {
    if (err.status === 401) askForKey(Boolean(state.key));
    else showError(err.message);
  }
  renderSnippets();
}
function askForKey(refused) {
  $("keybox").hidden = false;
  if (refused) say(placeFor($("api-key-save")), "That key was not accepted. Check it and enter it again.");
  $("api-key").focus();
}
init();
