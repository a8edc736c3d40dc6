"""Reranking over HTTP: the real Cohere SDK, Jina's, TEI's and vLLM's shapes over plain HTTP,
concurrency, each dialect's 400s, and the wrong kind of model refused. Every score is checked
against the engine's own ``rerank`` on the same model."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from localembed.config.settings import ServerConfig
from localembed.engine import RerankOptions
from tests.fixtures.server import call, running

QUERY = "how deep is the sea"
DOCS = ["a cat sleeps on the mat", "the sea is deep and cold", "bread needs flour and water",
        "waves and water of the ocean", "the moon pulls the tides"]
LONG = "word " * 9000  # past both synthetic rerankers' context (512 and 8192 tokens)

# What sharing a decode with other pairs can move a score by (f32 sums in another order).
BATCH_ROUNDING = 1e-4


@pytest.fixture(scope="module")
def qwen3(synthetic):
    """A live server whose default model is a Qwen3-Reranker-style reranker."""
    with running(ServerConfig(), synthetic("qwen3", head="rerank")) as (url, registry):
        yield url, registry.default


@pytest.fixture(scope="module")
def xlmr(synthetic):
    """A live server whose default model is an XLM-RoBERTa-style cross-encoder."""
    with running(ServerConfig(), synthetic("bert", head="rerank")) as (url, registry):
        yield url, registry.default


def best_first(scores) -> list[int]:  # type: ignore[no-untyped-def]
    return sorted(range(len(scores)), key=lambda i: -float(scores[i]))


def test_cohere_sdk_rerank_orders_by_score_with_the_right_indices_and_top_n(qwen3) -> None:
    import cohere

    url, engine = qwen3
    client = cohere.ClientV2(base_url=url, api_key="x")
    response = client.rerank(model=engine.id, query=QUERY, documents=DOCS, top_n=2)
    expected = engine.rerank(QUERY, DOCS).scores
    assert [r.index for r in response.results] == best_first(expected)[:2]
    assert [r.relevance_score for r in response.results] == pytest.approx(
        [float(expected[i]) for i in best_first(expected)[:2]], abs=BATCH_ROUNDING)
    assert response.id and response.meta.billed_units.search_units == 1
    everything = client.rerank(model=engine.id, query=QUERY, documents=DOCS)
    scores = [r.relevance_score for r in everything.results]
    assert len(scores) == len(DOCS) and scores == sorted(scores, reverse=True)
    with pytest.raises(cohere.errors.BadRequestError, match="top_n"):
        client.rerank(model=engine.id, query=QUERY, documents=DOCS, top_n=0)


def test_cohere_v1_sdk_parses_the_v1_route(qwen3) -> None:
    import cohere

    url, engine = qwen3
    response = cohere.Client(base_url=url, api_key="x").rerank(
        model=engine.id, query=QUERY, documents=DOCS, top_n=3, return_documents=True)
    expected = engine.rerank(QUERY, DOCS).scores
    assert [r.index for r in response.results] == best_first(expected)[:3]
    assert [r.document.text for r in response.results] == [DOCS[r.index]
                                                           for r in response.results]


def test_jina_shape_takes_document_objects_and_returns_documents(qwen3) -> None:
    url, engine = qwen3
    for path in ("/v1/rerank", "/rerank"):
        status, body, _ = call(url, path, {"model": engine.id, "query": QUERY,
                                           "documents": [{"text": d} for d in DOCS],
                                           "return_documents": True})
        assert status == 200, body
        expected = engine.rerank(QUERY, DOCS)
        assert [r["index"] for r in body["results"]] == best_first(expected.scores)
        for r in body["results"]:
            assert r["document"] == {"text": DOCS[r["index"]]}
            assert r["relevance_score"] == pytest.approx(float(expected.scores[r["index"]]),
                                                         abs=BATCH_ROUNDING)
            assert r["score_type"] == "probability" and "raw_score" not in r
        assert body["model"] == engine.id
        assert body["usage"] == {"prompt_tokens": expected.total_tokens,
                                 "total_tokens": expected.total_tokens}


def test_documents_are_left_out_unless_asked_for(qwen3) -> None:
    url, _ = qwen3
    body = call(url, "/v1/rerank", {"query": QUERY, "documents": DOCS})[1]
    assert all(set(r) == {"index", "relevance_score", "score_type"} for r in body["results"])


def test_top_n_beyond_the_documents_returns_them_all(qwen3) -> None:
    url, _ = qwen3
    status, body, _ = call(url, "/v2/rerank", {"query": QUERY, "documents": DOCS,
                                               "top_n": 50})
    assert status == 200 and sorted(r["index"] for r in body["results"]) == list(range(5))


def test_a_cross_encoder_reports_its_logit_and_sigmoid(xlmr) -> None:
    url, engine = xlmr
    body = call(url, "/v1/rerank", {"query": QUERY, "documents": DOCS})[1]
    expected = engine.rerank(QUERY, DOCS)
    for r in body["results"]:
        assert r["score_type"] == "sigmoid"
        assert r["raw_score"] == pytest.approx(float(expected.logits[r["index"]]),
                                               abs=BATCH_ROUNDING)
        assert r["relevance_score"] == pytest.approx(float(expected.scores[r["index"]]),
                                                     abs=BATCH_ROUNDING)


def test_tei_shape_answers_a_list_with_text_and_raw_scores(xlmr) -> None:
    url, engine = xlmr
    expected = engine.rerank(QUERY, DOCS)
    status, body, _ = call(url, "/rerank", {"query": QUERY, "texts": DOCS})
    assert status == 200 and [r["index"] for r in body] == best_first(expected.scores)
    assert all(set(r) == {"index", "score"} for r in body)
    assert [r["score"] for r in body] == pytest.approx(
        [float(expected.scores[r["index"]]) for r in body], abs=BATCH_ROUNDING)
    raw = call(url, "/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": True,
                                "return_text": True})[1]
    assert [r["score"] for r in raw] == pytest.approx(
        [float(expected.logits[r["index"]]) for r in raw], abs=BATCH_ROUNDING)
    assert [r["text"] for r in raw] == [DOCS[r["index"]] for r in raw]


def test_tei_raw_scores_of_qwen3_are_its_probabilities(qwen3) -> None:
    url, engine = qwen3
    body = call(url, "/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": True})[1]
    expected = engine.rerank(QUERY, DOCS).scores
    assert [r["score"] for r in body] == pytest.approx(
        [float(expected[r["index"]]) for r in body], abs=BATCH_ROUNDING)


@pytest.mark.parametrize("path", ["/score", "/v1/score"])
def test_vllm_score_with_a_reranker_gives_its_scores(xlmr, path: str) -> None:
    url, engine = xlmr
    status, body, _ = call(url, path, {"text_1": QUERY, "text_2": DOCS})
    assert status == 200 and [d["index"] for d in body["data"]] == list(range(len(DOCS)))
    assert [d["score"] for d in body["data"]] == pytest.approx(
        engine.rerank(QUERY, DOCS).scores.tolist(), abs=BATCH_ROUNDING)
    pairwise = call(url, path, {"text_1": ["the sea", "bread"],
                                "text_2": ["deep water", "flour"]})[1]
    assert [d["score"] for d in pairwise["data"]] == pytest.approx(
        [float(engine.rerank("the sea", ["deep water"]).scores[0]),
         float(engine.rerank("bread", ["flour"]).scores[0])], abs=BATCH_ROUNDING)
    assert pairwise["usage"]["total_tokens"] == sum(
        len(engine.prepare_pair(q, d)) for q, d in [("the sea", "deep water"),
                                                    ("bread", "flour")])


def test_instruction_is_passed_to_qwen3_and_refused_by_a_cross_encoder(qwen3, xlmr) -> None:
    url, engine = qwen3
    task = "Given a question, find passages about cooking"
    body = call(url, "/v1/rerank", {"query": QUERY, "documents": DOCS, "instruction": task})[1]
    expected = engine.rerank(QUERY, DOCS, RerankOptions(instruction=task)).scores
    assert [r["relevance_score"] for r in body["results"]] == pytest.approx(
        [float(expected[r["index"]]) for r in body["results"]], abs=BATCH_ROUNDING)
    assert expected.tolist() != pytest.approx(engine.rerank(QUERY, DOCS).scores.tolist(),
                                              abs=BATCH_ROUNDING)
    status, body, _ = call(xlmr[0], "/v1/rerank", {"query": QUERY, "documents": DOCS,
                                                   "instruction": task})
    assert status == 400 and body["error"]["param"] == "instruction"


def test_max_tokens_per_doc_cuts_each_document(xlmr) -> None:
    url, engine = xlmr
    around = len(engine.prepare_pair(QUERY, ""))  # the query and the prompt around it
    body = call(url, "/v2/rerank", {"query": QUERY, "documents": [LONG, "short"],
                                    "max_tokens_per_doc": 7})[1]
    assert body["usage"]["total_tokens"] == (around + 7) + len(
        engine.prepare_pair(QUERY, "short"))


def test_32_concurrent_rerank_requests_score_as_serial_ones(qwen3) -> None:
    """Each request gets its own documents' scores whatever it shares the workers' batches
    with: as when sent alone, up to the float rounding that batch-mates bring (within 1e-5,
    far below the gap between two requests' scores)."""
    url, _ = qwen3
    bodies = [{"query": f"{QUERY} {k}",
               "documents": [f"{DOCS[(i + k) % len(DOCS)]} number {k * 20 + i}"
                             for i in range(20)]} for k in range(32)]
    serial = [call(url, "/v1/rerank", b) for b in bodies]
    with ThreadPoolExecutor(32) as pool:
        concurrent = list(pool.map(lambda b: call(url, "/v1/rerank", b), bodies))

    def by_index(body: dict) -> list[float]:
        scores = {r["index"]: r["relevance_score"] for r in body["results"]}
        assert sorted(scores) == list(range(20))
        return [scores[i] for i in range(20)]

    alone = [by_index(body) for _, body, _ in serial]
    for k, (status, body, _) in enumerate(concurrent):
        assert status == 200, body
        assert by_index(body) == pytest.approx(alone[k], abs=1e-5)
        scores = [r["relevance_score"] for r in body["results"]]
        assert scores == sorted(scores, reverse=True)
    gaps = [max(abs(a - b) for a, b in zip(alone[k], alone[k + 1], strict=True))
            for k in range(31)]
    assert min(gaps) > 1e-2  # a request answered with another's scores would be caught


def assert_error(status: int, body: dict, shape: str, param: str | None = None) -> str:
    """A 400 in the dialect's shape; its message."""
    assert status == 400, body
    if shape == "cohere":
        assert set(body) == {"id", "message"} and body["message"]
        return body["message"]
    if shape == "tei":
        assert set(body) == {"error", "error_type"} and body["error_type"] == "Validation"
        return body["error"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param, error
    return error["message"]


# (path, the documents' field, the error shape); top_n and truncation differ per dialect.
DIALECTS = [("/v1/rerank", "documents", "openai"), ("/v2/rerank", "documents", "cohere"),
            ("/rerank", "documents", "openai"), ("/rerank", "texts", "tei")]
IDS = [f"{path}-{field}" for path, field, _ in DIALECTS]


@pytest.mark.parametrize(("path", "field", "shape"), DIALECTS, ids=IDS)
def test_bad_requests_are_400s_in_the_dialects_shape_and_the_server_keeps_serving(
        xlmr, path: str, field: str, shape: str) -> None:
    url, _ = xlmr
    bad = [({"query": QUERY, field: []}, field), ({field: DOCS}, "query"),
           ({"query": "", field: DOCS}, "query"),
           ({"query": QUERY, field: [LONG], "truncate": False}, "documents")]
    if field == "documents":
        bad += [({"query": QUERY, field: DOCS, "top_n": 0}, "top_n"),
                ({"query": QUERY, field: DOCS, "top_n": -3}, "top_n"),
                ({"query": QUERY, field: [LONG], "truncate": "none"}, "documents"),
                ({"query": QUERY, field: [LONG], "truncation": False}, "documents")]
    for request, param in bad:
        status, body, _ = call(url, path, request)
        message = assert_error(status, body, shape, param)
        assert param in message or "long" in message or "at most" in message, message
    status, body, _ = call(url, path, {"query": QUERY, field: DOCS})
    assert status == 200, body


def test_vllm_score_errors_are_openai_shaped(xlmr) -> None:
    url, _ = xlmr
    for request, param in [({"text_1": QUERY, "text_2": []}, "text_2"),
                           ({"text_2": DOCS}, "text_1"),
                           ({"text_1": QUERY, "text_2": DOCS, "dimensions": 8}, "dimensions")]:
        assert_error(*call(url, "/score", request)[:2], "openai", param)
    assert call(url, "/score", {"text_1": QUERY, "text_2": DOCS})[0] == 200


def test_an_embedding_model_asked_to_rerank_is_a_400_asking_for_a_reranker(
        embedder_and_reranker) -> None:
    url, _ = embedder_and_reranker
    for path, body, shape in [
            ("/v1/rerank", {"model": "embedder", "query": QUERY, "documents": DOCS}, "openai"),
            ("/v2/rerank", {"model": "embedder", "query": QUERY, "documents": DOCS}, "cohere"),
            ("/rerank", {"model": "embedder", "query": QUERY, "texts": DOCS}, "tei")]:
        status, answer, _ = call(url, path, body)
        message = assert_error(status, answer, shape, "model")
        assert "embedding model" in message and "reranker" in message
        if shape == "openai":
            assert answer["error"]["code"] == "wrong_model_kind"


def test_a_reranker_asked_for_embeddings_is_a_400_asking_for_an_embedding_model(
        embedder_and_reranker) -> None:
    url, _ = embedder_and_reranker
    for path, body, shape in [("/v1/embeddings", {"model": "reranker", "input": "a"}, "openai"),
                              ("/embeddings", {"model": "reranker", "input": "a"}, "openai"),
                              ("/v2/embed", {"model": "reranker", "texts": ["a"]}, "cohere"),
                              ("/api/embed", {"model": "reranker", "input": "a"}, "ollama"),
                              ("/v1/similarity", {"model": "reranker", "query": "a",
                                                  "documents": ["b"]}, "openai")]:
        status, answer, _ = call(url, path, body)
        assert status == 400, (path, answer)
        message = answer["error"] if shape == "ollama" else answer.get("message") or \
            answer["error"]["message"]
        assert "reranker" in message and "embedding model" in message, (path, message)
        if shape == "openai":
            assert answer["error"]["code"] == "wrong_model_kind"
            assert answer["error"]["param"] == "model"
    assert call(url, "/v1/embeddings", {"input": "a"})[0] == 200


def test_a_rerank_request_without_a_model_finds_the_installed_reranker(
        embedder_and_reranker) -> None:
    url, registry = embedder_and_reranker
    status, body, _ = call(url, "/rerank", {"query": QUERY, "texts": DOCS})
    assert status == 200 and len(body) == len(DOCS)
    expected = registry.get("reranker").rerank(QUERY, DOCS).scores
    assert [r["index"] for r in body] == best_first(expected)
    assert registry.default_id == "embedder"  # the default is unchanged


def test_models_list_says_which_kind_each_model_is(embedder_and_reranker) -> None:
    url, _ = embedder_and_reranker
    call(url, "/v1/rerank", {"model": "reranker", "query": QUERY, "documents": DOCS})
    cards = {m["id"]: m for m in call(url, "/v1/models")[1]["data"]}
    assert cards["embedder"]["kind"] == "embedding"
    assert cards["reranker"]["kind"] == "reranker" and cards["reranker"]["loaded"]
    assert cards["reranker"]["dimensions"] is None
