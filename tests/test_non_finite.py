"""No response ever carries a non-finite number: a model whose weights are NaN or garbage is
refused at import and load, and an input a model turns into NaN is an error, not ``null``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from localembed.config.settings import ServerConfig
from localembed.engine import Engine, ModelLoadError, NonFiniteOutput
from localembed.engine.batcher import non_finite_rows
from localembed.gguf.header import read_header
from tests.fixtures.models import install_model
from tests.fixtures.server import call, running

POISON = "water"  # a word of the synthetic vocabulary whose embedding row is made NaN


def corrupt(source: Path, target: Path, fill: str) -> Path:
    """``source`` with its header intact and every tensor's data replaced: all bytes 0xFF
    (NaN in f32), or random bytes."""
    data = bytearray(source.read_bytes())
    rng = np.random.default_rng(1)
    for tensor in read_header(source).tensors:
        span = slice(tensor.data_offset, tensor.data_offset + tensor.n_bytes)
        data[span] = (b"\xff" * tensor.n_bytes if fill == "nan"
                      else rng.integers(0, 256, tensor.n_bytes, dtype=np.uint8).tobytes())
    target.write_bytes(bytes(data))
    return target


@pytest.fixture(scope="module")
def poisoned(synthetic, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT model that is fine for every input but one word, whose embedding row is NaN."""
    source = synthetic("bert")
    with Engine(source) as engine:
        token = engine.runner.tokenize(POISON, special=False)[0]
    header = read_header(source)
    table = next(t for t in header.tensors if t.name == "token_embd.weight")
    width = table.n_bytes // header.array_length("tokenizer.ggml.tokens")
    data = bytearray(source.read_bytes())
    start = table.data_offset + token * width
    data[start:start + width] = b"\xff" * width
    path = tmp_path_factory.mktemp("poison") / "poisoned.gguf"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("fill", ["nan", "garbage"])
def test_a_model_with_corrupt_weights_is_refused_at_load(synthetic, tmp_path: Path,
                                                         fill: str) -> None:
    path = corrupt(synthetic("bert"), tmp_path / f"{fill}.gguf", fill)
    with pytest.raises(ModelLoadError, match="non-finite values"):
        Engine(path)


@pytest.mark.parametrize("fill", ["nan", "garbage"])
def test_import_refuses_a_model_with_corrupt_weights(synthetic, tmp_path: Path, app_home: Path,
                                                     fill: str) -> None:
    path = corrupt(synthetic("bert"), tmp_path / f"{fill}.gguf", fill)
    result = subprocess.run([sys.executable, "-m", "localembed", "import", str(path)],
                            capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert result.returncode == 1
    assert "non-finite values" in result.stderr and "Traceback" not in result.stderr
    assert not list((app_home / "models").glob("*.gguf"))


def test_loading_a_corrupt_model_over_http_is_refused(synthetic, tmp_path: Path,
                                                      app_home: Path) -> None:
    install_model(app_home, "corrupt", corrupt(synthetic("bert"), tmp_path / "c.gguf", "nan"))
    with running(ServerConfig(), synthetic("bert")) as (url, _registry):
        status, body, _ = call(url, "/v1/embeddings", {"input": "x", "model": "corrupt"})
        assert status == 500 and "non-finite values" in body["error"]["message"]
        assert call(url, "/v1/embeddings", {"input": "x"})[0] == 200


def test_an_input_turned_into_nan_is_an_error_in_each_dialect(poisoned: Path) -> None:
    with running(ServerConfig(), poisoned) as (url, _registry):
        assert call(url, "/v1/embeddings", {"input": "hello"})[0] == 200
        status, body, _ = call(url, "/v1/embeddings", {"input": ["hello", f"the {POISON}"]})
        assert status == 500 and body["error"]["code"] == "model_output_invalid"
        assert "input 1" in body["error"]["message"]
        status, body, _ = call(url, "/api/embed", {"input": POISON})
        assert status == 500 and "NaN" in body["error"]
        status, body, _ = call(url, "/v1/similarity", {"query": "hello",
                                                       "documents": ["a", POISON]})
        assert status == 500 and body["error"]["code"] == "model_output_invalid"
        assert "scores" not in body


def test_a_nan_input_does_not_spoil_its_batch_mates(poisoned: Path) -> None:
    from localembed.engine import RunnerOptions

    with Engine(poisoned, options=RunnerOptions(workers=1)) as engine:
        alone = engine.embed(["hello there", "the sea"]).vectors
        bad = engine.submit([POISON])
        good = engine.submit(["hello there", "the sea"])
        with pytest.raises(NonFiniteOutput, match="input 0"):
            bad.result(30)
        vectors = good.result(30).vectors
        assert np.isfinite(vectors).all()
        assert np.allclose(vectors, alone, atol=1e-3)


def test_huge_finite_values_are_not_taken_for_non_finite_ones() -> None:
    vectors = np.full((3, 384), 3e38, dtype=np.float32)  # their sum overflows to infinity
    assert non_finite_rows(vectors) == set()
    vectors[1, 7] = np.nan
    vectors[2, 0] = -np.inf
    assert non_finite_rows(vectors) == {1, 2}
    assert non_finite_rows(np.zeros((2, 4), dtype=np.float32)) == set()
