// Feedback for work that may take a while: a progress bar with the seconds elapsed, a Cancel
// that really stops it, and the outcome beside the button that started it.
//
// The API has no progress stream for one request, so the bar is indeterminate unless the work
// reports "n of N" itself (an embed job sent in chunks does). Cancel aborts the fetches: the
// server sees the client go and drops that request's queued work.
import { el } from "./dom.js";
import { clearNear, placeFor, say } from "./notify.js";

// Work done sooner than this shows no bar at all, so quick clicks do not flicker.
const SHOW_AFTER_MS = 200;
const TICK_MS = 100;

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

export class Cancelled extends Error {
  constructor() { super("Cancelled"); this.name = "AbortError"; }
}

// Runs ``fn({signal, progress})`` for ``button``: the button is disabled meanwhile, a progress
// line appears under it, and an error or a cancel is said there. ``cancellable`` adds the
// Cancel button (only for work whose fetches take the signal). Resolves to fn's value, or
// undefined when it failed or was cancelled.
export async function track(button, fn, { cancellable = false, label = "Working…" } = {}) {
  const place = placeFor(button);
  clearNear(place);
  const controller = new AbortController();
  const started = performance.now();
  let counted = null;
  const bar = el("progress", { class: "work-bar", "aria-label": label });  // no value: indeterminate
  const text = el("span", { class: "work-text" });
  const render = () => {
    const head = counted ? `${counted.done} of ${counted.total} ${counted.unit}` : label;
    text.textContent = `${head} · ${seconds(performance.now() - started)}`;
  };
  const cancel = el("button", { type: "button", class: "work-cancel", text: "Cancel",
    onclick: () => controller.abort(new Cancelled()) });
  // Not a live region: a count read out ten times a second would drown a screen reader; the
  // outcome (done, an error, a cancel) is what gets announced.
  const line = el("div", { class: "work" }, bar, text,
    ...(cancellable ? [cancel] : []));
  const progress = (done, total, unit = "texts") => {
    counted = { done, total, unit };
    bar.max = total;
    bar.value = done;
    render();
  };
  let ticker = null;
  const shower = setTimeout(() => {
    render();
    place.insertBefore(line, place.querySelector(":scope > .feedback"));
    ticker = setInterval(render, TICK_MS);
  }, SHOW_AFTER_MS);
  // A cancel releases the page at once, even if some fetch is slow to notice the abort.
  const aborted = new Promise((_, reject) => controller.signal.addEventListener("abort",
    () => reject(controller.signal.reason), { once: true }));
  button.disabled = true;
  try {
    return await Promise.race([fn({ signal: controller.signal, progress }), aborted]);
  } catch (err) {
    if (controller.signal.aborted) {
      say(place, `Cancelled after ${seconds(performance.now() - started)}.`, "info");
    } else {
      say(place, err.message || String(err), "error");
    }
    return undefined;
  } finally {
    clearTimeout(shower);
    clearInterval(ticker);
    line.remove();
    button.disabled = false;
  }
}

// Calls ``one(chunk, signal)`` for consecutive chunks of ``items`` (``size`` each), at most
// ``parallel`` at a time so the server can still batch them together, and reports each
// finished chunk; returns the results in the order of the chunks. One failure (or a cancel)
// aborts the others.
export async function inChunks(items, size, parallel, one, { signal, progress }) {
  const chunks = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  const inner = new AbortController();
  const stop = () => inner.abort(signal.reason);
  signal.addEventListener("abort", stop, { once: true });
  const results = new Array(chunks.length);
  let next = 0, done = 0;
  progress(0, items.length);
  const worker = async () => {
    while (next < chunks.length && !inner.signal.aborted) {
      const k = next++;
      results[k] = await one(chunks[k], inner.signal);
      done += chunks[k].length;
      progress(done, items.length);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(parallel, chunks.length) }, worker));
  } catch (err) {
    inner.abort(err);
    throw err;
  } finally {
    signal.removeEventListener("abort", stop);
  }
  return results;
}
