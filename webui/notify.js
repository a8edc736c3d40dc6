// Where messages go. A failed action is told beside the button that started it (a person
// scrolled down to that button is looking there, not at the top of the page); the top banner
// is kept for problems of the whole page, such as the server not answering.
import { el } from "./dom.js";

// The block that holds a button's controls: its feedback goes at the end of it, on a line of
// its own, so it sits right under the button without moving the button itself.
export function placeFor(button) {
  return button.closest(".controls, .actions, .pull, form, .row, .banner") || button.parentElement;
}

function slot(place) {
  let box = [...place.children].find((c) => c.classList.contains("feedback"));
  if (!box) { box = el("div", { class: "feedback" }); place.append(box); }
  return box;
}

// kind "error" is announced at once (role=alert); "info" (a cancel, a note) politely. A message
// of work the person may have scrolled away from (a download) is said without scrolling.
export function say(place, message, kind = "error", { scroll = true } = {}) {
  const box = slot(place);
  const text = el("span", { text: message });
  const close = el("button", { type: "button", class: "ghost feedback-close", "aria-label": "Dismiss", text: "✕",
    onclick: () => box.replaceChildren() });
  const note = el("div", { class: `note note-${kind}`, role: kind === "error" ? "alert" : "status" },
    text, close);
  box.replaceChildren(note);
  // The button is in view (it was just used); this brings the line under it in view too.
  if (scroll) note.scrollIntoView({ block: "nearest" });
  return note;
}

export function clearNear(place) {
  const box = [...place.children].find((c) => c.classList.contains("feedback"));
  if (box) box.replaceChildren();
}

// The page-wide banner (#error): one message, replaced by the next.
export function banner(message, owner = "page") {
  document.getElementById("error-text").textContent = message;
  const box = document.getElementById("error");
  box.dataset.owner = owner;
  box.hidden = false;
}

// Hides the banner only if it still shows the message of ``owner`` (the health check must not
// hide a message someone else put up since).
export function clearBanner(owner) {
  const box = document.getElementById("error");
  if (owner === undefined || box.dataset.owner === owner) box.hidden = true;
}
