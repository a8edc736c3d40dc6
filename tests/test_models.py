"""Model manager: CLI verbs, HTTP management API, pulls with live progress, hot switching."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from localembed.cli import cli
from localembed.config.settings import ServerConfig
from localembed.models import catalog
from tests.fixtures.models import install_model
from tests.fixtures.server import call, running
from tests.hub import StandInHub

ENTRY = catalog.lookup("qwen3-embedding-0.6b-f16")


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_ls_import_rm_info(synthetic, app_home: Path, starter_folder: Path) -> None:
    result = run("import", str(synthetic("gemma-embedding")), "--id", "my-gemma")
    assert result.exit_code == 0, result.output
    assert (app_home / "models" / "my-gemma.gguf").exists()
    rows = {r["id"]: r for r in json.loads(run("ls", "--json").output)}
    assert rows["my-gemma"]["family"] == "gemma-embedding"
    assert rows["my-gemma"]["dimensions"] == 96 and rows["my-gemma"]["quantization"] == "F32"
    assert rows["all-minilm-l6-v2"]["default"] and not rows["my-gemma"]["default"]
    # A sentence-transformers folder is converted on import.
    result = run("import", str(starter_folder), "--id", "minilm-copy")
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(run("ls", "--json").output)}
    assert rows["minilm-copy"]["family"] == "bert" and rows["minilm-copy"]["dimensions"] == 384
    assert rows["minilm-copy"]["max_seq_length"] == 256  # from sentence_bert_config.json
    described = json.loads(run("info", "-m", "minilm-copy", "--json").output)["model"]
    assert described["max_seq_length"] == described["max_tokens"] == 256
    info = json.loads(run("info", "--json").output)
    assert info["backend"] == "cpu" and info["disk_use_bytes"] > 40_000_000
    assert {"my-gemma", "minilm-copy"} <= set(info["installed"])
    assert run("rm", "my-gemma").exit_code == 0
    assert not (app_home / "models" / "my-gemma.gguf").exists()
    catalog_rows = json.loads(run("ls", "--catalog", "--json").output)
    assert any(r["id"] == "embeddinggemma-300m" and r["recommended"] for r in catalog_rows)


def test_bad_imports_and_names_are_refused(synthetic, app_home: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_text("not a model")
    result = run("import", str(junk))
    assert result.exit_code == 1 and "not a GGUF" in result.output
    chat = synthetic("qwen3", pooling=False)
    result = run("import", str(chat))
    assert result.exit_code == 1 and "not an embedding model" in result.output
    for bad in ("../escape", "/abs", "a/b", ".."):
        result = run("import", str(synthetic("bert")), "--id", bad)
        assert result.exit_code == 1 and "invalid model name" in result.output
        assert run("rm", bad).exit_code == 1
        assert run("pull", bad).exit_code == 1
    result = run("rm", "all-minilm-l6-v2")
    assert result.exit_code == 1 and "built in" in result.output
    assert list((app_home / "models").glob("*.gguf")) == []


def test_import_probes_files_that_crash_llama_cpp(synthetic, app_home: Path) -> None:
    result = run("import", str(synthetic("gemma-embedding", swa_pattern=[True, True])))
    assert result.exit_code == 1 and "llama.cpp aborted" in result.output
    assert list((app_home / "models").glob("*.gguf")) == []


@pytest.fixture()
def hub(synthetic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    with StandInHub() as server:
        server.add(ENTRY.repo, ENTRY.filename, synthetic("bert", "f16", preset="full").read_bytes())
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def test_cli_pull_shows_progress_and_installs(hub: StandInHub, app_home: Path) -> None:
    env = {**os.environ, "LOCALEMBED_HOME": str(app_home)}
    proc = subprocess.run([sys.executable, "-m", "localembed", "pull", ENTRY.id],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "100.0%" in proc.stderr and "installed" in proc.stderr
    assert (app_home / "models" / f"{ENTRY.id}.gguf").exists()
    rows = {r["id"]: r for r in json.loads(run("ls", "--json").output)}
    assert rows[ENTRY.id]["dimensions"] == 384


def test_pull_over_http_with_events_then_switch_and_embed(hub: StandInHub, synthetic,
                                                          app_home: Path) -> None:
    with running(ServerConfig(), synthetic("bert")) as (url, registry):
        status, body, _ = call(url, "/v1/pull", {"model": ENTRY.id})
        assert status == 202 and body["model"] == ENTRY.id
        events = []
        with urllib.request.urlopen(f"{url}/v1/pull/{ENTRY.id}/events", timeout=120) as resp:
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            for line in resp:
                if line.startswith(b"data: "):
                    events.append(json.loads(line[6:]))
        assert events[-1]["status"] == "done" and events[-1]["percent"] == 100.0
        assert events[-1]["downloaded"] == events[-1]["total"] == hub.bytes_sent
        catalog_rows = {r["id"]: r for r in call(url, "/v1/catalog")[1]["data"]}
        assert catalog_rows[ENTRY.id]["installed"]
        # Switch the served default to the new model and embed with it.
        status, body, _ = call(url, "/v1/default", {"model": ENTRY.id})
        assert status == 200 and body["default"] and body["dimensions"] == 384
        status, body, _ = call(url, "/v1/embeddings", {"input": "hello"})
        assert body["model"] == ENTRY.id and len(body["data"][0]["embedding"]) == 384
        saved = json.loads((app_home / "config.json").read_text())
        assert saved["model"] == ENTRY.id
        # A loaded model is not deleted without force.
        status, body, _ = call(url, f"/v1/models/{ENTRY.id}", method="DELETE")
        assert status == 409 and body["error"]["code"] == "model_in_use"


def test_cancel_a_pull_over_http(hub: StandInHub, synthetic) -> None:
    hub.slow = 0.01
    with running(ServerConfig(), synthetic("bert")) as (url, _):
        assert call(url, "/v1/pull", {"model": ENTRY.id})[0] == 202
        assert call(url, "/v1/pull", {"model": ENTRY.id})[0] == 200  # not started twice
        time.sleep(0.5)
        status, body, _ = call(url, f"/v1/pull/{ENTRY.id}", method="DELETE")
        assert status == 200
        for _ in range(100):
            body = call(url, f"/v1/pull/{ENTRY.id}")[1]
            if body["status"] == "cancelled":
                break
            time.sleep(0.1)
        assert body["status"] == "cancelled" and 0 < body["downloaded"] < body["total"]
        assert call(url, "/v1/pull", {"model": "../../etc"})[0] == 400
        assert call(url, "/v1/pull", {"model": "not-in-catalog"})[0] == 404


def test_management_routes_refuse_paths(synthetic) -> None:
    with running(ServerConfig(), synthetic("bert")) as (url, _):
        for path in ("/v1/models/..%2F..%2Fetc/load", "/v1/models/%2Fetc%2Fpasswd/unload"):
            assert call(url, path, {})[0] == 404
        assert call(url, "/v1/default", {"model": "../x"})[0] == 400
        assert call(url, "/v1/models/..%2Fx", method="DELETE")[0] == 404
        status, body, _ = call(url, "/v1/models/import", {"path": "/nonexistent.gguf"})
        assert status == 400 and body["error"]["code"] == "import_failed"
        status, body, _ = call(url, "/v1/models/import",
                               {"path": str(synthetic("bert")), "id": "../x"})
        assert status == 400 and "invalid model name" in body["error"]["message"]


def test_switching_models_while_16_clients_embed(synthetic, app_home: Path) -> None:
    """Zero failed requests while the default flips and models load and unload; every answer
    comes from the model it names (told apart by their dimensions)."""
    install_model(app_home, "small", synthetic("bert"))  # 64 dims
    install_model(app_home, "wide", synthetic("gemma-embedding"))  # 96 dims
    dims = {"small": 64, "wide": 96}
    with running(ServerConfig(model="small"), app_home / "models" / "small.gguf") as (url, reg):
        stop = threading.Event()
        failures: list[object] = []
        answers = [0]

        def client(c: int) -> None:
            names = ["small", "wide", "default"]
            i = 0
            while not stop.is_set():
                name = names[(c + i) % 3]
                i += 1
                status, body, _ = call(url, "/v1/embeddings",
                                       {"input": [f"client {c} says {i}"], "model": name})
                if status != 200:
                    failures.append((name, status, body))
                    continue
                got = body["model"]
                if name != "default" and got != name:
                    failures.append(("wrong model", name, got))
                if len(body["data"][0]["embedding"]) != dims.get(got, -1):
                    failures.append(("wrong dims", got, len(body["data"][0]["embedding"])))
                answers[0] += 1

        threads = [threading.Thread(target=client, args=(c,)) for c in range(16)]
        for t in threads:
            t.start()
        try:
            for round_ in range(6):
                target = "wide" if round_ % 2 == 0 else "small"
                assert call(url, "/v1/default", {"model": target, "persist": False})[0] == 200
                time.sleep(0.3)
                other = "small" if target == "wide" else "wide"
                assert call(url, f"/v1/models/{other}/unload", {})[0] == 200
                time.sleep(0.2)
                assert call(url, f"/v1/models/{other}/load", {})[0] == 200
        finally:
            stop.set()
            for t in threads:
                t.join(60)
    assert failures == []
    assert answers[0] > 100
    print(f"{answers[0]} requests during 6 switches, 0 failures")


def test_idle_models_are_unloaded_after_keep_alive(synthetic, app_home: Path) -> None:
    from localembed.service.registry import Registry

    install_model(app_home, "extra", synthetic("gemma-embedding"))
    registry = Registry(str(synthetic("bert")), keep_alive=0.5)
    try:
        assert registry.get("extra").embed("x").vectors.shape == (1, 96)
        assert registry.is_loaded("extra")
        for _ in range(40):
            if not registry.is_loaded("extra"):
                break
            time.sleep(0.25)
        assert not registry.is_loaded("extra")
        assert registry.default.embed("still the default").vectors.shape == (1, 64)
        assert np.isfinite(registry.get("extra").embed("reloaded").vectors).all()
    finally:
        registry.close()
