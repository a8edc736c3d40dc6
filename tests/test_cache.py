"""The embedding cache: an input the same model file already embedded with the same token ids
is answered without a decode, with the vector the first request got; anything that changes the
ids (prompt, title, truncation) or the model is a miss; it is bounded by bytes, can be turned
off, survives a restart on disk, and shows in /metrics. Real llama.cpp on the starter."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from localembed.engine import EmbedOptions, Engine
from localembed.engine.cache import ENTRY_OVERHEAD, VectorCache
from localembed.models.starter import STARTER_ID, starter_path

TEXTS = ["The tide comes in twice a day.", "Harbour cranes unload the ships at dawn.",
         "A lighthouse keeper logs every passing vessel."]


def decodes(engine: Engine) -> int:
    return engine.batcher.stats.decode_calls


@pytest.fixture()
def cached() -> Iterator[Engine]:
    with Engine(starter_path(), model_id=STARTER_ID, cache=VectorCache()) as engine:
        yield engine


def test_a_repeated_input_is_answered_without_a_decode_with_the_same_vector(
        cached: Engine) -> None:
    first = cached.embed(TEXTS)
    before = decodes(cached)
    again = cached.embed(TEXTS)
    assert decodes(cached) == before
    assert np.array_equal(first.vectors, again.vectors)
    assert again.tokens == first.tokens  # usage is counted as for a decoded input
    assert cached.cache is not None and cached.cache.stats().hits == len(TEXTS)


def test_a_cached_vector_equals_an_uncached_one_bit_for_bit(cached: Engine) -> None:
    cached.embed(TEXTS)
    hit = cached.embed(TEXTS).vectors
    with Engine(starter_path(), model_id=STARTER_ID) as plain:
        assert plain.cache is None
        assert np.array_equal(plain.embed(TEXTS).vectors, hit)


def test_only_the_missing_inputs_of_a_request_are_decoded(cached: Engine) -> None:
    cached.embed(TEXTS[:2])
    mixed = cached.embed([TEXTS[0], TEXTS[2], TEXTS[1]])
    assert cached.cache is not None
    assert (cached.cache.stats().hits, cached.cache.stats().misses) == (2, 3)
    alone = cached.embed([TEXTS[2]]).vectors[0]
    assert np.array_equal(mixed.vectors[1], alone)


def test_an_input_repeated_in_one_request_is_decoded_once(cached: Engine) -> None:
    batcher = cached.batcher
    before = batcher.stats.tokens
    result = cached.embed([TEXTS[0]] * 5)
    assert batcher.stats.tokens - before == result.tokens[0]
    assert all(np.array_equal(result.vectors[0], v) for v in result.vectors)


def test_another_prompt_or_title_is_another_entry(synthetic) -> None:
    # EmbeddingGemma's prompts: "task: search result | query: ..." for a query,
    # "title: ... | text: ..." for a document.
    with Engine(synthetic("gemma-embedding"), cache=VectorCache()) as engine:
        for n, options in enumerate([EmbedOptions(task="query"), EmbedOptions(task="document"),
                                     EmbedOptions(task="document", title="Tides"),
                                     EmbedOptions(task="document", title="Ships")], 1):
            engine.embed([TEXTS[0]], options)
            assert engine.cache is not None and engine.cache.stats().entries == n
        assert engine.cache.stats().hits == 0
        before = decodes(engine)
        engine.embed([TEXTS[0]], EmbedOptions(task="document", title="Ships"))
        assert decodes(engine) == before


def test_dimensions_and_normalisation_apply_to_a_cached_output(synthetic) -> None:
    model = synthetic("qwen3")  # Qwen3 takes any size from 32 up (Matryoshka)
    with Engine(model, cache=VectorCache()) as engine:
        full = engine.embed([TEXTS[1]], EmbedOptions(normalize=False)).vectors[0]
        before = decodes(engine)
        cut = engine.embed([TEXTS[1]], EmbedOptions(dimensions=32)).vectors[0]
        assert decodes(engine) == before  # the same ids: a hit, cut and normalised after
    assert cut.shape == (32,) and abs(float(np.linalg.norm(cut)) - 1.0) < 1e-5
    assert abs(float(np.linalg.norm(full)) - 1.0) > 1e-3  # the raw pooled output
    with Engine(model) as plain:
        assert np.array_equal(plain.embed([TEXTS[1]], EmbedOptions(dimensions=32)).vectors[0],
                              cut)


def test_another_model_file_never_shares_an_entry(synthetic, tmp_path: Path) -> None:
    cache = VectorCache()
    first = synthetic("bert", "f32", seed=1)
    second = tmp_path / "other.gguf"
    second.write_bytes(synthetic("bert", "f32", seed=2).read_bytes())
    with Engine(first, cache=cache) as a, Engine(second, cache=cache) as b:
        va = a.embed(TEXTS).vectors
        vb = b.embed(TEXTS).vectors
        assert decodes(b) > 0 and not np.array_equal(va, vb)
        assert cache.stats().hits == 0


def test_the_cache_holds_at_most_its_bytes_dropping_the_least_recent(
        cached: Engine) -> None:
    entry = cached.dimensions * 4 + ENTRY_OVERHEAD
    cache = VectorCache(max_bytes=2 * entry)
    with Engine(starter_path(), model_id=STARTER_ID, cache=cache) as engine:
        engine.embed([TEXTS[0]])
        engine.embed([TEXTS[1]])
        engine.embed([TEXTS[0]])  # now the most recent
        engine.embed([TEXTS[2]])  # drops TEXTS[1]
        stats = cache.stats()
        assert stats.entries == 2 and stats.bytes <= 2 * entry
        before = decodes(engine)
        engine.embed([TEXTS[0], TEXTS[2]])
        assert decodes(engine) == before
        engine.embed([TEXTS[1]])
        assert decodes(engine) == before + 1


def test_a_cache_of_zero_bytes_is_off() -> None:
    with Engine(starter_path(), model_id=STARTER_ID, cache=VectorCache(0)) as engine:
        assert engine.cache is None
        engine.embed(TEXTS)
        before = decodes(engine)
        engine.embed(TEXTS)
        assert decodes(engine) > before


def test_the_disk_tier_answers_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite"
    with Engine(starter_path(), model_id=STARTER_ID,
                cache=VectorCache(1 << 20, path, 1 << 20)) as engine:
        first = engine.embed(TEXTS).vectors
        engine.cache.close()  # type: ignore[union-attr]
    restarted = VectorCache(1 << 20, path, 1 << 20)
    assert restarted.stats().disk_entries == len(TEXTS) and restarted.stats().entries == 0
    with Engine(starter_path(), model_id=STARTER_ID, cache=restarted) as engine:
        again = engine.embed(TEXTS).vectors
        assert decodes(engine) == 0
        assert np.array_equal(first, again)
        assert restarted.stats().disk_hits == len(TEXTS)
    restarted.close()


def test_the_disk_tier_stays_within_its_bytes(tmp_path: Path) -> None:
    cache = VectorCache(1 << 20, tmp_path / "v.sqlite", disk_bytes=384 * 4 * 600)
    rng = np.random.default_rng(0)
    for start in range(0, 2000, 250):
        keys = [start.to_bytes(4, "big") + n.to_bytes(4, "big") for n in range(250)]
        cache.store(keys, list(rng.standard_normal((250, 384)).astype(np.float32)))
    stats = cache.stats()
    assert 0 < stats.disk_bytes <= 384 * 4 * 600 and stats.disk_entries <= 600
    cache.close()


def test_metrics_show_the_cache(tmp_path: Path, app_home: Path) -> None:
    from localembed.config.settings import ServerConfig
    from localembed.server import create_app
    from localembed.service.registry import Registry, cache_from_config

    config = ServerConfig(cache_mb=16)
    registry = Registry(STARTER_ID, cache=cache_from_config(config))
    try:
        client = create_app(config, registry).test_client()
        for _ in range(3):
            reply = client.post("/v1/embeddings", json={"input": TEXTS[:2], "model": "default"})
            assert reply.status_code == 200
        text = client.get("/metrics").get_data(as_text=True)
    finally:
        registry.close()
    assert re.search(r"^localembed_cache_hits_total 4$", text, re.M)
    assert re.search(r"^localembed_cache_misses_total 2$", text, re.M)
    assert re.search(r"^localembed_cache_hit_ratio 0\.66", text, re.M)
    assert re.search(r"^localembed_cache_max_bytes 16777216$", text, re.M)
