"""A model whose weights llama.cpp repacks is not held twice: the mapped file's pages the repacked
copy was read from are given back after the load (engine.memory), the model computes the same
vectors, and a model that repacks nothing keeps its pages (dropping them would only cost time).

Real loads on this CPU: llama.cpp repacks q4_0 matrices on x86 with AVX2 and on ARM with dot
products (its "CPU_REPACK" buffer), and copies f16 ones into its AMX buffer on a Xeon with
AMX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from localembed.engine import Engine, RunnerOptions
from localembed.engine.memory import mapped_ranges
from localembed.engine.probe import repack_allowed
from localembed.testing.synthetic import write_model

TEXTS = ["a lighthouse on the cliff", "the tide comes in", "x"]


@pytest.fixture(scope="module")
def repacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A qwen3 model wide enough (1,024) that its copied matrices are most of its file, in a
    dtype this CPU's llama.cpp copies out of the mapping without crashing: q4_0 where its
    repacked kernels run (x86 with AVX2, ARM with dot products), f16 where they crash but its
    AMX buffer takes f16 weights (a Xeon whose AMX kernels die with SIGILL or SIGSEGV)."""
    folder = tmp_path_factory.mktemp("repacked")
    if repack_allowed():
        return write_model("qwen3", folder / "q4.gguf", dtype="q4_0", hidden=1024)
    if "amx_int8" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("llama.cpp's repacked kernels crash on this CPU and it has no AMX buffer")
    return write_model("qwen3", folder / "f16.gguf", dtype="f16", hidden=1024)


def mapped_resident(path: Path) -> int:
    return sum(resident for _start, _length, resident in mapped_ranges(path))


def test_the_pages_copied_weights_were_read_from_are_given_back(repacked: Path) -> None:
    engine = Engine(repacked, options=RunnerOptions(repack=True))
    try:
        if engine.runner.copied_bytes == 0:
            pytest.skip("llama.cpp copies no weights out of the mapping on this CPU (no AVX2, "
                        "dot products or AMX)")
        engine.embed(TEXTS)
        size = repacked.stat().st_size
        assert engine.runner.released_bytes > size // 2
        assert mapped_resident(repacked) < size // 2  # the rest is the vocabulary's pages
    finally:
        engine.close()


def test_a_model_computes_the_same_vectors_after_the_pages_are_given_back(
        repacked: Path) -> None:
    copied = Engine(repacked, options=RunnerOptions(repack=True))
    plain = Engine(repacked, options=RunnerOptions(repack=False))
    try:
        assert plain.runner.copied_bytes == plain.runner.released_bytes == 0
        a, b = copied.embed(TEXTS).vectors, plain.embed(TEXTS).vectors
    finally:
        copied.close()
        plain.close()
    assert np.all(np.isfinite(a))
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert (cosine > 0.999).all(), cosine


def test_a_model_that_repacks_nothing_keeps_its_mapped_pages(starter_gguf) -> None:
    model = starter_gguf("f16")
    engine = Engine(model, options=RunnerOptions(repack=False))  # every weight from the mapping
    try:
        engine.embed(TEXTS)
        assert engine.runner.copied_bytes == engine.runner.released_bytes == 0
        assert mapped_resident(model) > model.stat().st_size * 0.9  # its weights, in use
    finally:
        engine.close()
