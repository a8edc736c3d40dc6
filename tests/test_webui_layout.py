"""The playground's plots and layout as a person sees them, in real headless Chromium: the
heatmap's colours and key, one numbering of documents across the tabs, a PCA map with readable
labels and a legend, and the Models, API and Similarity tabs laid out without clipped or
touching parts. Every test runs light and dark, at 1280 and 760 px wide.

As in tests/test_webui.py, a page fails its test on a console error, a page error or a request
to a host other than the server (``watched_page`` in tests/fixtures/browser.py).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.fixtures.browser import watched_page
from tests.test_webui import shot
from tests.test_webui_rerank import DOCS, QUERY

# Eleven documents in a few near-identical groups (identical texts land on the same point).
CLUSTERED = ["Boil the pasta.", "Boil the pasta.", "Boil the pasta!", "Boil the pasta?",
             "Stocks fell.", "Stocks fell!", "Stocks fell.", "A cat sat on the mat.",
             "A cat sat on the mat!", "A cat sat on a mat.", "Drain the pasta."]
LOOKS = [("light", 1280), ("light", 760), ("dark", 1280), ("dark", 760)]


@pytest.fixture(params=LOOKS, ids=[f"{s}-{w}" for s, w in LOOKS])
def page(request, browser: Browser, embedder_and_reranker) -> Iterator[Page]:
    scheme, width = request.param
    with watched_page(browser, embedder_and_reranker[0], color_scheme=scheme,
                      viewport={"width": width, "height": 900}) as page:
        page.look = f"{scheme}-{width}"  # type: ignore[attr-defined]
        yield page


def draw_plots(page: Page, query: str, docs: list[str]) -> None:
    page.click("button[data-tab=similarity]")
    page.fill("#sim-query", query)
    page.fill("#sim-docs", "\n".join(docs))
    page.click("#sim-map")
    expect(page.locator("#heatmap td")).to_have_count((len(docs) + 1) ** 2)
    expect(page.locator("#pca .point")).to_have_count(len(docs) + 1)


def rgb(css: str) -> tuple[float, ...]:
    return tuple(float(v) for v in re.findall(r"[\d.]+", css)[:3])


def opaque(css: str) -> bool:
    """Not "transparent" (rgba with alpha 0), which would otherwise parse as black."""
    values = re.findall(r"[\d.]+", css)
    return len(values) < 4 or float(values[3]) > 0


def luminance(css: str) -> float:
    def channel(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(v) for v in rgb(css))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def style(locator, prop: str) -> str:  # type: ignore[no-untyped-def]
    return locator.evaluate(f"e => getComputedStyle(e)[{prop!r}]")


def cells(page: Page) -> list[dict]:
    """Each heatmap cell: its row and column, value as shown, colours."""
    return page.evaluate("""() => [...document.querySelectorAll('#heatmap tbody tr')].flatMap(
        (tr, i) => [...tr.querySelectorAll('td')].map((td, j) => ({i, j, text: td.textContent,
          value: Number(td.dataset.value), bg: getComputedStyle(td).backgroundColor,
          fg: getComputedStyle(td).color})))""")


def boxes_apart(a: dict, b: dict, gap: float = 0.0) -> bool:
    return (a["x"] + a["width"] + gap <= b["x"] or b["x"] + b["width"] + gap <= a["x"] or
            a["y"] + a["height"] + gap <= b["y"] or b["y"] + b["height"] + gap <= a["y"])


# Each character of an element's text with its box on the screen.
CHARS = """e => { const out = [], walk = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
  for (let n; (n = walk.nextNode());) for (let i = 0; i < n.length; i++) {
    const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + 1);
    const b = r.getBoundingClientRect();
    out.push({c: n.data[i], left: b.left, right: b.right, top: b.top}); }
  return out; }"""


# -- heatmap -------------------------------------------------------------------------------------

def test_the_heatmap_has_a_colour_key_from_its_lowest_to_its_highest_value(page: Page) -> None:
    draw_plots(page, QUERY, DOCS)
    off = [c for c in cells(page) if c["i"] != c["j"]]
    low, high = min(off, key=lambda c: c["value"]), max(off, key=lambda c: c["value"])
    key = page.locator("#heat-key")
    expect(key).to_be_visible()
    expect(key.locator(".key-min")).to_have_text(low["text"])
    expect(key.locator(".key-max")).to_have_text(high["text"])
    swatches = key.locator(".key-bar span")
    assert style(swatches.first, "backgroundColor") == low["bg"]
    assert style(swatches.last, "backgroundColor") == high["bg"]
    expect(key).to_contain_text("a text with itself")
    shot(page, f"layout-heatmap-{page.look}")  # type: ignore[attr-defined]


def test_a_higher_similarity_is_always_a_lighter_cell(page: Page) -> None:
    draw_plots(page, QUERY, DOCS)
    off = sorted((c for c in cells(page) if c["i"] != c["j"]), key=lambda c: c["value"])
    shades = [luminance(c["bg"]) for c in off]
    assert all(a <= b + 1e-3 for a, b in itertools.pairwise(shades))
    assert shades[-1] - shades[0] > 0.5  # the scale spans dark to light


def test_the_diagonal_is_neutral_not_an_alarm_colour(page: Page) -> None:
    draw_plots(page, QUERY, DOCS)
    diagonal = [c for c in cells(page) if c["i"] == c["j"]]
    assert len({c["bg"] for c in diagonal}) == 1
    r, g, b = rgb(diagonal[0]["bg"])
    assert max(r, g, b) - min(r, g, b) < 30  # a grey, no hue


def test_every_heatmap_value_contrasts_with_its_cell(page: Page) -> None:
    draw_plots(page, QUERY, DOCS)
    for c in cells(page):
        assert contrast(c["fg"], c["bg"]) >= 4.5, c


# -- one numbering --------------------------------------------------------------------------------

def test_ranking_heatmap_and_map_number_each_document_alike(page: Page) -> None:
    page.click("button[data-tab=similarity]")
    page.fill("#sim-query", QUERY)
    page.fill("#sim-docs", "\n".join(DOCS))
    page.click("#sim-run")
    expect(page.locator("#rr-rows li")).to_have_count(len(DOCS))
    draw_plots(page, QUERY, DOCS)
    heat = dict(zip(page.locator("#heatmap tbody th .label").all_text_contents(),
                    page.locator("#heatmap tbody th .key").all_text_contents(), strict=True))
    assert heat[QUERY] == "Q"
    for order in ("#sim-rows li", "#rr-rows li"):
        items = page.locator(order)
        for i in range(items.count()):
            doc = items.nth(i).locator(".doc").text_content()
            number = items.nth(i).locator(".doc-num")
            expect(number).to_be_visible()
            assert number.text_content() == heat[doc] == str(DOCS.index(doc))
    shown = page.locator("#pca .point").evaluate_all(
        "gs => gs.map(g => [g.dataset.key, g.querySelector('.num')?.textContent])")
    assert all(label in (None, key) for key, label in shown)
    assert sorted(k for k, _ in shown) == sorted(["Q", *map(str, range(len(DOCS)))])


# -- PCA map --------------------------------------------------------------------------------------

def map_labels(page: Page) -> list[dict]:
    return page.locator("#pca text.label").evaluate_all(
        "ts => ts.map(t => { const b = t.getBoundingClientRect();"
        " return {x: b.x, y: b.y, width: b.width, height: b.height, text: t.textContent}; })")


def test_map_labels_never_overlap_with_twelve_clustered_texts(page: Page) -> None:
    draw_plots(page, QUERY, CLUSTERED)
    labels = map_labels(page)
    assert len(labels) >= 6  # most points keep a label
    for a, b in itertools.combinations(labels, 2):
        assert boxes_apart(a, b), (a["text"], b["text"])
    markers = page.locator("#pca .marker").evaluate_all(
        "ms => ms.map(m => m.getBoundingClientRect().toJSON())")
    for label, marker in itertools.product(labels, markers):
        assert boxes_apart(label, marker), label["text"]
    plot = page.locator("#pca").bounding_box()
    right, bottom = plot["x"] + plot["width"], plot["y"] + plot["height"]
    for label in labels:
        assert plot["x"] <= label["x"] and label["x"] + label["width"] <= right
        assert plot["y"] <= label["y"] and label["y"] + label["height"] <= bottom
    shot(page, f"layout-map-{page.look}")  # type: ignore[attr-defined]


def test_hovering_a_point_shows_its_whole_text(page: Page) -> None:
    draw_plots(page, QUERY, CLUSTERED)
    tip = page.locator("#pca-tip")
    expect(tip).to_be_hidden()
    points = page.locator("#pca .point")
    keys = points.evaluate_all("gs => gs.map(g => g.dataset.key)")
    full = {k: QUERY if k == "Q" else CLUSTERED[int(k)] for k in keys}
    # One whose label was shortened or left out, if any: its whole text is not on the map.
    shortened = [i for i, k in enumerate(keys) if points.nth(i).text_content() != f"{k} {full[k]}"]
    point = points.nth(shortened[0] if shortened else 0)
    point.locator(".marker").hover(force=True)
    key = point.get_attribute("data-key")
    expect(tip).to_be_visible()
    # It names the point hovered, and any other at the same place (identical texts coincide).
    lines = tip.inner_text().split("\n")
    assert f"{key} · {full[key]}" in lines
    for line in lines:
        number = line.split(" · ")[0]
        assert line == f"{number} · {full[number]}"
    shot(page, f"layout-map-hover-{page.look}")  # type: ignore[attr-defined]
    page.mouse.move(0, 0)
    expect(tip).to_be_hidden()


def test_the_query_is_marked_apart_and_the_legend_says_how(page: Page) -> None:
    draw_plots(page, QUERY, DOCS)
    query = page.locator("#pca .point.query .marker")
    document = page.locator("#pca .point:not(.query) .marker").first
    assert query.evaluate("m => m.tagName") != document.evaluate("m => m.tagName")  # a shape
    assert style(query, "fill") != style(document, "fill")  # and a colour of its own
    legend = page.locator("#pca-legend")
    expect(legend).to_be_visible()
    expect(legend.locator(".legend-item").nth(0)).to_have_text("Query (Q)")
    expect(legend.locator(".legend-item").nth(1)).to_contain_text("Document")
    assert style(legend.locator(".legend-item").nth(0).locator(".marker"), "fill") == \
        style(query, "fill")
    assert style(legend.locator(".legend-item").nth(1).locator(".marker"), "fill") == \
        style(document, "fill")


# -- layout ---------------------------------------------------------------------------------------

def test_the_tabs_stay_on_one_line(page: Page) -> None:
    tabs = [page.locator("#tabs button").nth(i).bounding_box() for i in range(4)]
    assert len({round(t["y"]) for t in tabs}) == 1
    status = page.locator("#theme").bounding_box()
    assert status["y"] < tabs[0]["y"] + tabs[0]["height"] and tabs[0]["y"] < status["y"] + \
        status["height"]  # the status and theme button share the tabs' row
    assert tabs[-1]["x"] + tabs[-1]["width"] <= status["x"]


def test_the_documents_box_shows_eight_documents_without_scrolling(page: Page) -> None:
    page.click("button[data-tab=similarity]")
    page.fill("#sim-docs", "\n".join(CLUSTERED[:8]))
    assert page.eval_on_selector("#sim-docs", "e => e.scrollHeight <= e.clientHeight")


def test_catalog_ids_break_only_after_a_hyphen(page: Page) -> None:
    page.click("button[data-tab=models]")
    titles = page.locator("#catalog .model h3")
    expect(titles.first).to_be_visible()
    for i in range(titles.count()):
        chars = [c for c in titles.nth(i).evaluate(CHARS) if c["right"] > c["left"]]
        for before, after in itertools.pairwise(chars):
            if after["top"] > before["top"] + 2:  # a new line starts at ``after``
                assert before["c"] == "-", titles.nth(i).text_content()
    shot(page, f"layout-models-{page.look}")  # type: ignore[attr-defined]


def test_installed_models_buttons_do_not_touch(page: Page) -> None:
    page.click("button[data-tab=models]")
    buttons = page.locator("#installed-rows tr[data-model=reranker] button")
    expect(buttons).to_have_count(3)  # Set as default, Load, Delete
    boxes = [buttons.nth(i).bounding_box() for i in range(3)]
    for a, b in itertools.combinations(boxes, 2):
        assert boxes_apart(a, b, gap=4)


def test_the_default_model_reads_default_and_loaded(page: Page) -> None:
    page.click("button[data-tab=models]")
    expect(page.locator("#installed-rows tr[data-model=embedder] td").nth(4)).to_have_text(
        "default · loaded")


def api_blocks(page: Page):  # type: ignore[no-untyped-def]
    page.click("button[data-tab=api]")
    blocks = page.locator("#snippets pre")
    expect(blocks).to_have_count(5)
    return blocks


def content_box(block) -> dict:  # type: ignore[no-untyped-def]
    return block.evaluate("""e => { const b = e.getBoundingClientRect(), s = getComputedStyle(e);
      return {left: b.left + parseFloat(s.borderLeftWidth) + parseFloat(s.paddingLeft),
              right: b.right - parseFloat(s.borderRightWidth) - parseFloat(s.paddingRight)}; }""")


def test_code_blocks_start_their_first_line_at_the_margin(page: Page) -> None:
    blocks = api_blocks(page)
    for i in range(blocks.count()):
        first = blocks.nth(i).evaluate(CHARS)[0]
        assert abs(first["left"] - content_box(blocks.nth(i))["left"]) <= 1
    shot(page, f"layout-api-{page.look}")  # type: ignore[attr-defined]


def test_long_code_lines_are_shown_whole(page: Page) -> None:
    blocks = api_blocks(page)
    for i in range(blocks.count()):
        block = blocks.nth(i)
        assert block.evaluate("e => e.scrollWidth <= e.clientWidth")
        right = content_box(block)["right"]
        assert all(c["right"] <= right + 1 for c in block.evaluate(CHARS) if c["c"].strip())


def outline_contrasts(page: Page, buttons: str, card: str) -> list[float]:
    """How each button's outline stands out from its card (0 for no outline)."""
    behind = style(page.locator(card), "backgroundColor")
    found = page.locator(buttons).all()
    assert found
    return [contrast(style(b, "borderTopColor"), behind)
            if float(style(b, "borderTopWidth").removesuffix("px")) >= 1
            and opaque(style(b, "borderTopColor")) else 0.0 for b in found]


def test_copy_buttons_look_like_buttons(page: Page) -> None:
    page.fill("#pg-texts", "one\ntwo")
    page.click("#pg-run")
    expect(page.locator("#pg-rows tr")).to_have_count(2)
    # WCAG's 3:1 for the parts of a control that say it is one.
    assert min(outline_contrasts(page, "#pg-result button.copy", "#pg-result")) >= 3
    api_blocks(page)
    assert min(outline_contrasts(page, "#snippets button.copy", "#api .card")) >= 3
