"""The playground with rerankers, in real headless Chromium against a real server: the Models tab
says which models are rerankers, the Similarity tab ranks with a reranker (next to the cosine
order when an embedding model is installed too), and the heatmap fits its card.

As in tests/test_webui.py, every page fails its test on a console error, a page error or a
request to a host other than the server (``watched_page`` in tests/fixtures/browser.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.fixtures.browser import watched_page
from tests.fixtures.server import call
from tests.test_webui import shot

QUERY = "how do I cook pasta?"
DOCS = ["Boil the spaghetti in salted water for ten minutes.",
        "The stock market fell sharply after the announcement.",
        "Italian noodles are cooked in plenty of boiling water.",
        "A cat sat on the mat.",
        "Drain the pasta and toss it with the sauce."]
CATALOG_RERANKER = "bge-reranker-v2-m3-q8_0"
CATALOG_EMBEDDER = "qwen3-embedding-0.6b-f16"


@pytest.fixture()
def page(browser: Browser, embedder_and_reranker) -> Iterator[Page]:
    with watched_page(browser, embedder_and_reranker[0]) as page:
        yield page


def fill_similarity(page: Page, query: str, docs: list[str]) -> None:
    page.click("button[data-tab=similarity]")
    page.fill("#sim-query", query)
    page.fill("#sim-docs", "\n".join(docs))


def ranked(items) -> list[tuple[int, str, str]]:  # type: ignore[no-untyped-def]
    """(index, score as shown, document) of each list item, top first."""
    return [(int(items.nth(i).get_attribute("data-index")),
             items.nth(i).locator(".score").text_content(),
             items.nth(i).locator(".doc").text_content()) for i in range(items.count())]


def scrolls_sideways(page: Page, selector: str) -> bool:
    return page.eval_on_selector(selector, "e => e.scrollWidth > e.clientWidth")


def test_models_tab_labels_each_model_reranker_or_embedding(page: Page) -> None:
    page.click("button[data-tab=models]")
    embedder = page.locator("#installed-rows tr[data-model=embedder]")
    reranker = page.locator("#installed-rows tr[data-model=reranker]")
    expect(embedder.locator(".kind")).to_have_text("embedding")
    expect(reranker.locator(".kind")).to_have_text("reranker")
    expect(reranker.locator("td").nth(2)).to_have_text("—")  # no vector dimensions
    expect(page.locator(f".model[data-model='{CATALOG_RERANKER}'] .kind")).to_have_text("reranker")
    expect(page.locator(f".model[data-model='{CATALOG_RERANKER}'] .badge")).not_to_contain_text(
        "dims")
    expect(page.locator(f".model[data-model='{CATALOG_EMBEDDER}'] .kind")).to_have_text(
        "embedding")
    shot(page, "models-kinds")


def test_only_embedding_models_are_offered_for_vectors(page: Page) -> None:
    options = page.locator("#pg-model option").all_text_contents()
    assert "embedder (default)" in options and not any("reranker" in o for o in options)
    page.click("button[data-tab=similarity]")
    assert page.locator("#sim-reranker option").all_text_contents() == ["reranker", "none"]
    expect(page.locator("#sim-reranker")).to_have_value("reranker")


def test_similarity_shows_cosine_and_reranker_orders_side_by_side(
        page: Page, embedder_and_reranker) -> None:
    url = embedder_and_reranker[0]
    fill_similarity(page, QUERY, DOCS)
    page.click("#sim-run")
    cosine, rerank = page.locator("#sim-rows li"), page.locator("#rr-rows li")
    expect(cosine).to_have_count(len(DOCS))
    expect(rerank).to_have_count(len(DOCS))
    api_rerank = call(url, "/v1/rerank", {"model": "reranker", "query": QUERY,
                                          "documents": DOCS, "return_documents": False})[1]
    api_cosine = call(url, "/v1/similarity", {"model": "embedder", "query": QUERY,
                                              "documents": DOCS})[1]
    assert ranked(rerank) == [(r["index"], f"{r['relevance_score']:.3f}", DOCS[r["index"]])
                              for r in api_rerank["results"]]
    assert ranked(cosine) == [(d["index"], f"{d['score']:.3f}", DOCS[d["index"]])
                              for d in api_cosine["data"]]
    left = page.locator("#sim-embed-order").bounding_box()
    right = page.locator("#sim-rerank-order").bounding_box()
    assert left["x"] + left["width"] <= right["x"] and left["y"] == right["y"]  # side by side
    expect(page.locator("#rr-meta")).to_contain_text("reranker")
    shot(page, "similarity-rerank")


def test_each_order_names_a_documents_place_in_the_other(page: Page) -> None:
    fill_similarity(page, QUERY, DOCS)
    page.click("#sim-run")
    expect(page.locator("#rr-rows li")).to_have_count(len(DOCS))
    cosine_place = {index: place for place, (index, _, _) in
                    enumerate(ranked(page.locator("#sim-rows li")))}
    rerank = page.locator("#rr-rows li")
    for i in range(len(DOCS)):
        index = int(rerank.nth(i).get_attribute("data-index"))
        expect(rerank.nth(i).locator(".elsewhere")).to_have_text(
            f"#{cosine_place[index] + 1} by embedding")


def test_choosing_no_reranker_ranks_by_cosine_alone(page: Page) -> None:
    fill_similarity(page, QUERY, DOCS)
    page.select_option("#sim-reranker", "")
    page.click("#sim-run")
    expect(page.locator("#sim-rows li")).to_have_count(len(DOCS))
    expect(page.locator("#sim-rerank-order")).to_be_hidden()
    assert page.locator("#sim-rows .elsewhere").count() == 0


@pytest.mark.parametrize("texts", [5, 12])
def test_heatmap_fits_its_card_readably_up_to_twelve_texts(page: Page, texts: int) -> None:
    fill_similarity(page, QUERY, [f"document number {i} about pasta and water"
                                  for i in range(1, texts)])
    page.click("#sim-map")
    expect(page.locator("#heatmap td")).to_have_count(texts * texts)
    card = page.locator("#heat-card").bounding_box()
    table = page.locator("#heatmap table").bounding_box()
    assert card["x"] <= table["x"] and table["x"] + table["width"] <= card["x"] + card["width"]
    assert not scrolls_sideways(page, "#heatmap")
    # Every value is shown whole (nothing clipped), each row label shows a readable stretch.
    clipped = page.evaluate("[...document.querySelectorAll('#heatmap td')]"
                            ".filter(td => td.scrollWidth > td.clientWidth).length")
    assert clipped == 0
    assert page.locator("#heatmap tbody th").first.bounding_box()["width"] >= 150
    assert page.locator("#heatmap td").first.bounding_box()["width"] >= 40
    shot(page, f"heatmap-{texts}")


def test_heatmap_of_many_texts_scrolls_inside_its_card(page: Page) -> None:
    fill_similarity(page, QUERY, [f"document number {i}" for i in range(1, 20)])
    page.click("#sim-map")
    expect(page.locator("#heatmap td")).to_have_count(400)
    assert scrolls_sideways(page, "#heatmap")
    width = page.evaluate("document.documentElement.clientWidth")
    card = page.locator("#heat-card").bounding_box()
    assert card["x"] >= 0 and card["x"] + card["width"] <= width
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # the page does not
    shot(page, "heatmap-20")


def test_choosing_no_embedding_model_ranks_by_the_reranker_alone(page: Page) -> None:
    fill_similarity(page, QUERY, DOCS)
    page.select_option("#sim-model", "")
    page.click("#sim-run")
    expect(page.locator("#rr-rows li")).to_have_count(len(DOCS))
    expect(page.locator("#sim-embed-order")).to_be_hidden()
    assert page.locator("#rr-rows .elsewhere").count() == 0


def test_the_heatmap_without_an_embedding_model_asks_for_one(page: Page) -> None:
    fill_similarity(page, QUERY, DOCS)
    page.select_option("#sim-model", "")
    page.click("#sim-map")
    expect(page.locator("#similarity .controls [role=alert]")).to_contain_text(
        "choose an embedding model")  # beside the button
    expect(page.locator("#heat-card")).to_be_hidden()
