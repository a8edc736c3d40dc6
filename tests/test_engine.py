"""The embedding engine on real llama.cpp inference with synthetic and starter GGUFs."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import numpy as np
import pytest

from localembed.engine import (
    EmbedOptions,
    Engine,
    EngineClosed,
    InputError,
    ModelLoadError,
    RunnerOptions,
)
from localembed.engine.families import TASKS, canonical_task
from localembed.testing.synthetic import ARCHITECTURES

TEXTS = [
    "hello world",
    "",
    "the people of the world think about water and the sea " * 12,
    "a b c",
    "once upon a time there was a model that could find anything",
    "search the local server for a vector",
    "x",
    "the river ran to the sea past the old town and the green farm " * 4,
]

def _engine(path: Path, pack_tokens: int | None = None, **options: object) -> Engine:
    return Engine(path, options=RunnerOptions(**{"max_tokens": 2048, **options}),
                  pack_tokens=pack_tokens)


def _one_at_a_time(engine: Engine, texts: list[str], **kw: object) -> np.ndarray:
    return np.stack([engine.embed(t, **kw).vectors[0] for t in texts])


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_batch_equals_one_at_a_time(synthetic, arch: str, dtype: str) -> None:
    """With plain attention a vector does not depend on its batch-mates."""
    with _engine(synthetic(arch, dtype), flash_attn=False) as engine:
        batched = engine.embed(TEXTS, normalize=False).vectors
        single = _one_at_a_time(engine, TEXTS, normalize=False)
        assert engine.batcher.stats.decode_calls < 2 * len(TEXTS)
    scale = np.linalg.norm(single, axis=1, keepdims=True)
    assert np.abs(batched / scale - single / scale).max() <= 2e-4
    assert np.abs(engine_unit(batched) - engine_unit(single)).max() <= 2e-4


def engine_unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_batch_equals_one_at_a_time_q8_0(synthetic, arch: str) -> None:
    with _engine(synthetic(arch, "q8_0")) as engine:
        batched = engine.embed(TEXTS).vectors
        single = _one_at_a_time(engine, TEXTS)
    assert np.sum(batched * single, axis=1).min() >= 0.999


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_flash_attention_batches_stay_close(synthetic, arch: str) -> None:
    """The default (flash attention, f16 K/V) lets batching move a vector only slightly."""
    with Engine(synthetic(arch)) as engine:
        assert engine.runner.flash_attn
        batched = engine.embed(TEXTS).vectors
        single = _one_at_a_time(engine, TEXTS)
    assert np.sum(batched * single, axis=1).min() >= 0.9999
    assert np.abs(batched - single).max() <= 5e-4


@pytest.mark.parametrize("flash_attn", [True, False])
def test_starter_batch_equals_one_at_a_time(starter_gguf, flash_attn: bool) -> None:
    with Engine(starter_gguf("f16"), options=RunnerOptions(flash_attn=flash_attn)) as engine:
        batched = engine.embed(TEXTS).vectors
        single = _one_at_a_time(engine, TEXTS)
    assert np.abs(batched - single).max() <= 2e-4


# -- Qwen3 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen3(synthetic):
    with Engine(synthetic("qwen3"), options=RunnerOptions(max_tokens=256)) as engine:
        yield engine


def test_qwen3_last_token_is_eos(qwen3: Engine) -> None:
    eos = qwen3.runner.eos
    long_text = "the world of water and the sea " * 100
    for options in [EmbedOptions(), EmbedOptions(task="query"),
                    EmbedOptions(truncate="end"), EmbedOptions(truncate="start"),
                    EmbedOptions(task="query", truncate="start")]:
        for text in ["hi", "", "a longer sentence about the sea", long_text]:
            tokens = qwen3.prepare(text, options)
            assert tokens[-1] == eos, (text[:20], options)
            assert tokens.count(eos) == 1
            assert len(tokens) <= qwen3.max_tokens
    assert len(qwen3.prepare(long_text)) == qwen3.max_tokens


def test_qwen3_truncation_keeps_the_right_end(qwen3: Engine) -> None:
    text = "alpha " * 10 + "the world of water and the sea " * 100 + "omega"
    end = qwen3.runner.detokenize(qwen3.prepare(text, EmbedOptions(truncate="end"))[:-1])
    start = qwen3.runner.detokenize(qwen3.prepare(text, EmbedOptions(truncate="start"))[:-1])
    assert end.startswith("alpha") and not end.endswith("omega")
    assert start.endswith("omega") and "alpha" not in start
    query = qwen3.runner.detokenize(qwen3.prepare(text, EmbedOptions(task="query",
                                                                     truncate="start")))
    assert query.startswith("Instruct: ") and "omega" in query


def test_qwen3_query_prompt_applied_exactly_once(qwen3: Engine) -> None:
    text = "how deep is the sea"
    tokens = qwen3.prepare(text, EmbedOptions(task="query"))
    decoded = qwen3.runner.detokenize(tokens[:-1])
    expected_prompt = ("Instruct: Given a web search query, retrieve relevant passages that "
                       "answer the query\nQuery:")
    assert decoded == expected_prompt + text
    assert decoded.count("Instruct:") == 1 and decoded.count("Query:") == 1
    # The vector really is the prompted text's vector.
    prompted = qwen3.embed(expected_prompt + text).vectors[0]
    assert np.allclose(qwen3.embed(text, task="query").vectors[0], prompted, atol=1e-5)
    custom = qwen3.runner.detokenize(
        qwen3.prepare(text, EmbedOptions(instruction="Find poems"))[:-1])
    assert custom == "Instruct: Find poems\nQuery:" + text


def test_qwen3_documents_are_unprefixed(qwen3: Engine) -> None:
    text = "The sea is deep and the water is cold."
    tokens = qwen3.prepare(text, EmbedOptions(task="document"))
    assert tokens == qwen3.prepare(text)
    assert qwen3.runner.detokenize(tokens[:-1]) == text
    plain = qwen3.embed(text).vectors[0]
    assert np.allclose(qwen3.embed(text, task="document").vectors[0], plain)
    assert not np.allclose(qwen3.embed(text, task="query").vectors[0], plain, atol=1e-3)


def test_qwen3_token_id_input_gets_eos(qwen3: Engine) -> None:
    body = qwen3.runner.tokenize("the sea", special=False)
    assert qwen3.prepare(body) == [*body, qwen3.runner.eos]
    assert np.allclose(qwen3.embed([body]).vectors[0], qwen3.embed("the sea").vectors[0],
                       atol=1e-5)


# -- EmbeddingGemma ------------------------------------------------------------------------------

GEMMA_PROMPTS = {
    "query": "task: search result | query: ",
    "document": "title: none | text: ",
    "similarity": "task: sentence similarity | query: ",
    "classification": "task: classification | query: ",
    "clustering": "task: clustering | query: ",
    "code": "task: code retrieval | query: ",
    "qa": "task: question answering | query: ",
    "fact_check": "task: fact checking | query: ",
    "summarization": "task: summarization | query: ",
}


@pytest.fixture(scope="module")
def gemma(synthetic):
    with Engine(synthetic("gemma-embedding")) as engine:
        yield engine


def test_gemma_prompt_for_each_task(gemma: Engine) -> None:
    text = "the cat sat on the mat"
    assert set(GEMMA_PROMPTS) == set(TASKS)
    vectors = {}
    for task, prompt in GEMMA_PROMPTS.items():
        tokens = gemma.prepare(text, EmbedOptions(task=task))
        assert tokens[0] == gemma.runner.bos and tokens[-1] == gemma.runner.eos
        assert gemma.runner.detokenize(tokens[1:-1]) == prompt + text, task
        vectors[task] = gemma.embed(text, task=task).vectors[0]
        assert np.allclose(vectors[task], gemma.embed(prompt + text).vectors[0], atol=1e-5)
    titled = gemma.runner.detokenize(gemma.prepare(text, EmbedOptions(task="document",
                                                                      title="Cats"))[1:-1])
    assert titled == "title: Cats | text: " + text
    assert gemma.runner.detokenize(gemma.prepare(text)[1:-1]) == text  # no task: raw text
    assert not np.allclose(vectors["query"], vectors["document"], atol=1e-3)
    # Aliases used by other APIs map onto the same prompts.
    assert canonical_task("search_query") == "query"
    assert canonical_task("search_document") == "document"


def test_gemma_output_has_the_dense_dimension(gemma: Engine) -> None:
    assert gemma.dimensions == 96
    assert gemma.describe()["matryoshka_dimensions"] == [96, 64, 32, 16]
    assert gemma.embed("hello").vectors.shape == (1, 96)


# -- Matryoshka ----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch,dims", [("gemma-embedding", [64, 32, 16]),
                                       ("qwen3", [32, 33, 48, 63])])
def test_matryoshka_vectors_are_unit_prefixes(synthetic, arch: str, dims: list[int]) -> None:
    with _engine(synthetic(arch)) as engine:
        full = engine.embed(TEXTS[:4], normalize=False).vectors
        for d in dims:
            cut = engine.embed(TEXTS[:4], dimensions=d).vectors
            assert cut.shape == (4, d)
            assert np.allclose(np.linalg.norm(cut, axis=1), 1.0, atol=1e-5)
            prefix = full[:, :d] / np.linalg.norm(full[:, :d], axis=1, keepdims=True)
            assert np.allclose(cut, prefix, atol=1e-5)


@pytest.mark.parametrize("arch,bad", [("gemma-embedding", [50, 128, 0]),
                                      ("qwen3", [31, 65, 0]),
                                      ("bert", [32, 63])])
def test_matryoshka_refuses_untrained_sizes(synthetic, arch: str, bad: list[int]) -> None:
    with _engine(synthetic(arch)) as engine:
        for d in bad:
            with pytest.raises(InputError, match="dimensions") as info:
                engine.embed("hello", dimensions=d)
            assert info.value.param == "dimensions"
        full = engine.embed("hello", dimensions=engine.dimensions).vectors
        assert full.shape == (1, engine.dimensions)


# -- concurrency ---------------------------------------------------------------------------------


def run_at_once(count: int, fn) -> list[object]:  # type: ignore[no-untyped-def]
    """Call ``fn(i)`` from ``count`` threads released together; results or exceptions."""
    results: list[object] = [None] * count
    barrier = threading.Barrier(count)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_64_threads_with_mixed_requests_get_the_right_vectors(synthetic) -> None:
    rng = random.Random(7)
    requests = []
    for _ in range(64):
        texts = rng.sample(TEXTS, rng.randint(1, 4))
        options = EmbedOptions(task=rng.choice([None, "query", "document", "clustering"]),
                               dimensions=rng.choice([None, 32, 48]))
        requests.append((texts, options))
    # Batches of up to 512 tokens, so that these prompted texts (50-80 tokens) share them.
    with _engine(synthetic("qwen3"), pack_tokens=512, flash_attn=False) as engine:
        expected = [engine.embed(t, o).vectors for t, o in requests]
        calls_before = engine.batcher.stats.decode_calls
        results = run_at_once(64, lambda i: engine.embed(*requests[i]).vectors)
        concurrent_calls = engine.batcher.stats.decode_calls - calls_before
    for got, want in zip(results, expected, strict=True):
        assert isinstance(got, np.ndarray), got
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 2e-4
    total_inputs = sum(len(t) for t, _ in requests)
    assert concurrent_calls < total_inputs / 2, (concurrent_calls, total_inputs)


def test_burst_of_32_requests_shares_decode_calls(starter_gguf) -> None:
    with Engine(starter_gguf("f16")) as engine:
        engine.embed("warm up")
        before = engine.batcher.stats.decode_calls
        out = run_at_once(32, lambda i: engine.embed(f"request number {i} about the sea"))
        calls = engine.batcher.stats.decode_calls - before
    assert all(r.vectors.shape == (1, 384) for r in out), out
    print(f"32 concurrent one-text requests -> {calls} decode calls")
    assert calls <= 8


# -- bad input -----------------------------------------------------------------------------------


def test_bad_input_is_a_clear_error_and_the_worker_keeps_serving(synthetic) -> None:
    with Engine(synthetic("bert")) as engine:
        empty = engine.embed("").vectors[0]
        assert np.isfinite(empty).all() and abs(np.linalg.norm(empty) - 1) < 1e-5
        with pytest.raises(InputError, match="at most 512") as info:
            engine.embed(["fine", "word " * 600], truncate="none")
        assert info.value.param == "input"
        with pytest.raises(InputError, match="dimensions"):
            engine.embed("hello", dimensions=12)
        with pytest.raises(InputError, match="unknown task") as info:
            engine.embed("hello", task="poetry")
        assert info.value.param == "task"
        with pytest.raises(InputError, match="truncate"):
            engine.embed("hello", truncate="middle")
        with pytest.raises(InputError, match="vocabulary"):
            engine.embed([[5, 10**7]])
        assert engine.embed(["still", "serving"]).vectors.shape == (2, 64)
        assert engine.batcher.stats.failed_batches == 0
        # Long input with truncation is fine and uses the whole window.
        assert engine.embed("word " * 600).tokens == [512]


def test_results_name_the_model_that_made_them(synthetic) -> None:
    with Engine(synthetic("bert"), model_id="the-embedder") as engine:
        assert engine.embed(["a", "b"]).model == "the-embedder"
        assert engine.submit(["a"]).result(60).model == "the-embedder"


def test_closed_engine_refuses_work(synthetic) -> None:
    engine = Engine(synthetic("bert"))
    engine.close()
    with pytest.raises(EngineClosed):
        engine.embed("hello")


def test_broken_files_are_clear_load_errors(synthetic, tmp_path: Path) -> None:
    good = synthetic("bert").read_bytes()
    cases = {
        "missing.gguf": None,
        "text.gguf": b"this is not a model",
        "truncated.gguf": good[: len(good) // 2],
        "garbage.gguf": b"GGUF" + bytes(range(256)) * 4,
    }
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(ModelLoadError) as info:
            Engine(path)
        assert path.name in str(info.value) or "not found" in str(info.value)


def test_non_embedding_gguf_is_refused(synthetic) -> None:
    with pytest.raises(ModelLoadError, match="not an embedding model"):
        Engine(synthetic("qwen3", pooling=False))


def test_gemma_without_dense_layers_is_refused(synthetic) -> None:
    with pytest.raises(ModelLoadError, match="download the model again"):
        Engine(synthetic("gemma-embedding", dense=False))


def test_safe_load_survives_a_model_that_aborts_llama_cpp(synthetic) -> None:
    """Every layer sliding makes llama.cpp abort the process; the probe contains it."""
    path = synthetic("gemma-embedding", swa_pattern=[True, True])
    with pytest.raises(ModelLoadError, match=r"cannot be served: llama.cpp aborted \(\S+\.cpp:\d+: "
                                             "GGML_ASSERT"):
        Engine(path, safe_load=True)
    with Engine(synthetic("gemma-embedding"), safe_load=True) as engine:
        assert engine.embed("still alive").vectors.shape == (1, 96)


def test_normalised_rows_are_exactly_numpys_unit_vectors_and_zero_rows_stay_zero() -> None:
    from localembed.engine.postprocess import l2_normalize

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(5, 384)).astype(np.float32) * 40
    vectors[2] = 0
    out = l2_normalize(vectors)
    with np.errstate(invalid="ignore"):  # the zero row: 0 / 0
        expected = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert out.dtype == np.float32
    assert np.array_equal(np.delete(out, 2, axis=0), np.delete(expected, 2, axis=0))
    assert not out[2].any()
    assert vectors[0].any() and not np.array_equal(vectors[0], out[0])  # a new array


def test_on_cpu_short_texts_are_packed_into_decodes_of_at_most_128_tokens(starter_gguf) -> None:
    from localembed.engine.llama import CPU_PLAN_TOKENS

    texts = [f"text number {i} about the river and the sea" for i in range(48)]
    with Engine(starter_gguf("f16")) as engine:
        assert engine.runner.backend is None and engine.batcher.pack_tokens == CPU_PLAN_TOKENS
        before = engine.batcher.stats.decode_calls, engine.batcher.stats.tokens
        result = engine.embed(texts)
        calls = engine.batcher.stats.decode_calls - before[0]
        tokens = engine.batcher.stats.tokens - before[1]
    assert tokens == sum(result.tokens) > 4 * CPU_PLAN_TOKENS
    assert -(-tokens // CPU_PLAN_TOKENS) <= calls < len(texts) / 4  # packed, 128 at a time
