"""Long inputs run in a context sized for them, and are embedded whole.

The resident llama.cpp context is sized for packed batches (512 tokens); a longer input gets
a context of its own, split into 512-token ubatches for a causal model. These tests hold that
path to an independent forward pass.
"""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from localembed.engine import Engine
from localembed.engine.memory import resident_bytes
from localembed.testing.synthetic import REAL_VOCAB
from tests.reference_qwen3 import ReferenceQwen3


@pytest.fixture(scope="module")
def qwen3_path(synthetic):
    return synthetic("qwen3")


@pytest.fixture(scope="module")
def qwen3(qwen3_path):
    with Engine(qwen3_path) as engine:
        yield engine


@pytest.fixture(scope="module")
def reference(qwen3_path):
    return ReferenceQwen3(qwen3_path)


def _ids(engine: Engine, count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    specials = {engine.runner.eos, engine.runner.bos}
    pool = [t for t in range(engine.n_vocab) if t not in specials]
    return [rng.choice(pool) for _ in range(count)]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_short_qwen3_input_matches_the_reference(qwen3: Engine, reference) -> None:
    tokens = qwen3.prepare(_ids(qwen3, 40, seed=1))
    vector = qwen3.embed([tokens[:-1]]).vectors[0]
    assert _cosine(vector, reference.embed(tokens)) > 0.9999


def test_8000_token_qwen3_input_matches_the_reference(qwen3: Engine, reference) -> None:
    ids = _ids(qwen3, 7999, seed=2)
    tokens = qwen3.prepare(ids)
    assert len(tokens) == 8000 and tokens[-1] == qwen3.runner.eos
    vector = qwen3.embed([ids]).vectors[0]
    assert _cosine(vector, reference.embed(tokens)) > 0.9999


def test_long_input_in_a_batch_equals_it_alone(qwen3: Engine) -> None:
    long_ids = _ids(qwen3, 1500, seed=3)
    short = ["hello world", "the sea and the water"]
    alone = qwen3.embed([long_ids]).vectors[0]
    mixed = qwen3.embed([short[0], long_ids, short[1]]).vectors
    assert _cosine(mixed[1], alone) > 0.99999
    assert _cosine(mixed[0], qwen3.embed([short[0]]).vectors[0]) > 0.99999


def test_long_input_context_is_freed_when_the_worker_goes_idle(qwen3: Engine) -> None:
    qwen3.embed([_ids(qwen3, 3000, seed=4)])
    deadline = time.monotonic() + 5
    while qwen3.runner.long_context_tokens and time.monotonic() < deadline:
        time.sleep(0.01)
    assert qwen3.runner.long_context_tokens == 0


def test_inputs_up_to_the_context_of_a_bidirectional_model_embed(synthetic) -> None:
    """gemma-embedding attends both ways, so a long input is one ubatch of its own size."""
    with Engine(synthetic("gemma-embedding")) as engine:
        text = "the people of the world think about water and the sea " * 200
        tokens = engine.prepare(text)
        assert len(tokens) == engine.max_tokens > engine.runner.batch_tokens
        vector = engine.embed([text]).vectors[0]
        again = engine.embed([text, "hi"]).vectors[0]
        assert _cosine(vector, again) > 0.99999


def test_a_262k_vocabulary_model_does_not_keep_llama_cpps_unused_logits(synthetic) -> None:
    """llama.cpp zeroes vocabulary x outputs floats per context for logits even in embedding
    mode (64 x 262,144 x 4 bytes = 67 MB each at load, 537 MB after a 512-token batch);
    EmbeddingGemma has no LM head, so those pages are handed back."""
    path = synthetic("gemma-embedding", vocab_size=REAL_VOCAB["gemma-embedding"])
    before = resident_bytes()
    with Engine(path) as engine:
        assert engine.runner.workers >= 2 or engine.runner.threads == 1
        engine.embed(["the sea and the world " * 60] * 8)
        assert engine.resident_bytes is not None and engine.resident_bytes < 100 << 20
        grown = resident_bytes() - before
    assert grown < 200 << 20  # without handing them back: over 1 GB
