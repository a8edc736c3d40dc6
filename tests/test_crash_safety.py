"""A model that crashes llama.cpp costs a message, never the process that wanted it.

Machines here have no CPU whose kernels die (the AMX q8_0 SIGILL), so the crashes are of two
real kinds: a model that makes llama.cpp abort (every gemma-embedding layer sliding: a failed
GGML_ASSERT, SIGABRT), and a probe child that really dies by SIGILL while weight repacking is on
(``FAULT_ENV``), which is what such a CPU does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localembed.config.settings import ServerConfig
from localembed.engine import Engine, ModelLoadError
from localembed.engine import probe as probe_module
from localembed.engine.inspect import inspect_gguf
from localembed.engine.llama import RunnerOptions
from localembed.engine.probe import FAULT_ENV, check_model, crash_reason
from tests.fixtures.models import install_model
from tests.fixtures.server import call, running

ABORTS = "llama.cpp aborted"


@pytest.fixture(scope="module")
def aborting(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model llama.cpp aborts on at load: every gemma-embedding layer sliding."""
    from localembed.testing.synthetic import write_model

    return write_model("gemma-embedding", tmp_path_factory.mktemp("abort") / "broken.gguf",
                       swa_pattern=[True, True])


@pytest.fixture
def q8_model(tmp_path: Path) -> Path:
    """A fresh q8_0 file (a new file: no verdict is remembered for it)."""
    from localembed.testing.synthetic import write_model

    return write_model("qwen3", tmp_path / "q8.gguf", dtype="q8_0", seed=7)


def localembed(*args: str, env: dict | None = None, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "localembed", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_signals_are_told_in_words() -> None:
    assert crash_reason(-4, "").startswith("illegal instruction: llama.cpp used a CPU feature")
    assert "[SIGILL]" in crash_reason(-4, "")
    assert crash_reason(-9, "") .startswith("killed, most likely for lack of memory")
    stderr = "load...\n/tmp/x/vendor/llama.cpp/src/llama.cpp:42: GGML_ASSERT(n > 0) failed\n"
    assert crash_reason(-6, stderr) == "llama.cpp aborted (llama.cpp:42: GGML_ASSERT(n > 0) failed)"


def test_a_model_that_aborts_llama_cpp_is_refused_with_the_assertion(aborting: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"broken.gguf cannot be served: llama.cpp aborted "
                                             r"\(\S+\.cpp:\d+: GGML_ASSERT"):
        check_model(inspect_gguf(aborting), RunnerOptions())


def test_loading_a_crashing_model_over_http_leaves_the_server_serving(
        synthetic, aborting: Path, app_home: Path) -> None:
    install_model(app_home, "broken", aborting)
    with running(ServerConfig(), synthetic("bert")) as (url, _registry):
        status, body, _ = call(url, "/v1/models/broken/load", method="POST")
        assert status == 500
        assert ABORTS in body["error"]["message"]
        assert body["error"]["code"] == "model_load_failed"
        status, body, _ = call(url, "/v1/embeddings", {"input": "still here"})
        assert status == 200 and len(body["data"]) == 1
        status, body, _ = call(url, "/v1/embeddings", {"input": "x", "model": "broken"})
        assert status == 500 and ABORTS in body["error"]["message"]


def test_cli_embed_with_a_crashing_model_exits_with_the_reason(aborting: Path) -> None:
    result = localembed("embed", "-m", str(aborting), "hello")
    assert result.returncode == 1, result.stderr
    assert "broken.gguf cannot be served: llama.cpp aborted" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_crashing_model_exits_with_the_reason(aborting: Path) -> None:
    """The server listens while the model loads (its URL is printed first); the load's failure
    then stops it with the reason."""
    result = localembed("serve", "-p", "0", "-m", str(aborting))
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("http://127.0.0.1:")
    assert "cannot be served: llama.cpp aborted" in result.stderr
    assert "Traceback" not in result.stderr


def test_import_refuses_a_crashing_model_and_installs_nothing(aborting: Path,
                                                             app_home: Path) -> None:
    result = localembed("import", str(aborting), "--id", "crashy")
    assert result.returncode == 1
    assert "llama.cpp aborted" in result.stderr
    assert not (app_home / "models" / "crashy.gguf").exists()


def test_a_crash_with_repacked_kernels_falls_back_to_plain_ones(
        q8_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "SIGILL")
    with Engine(q8_model, safe_load=True) as engine:
        assert engine.runner.repack is False
        assert "illegal instruction" in (engine.load_note or "")
        assert engine.embed("served anyway").vectors.shape == (1, 64)


def test_a_model_is_probed_once_per_file_build_and_options(
        q8_model: Path, monkeypatch: pytest.MonkeyPatch, app_home: Path) -> None:
    runs: list[list[str]] = []
    real = probe_module._run_child
    monkeypatch.setattr(probe_module, "_run_child",
                        lambda args, timeout: runs.append(args) or real(args, timeout))
    info = inspect_gguf(q8_model)
    check_model(info, RunnerOptions())
    first = len(runs)  # 1, or 2 where the repacked kernels crash and the plain ones are tried
    assert first in (1, 2)
    check_model(info, RunnerOptions(threads=1))  # threads do not change what crashes
    assert len(runs) == first
    check_model(info, RunnerOptions(max_tokens=64))
    assert len(runs) == 2 * first
    cached = json.loads((app_home / "cache" / "probes.json").read_text())
    assert len(cached) == 2 and all(v["repack"] is (first == 1) for v in cached.values())


def test_the_remembered_verdict_survives_a_restart(q8_model: Path, app_home: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = check_model(inspect_gguf(q8_model), RunnerOptions())
    monkeypatch.setattr(probe_module, "_memo", {})
    monkeypatch.setattr(probe_module, "_run_child",
                        lambda *_a: pytest.fail("probed again though the home remembers it"))
    options, _ = check_model(inspect_gguf(q8_model), RunnerOptions())
    assert options.repack is first.repack


def test_in_process_loads_stop_repacking_where_its_kernels_crash(q8_model: Path,
                                                                 app_home: Path) -> None:
    """A plain ``Engine(path)`` (as the tests and the Python API use) checks the repacked
    kernels of this build once, in a child, before its first load."""
    script = ("import sys; from localembed.engine import Engine\n"
              "with Engine(sys.argv[1]) as e: print(e.runner.repack, e.embed('x').vectors.shape)")
    result = subprocess.run([sys.executable, "-c", script, str(q8_model)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, FAULT_ENV: "SIGILL",
                                                         "LOCALEMBED_HOME": str(app_home)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "False"
    cached = json.loads((app_home / "cache" / "probes.json").read_text())
    assert [v["repack"] for k, v in cached.items() if k.startswith("kernels-")] == [False]
