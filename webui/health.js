// The status pill follows the server: /health is asked every couple of seconds (it needs no
// API key), and the pill turns red, with a page-wide banner, as soon as an answer fails.
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
      if (response.ok) health = await response.json();
    } catch { health = null; }
    if (health) {
      pill.textContent = `${health.model} · ${health.backend}`;
      pill.className = "pill ok";
      pill.title = "The server is answering";
      if (up === false) { clearBanner("health"); onBack(); }
      up = true;
    } else {
      pill.textContent = "offline";
      pill.className = "pill bad";
      pill.title = "The server is not answering";
      if (up !== false) banner("The server is not answering. This page reconnects by itself when it is back.", "health");
      up = false;
    }
    return health;
  };
  setInterval(check, EVERY_MS);
  return check();
}
