// Long texts in a results table are clipped to two lines, with a "Show all" under any that
// does not fit, so 400 results stay a table to scan rather than pages of prose.
import { el } from "./dom.js";

// A toggle is offered only where the text really overflows, which needs layout: measured when
// the cell is first laid out (and again if it is resized, e.g. a narrower window).
const measure = new ResizeObserver((entries) => {
  for (const { target } of entries) {
    const cell = target.parentElement;
    if (!cell || cell.classList.contains("open")) continue;
    cell.querySelector(".clip-toggle").hidden = target.scrollHeight <= target.clientHeight + 1;
  }
});

export function clippedCell(text, props = {}) {
  const body = el("span", { class: "clip-text", text });
  const toggle = el("button", { type: "button", class: "ghost clip-toggle", text: "Show all", hidden: "",
    "aria-expanded": "false" });
  const cell = el("td", { ...props, class: `${props.class || ""} clip`.trim() }, body, toggle);
  toggle.addEventListener("click", () => {
    const open = cell.classList.toggle("open");
    toggle.textContent = open ? "Show less" : "Show all";
    toggle.setAttribute("aria-expanded", String(open));
  });
  measure.observe(body);
  return cell;
}
