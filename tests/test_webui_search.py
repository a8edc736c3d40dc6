"""The playground's Search tab in real headless Chromium against a real server with the bundled
starter model: a folder indexed from the tab with live progress and a report, searched (vector,
hybrid, reranked by a synthetic reranker with each result's place before the rerank), an index
run cancelled, a collection deleted, errors said beside the button that caused them, and the tab
laid out in light and dark at 1280 and 760 px (screenshots in artifacts/).

As in tests/test_webui.py, a page fails its test on a console error, a page error or a request
to a host other than the server (``watched_page`` in tests/fixtures/browser.py).
"""

from __future__ import annotations

import csv
import gzip
import heapq
import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from localembed.config.settings import ServerConfig
from localembed.models.starter import ensure_starter
from tests.fixtures.browser import watched_page
from tests.fixtures.models import install_model
from tests.fixtures.server import call, running
from tests.test_webui import ARTIFACTS

# Standard-library docstrings: real prose on distinct subjects, a file each.
MODULES = {"csv": csv, "json": json, "heapq": heapq, "sqlite3": sqlite3, "shutil": shutil,
           "gzip": gzip}
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> <b>bold</b>'
LOOKS = [("light", 1280), ("light", 760), ("dark", 1280), ("dark", 760)]
INDEX_TIMEOUT = 120_000  # ms: the starter model on a slow CPU


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """Six docstrings, a page whose text is HTML (to be shown as text), and a binary file a
    folder's reading skips with a reason."""
    root = tmp_path / "stdlib"
    root.mkdir()
    for name, module in MODULES.items():
        (root / f"{name}.txt").write_text(module.__doc__ or name)
    (root / "markup.txt").write_text(f"Markup that must stay text: {XSS}\n")
    (root / "blob.txt").write_bytes(b"\x00\x01binary\x00" * 64)
    return root


@pytest.fixture()
def server(app_home: Path) -> Iterator[str]:
    """A live server on the bundled starter model."""
    with running(ServerConfig(), ensure_starter()) as (url, _registry):
        yield url


@pytest.fixture()
def server_with_reranker(app_home: Path, synthetic) -> Iterator[str]:
    """The same, with a synthetic reranker installed beside the starter model."""
    install_model(app_home, "tiny-reranker", synthetic("bert", head="rerank"))
    with running(ServerConfig(), ensure_starter()) as (url, _registry):
        yield url


@pytest.fixture()
def page(browser: Browser, server: str) -> Iterator[Page]:
    with watched_page(browser, server) as page:
        yield page


def snap(target, name: str, **options: object) -> None:  # type: ignore[no-untyped-def]
    """A screenshot of a page or an element for review: artifacts/webui-search-NAME.png
    (docs/screenshots/after/search-*.png are these, quantized to 128 colours)."""
    ARTIFACTS.mkdir(exist_ok=True)
    target.screenshot(path=str(ARTIFACTS / f"webui-search-{name}.png"), **options)


def drop_problems(page: Page, text: str) -> list[str]:
    """Takes the console errors Chromium logs for an expected failed request out of the page's
    problems, and returns them."""
    problems: list[str] = page.problems  # type: ignore[attr-defined]
    dropped = [p for p in problems if text in p]
    problems[:] = [p for p in problems if text not in p]
    return dropped


def open_search(page: Page) -> None:
    page.click("button[data-tab=search]")
    expect(page.locator("#search")).to_be_visible()


def index_from_tab(page: Page, path: Path, name: str) -> None:
    """Types a folder and a name into "Index a folder", clicks Start and waits for the end."""
    open_search(page)
    page.locator("#ix-path").click()
    page.keyboard.type(str(path))
    page.locator("#ix-name").fill("")
    page.locator("#ix-name").click()
    page.keyboard.type(name)
    page.click("#ix-start")
    expect(page.locator("#ix-progress .ix-info")).to_contain_text(f"{name}: done",
                                                                 timeout=INDEX_TIMEOUT)
    expect(page.locator("#ix-report")).to_be_visible()


def search_from_tab(page: Page, query: str) -> None:
    page.locator("#sr-query").fill("")
    page.locator("#sr-query").click()
    page.keyboard.type(query)
    page.keyboard.press("Enter")  # the form submits, as a click on Search
    expect(page.locator("#sr-result")).to_be_visible()


def rows(page: Page) -> list[dict]:
    return page.locator("#sr-rows tr").evaluate_all("""trs => trs.map(tr => ({
        document: tr.dataset.document, rank: tr.querySelector('.rank').textContent,
        score: tr.querySelector('.score').textContent,
        bar: parseFloat(tr.querySelector('.bar').style.width),
        barPx: tr.querySelector('.bar').getBoundingClientRect().width,
        was: tr.querySelector('.was')?.textContent ?? null,
        where: tr.querySelector('.hit-where').textContent,
        text: tr.querySelector('.clip-text').textContent }))""")


def test_a_folder_indexed_from_the_tab_reports_and_then_is_searched(
        page: Page, server: str, folder: Path) -> None:
    index_from_tab(page, folder, "stdlib")
    info = page.locator("#ix-progress .ix-info")
    expect(info).to_contain_text("7 of 7 documents")
    expect(info).to_contain_text("tokens/s")
    assert page.locator("#ix-progress progress").evaluate("p => p.value === p.max")
    expect(page.locator("#ix-cancel")).to_have_count(0)  # nothing left to cancel
    report = page.locator("#ix-report")
    expect(report.locator("[data-count=added] strong")).to_have_text("7")
    for count in ("changed", "unchanged", "removed"):
        expect(report.locator(f"[data-count={count}] strong")).to_have_text("0")
    skipped = report.locator(".ix-skipped")
    expect(skipped).to_contain_text("1 file skipped")
    expect(skipped.locator("li")).to_have_count(1)
    expect(skipped.locator("li")).to_contain_text("blob.txt")
    reason = call(server, "/v1/collections/stdlib/index")[1]["report"]["skipped"][0]["reason"]
    expect(skipped.locator("li")).to_contain_text(reason)

    # The picker lists it, chosen, with its model and sizes as the API says.
    listed = call(server, "/v1/collections")[1]["data"][0]
    row = page.locator("#sr-collection-rows tr[data-collection=stdlib]")
    expect(row).to_have_class(re.compile("selected"))
    expect(row.locator("input[type=radio]")).to_be_checked()
    cells = row.locator("td")
    expect(cells.nth(1)).to_have_text(listed["model"])
    expect(cells.nth(2)).to_have_text("7")
    expect(cells.nth(3)).to_have_text(str(listed["chunks"]))
    expect(page.locator("#sr-target")).to_have_text("in stdlib")

    search_from_tab(page, "reading and writing comma separated values from spreadsheets")
    found = rows(page)
    assert found[0]["document"] == "csv.txt"
    assert found[0]["rank"] == "#1"
    assert found[0]["where"].startswith("csv.txt") and "line" in found[0]["where"]
    api = call(server, "/v1/collections/stdlib/search",
               {"query": "reading and writing comma separated values from spreadsheets"})[1]
    assert [r["document"] for r in found] == [r["document"] for r in api["results"]]
    assert found[0]["score"] == f"{api['results'][0]['score']:.3f}"
    assert found[0]["bar"] == pytest.approx(api["results"][0]["score"] * 100, abs=0.01)
    assert found[0]["barPx"] > 20
    assert [r["bar"] for r in found] == sorted((r["bar"] for r in found), reverse=True)
    expect(page.locator("#sr-by-head")).to_be_hidden()  # no rerank, no "was #n"
    assert all(r["was"] is None for r in found)
    expect(page.locator("#sr-meta")).to_contain_text(api["model"])

    # A file's text is shown as text, never run as HTML.
    search_from_tab(page, "markup that must stay text")
    assert rows(page)[0]["document"] == "markup.txt"
    assert XSS in rows(page)[0]["text"]
    assert page.evaluate("window.__xss") is None
    assert page.locator("#sr-rows b, #sr-rows img, #sr-rows script").count() == 0


def test_indexing_the_same_folder_again_embeds_nothing_new(page: Page, folder: Path) -> None:
    index_from_tab(page, folder, "stdlib")
    (folder / "gzip.txt").unlink()
    (folder / "heapq.txt").write_text("A heap is a tree kept in a list; heappush adds to it.")
    page.click("#ix-start")  # the same path and name are still in the form
    expect(page.locator("#ix-progress .ix-info")).to_contain_text("stdlib: done",
                                                                  timeout=INDEX_TIMEOUT)
    report = page.locator("#ix-report")
    expect(report.locator("[data-count=changed] strong")).to_have_text("1")
    expect(report.locator("[data-count=unchanged] strong")).to_have_text("5")
    expect(report.locator("[data-count=removed] strong")).to_have_text("1")
    expect(page.locator("#sr-collection-rows tr[data-collection=stdlib] td").nth(2)).to_have_text(
        "6")


def test_hybrid_search_shows_the_scores_it_fused(page: Page, folder: Path) -> None:
    index_from_tab(page, folder, "stdlib")
    page.locator("#sr-hybrid").check()
    search_from_tab(page, "heapq priority queue")
    found = rows(page)
    assert found[0]["document"] == "heapq.txt"
    assert found[0]["bar"] == pytest.approx(100)  # a fused score is shown against the best
    parts = page.locator("#sr-rows tr").first.locator(".parts")
    expect(parts).to_have_count(2)
    expect(parts.nth(0)).to_contain_text("cosine")
    expect(parts.nth(1)).to_contain_text("keyword")
    expect(page.locator("#sr-meta")).to_contain_text("hybrid")


def test_a_path_filter_keeps_only_matching_documents(page: Page, folder: Path) -> None:
    index_from_tab(page, folder, "stdlib")
    page.locator("#sr-path").fill("s*.txt")
    search_from_tab(page, "comma separated values")
    assert {r["document"] for r in rows(page)} == {"sqlite3.txt", "shutil.txt"}


def test_rerank_is_offered_with_a_reranker_and_shows_the_vector_order(
        browser: Browser, server_with_reranker: str, folder: Path) -> None:
    url = server_with_reranker
    with watched_page(browser, url, viewport={"width": 1280, "height": 900}) as page:
        open_search(page)
        expect(page.locator("#sr-rerank")).to_be_enabled()
        expect(page.locator("#sr-rerank-why")).to_be_hidden()
        index_from_tab(page, folder, "stdlib")
        query = "how to compress files"
        search_from_tab(page, query)
        plain = rows(page)
        page.locator("#sr-rerank").check()
        page.click("#sr-run")
        expect(page.locator("#sr-by-head")).to_be_visible()
        expect(page.locator("#sr-meta")).to_contain_text("reranked by tiny-reranker")
        reranked = rows(page)
        api = call(url, "/v1/collections/stdlib/search", {"query": query, "rerank": True})[1]
        assert api["reranker"] == "tiny-reranker"
        assert [r["document"] for r in reranked] == [r["document"] for r in api["results"]]
        for shown, result in zip(reranked, api["results"], strict=True):
            assert shown["was"].endswith(f"was #{result['vector_rank']}")
            assert shown["score"] == f"{result['rerank_score']:.3f}"
        # "was #n" is the place in the plain (vector) order of the same query.
        by_vector = [r["document"] for r in plain]
        for shown in reranked:
            n = int(shown["was"].split("was #")[1])
            if n <= len(by_vector):
                assert by_vector[n - 1] == shown["document"]
        assert any(not r["was"].endswith(f"was {r['rank']}") for r in reranked)  # some moved
        arrows = page.locator("#sr-rows td.was .arrow").all_text_contents()
        assert set(arrows) <= {"↑", "↓", "="} and {"↑", "↓"} & set(arrows)
        snap(page, "reranked-light-1280", full_page=True)
        page.emulate_media(color_scheme="dark")
        page.set_viewport_size({"width": 760, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        assert page.locator("#sr-result").evaluate("c => c.scrollWidth <= c.clientWidth + 1")
        snap(page.locator("#sr-result"), "reranked-dark-760")


def test_without_a_reranker_the_rerank_box_says_why_it_is_off(page: Page) -> None:
    open_search(page)
    expect(page.locator("#sr-rerank")).to_be_disabled()
    expect(page.locator("#sr-rerank-why")).to_be_visible()
    assert "reranker" in (page.locator("#sr-rerank-label").get_attribute("title") or "")


@pytest.fixture()
def big_folder(tmp_path: Path) -> Path:
    """Enough text that indexing it takes a while on the starter model."""
    root = tmp_path / "big"
    root.mkdir()
    words = " ".join(f"word{i % 97} river{i % 13} delta{i % 7}" for i in range(150))
    for i in range(120):
        (root / f"note{i:03}.txt").write_text(f"Note {i}. {words}\n" * 3)
    return root


def test_an_index_run_is_cancelled_and_keeps_what_it_wrote(
        browser: Browser, server: str, big_folder: Path) -> None:
    with watched_page(browser, server, viewport={"width": 1280, "height": 900}) as page:
        cancel_a_run(page, server, big_folder)


def cancel_a_run(page: Page, server: str, big_folder: Path) -> None:
    open_search(page)
    page.locator("#ix-path").fill(str(big_folder))
    page.locator("#ix-name").fill("big")
    page.click("#ix-start")
    expect(page.locator("#ix-start")).to_be_disabled()  # one run at a time from here
    info = page.locator("#ix-progress .ix-info")
    expect(info).to_contain_text("big: embedding", timeout=INDEX_TIMEOUT)
    expect(info).to_contain_text(re.compile(r"[1-9]\d* of 120 documents"), timeout=INDEX_TIMEOUT)
    expect(info).to_contain_text("ETA")
    expect(page.locator("#ix-progress progress")).to_have_attribute("max", re.compile(r"\d+"))
    snap(page.locator("#ix-card"), "indexing-light-1280")
    page.locator("#ix-cancel").focus()
    page.keyboard.press("Enter")  # Cancel works from the keyboard too
    note = page.locator("#ix-progress .note-info")
    expect(note).to_contain_text("cancelled", timeout=30_000)
    expect(note).to_contain_text("kept")
    expect(page.locator("#ix-cancel")).to_have_count(0)
    expect(page.locator("#ix-start")).to_be_enabled()
    state = call(server, "/v1/collections/big/index")[1]
    assert state["status"] == "cancelled" and state["documents_done"] < 120
    kept = call(server, "/v1/collections/big")[1]["documents"]
    assert 0 < kept < 120
    expect(page.locator("#sr-collection-rows tr[data-collection=big] td").nth(2)).to_have_text(
        str(kept))


def test_a_collection_is_deleted_after_a_confirm(page: Page, server: str, folder: Path) -> None:
    index_from_tab(page, folder, "stdlib")
    row = page.locator("#sr-collection-rows tr[data-collection=stdlib]")
    row.locator("button.danger").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text("stdlib")
    page.click("#confirm-no")  # changed its mind: nothing is deleted
    expect(dialog).to_be_hidden()
    expect(row).to_have_count(1)
    row.locator("button.danger").click()
    page.click("#confirm-yes")
    expect(row).to_have_count(0)
    expect(page.locator("#sr-empty")).to_be_visible()
    assert call(server, "/v1/collections")[1]["data"] == []
    assert folder.joinpath("csv.txt").exists()  # the files themselves are not touched
    # Searching it now is said beside the button: there is nothing to pick.
    page.locator("#sr-query").fill("anything")
    page.click("#sr-run")
    expect(page.locator("#sr-form .note-error")).to_contain_text("Pick a collection")


def test_errors_are_said_beside_the_button_that_caused_them(
        page: Page, server: str, folder: Path, tmp_path: Path) -> None:
    open_search(page)
    page.click("#ix-start")
    expect(page.locator("#ix-form .note-error")).to_contain_text("Type the path")
    index_from_tab(page, folder, "stdlib")
    page.locator("#sr-query").fill("")
    page.click("#sr-run")
    expect(page.locator("#sr-form .note-error")).to_contain_text("Type a query")
    page.locator("#sr-topk").fill("0")
    page.locator("#sr-query").fill("csv")
    page.click("#sr-run")
    expect(page.locator("#sr-form .note-error")).to_contain_text("Top k")
    page.locator("#sr-topk").fill("5")
    # The collection goes away behind the page's back: the server's 404 is said, as text.
    call(server, "/v1/collections/stdlib", method="DELETE")
    page.click("#sr-run")
    error = page.locator("#sr-form .note-error")
    expect(error).to_contain_text("stdlib")
    assert "Traceback" not in error.text_content()
    assert drop_problems(page, "404")
    # A name that is a path is told as a name, beside Start (the server would not see a name
    # in that URL at all).
    page.locator("#ix-name").fill("../etc")
    page.click("#ix-start")
    expect(page.locator("#ix-form .note-error")).to_contain_text("cannot name a collection")
    # A folder that is not there: the server refuses it at once, said beside Start, and no
    # collection is made.
    page.locator("#ix-path").fill(str(tmp_path / "missing"))
    page.locator("#ix-name").fill("missing")
    page.click("#ix-start")
    expect(page.locator("#ix-form .note-error")).to_contain_text("does not exist")
    assert drop_problems(page, "400")  # the refusal the page was told, and said
    expect(page.locator("#error")).to_be_hidden()  # nothing in the page-wide banner
    assert "missing" not in [c["name"] for c in call(server, "/v1/collections")[1]["data"]]


def test_the_tab_works_from_the_keyboard(page: Page, folder: Path) -> None:
    index_from_tab(page, folder, "stdlib")
    page.locator("#tabs button[data-tab=playground]").click()
    page.locator("#tabs button[data-tab=playground]").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.locator("#tabs button[data-tab=search]")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#search")).to_be_visible()
    page.locator("#sr-collection-rows input[type=radio]").first.focus()
    page.keyboard.press("Space")
    expect(page.locator("#sr-collection-rows input[type=radio]").first).to_be_checked()
    page.keyboard.press("Tab")  # the row's Delete
    expect(page.locator("#sr-collection-rows button.danger").first).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#sr-query")).to_be_focused()
    page.keyboard.type("priority queue heap")
    page.keyboard.press("Enter")
    expect(page.locator("#sr-rows tr").first).to_have_attribute("data-document", "heapq.txt")


def test_the_map_shows_the_query_among_the_nearest_chunks_by_their_stored_vectors(
        page: Page, folder: Path) -> None:
    index_from_tab(page, folder, "stdlib")
    page.locator("#sr-query").fill("compressed files")
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    page.click("#sr-map")
    card = page.locator("#sr-map-card")
    expect(card).to_be_visible(timeout=60_000)
    chunks = int(page.locator("#sr-collection-rows tr[data-collection=stdlib] td").nth(3)
                 .text_content())
    expect(card.locator(".point")).to_have_count(chunks + 1)
    expect(card.locator(".point.query")).to_have_count(1)
    expect(card.locator(".legend-item").first).to_have_text("Query (Q)")
    expect(page.locator("#sr-map-note")).to_contain_text("when they were indexed")
    assert [u.rsplit("/v1/", 1)[1] for u in posted] == ["collections/stdlib/search"]  # nothing
    # embedded again: the search answered with the vectors


# -- layout ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("scheme", "width"), LOOKS, ids=[f"{s}-{w}" for s, w in LOOKS])
def test_the_tab_is_laid_out_in_every_look(browser: Browser, server: str, folder: Path,
                                           scheme: str, width: int) -> None:
    with watched_page(browser, server, color_scheme=scheme,
                      viewport={"width": width, "height": 900}) as page:
        index_from_tab(page, folder, "stdlib")
        page.locator("#sr-hybrid").check()
        search_from_tab(page, "reading and writing comma separated values")
        page.click("#sr-map")
        expect(page.locator("#sr-map-card")).to_be_visible(timeout=60_000)
        # The five tabs stay on one line, beside the status.
        tabs = [page.locator("#tabs button").nth(i).bounding_box() for i in range(5)]
        assert len({round(t["y"]) for t in tabs}) == 1
        assert tabs[-1]["x"] + tabs[-1]["width"] <= page.locator("#theme").bounding_box()["x"]
        # Nothing wider than the window, and no card scrolls sideways.
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        for card in page.locator("#search .card:visible").all():
            assert card.evaluate("c => c.scrollWidth <= c.clientWidth + 1"), card.inner_text()[:80]
        # The controls do not overlap one another.
        controls = page.locator("#search .controls > *:visible").evaluate_all(
            "es => es.map(e => e.getBoundingClientRect().toJSON())")
        for i, a in enumerate(controls):
            for b in controls[i + 1:]:
                assert (a["right"] <= b["left"] + 0.5 or b["right"] <= a["left"] + 0.5 or
                        a["bottom"] <= b["top"] + 0.5 or b["bottom"] <= a["top"] + 0.5), (a, b)
        # The snippet column keeps room to read in.
        text = page.locator("#sr-rows tr").first.locator("td.snippet").bounding_box()
        assert text["width"] >= (380 if width >= 1280 else 250)
        snap(page, f"{scheme}-{width}", full_page=True)
