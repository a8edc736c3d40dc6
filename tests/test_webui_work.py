"""Long work and errors in the playground, as a person sees them, in real headless Chromium:
progress with elapsed time and a Cancel that stops the server's work, errors beside the button
that caused them, Retry on a failed download, a status pill that follows the server, long texts
clipped, and a calm first visit to a server that needs a key. Each look (light and dark, at
1280 and 760 px wide) is a separate case: a layout bug shows in one of them, not in all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from localembed.config.settings import ServerConfig
from localembed.models import catalog
from localembed.models.starter import starter_path
from tests.conftest import wait_until
from tests.fixtures.browser import watched_page
from tests.fixtures.models import install_model
from tests.fixtures.server import call, running
from tests.hub import StandInHub

ENTRY = catalog.lookup("qwen3-embedding-0.6b-f16")
LOOKS = [("light", 1280), ("dark", 1280), ("light", 760), ("dark", 760)]
LONG = " ".join(f"word{i % 50}" for i in range(200))  # ~200 words, a few hundred tokens
# Eight lines or so in the results table: within the synthetic models' 512 tokens.
PARAGRAPH = ("the river carries silt to the sea and farmers settle on the delta " * 6).strip()


def look_id(look: tuple[str, int]) -> str:
    return f"{look[0]}-{look[1]}"


@pytest.fixture(params=LOOKS, ids=look_id)
def look(request: pytest.FixtureRequest) -> dict:
    scheme, width = request.param
    return {"color_scheme": scheme, "viewport": {"width": width, "height": 800}}


def drop_problems(page: Page, text: str) -> list[str]:
    """Takes the console errors Chromium itself logs for an expected failure out of the
    page's problems, and returns them."""
    problems: list[str] = page.problems  # type: ignore[attr-defined]
    dropped = [p for p in problems if text in p]
    problems[:] = [p for p in problems if text not in p]
    return dropped


def rgb(page: Page, selector: str, prop: str = "color") -> tuple[int, ...]:
    value = page.locator(selector).first.evaluate(f"e => getComputedStyle(e).{prop}")
    return tuple(int(x) for x in re.findall(r"\d+", value)[:3])


def is_red(colour: tuple[int, ...]) -> bool:
    r, g, b = colour
    return r > 180 and r - g > 80 and r - b > 80


@pytest.fixture()
def starter_server(app_home: Path) -> Iterator[tuple]:
    """The starter model (all-MiniLM-L6-v2): 400 long texts take it well over ten seconds."""
    with running(ServerConfig(), starter_path()) as served:
        yield served


@pytest.fixture()
def hub_server(synthetic, app_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A server whose model hub has nothing yet: a download fails until a test adds the file."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    with StandInHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with running(ServerConfig(), synthetic("bert")) as (url, registry):
            yield url, registry, hub


# -- progress and cancel --------------------------------------------------------------------------

def test_a_long_embed_shows_counted_progress_and_cancel_empties_the_server_queue(
        browser: Browser, starter_server, look: dict) -> None:
    url, registry = starter_server
    batcher = registry.default.batcher
    with watched_page(browser, url, **look) as page:
        page.fill("#pg-texts", "\n".join(f"{uuid.uuid4().hex} {LONG}" for _ in range(400)))
        page.click("#pg-run")
        work = page.locator("#playground .work")
        expect(work).to_be_visible()
        expect(work).to_contain_text(re.compile(r"\d+ of 400 texts · \d+\.\d s"))
        first = float(re.search(r"(\d+\.\d) s", work.inner_text()).group(1))
        page.wait_for_timeout(600)
        later = float(re.search(r"(\d+\.\d) s", work.inner_text()).group(1))
        assert later >= first + 0.3  # the elapsed time moves while the work runs
        expect(page.locator("#pg-run")).to_be_disabled()
        assert wait_until(lambda: batcher.queued_tokens() > 0, 5)
        work.get_by_role("button", name="Cancel").click()
        expect(page.locator("#playground [role=status]")).to_contain_text("Cancelled after")
        expect(work).to_be_hidden()
        expect(page.locator("#pg-run")).to_be_enabled()
        expect(page.locator("#pg-result")).to_be_hidden()
        assert wait_until(lambda: batcher.queued_tokens() == 0, 3), "cancelled work still queued"


def test_a_new_run_clears_the_last_results_while_it_works(browser: Browser, starter_server) -> None:
    url, registry = starter_server
    with watched_page(browser, url) as page:
        page.fill("#pg-texts", "one short text\nanother one")
        page.click("#pg-run")
        expect(page.locator("#pg-rows tr")).to_have_count(2)
        page.fill("#pg-texts", "\n".join(f"{uuid.uuid4().hex} {LONG}" for _ in range(400)))
        page.click("#pg-run")
        expect(page.locator("#playground .work")).to_be_visible()
        expect(page.locator("#pg-result")).to_be_hidden()  # not the old texts' vectors
        page.locator("#playground .work").get_by_role("button", name="Cancel").click()
        expect(page.locator("#playground [role=status]")).to_contain_text("Cancelled")
        assert wait_until(lambda: registry.default.batcher.queued_tokens() == 0, 3)


def test_a_run_sent_in_chunks_shows_the_same_vectors_as_one_request(
        browser: Browser, hub_server) -> None:
    url = hub_server[0]
    texts = [f"text number {i} about {'the sea' if i % 2 else 'a cat'}" for i in range(75)]
    with watched_page(browser, url) as page:
        page.fill("#pg-texts", "\n".join(texts))
        page.click("#pg-run")
        rows = page.locator("#pg-rows tr")
        expect(rows).to_have_count(75)
        api = call(url, "/v1/embeddings", {"input": texts})[1]
        shown = [[float(x) for x in re.findall(r"-?\d+\.\d+", preview)]
                 for preview in page.locator("#pg-rows .preview").all_text_contents()]
        # Equal to the 4 decimals shown, give or take a last digit rounded the other way:
        # texts batched with other texts differ in the 7th decimal.
        assert np.abs(np.array(shown) - [d["embedding"][:6] for d in api["data"]]).max() < 1.5e-4
        expect(page.locator("#pg-meta")).to_contain_text(f"{api['usage']['total_tokens']} tokens")


# -- errors beside their buttons ------------------------------------------------------------------

def test_an_error_appears_next_to_its_button_when_the_page_is_scrolled(
        browser: Browser, hub_server, synthetic, app_home: Path, look: dict) -> None:
    url = hub_server[0]
    for i in range(8):  # a long Installed table, so the Import form is below the fold
        install_model(app_home, f"model-{i}", synthetic("bert"))
    look = {**look, "viewport": {**look["viewport"], "height": 500}}
    with watched_page(browser, url, **look) as page:
        page.click("button[data-tab=models]")
        expect(page.locator("#catalog .model").first).to_be_visible()
        button = page.get_by_role("button", name="Import")
        page.fill("#import-path", "/nonexistent/model.gguf")
        # Scrolled down until the Import button is near the bottom of the window.
        page.evaluate("""() => { const b = document.querySelector('#import-form [type=submit]');
            window.scrollBy(0, b.getBoundingClientRect().bottom - innerHeight + 30); }""")
        assert page.evaluate("scrollY") > 100  # the top of the page is out of view
        button.click()
        alert = page.locator("#import-form [role=alert]")
        expect(alert).to_contain_text("does not exist")
        box, under = alert.bounding_box(), button.bounding_box()
        assert box and under
        assert box["y"] >= 0 and box["y"] + box["height"] <= 500  # in the window
        assert -5 <= box["y"] - (under["y"] + under["height"]) <= 60  # right under the button
        assert is_red(rgb(page, "#import-form [role=alert]"))
        expect(page.locator("#error")).to_be_hidden()  # no banner for one action's failure
        drop_problems(page, "status of 400")


# -- a failed download, then Retry ----------------------------------------------------------------

def test_retry_restarts_a_failed_download(browser: Browser, hub_server, synthetic,
                                          look: dict) -> None:
    url, registry, hub = hub_server
    with watched_page(browser, url, **look) as page:
        page.click("button[data-tab=models]")
        card = page.locator(f".model[data-model='{ENTRY.id}']")
        card.get_by_role("button", name="Download").click()
        alert = card.locator("[role=alert]")
        expect(alert).to_contain_text("Download failed", timeout=30_000)
        expect(alert).to_contain_text("is not on the hub")
        expect(card).not_to_contain_text("0.0%")  # no dead progress line
        hub.add(ENTRY.repo, ENTRY.filename, synthetic("bert", "f16", preset="full").read_bytes())
        card.get_by_role("button", name="Retry").click()
        expect(card.locator(".pull-info")).to_contain_text("done · 100.0%", timeout=120_000)
        expect(alert).to_be_hidden()
        expect(page.locator(f"#installed-rows tr[data-model='{ENTRY.id}']")).to_be_visible(
            timeout=10_000)


# -- the status pill ------------------------------------------------------------------------------

def test_the_status_pill_turns_red_within_seconds_of_the_server_stopping(
        browser: Browser, synthetic, look: dict) -> None:
    serving = running(ServerConfig(), synthetic("bert"))
    url, _registry = serving.__enter__()
    stopped = False
    try:
        with watched_page(browser, url, **look) as page:
            pill = page.locator("#server-status")
            expect(pill).to_have_class("pill ok")
            assert not is_red(rgb(page, "#server-status"))
            serving.__exit__(None, None, None)
            stopped = True
            expect(pill).to_have_text("offline", timeout=5_000)
            assert is_red(rgb(page, "#server-status"))
            banner = page.locator("#error")
            expect(banner).to_contain_text("not answering")
            card = page.locator("#playground .card").first.bounding_box()
            box = banner.bounding_box()
            assert card and box
            assert box["width"] <= card["width"] + 1 and box["x"] >= card["x"] - 1
            drop_problems(page, "ERR_CONNECTION_REFUSED")
    finally:
        if not stopped:
            serving.__exit__(None, None, None)


# -- long texts in the results ----------------------------------------------------------------

def test_long_texts_in_the_results_are_clipped_with_a_way_to_expand(
        browser: Browser, hub_server, look: dict) -> None:
    url = hub_server[0]
    with watched_page(browser, url, **look) as page:
        page.fill("#pg-texts", f"{PARAGRAPH}\na short text")
        page.click("#pg-run")
        rows = page.locator("#pg-rows tr")
        expect(rows).to_have_count(2)
        long_text, short_text = rows.nth(0).locator(".clip-text"), rows.nth(1).locator(".clip-text")
        line = short_text.bounding_box()["height"]
        assert long_text.bounding_box()["height"] <= 2 * line + 2  # two lines at most
        expect(rows.nth(1).get_by_role("button", name="Show all")).to_be_hidden()
        rows.nth(0).get_by_role("button", name="Show all").click()
        assert long_text.bounding_box()["height"] > 4 * line  # all of it
        expect(rows.nth(0).get_by_role("button", name="Show less")).to_be_visible()
        assert long_text.text_content() == PARAGRAPH


# -- a server that needs an API key ---------------------------------------------------------------

def test_a_first_visit_to_a_server_with_a_key_asks_for_it_without_an_error(
        browser: Browser, synthetic, look: dict) -> None:
    with (running(ServerConfig(api_key="s3cret"), synthetic("bert")) as (url, registry),
          watched_page(browser, url, **look) as page):
        keybox = page.locator("#keybox")
        expect(keybox).to_be_visible()
        expect(keybox).to_contain_text("asks for an API key")
        expect(page.locator("#api-key")).to_be_focused()
        expect(page.locator("#error")).to_be_hidden()
        expect(page.locator("[role=alert]:visible")).to_have_count(0)
        assert not is_red(rgb(page, "#keybox"))
        page.fill("#api-key", "s3cret")
        page.press("#api-key", "Enter")
        expect(keybox).to_be_hidden()
        expect(page.locator("#pg-model")).to_have_value(registry.default_id)
        drop_problems(page, "status of 401")


def test_a_refused_key_is_said_beside_the_key_field(browser: Browser, synthetic) -> None:
    with (running(ServerConfig(api_key="s3cret"), synthetic("bert")) as (url, _registry),
          watched_page(browser, url) as page):
        page.fill("#api-key", "wrong")
        page.click("#api-key-save")
        alert = page.locator("#keybox [role=alert]")
        expect(alert).to_contain_text("not accepted")
        expect(page.locator("#error")).to_be_hidden()
        drop_problems(page, "status of 401")


def test_texts_longer_than_the_model_takes_show_vectors_and_the_tokens_it_saw(
        browser: Browser, starter_server) -> None:
    """The starter takes 256 tokens; the playground's counts must not refuse what the
    embeddings endpoint cut and embedded."""
    url = starter_server[0]
    with watched_page(browser, url) as page:
        page.fill("#pg-texts", f"{LONG}\nshort")
        page.click("#pg-run")
        expect(page.locator("#pg-rows tr")).to_have_count(2)
        expect(page.locator("#pg-rows td.tokens").first).to_have_text("256")
        expect(page.locator("#playground [role=alert]")).to_have_count(0)
