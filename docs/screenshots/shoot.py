"""Screenshots of every playground tab, light and dark, at 1280 and 760 px, with content, for
reviewing a change by eye: ``python docs/screenshots/shoot.py OUTDIR`` from the repository root
(docs/screenshots/before and after hold the ones of issue 20, quantized to 128 colours)."""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
home = tempfile.mkdtemp()
os.environ["LOCALEMBED_HOME"] = home

from playwright.sync_api import sync_playwright  # noqa: E402

from localembed.config.settings import ServerConfig  # noqa: E402
from localembed.models.starter import starter_path  # noqa: E402
from localembed.testing.synthetic import write_model  # noqa: E402
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, install_model, running  # noqa: E402

models = Path(home) / "models"
models.mkdir(parents=True)
install_model(Path(home), "reranker", write_model("bert", Path(home) / "r.gguf", head="rerank"))
DOCS = ["The moon pulls the ocean into tides", "A recipe for sourdough bread",
        "Tides rise twice a day", "Stock markets fell on Tuesday",
        "The ocean covers most of Earth", "Bread needs yeast and flour",
        "Gravity of the moon and the sun", "A poem about the sea"]


def tab(page, name: str, scheme: str, width: int, wait: float) -> None:  # type: ignore[no-untyped-def]
    page.click(f"[data-tab={name}]")
    time.sleep(wait)
    page.screenshot(path=str(out / f"{name}-{scheme}-{width}.png"), full_page=True)


with running(ServerConfig(), starter_path()) as (url, _registry), sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    for scheme in ("light", "dark"):
        for width in (1280, 760):
            context = browser.new_context(viewport={"width": width, "height": 900},
                                          color_scheme=scheme)
            page = context.new_page()
            page.goto(url + "/")
            time.sleep(1.0)
            page.fill("#pg-texts", "\n".join(DOCS[:4]))
            page.click("#pg-run")
            time.sleep(1.5)
            page.screenshot(path=str(out / f"playground-{scheme}-{width}.png"), full_page=True)
            page.click("[data-tab=similarity]")
            page.fill("#sim-query", "how do tides work")
            page.fill("#sim-docs", "\n".join(DOCS))
            page.click("#sim-run")
            time.sleep(2.0)
            page.click("#sim-map")
            time.sleep(2.0)
            page.screenshot(path=str(out / f"similarity-{scheme}-{width}.png"), full_page=True)
            tab(page, "models", scheme, width, 1.0)
            tab(page, "api", scheme, width, 0.5)
            context.close()
    browser.close()
print("wrote", ", ".join(sorted(x.name for x in out.iterdir())))
