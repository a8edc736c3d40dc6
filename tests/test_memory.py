"""A model whose weights llama.cpp repacks is not held twice: the mapped file's pages the repacked
copy was read from are given back after the load (engine.memory), the model computes the same
vectors, and a model that repacks nothing keeps its pages (dropping them would only cost time).

Real loads on this CPU: llama.cpp repacks q4_0 matrices on x86 with AVX2 and on ARM with dot
products (its "CPU_REPACK" buffer); f16 ones are not repacked there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from localembed.engine import Engine, RunnerOptions
from localembed.engine.memory import mapped_ranges
from localembed.testing.synthetic import write_model

TEXTS = ["a lighthouse on the cliff", "the tide comes in", "x"]


@pytest.fixture(scope="module")
def q4_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A qwen3 model wide enough (1,024) that its repacked matrices are most of its file."""
    return write_model("qwen3", tmp_path_factory.mktemp("q4") / "q4.gguf", dtype="q4_0",
                       hidden=1024)


def mapped_resident(path: Path) -> int:
    return sum(resident for _start, _length, resident in mapped_ranges(path))


def test_the_pages_repacked_weights_were_read_from_are_given_back(q4_model: Path) -> None:
    engine = Engine(q4_model, options=RunnerOptions(repack=True))
    try:
        if engine.runner.copied_bytes == 0:
            pytest.skip("llama.cpp repacks no q4_0 weights on this CPU (no AVX2 or dot "
                        "products)")
        engine.embed(TEXTS)
        size = q4_model.stat().st_size
        assert engine.runner.released_bytes > size // 2
        assert mapped_resident(q4_model) < size // 2  # the rest is the vocabulary's pages
    finally:
        engine.close()


def test_a_repacked_model_computes_the_same_vectors_after_the_pages_are_given_back(
        q4_model: Path) -> None:
    repacked = Engine(q4_model, options=RunnerOptions(repack=True))
    plain = Engine(q4_model, options=RunnerOptions(repack=False))
    try:
        assert plain.runner.copied_bytes == plain.runner.released_bytes == 0
        a, b = repacked.embed(TEXTS).vectors, plain.embed(TEXTS).vectors
    finally:
        repacked.close()
        plain.close()
    assert np.all(np.isfinite(a))
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert (cosine > 0.999).all(), cosine


def test_a_model_that_repacks_nothing_keeps_its_mapped_pages(starter_gguf) -> None:
    model = starter_gguf("f16")
    engine = Engine(model, options=RunnerOptions(repack=True))
    try:
        engine.embed(TEXTS)
        assert engine.runner.copied_bytes == engine.runner.released_bytes == 0
        assert mapped_resident(model) > model.stat().st_size * 0.9  # its weights, in use
    finally:
        engine.close()
