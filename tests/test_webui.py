"""The browser playground in real headless Chromium (Debian's) against a real server.

Every test fails on a console error or on any request to a host other than the server.
Screenshots of each page land in artifacts/ for review.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from localembed.config.settings import ServerConfig
from localembed.models import catalog
from tests.fixtures.browser import watched_page
from tests.fixtures.server import call, running
from tests.hub import StandInHub

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ENTRY = catalog.lookup("qwen3-embedding-0.6b-f16")
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> & <b>bold</b>'


@pytest.fixture()
def server(synthetic, app_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    with StandInHub() as hub:
        hub.add(ENTRY.repo, ENTRY.filename,
                synthetic("bert", "f16", preset="full").read_bytes())
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with running(ServerConfig(), synthetic("gemma-embedding")) as (url, registry):
            yield url, registry, hub


@pytest.fixture()
def page(browser: Browser, server) -> Iterator[Page]:
    with watched_page(browser, server[0]) as page:
        yield page


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"webui-{name}.png"), full_page=True)


def test_playground_shows_vectors_and_token_counts(page: Page, server) -> None:
    url = server[0]
    texts = ["the cat sat on the mat", XSS, "a third text about the sea"]
    page.fill("#pg-texts", "\n".join(texts))
    page.select_option("#pg-task", "query")
    page.click("#pg-run")
    rows = page.locator("#pg-rows tr")
    expect(rows).to_have_count(3)
    api = call(url, "/v1/embeddings", {"input": texts, "task": "query"})[1]
    tokens = call(url, "/tokenize", {"content": texts, "task": "query"})[1]["tokens"]
    for i in range(3):
        row = rows.nth(i)
        assert row.locator("td.text .clip-text").text_content() == texts[i]  # HTML as text
        assert row.locator("td.tokens").text_content() == str(len(tokens[i]))
        preview = row.locator(".preview").text_content()
        assert preview.startswith(f"[{api['data'][i]['embedding'][0]:.4f}")
    assert page.evaluate("window.__xss") is None
    assert page.locator("#pg-rows b").count() == 0 and page.locator("#pg-rows img").count() == 0
    expect(page.locator("#pg-meta")).to_contain_text("tokens")
    shot(page, "playground")


def task_choices(page: Page) -> list[list[str]]:
    return page.locator("#pg-task option").evaluate_all(
        "options => options.map((o) => [o.value, o.textContent])")


def test_the_task_choices_are_the_servers_tasks(page: Page, server) -> None:
    tasks = call(server[0], "/v1/info")[1]["tasks"]
    assert {"id": "qa", "label": "question answering"} in tasks
    expect(page.locator("#pg-task option")).to_have_count(1 + len(tasks))
    assert task_choices(page) == [["", "none (raw text)"]] + [[t["id"], t["label"]]
                                                             for t in tasks]
    expect(page.locator("#pg-task")).to_have_value("")  # raw text until one is chosen


def test_the_page_has_no_task_list_of_its_own() -> None:
    from localembed.engine.families import TASK_LABELS
    from localembed.server.webui import webui_dir

    source = "".join(p.read_text() for p in sorted(webui_dir().glob("*.*")) if p.suffix in
                     (".js", ".html"))
    # the tasks that no other word of the page spells
    for task in ("classification", "clustering", "fact_check", "summarization"):
        assert task not in source and TASK_LABELS[task] not in source, task
    assert TASK_LABELS["qa"] not in source


def test_similarity_ranking_and_heatmap_match_the_api(page: Page, server) -> None:
    url = server[0]
    page.click("button[data-tab=similarity]")
    query = "the sea and the river"
    docs = ["water in the sea", "a cat on a mat", "the river runs to the sea", XSS]
    page.fill("#sim-query", query)
    page.fill("#sim-docs", "\n".join(docs))
    page.click("#sim-run")
    items = page.locator("#sim-rows li")
    expect(items).to_have_count(4)
    api = call(url, "/v1/similarity", {"query": query, "documents": docs})[1]["data"]
    for i, expected in enumerate(api):
        assert items.nth(i).get_attribute("data-index") == str(expected["index"])
        assert items.nth(i).locator(".score").text_content() == f"{expected['score']:.3f}"
        assert items.nth(i).locator(".doc").text_content() == docs[expected["index"]]
    page.click("#sim-map")
    cells = page.locator("#heatmap td")
    expect(cells).to_have_count(25)
    vectors = np.array([d["embedding"] for d in
                        call(url, "/v1/embeddings", {"input": [query, *docs]})[1]["data"]])
    matrix = vectors @ vectors.T
    for i in range(5):
        for j in range(5):
            value = float(cells.nth(i * 5 + j).get_attribute("data-value"))
            assert abs(value - matrix[i, j]) < 1e-3
    assert "↔" in cells.nth(1).get_attribute("title")  # value on hover
    expect(page.locator("#pca .point")).to_have_count(5)  # the query and four documents
    assert page.evaluate("window.__xss") is None
    shot(page, "similarity")


def test_download_with_progress_then_switch_and_embed(page: Page, server) -> None:
    url, registry, hub = server
    hub.slow = 0.01  # ~3.5 s in all: the page polls every 400 ms and must see the bar move
    page.click("button[data-tab=models]")
    card = page.locator(f".model[data-model='{ENTRY.id}']")
    card.get_by_role("button", name="Download").click()
    expect(card.locator("progress")).to_be_visible()
    expect(card.locator(".pull-info")).to_contain_text("downloading", timeout=15_000)
    shot(page, "models-downloading")
    expect(card.locator(".pull-info")).to_contain_text("done · 100.0%", timeout=120_000)
    row = page.locator(f"#installed-rows tr[data-model='{ENTRY.id}']")
    expect(row).to_be_visible(timeout=10_000)
    row.get_by_role("button", name="Set as default").click()
    expect(row.locator("td").nth(4)).to_have_text("default · loaded", timeout=60_000)
    assert registry.default_id == ENTRY.id
    shot(page, "models")
    page.click("button[data-tab=playground]")
    page.reload()
    expect(page.locator("#pg-model")).to_have_value(ENTRY.id)
    page.fill("#pg-texts", "embedded by the downloaded model")
    page.click("#pg-run")
    expect(page.locator("#pg-meta")).to_contain_text(ENTRY.id)
    assert page.locator("#pg-rows td").nth(3).text_content() == "384"


def test_server_errors_show_as_messages(page: Page, server) -> None:
    page.click("button[data-tab=models]")
    page.fill("#import-path", "/nonexistent/model.gguf")
    page.click("#import-form button")
    message = page.locator("#import-form [role=alert]")  # beside the button, not in a banner
    expect(message).to_contain_text("does not exist")
    expect(page.locator("#error")).to_be_hidden()
    message.get_by_role("button", name="Dismiss").click()
    expect(message).to_be_hidden()
    page.click("button[data-tab=playground]")
    page.fill("#pg-texts", "")
    page.click("#pg-run")
    expect(page.locator("#playground .controls [role=alert]")).to_contain_text(
        "Type at least one text.")
    expect(page.locator("#playground")).to_be_visible()
    shot(page, "error")
    # Chromium logs the (intended) 400 response itself as a console error; nothing else.
    expected = "Failed to load resource: the server responded with a status of 400"
    assert len([p for p in page.problems if expected in p]) == 1  # type: ignore[attr-defined]
    page.problems[:] = [p for p in page.problems if expected not in p]  # type: ignore[attr-defined]


def test_api_page_snippets_and_key_prompt(browser, synthetic) -> None:
    with running(ServerConfig(api_key="s3cret"), synthetic("bert")) as (url, registry):
        context = browser.new_context()
        page = context.new_page()
        page.goto(url + "/")
        expect(page.locator("#keybox")).to_be_visible()
        assert task_choices(page) == [["", "none (raw text)"]]  # the list needs the key
        page.fill("#api-key", "s3cret")
        page.click("#api-key-save")
        expect(page.locator("#keybox")).to_be_hidden()
        expect(page.locator("#pg-model")).to_have_value(registry.default_id)
        tasks = call(url, "/v1/info", headers={"Authorization": "Bearer s3cret"})[1]["tasks"]
        expect(page.locator("#pg-task option")).to_have_count(1 + len(tasks))
        page.click("button[data-tab=api]")
        expect(page.locator("#api-key-state")).to_contain_text("required")
        snippets = page.locator("#snippets pre").all_text_contents()
        assert any("check_embedding_ctx_length=False" in s for s in snippets)
        assert any(f"{url}/v1" in s for s in snippets)
        assert any("/api/embed" in s for s in snippets)
        shot(page, "api")
        context.close()


def test_ui_assets_carry_a_strict_content_security_policy(server) -> None:
    url = server[0]
    import urllib.request

    with urllib.request.urlopen(url + "/") as resp:
        csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp
    assert call(url, "/ui/../pyproject.toml")[0] == 404
