// The Search tab: collections of files indexed on the server's machine, searched over the HTTP
// API (/v1/collections). A collection picker, a search with rerank and hybrid options, an index
// run with live progress and a Cancel, and a 2-D map of the chunks nearest a query.
//
// Every text that came from a file, a user or the server is set with textContent (el's "text"),
// never innerHTML. The page's shared helpers (the API client, the progress of long work, the
// follower of background work, the confirm dialog, the PCA map) come from app.js.
import { clippedCell } from "./clip.js";
import { el } from "./dom.js";
import { clearNear, placeFor, say } from "./notify.js";

const $ = (id) => document.getElementById(id);
const ROUTE = "/v1/collections";
const one = (name) => `${ROUTE}/${encodeURIComponent(name)}`;
// The map draws the chunks nearest the query, by their stored vectors: at most this many, so
// that its legend stays readable.
const MAP_CHUNKS = 100;
const ENDED = ["done", "error", "cancelled"];
// The server's rule for a collection's name (the model-id rule), checked here so a name such as
// "../x" is told as a name, not as an unknown URL.
const NAME_RULE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

// A collection name by the server's rule (the model-id rule): from a folder's last part.
export function nameFor(path) {
  const last = path.replace(/[\\/]+$/, "").split(/[\\/]/).pop() || "";
  const name = last.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9._:-]+/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "").replace(/\.\.+/g, ".").slice(0, 128);
  return name || "collection";
}

// A chunk's text for scanning: no leading or trailing blank lines, no blank lines between (the
// line range says where it is), and the indentation all its lines share taken off (a chunk
// that starts inside an indented block starts at the margin).
export function snippet(text) {
  const lines = text.split("\n").filter((l) => l.trim());
  const cut = Math.min(...lines.map((l) => l.match(/^[ \t]*/)[0].length));
  return lines.map((l, i) => (i ? l.slice(cut) : l.trim()).trimEnd()).join("\n");
}
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const lineRange = (r) => (r.start_line == null ? ""
  : r.end_line == null || r.end_line === r.start_line ? `line ${r.start_line}` : `lines ${r.start_line}–${r.end_line}`);

export function setupSearch({ api, run, follow, clock, fmtBytes, modelsOf, confirmThen,
  drawMap }) {
  const state = { collections: [], selected: localStorage.getItem("localembed.collection") || "",
    following: null, last: null };

  // -- the collection picker ----------------------------------------------------------------------
  async function refresh() {
    const data = await api("GET", ROUTE);
    state.collections = data.data;
    if (!state.collections.some((c) => c.name === state.selected)) {
      state.selected = state.collections.length ? state.collections[0].name : "";
    }
    renderCollections();
    // An index run started before this page was opened (or in another tab) is followed here.
    const running = state.collections.find((c) => c.indexing && !ENDED.includes(c.indexing.status));
    if (running && state.following !== running.name) watchIndex(running.name, running.indexing);
    nameChanged();
  }

  function select(name) {
    state.selected = name;
    localStorage.setItem("localembed.collection", name);
    for (const row of $("sr-collection-rows").children) {
      row.classList.toggle("selected", row.dataset.collection === name);
    }
    $("sr-target").textContent = name ? `in ${name}` : "";
  }

  function renderCollections() {
    const rows = state.collections.map((c) => {
      const radio = el("input", { type: "radio", name: "sr-collection", value: c.name,
        id: `sr-pick-${c.name}`, onchange: () => select(c.name) });
      radio.checked = c.name === state.selected;
      const indexing = c.indexing && !ENDED.includes(c.indexing.status);
      const remove = el("button", { class: "danger", type: "button", text: "Delete",
        "aria-label": `Delete collection ${c.name}`,
        onclick: (e) => confirmThen(e.target, `Delete the collection ${c.name}? The indexed files themselves are not touched.`,
          async () => {
            await api("DELETE", one(c.name));
            if (c.name === state.selected) $("sr-result").hidden = $("sr-map-card").hidden = true;
            await refresh();
          }) });
      return el("tr", { "data-collection": c.name },
        el("td", { class: "pick" }, el("label", { for: radio.id }, radio,
          el("span", { class: "name", text: c.name })),
        ...(indexing ? [el("span", { class: "kind", text: "indexing…" })] : [])),
        el("td", { class: "model-name", text: c.model }),
        el("td", { class: "num", text: c.documents }), el("td", { class: "num", text: c.chunks }),
        el("td", { class: "num", text: fmtBytes(c.bytes) }),
        el("td", { class: "actions" }, remove));
    });
    $("sr-collection-rows").replaceChildren(...rows);
    $("sr-collections").hidden = rows.length === 0;
    $("sr-empty").hidden = rows.length > 0;
    select(state.selected);
  }

  // -- search ----------------------------------------------------------------------------------------
  // The rerank box is offered once a reranker is installed (the Models tab's "reranker" kind).
  function modelsChanged() {
    const rerankers = modelsOf("reranker");
    const box = $("sr-rerank");
    box.disabled = rerankers.length === 0;
    if (box.disabled) box.checked = false;
    $("sr-rerank-label").title = box.disabled ? "Install a reranker (Models tab) to rerank the results"
      : `Rerank the best candidates with ${rerankers.map((m) => m.id).join(", ")}`;
    $("sr-rerank-why").hidden = !box.disabled;
  }

  function request() {
    const query = $("sr-query").value.trim();
    if (!state.selected) throw new Error("Pick a collection first, or index a folder below.");
    if (!query) throw new Error("Type a query.");
    const topK = Number($("sr-topk").value);
    if (!Number.isInteger(topK) || topK < 1 || topK > 1000) throw new Error("Top k is a whole number from 1 to 1000.");
    const body = { query, top_k: topK, rerank: $("sr-rerank").checked, hybrid: $("sr-hybrid").checked };
    const path = $("sr-path").value.trim();
    if (path) body.path = path;
    return body;
  }

  $("sr-form").addEventListener("submit", (e) => {
    e.preventDefault();
    run($("sr-run"), async ({ signal }) => {
      const body = request();
      $("sr-result").hidden = true;  // the last results are not this query's
      const started = performance.now();
      const data = await api("POST", `${one(state.selected)}/search`, body, signal);
      renderResults(data, body, performance.now() - started);
    }, { cancellable: true });
  });

  // What a result was ranked by: the reranker's score, else the fused (hybrid) score, else the
  // cosine. The bar is the score itself (cosine and rerank scores lie in 0..1) or, for a fused
  // score (a sum of 1 / (60 + rank)), its share of the best one.
  function renderResults(data, body, ms) {
    const reranked = Boolean(data.reranker);
    const fused = body.hybrid && !reranked;
    const best = Math.max(...data.results.map((r) => r.score), 1e-9);
    const width = (s) => Math.max(0, Math.min(1, fused ? s / best : s)) * 100;
    const by = reranked ? "rerank score" : fused ? "fused rank score (vector + keyword)" : "cosine similarity";
    $("sr-by-head").hidden = !reranked;
    $("sr-rows").replaceChildren(...data.results.map((r, i) => {
      const parts = [r.vector_score == null ? null : `cosine ${r.vector_score.toFixed(3)}`,
        r.keyword_score == null ? null : `keyword ${r.keyword_score.toFixed(2)}`].filter(Boolean);
      const score = el("td", { class: "hit-score", title: by },
        el("span", { class: "score", text: r.score.toFixed(3) }),
        el("div", { class: "bar", style: `width:${width(r.score)}%` }),
        ...(reranked || fused ? parts.map((t) => el("span", { class: "muted parts", text: t })) : []));
      const where = el("td", { class: "hit-where" }, el("span", { class: "doc", text: r.document }),
        el("span", { class: "muted lines", text: lineRange(r) }));
      const cells = [el("td", { class: "rank", text: `#${i + 1}` }), score, where];
      if (reranked) {
        // Moved up or down by the rerank: an arrow (not only a colour) says which.
        const moved = r.vector_rank == null ? "" : r.vector_rank > i + 1 ? "up" : r.vector_rank < i + 1 ? "down" : "same";
        const arrow = { up: "↑", down: "↓", same: "=" }[moved] || "";
        cells.push(el("td", { class: `was ${moved}`, title: "Its place in the vector (cosine) order, before the rerank" },
          el("span", { class: "arrow", "aria-hidden": "true", text: arrow }),
          el("span", { class: "was-rank", text: r.vector_rank == null ? "keywords only" : `was #${r.vector_rank}` })));
      }
      cells.push(clippedCell(snippet(r.text), { class: "text snippet" }));
      return el("tr", { "data-document": r.document, "data-id": r.id }, ...cells);
    }));
    const tokens = data.usage ? `${data.usage.total_tokens} tokens` : "";
    $("sr-meta").textContent = [data.collection, data.model, reranked ? `reranked by ${data.reranker}` : "",
      body.hybrid ? "hybrid" : "", plural(data.results.length, "result"), tokens, `${ms.toFixed(0)} ms`]
      .filter(Boolean).join(" · ");
    $("sr-none").hidden = data.results.length > 0;
    $("sr-table").hidden = data.results.length === 0;
    $("sr-result").hidden = false;
  }

  // -- the map -----------------------------------------------------------------------------------
  // The chunks nearest the query, with the query among them, drawn as the Similarity tab's map.
  // The vectors are those the search used: the query's and the chunks' stored ones.
  $("sr-map").addEventListener("click", (e) => run(e.target, async ({ signal }) => {
    const body = request();
    const info = state.collections.find((c) => c.name === state.selected);
    const k = Math.min(MAP_CHUNKS, Math.max(1, info ? info.chunks : MAP_CHUNKS));
    $("sr-map-card").hidden = true;
    const found = await api("POST", `${one(state.selected)}/search`,
      { ...body, top_k: k, rerank: false, hybrid: false, include_vectors: true }, signal);
    if (found.results.length < 2) throw new Error("The map needs at least two chunks in the collection.");
    const texts = [body.query, ...found.results.map((r) => `${r.document} ${lineRange(r)}: ${r.text}`)];
    const keys = ["Q", ...found.results.map((_, i) => String(i + 1))];
    $("sr-map-note").textContent = `The query (Q) and the ${plural(found.results.length, "chunk")} nearest it, ` +
      `numbered by their vector rank (a rerank's "was #n"), by the vectors ${found.model} gave them ` +
      "when they were indexed.";
    drawMap({ svg: $("sr-pca"), legend: $("sr-pca-legend"), tip: $("sr-pca-tip") }, texts, keys,
      [found.query_embedding, ...found.embeddings], 0);
  }, { cancellable: true }));

  // -- index a folder ----------------------------------------------------------------------------------
  // For an existing collection the model is its own (another would be refused), so the choice
  // is offered for a new one only.
  function nameChanged() {
    const name = $("ix-name").value.trim() || nameFor($("ix-path").value.trim());
    const existing = state.collections.find((c) => c.name === name);
    const select = $("ix-model");
    select.disabled = Boolean(existing);
    if (existing && [...select.options].some((o) => o.value === existing.model)) select.value = existing.model;
    $("ix-model-note").textContent = existing ? `${name} exists: its documents are updated with its model.` : "";
  }
  $("ix-name").addEventListener("input", nameChanged);
  $("ix-path").addEventListener("input", () => {
    $("ix-name").placeholder = $("ix-path").value.trim() ? nameFor($("ix-path").value.trim()) : "notes";
    nameChanged();
  });

  $("ix-form").addEventListener("submit", (e) => {
    e.preventDefault();
    run($("ix-start"), async () => {
      if (state.following) throw new Error(`${state.following} is being indexed: wait for it or cancel it first.`);
      const path = $("ix-path").value.trim();
      if (!path) throw new Error("Type the path of a folder or file on the server's machine.");
      const name = $("ix-name").value.trim() || nameFor(path);
      if (!NAME_RULE.test(name) || name.includes("..")) {
        throw new Error(`"${name}" cannot name a collection: use letters, digits, '.', '_', '-' and ':', starting with a letter or digit (no paths, no "..").`);
      }
      $("ix-name").value = name;
      const body = { paths: [path] };
      const glob = $("ix-glob").value.trim();
      if (glob) body.glob = glob;
      if (!state.collections.some((c) => c.name === name) && $("ix-model").value) body.model = $("ix-model").value;
      $("ix-report").hidden = true;
      return { name, job: await api("POST", `${one(name)}/index`, body) };
    }).then((started) => { if (started) watchIndex(started.name, started.job); });
  });

  // The run's progress beside the form, polled like a download's (app.js's follow), until it
  // ends: then its report, or why it stopped.
  function watchIndex(name, first) {
    state.following = name;
    $("ix-start").disabled = true;
    const slot = $("ix-progress");
    slot.replaceChildren();
    slot.view = null;
    slot.hidden = false;
    clearNear(placeFor($("ix-start")));
    renderProgress(slot, first);
    if (ENDED.includes(first.status) && (first.status !== "done" || first.report)) { ended(name, first); return; }
    follow(`index:${name}`, () => api("GET", `${one(name)}/index`), {
      render: (p) => renderProgress(slot, p),
      // "done" can be told a moment before the report is attached: one more poll brings it.
      final: (p) => ENDED.includes(p.status) && (p.status !== "done" || Boolean(p.report)),
      done: (p) => ended(name, p),
      failed: (err) => { stopped(); say(slot, err.message, "error", { scroll: false }); } });
  }

  function stopped() {
    state.following = null;
    $("ix-start").disabled = false;
  }

  // Drawn once per run and updated in place, so a Cancel being clicked (or focused, for the
  // keyboard) stays the same button while the bar moves on.
  function progressView(slot, name) {
    const bar = el("progress", { class: "ix-bar", "aria-label": `Indexing ${name}` });
    const cancel = el("button", { type: "button", id: "ix-cancel", text: "Cancel",
      onclick: (e) => run(e.target, () => api("DELETE", `${one(name)}/index`)) });
    const info = el("span", { class: "muted ix-info" });
    const current = el("span", { class: "muted ix-current" });
    slot.replaceChildren(el("div", { class: "ix-line" }, bar, cancel), info, current);
    return { name, bar, cancel, info, current };
  }

  function renderProgress(slot, p) {
    if (!slot.view || slot.view.name !== p.collection) slot.view = progressView(slot, p.collection);
    const { bar, cancel, info, current } = slot.view;
    if (p.status === "embedding" && p.documents_total > 0) { bar.max = 1; bar.value = p.fraction; }
    else if (p.status === "done") { bar.max = 1; bar.value = 1; }
    else bar.removeAttribute("value");  // reading: not yet known how much there is
    const counts = p.status === "reading" ? [`${plural(p.documents_read, "file")} read`]
      : [`${p.documents_done} of ${plural(p.documents_total, "document")}`, `${plural(p.chunks_done, "chunk")} stored`];
    const eta = clock(p.eta);
    info.textContent = [`${p.collection}: ${p.status}`, ...counts,
      `${Math.round(p.tokens_per_second)} tokens/s`, eta ? `ETA ${eta}` : ""].filter(Boolean).join(" · ");
    current.textContent = p.current || "";
    current.hidden = !p.current || ENDED.includes(p.status);
    if (ENDED.includes(p.status)) {
      const focused = document.activeElement === cancel;
      cancel.remove();
      if (focused) queueMicrotask(() => $("ix-start").focus());  // once Start is enabled again
    }
  }

  async function ended(name, p) {
    stopped();
    const slot = $("ix-progress");
    if (p.status === "done" && p.report) renderReport(p.report);
    else if (p.status === "cancelled") {
      say(slot, `Indexing ${name} was cancelled. The documents written so far are kept: Start again goes on from there.`, "info", { scroll: false });
    } else if (p.status === "error") {
      say(slot, `Indexing ${name} failed: ${p.error || "unknown error"}`, "error", { scroll: false });
    }
    if (p.status === "done") { state.selected = name; localStorage.setItem("localembed.collection", name); }
    try {
      await refresh();
    } catch (err) { say(slot, err.message, "error", { scroll: false }); }
  }

  function renderReport(r) {
    const counts = [["added", r.added], ["changed", r.changed], ["unchanged", r.unchanged], ["removed", r.removed]];
    const box = $("ix-report");
    const items = counts.map(([k, v]) => el("li", { "data-count": k }, el("strong", { text: v }), ` ${k}`));
    const found = r.added + r.changed + r.unchanged;
    const summary = found ? el("p", { class: "ix-summary" },
      el("strong", { text: `${r.collection} is ready.` }),
      ` ${plural(r.chunks, "chunk")} embedded (${r.tokens} tokens) with ${r.model} in ${r.seconds.toFixed(1)} s.`)
      : el("p", { class: "ix-summary nothing" }, el("strong", { text: "Nothing was indexed:" }),
        " no file there could be read (see below).");
    const parts = [summary, el("ul", { class: "ix-counts" }, ...items)];
    if (r.skipped.length) {
      parts.push(el("details", { class: "ix-skipped", open: "" },
        el("summary", { text: `${plural(r.skipped.length, "file")} skipped` }),
        el("ul", {}, ...r.skipped.map((s) => el("li", {}, el("code", { text: s.path }), el("span", { class: "muted", text: ` — ${s.reason}` }))))));
    }
    box.replaceChildren(...parts);
    box.hidden = false;
  }

  $("ix-host").textContent = location.host;
  return { refresh, modelsChanged };
}
