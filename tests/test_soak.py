"""A bounded soak on loopback: 32 clients mixing embeddings, similarity, scores, model
switches and pulls from the stand-in hub, with no errors and no growth in memory, threads or
open files once warmed up.

The suite runs it for 45 s; ``LOCALEMBED_SOAK_SECONDS=300`` gives the five-minute figures.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from localembed.models import catalog
from localembed.models.pull import FINAL
from tests.conftest import wait_until
from tests.fixtures.models import install_model
from tests.fixtures.server import call, health
from tests.hub import StandInHub

SECONDS = float(os.environ.get("LOCALEMBED_SOAK_SECONDS", "45"))
CLIENTS = 32
ENTRY = catalog.lookup("qwen3-embedding-0.6b-f16")  # unpinned: checked against the hub's sha


def usage(pid: int) -> tuple[int, int, int]:
    """(RSS in KB, threads, open files) of the server process."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads, len(os.listdir(f"/proc/{pid}/fd"))


def thread_names(pid: int) -> dict[str, int]:
    """How many of the server's threads carry each name (for a message on growth)."""
    names: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        names[name] = names.get(name, 0) + 1
    return names


def serve(app_home: Path, hub_url: str) -> tuple[subprocess.Popen, str]:
    """``localembed serve`` as users run it, pulling from the stand-in hub; returned once its
    model is loaded (``/health`` says "loading" until then)."""
    env = {**os.environ, "LOCALEMBED_HOME": str(app_home), "HF_ENDPOINT": hub_url,
           "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(app_home / "hf"),
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "localembed", "serve", "--port", "0",
                             "--model", "small", "--http-threads", "48"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ready, _, _ = select.select([proc.stdout], [], [], 60)  # never a silent hang
    assert ready, "serve printed no URL within 60 s"
    url = proc.stdout.readline().strip()  # type: ignore[union-attr]
    assert url.startswith("http://") and wait_until(lambda: health(url), timeout=60)
    return proc, url


@pytest.mark.slow
def test_32_clients_mixing_everything_get_no_errors_and_nothing_grows(
        synthetic, app_home: Path) -> None:
    install_model(app_home, "small", synthetic("bert"))
    install_model(app_home, "wide", synthetic("gemma-embedding"))
    with StandInHub() as hub:
        hub.add(ENTRY.repo, ENTRY.filename, synthetic("qwen3").read_bytes())
        proc, url = serve(app_home, hub.url)
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()  # type: ignore[union-attr]
        stop = time.monotonic() + SECONDS
        errors: list[str] = []
        counts: dict[str, int] = {}
        lock = threading.Lock()

        def record(kind: str, status: int, ok: tuple[int, ...] = (200,)) -> None:
            with lock:
                counts[kind] = counts.get(kind, 0) + 1
                if status not in ok:
                    errors.append(f"{kind}: {status}")

        def client(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < stop:
                pick = rng.random()
                if pick < 0.55:
                    texts = [f"text {rng.randint(0, 999)} about the sea"] * rng.randint(1, 8)
                    record("embed", call(url, "/v1/embeddings", {"input": texts})[0])
                elif pick < 0.75:
                    record("similarity", call(url, "/v1/similarity", {
                        "query": "the sea", "documents": ["water", "a cat", "waves"]})[0])
                elif pick < 0.85:
                    record("score", call(url, "/score", {"text_1": "a", "text_2": ["b"]})[0])
                elif pick < 0.9:
                    record("ollama", call(url, "/api/embed", {"input": "hello"})[0])
                elif pick < 0.95 and seed % 8 == 0:
                    model = rng.choice(["small", "wide"])
                    record("switch", call(url, "/v1/default", {"model": model,
                                                               "persist": False})[0])
                elif seed == 1:
                    status = call(url, "/v1/pull", {"model": ENTRY.id})[0]
                    record("pull", status, (200, 202))
                    time.sleep(0.5)
                    if call(url, f"/v1/pull/{ENTRY.id}")[1].get("status") == "done":
                        record("delete", call(url, f"/v1/models/{ENTRY.id}?force=true",
                                              method="DELETE")[0], (200, 404))
                else:
                    record("health", call(url, "/health")[0])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(SECONDS / 3 - 2)
        # A model switch in flight has two models' workers (or only one) for a moment: the
        # baseline is the most threads seen over two seconds, so that only growth that builds
        # up (a leak per switch or per request) fails the check.
        samples = []
        for _ in range(5):
            samples.append((usage(proc.pid), thread_names(proc.pid)))
            time.sleep(0.5)
        warmed = (samples[-1][0][0], max(s[0][1] for s in samples), samples[-1][0][2])
        warmed_names = max(samples, key=lambda s: s[0][1])[1]
        for t in threads:
            t.join(SECONDS + 120)
        # A download the last pull started may still run (its threads are work, not a leak).
        assert wait_until(lambda: all(p["status"] in FINAL for p in call(url, "/v1/pull")[1][
            "data"]), timeout=60)
        time.sleep(1.0)
        final, final_names = usage(proc.pid), thread_names(proc.pid)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err[-2000:]
    total = sum(counts.values())
    print(f"soak {SECONDS:.0f} s: {total} requests {counts}; after warm-up RSS {warmed[0]} KB, "
          f"threads {warmed[1]}, files {warmed[2]}; at the end RSS {final[0]} KB, threads "
          f"{final[1]}, files {final[2]}")
    assert errors == []
    assert total > 20 * CLIENTS and counts.get("switch") and counts.get("pull")
    assert final[0] - warmed[0] < 64 * 1024, "RSS grew by more than 64 MB after warm-up"
    assert final[1] <= warmed[1], f"threads grew: {warmed_names} -> {final_names}"
    assert final[2] <= warmed[2] + 8, "open files grew"
