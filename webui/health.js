// The status pill follows the server: /health is asked every couple of seconds (it needs no
// API key), and the pill turns red, with a page-wide banner, as soon as an answer fails. While
// the server's model loads, /health answers 503 "loading" and the pill says so (requests wait
// for the model meanwhile).
import { banner, clearBanner } from "./notify.js";

const EVERY_MS = 2000;
const TIMEOUT_MS = 1500;

export function watchHealth(pill, onBack = () => {}) {
  let up = null;
  const check = async () => {
    let health = null;
    try {
      const response = await fetch("/health", { cache: "no-store",
        signal: AbortSignal.timeout(TIMEOUT_MS) });
      if (response.ok || response.status === 503) health = await response.json();
    } catch { health = null; }
    if (health && health.status === "loading") {
      pill.textContent = `loading ${health.model}…`;
      pill.className = "pill";
      pill.title = "The server is loading its model; requests wait for it";
      if (up === false) clearBanner("health");
      up = "loading";
    } else if (health && health.status === "ok") {
      pill.textContent = `${health.model} · ${health.backend}`;
      pill.className = "pill ok";
      pill.title = "The server is answering";
      if (up === false || up === "loading") { clearBanner("health"); onBack(); }
      up = true;
    } else {
      const failed = health && health.status === "failed";
      pill.textContent = failed ? "model failed" : "offline";
      pill.className = "pill bad";
      pill.title = failed ? "The server's model could not be loaded" : "The server is not answering";
      if (up !== false) banner(failed ? `${health.model} could not be loaded: the server has stopped.`
        : "The server is not answering. This page reconnects by itself when it is back.", "health");
      up = false;
    }
    return health;
  };
  setInterval(check, EVERY_MS);
  return check();
}
