"""The HTTP API through real waitress servers on 127.0.0.1 and real clients."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import numpy as np
import pytest

from localembed.config.settings import ServerConfig
from tests.fixtures.server import call, running


@pytest.fixture(scope="module")
def starter_server(starter_gguf):
    with running(ServerConfig(), starter_gguf("f16")) as (url, registry):
        yield url, registry


@pytest.fixture(scope="module")
def gemma_server(synthetic):
    with running(ServerConfig(), synthetic("gemma-embedding")) as (url, registry):
        yield url, registry


def test_models_show_the_starters_own_input_limit(starter_server) -> None:
    url, _ = starter_server
    status, card, _ = call(url, "/v1/models/all-minilm-l6-v2")
    assert status == 200 and card["loaded"]
    assert card["max_seq_length"] == card["max_tokens"] == 256
    assert card["context_length"] == 512


# -- the real OpenAI SDK -------------------------------------------------------------------------


def test_openai_sdk_default_call_is_base64_and_exact(starter_server) -> None:
    from openai import OpenAI

    url, registry = starter_server
    client = OpenAI(base_url=url + "/v1", api_key="unused")
    texts = ["The quick brown fox", "jumps over the lazy dog", ""]
    expected = registry.default.embed(texts).vectors
    default = client.embeddings.create(model="all-minilm-l6-v2", input=texts)
    as_float = client.embeddings.create(model="default", input=texts, encoding_format="float")
    got = np.array([d.embedding for d in default.data], dtype=np.float32)
    got_float = np.array([d.embedding for d in as_float.data], dtype=np.float32)
    assert np.array_equal(got, expected)
    assert np.array_equal(got_float, expected)
    assert [d.index for d in default.data] == [0, 1, 2]
    assert default.usage.prompt_tokens == default.usage.total_tokens > 0
    # OpenAI model names fall back to the default model.
    single = client.embeddings.create(model="text-embedding-3-small", input="The quick brown fox")
    assert np.array_equal(np.array(single.data[0].embedding, dtype=np.float32),
                          registry.default.embed("The quick brown fox").vectors[0])


def test_openai_sdk_base64_is_little_endian_float32(starter_server) -> None:
    url, registry = starter_server
    status, body, _ = call(url, "/v1/embeddings", {"input": "hello", "encoding_format": "base64"})
    assert status == 200
    vector = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    assert np.array_equal(vector, registry.default.embed("hello").vectors[0])


def test_openai_sdk_dimensions(gemma_server) -> None:
    from openai import OpenAI

    url, registry = gemma_server
    client = OpenAI(base_url=url + "/v1", api_key="unused")
    texts = ["the sea", "the world of water"]
    for dims in (64, 32):
        response = client.embeddings.create(model="default", input=texts, dimensions=dims)
        got = np.array([d.embedding for d in response.data], dtype=np.float32)
        expected = registry.default.embed(texts, dimensions=dims).vectors
        assert got.shape == (2, dims) and np.array_equal(got, expected)
    with pytest.raises(Exception) as info:
        client.embeddings.create(model="default", input="x", dimensions=50)
    assert "dimensions" in str(info.value)


def test_extensions_task_dtype_truncate(gemma_server) -> None:
    url, registry = gemma_server
    engine = registry.default
    status, body, _ = call(url, "/v1/embeddings", {"input": ["a cat"], "task": "query"})
    assert status == 200
    assert np.array_equal(np.array(body["data"][0]["embedding"], dtype=np.float32),
                          engine.embed(["a cat"], task="query").vectors[0])
    status, body, _ = call(url, "/v1/embeddings", {"input": "a cat", "output_dtype": "int8"})
    assert all(isinstance(x, int) and -127 <= x <= 127 for x in body["data"][0]["embedding"])
    status, body, _ = call(url, "/v1/embeddings", {"input": "a cat", "output_dtype": "ubinary"})
    assert len(body["data"][0]["embedding"]) == 96 // 8
    status, body, _ = call(url, "/v1/embeddings",
                           {"input": "word " * 3000, "truncate": "none"})
    assert status == 400 and body["error"]["code"] == "context_length_exceeded"
    status, body, _ = call(url, "/v1/embeddings", {"input": "word " * 3000, "truncate": "start"})
    assert status == 200 and body["usage"]["prompt_tokens"] == engine.max_tokens


# -- errors --------------------------------------------------------------------------------------

BAD_REQUESTS = [
    ("malformed json", "/v1/embeddings", b"{bad json", 400, None, "invalid_json"),
    ("not an object", "/v1/embeddings", b"[1, 2]", 400, None, "invalid_json"),
    ("empty body", "/v1/embeddings", b"", 400, None, "invalid_json"),
    ("input missing", "/v1/embeddings", {"model": "default"}, 400, "input", None),
    ("input wrong type", "/v1/embeddings", {"input": 5}, 400, "input", "invalid_type"),
    ("input mixed", "/v1/embeddings", {"input": ["a", 1]}, 400, "input", "invalid_type"),
    ("empty input list", "/v1/embeddings", {"input": []}, 400, "input", "invalid_value"),
    ("too many inputs", "/v1/embeddings", {"input": ["a"] * 2049}, 400, "input",
     "too_many_inputs"),
    ("unknown model", "/v1/embeddings", {"input": "a", "model": "nope"}, 404, "model",
     "model_not_found"),
    ("path in model", "/v1/embeddings", {"input": "a", "model": "../../etc/passwd"}, 404,
     "model", "model_not_found"),
    ("too long", "/v1/embeddings", {"input": "word " * 1000, "truncate": "none"}, 400, "input",
     "context_length_exceeded"),
    ("bad dimensions", "/v1/embeddings", {"input": "a", "dimensions": 100}, 400, "dimensions",
     None),
    ("dimensions not int", "/v1/embeddings", {"input": "a", "dimensions": "64"}, 400,
     "dimensions", "invalid_type"),
    ("dimensions bool", "/v1/embeddings", {"input": "a", "dimensions": True}, 400,
     "dimensions", "invalid_type"),
    ("bad encoding", "/v1/embeddings", {"input": "a", "encoding_format": "hex"}, 400,
     "encoding_format", "invalid_value"),
    ("bad dtype", "/v1/embeddings", {"input": "a", "output_dtype": "int4"}, 400,
     "output_dtype", "invalid_value"),
    ("unknown task", "/v1/embeddings", {"input": "a", "task": "poetry"}, 400, "task", None),
    ("bad truncate", "/v1/embeddings", {"input": "a", "truncate": "middle"}, 400, "truncate",
     None),
    ("bad token id", "/v1/embeddings", {"input": [[-1]]}, 400, "input", "invalid_type"),
    ("similarity no query", "/v1/similarity", {"documents": ["a"]}, 400, "query", None),
    ("tokenize bad", "/tokenize", {"content": 3}, 400, "content", "invalid_type"),
]


@pytest.mark.parametrize("name,path,body,status,param,code", BAD_REQUESTS,
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_openai_errors(starter_server, name: str, path: str, body: object,
                                        status: int, param: str | None,
                                        code: str | None) -> None:
    url, _ = starter_server
    raw = body if isinstance(body, bytes) else None
    got_status, got, _ = call(url, path, None if raw is not None else body, method="POST",
                              raw=raw)
    assert got_status == status, got
    error = got["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["type"] == ("invalid_request_error" if status in (400, 404) else error["type"])
    assert error["param"] == param
    if code:
        assert error["code"] == code
    # and the server keeps serving
    assert call(url, "/v1/embeddings", {"input": "still here"})[0] == 200


def test_method_route_and_size_errors_are_json(synthetic) -> None:
    config = ServerConfig(max_body_bytes=64 * 1024)
    with running(config, synthetic("bert")) as (url, _):
        status, body, headers = call(url, "/v1/embeddings", method="GET")
        assert status == 405 and body["error"]["code"] == "method_not_allowed"
        assert "POST" in headers.get("Allow", "")
        status, body, _ = call(url, "/v1/nothing-here", {"input": "a"})
        assert status == 404 and body["error"]["code"] == "not_found"
        status, body, _ = call(url, "/v1/embeddings", {"input": "word " * 40000})
        assert status == 413 and body["error"]["code"] == "request_too_large"
        status, body, _ = call(url, "/api/embed", {"input": "word " * 40000})
        assert status == 413 and isinstance(body["error"], str)
        assert call(url, "/v1/embeddings", {"input": "fine"})[0] == 200


def test_ollama_routes_answer_in_ollama_shape(gemma_server) -> None:
    url, registry = gemma_server
    status, body, _ = call(url, "/api/embed", {"model": "default", "input": ["a", "b"]})
    assert status == 200 and set(body) >= {"model", "embeddings", "total_duration",
                                            "load_duration", "prompt_eval_count"}
    assert np.array_equal(np.array(body["embeddings"], dtype=np.float32),
                          registry.default.embed(["a", "b"]).vectors)
    status, body, _ = call(url, "/api/embed", {"input": "a", "dimensions": 32})
    assert len(body["embeddings"][0]) == 32
    status, body, _ = call(url, "/api/embed", {"input": "word " * 3000, "truncate": False})
    assert status == 400 and isinstance(body["error"], str)
    status, body, _ = call(url, "/api/embed", {"input": "a", "model": "missing:latest"})
    assert status == 404 and isinstance(body["error"], str)
    status, body, _ = call(url, "/api/embed", {"input": []})
    assert status == 400 and isinstance(body["error"], str)
    status, body, _ = call(url, "/api/embed", raw=b"{nope", method="POST")
    assert status == 400 and isinstance(body["error"], str)
    status, body, _ = call(url, "/api/embeddings", {"prompt": "a"})
    assert status == 200 and len(body["embedding"]) == 96
    status, body, _ = call(url, "/api/tags")
    assert status == 200 and isinstance(body["models"], list)
    status, body, _ = call(url, "/api/nothing")
    assert status == 404 and isinstance(body["error"], str)


# -- token ids -----------------------------------------------------------------------------------


def test_token_ids_without_a_decoder_say_what_to_do(starter_gguf) -> None:
    with running(ServerConfig(), starter_gguf("f16"), decoder=None) as (url, _):
        status, body, _ = call(url, "/v1/embeddings", {"input": [[9906, 1917]]})
        assert status == 400 and body["error"]["code"] == "token_ids_unsupported"
        assert "check_embedding_ctx_length=False" in body["error"]["message"]


def test_token_ids_are_decoded_with_tiktoken(starter_gguf) -> None:
    """LangChain's path: ids from a tiktoken encoding are decoded back to text by tiktoken."""
    import tiktoken

    # A real tiktoken Encoding (byte-level ranks plus a few merges); cl100k_base itself cannot
    # be downloaded here, and the server only calls .decode() on whichever encoding it has.
    ranks = {bytes([i]): i for i in range(256)}
    for word in (b" the", b" sea", b"th", b"he"):
        ranks[word] = len(ranks)
    encoding = tiktoken.Encoding(name="test_bpe", pat_str=r"\s?\w+|\s?[^\w\s]+|\s+",
                                 mergeable_ranks=ranks, special_tokens={})
    texts = ["the sea is deep", "hello, world", ""]
    with running(ServerConfig(), starter_gguf("f16"), decoder=encoding) as (url, registry):
        ids = [encoding.encode(t) for t in texts]
        status, body, _ = call(url, "/v1/embeddings", {"input": ids})
        assert status == 200, body
        got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
        assert np.array_equal(got, registry.default.embed(texts).vectors)
        status, body, _ = call(url, "/v1/embeddings", {"input": ids[0]})  # one id array
        assert np.array_equal(np.array(body["data"][0]["embedding"], dtype=np.float32),
                              registry.default.embed(texts[:1]).vectors[0])


def test_token_ids_as_the_models_own(starter_gguf) -> None:
    with running(ServerConfig(token_ids="model"), starter_gguf("f16")) as (url, registry):
        status, body, _ = call(url, "/tokenize", {"content": "the sea is deep"})
        tokens = body["tokens"]
        assert status == 200 and tokens == registry.default.prepare("the sea is deep")
        inner = tokens[1:-1]  # the engine adds [CLS]/[SEP] itself
        status, body, _ = call(url, "/v1/embeddings", {"input": [inner]})
        assert status == 200
        assert np.array_equal(np.array(body["data"][0]["embedding"], dtype=np.float32),
                              registry.default.embed(["the sea is deep"]).vectors[0])
        status, body, _ = call(url, "/v1/embeddings", {"input": [[10**8]]})
        assert status == 400 and "vocabulary" in body["error"]["message"]


# -- other routes --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def starter_client():
    """The API over the shipped starter model, through flask's test client (no socket)."""
    from localembed.models.starter import starter_path
    from localembed.server import create_app
    from localembed.service.registry import Registry

    registry = Registry(str(starter_path()))
    yield create_app(ServerConfig(), registry).test_client()
    registry.close()


def test_models_list_the_loaded_starter_with_its_shape(starter_client) -> None:
    card = next(m for m in starter_client.get("/v1/models").get_json()["data"]
                if m["id"] == "all-minilm-l6-v2")
    assert card["dimensions"] == 384 and card["context_length"] == 512 and card["loaded"]



def test_a_loaded_model_reports_the_memory_it_holds(starter_client) -> None:
    card = starter_client.get("/v1/models/all-minilm-l6-v2").get_json()
    # Its weights (45 MB of f16, the embedding table only in part) are paged in at load,
    # plus llama.cpp's 512-token buffers: tens of megabytes, not hundreds.
    assert 10 << 20 < card["rss_bytes"] < card["size_bytes"] + (200 << 20)

def test_one_model_by_id_and_an_unknown_id_is_a_404(starter_client) -> None:
    assert starter_client.get("/v1/models/all-minilm-l6-v2").get_json()["id"] == \
        "all-minilm-l6-v2"
    assert starter_client.get("/v1/models/nope").status_code == 404


def test_health_reports_the_backend(starter_client) -> None:
    body = starter_client.get("/health").get_json()
    assert body["status"] == "ok" and body["backend"] == "cpu"


def test_similarity_ranks_the_relevant_document_first(starter_client) -> None:
    body = starter_client.post("/v1/similarity", json={
        "query": "how do I cook pasta",
        "documents": ["The stock market fell", "Boil the spaghetti in salted water"]}).get_json()
    assert [d["index"] for d in body["data"]] == [1, 0]
    assert body["data"][0]["score"] > body["data"][1]["score"]


def test_tokenize_counts_every_token_of_every_text(starter_client) -> None:
    body = starter_client.post("/tokenize", json={"content": ["a b", "c"]}).get_json()
    assert len(body["tokens"]) == 2 and body["count"] == 4 + 3


def test_metrics_count_requests_by_route_and_status(starter_client) -> None:
    starter_client.post("/v1/similarity", json={"query": "q", "documents": ["d"]})
    text = starter_client.get("/metrics").get_data(as_text=True)
    assert 'localembed_requests_total{route="/v1/similarity",status="200"}' in text
    assert "localembed_request_duration_seconds_bucket" in text
    assert "localembed_queue_depth 0" in text and "localembed_tokens_total" in text



def test_metrics_show_how_many_sequences_and_tokens_each_decode_packed(starter_client) -> None:
    import re
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> int:
        return starter_client.post("/v1/embeddings", json={"input": f"text {i}"}).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(one, range(64))) == {200}
    text = starter_client.get("/metrics").get_data(as_text=True)
    model = 'model="all-minilm-l6-v2"'
    calls = int(re.search(rf"localembed_decode_calls_total{{{model}}} (\d+)", text)[1])
    count = int(re.search(rf"localembed_decode_sequences_count{{{model}}} (\d+)", text)[1])
    total = int(re.search(rf"localembed_decode_sequences_sum{{{model}}} (\d+)", text)[1])
    alone = int(re.search(rf'localembed_decode_sequences_bucket{{{model},le="1"}} (\d+)',
                          text)[1])
    assert count == calls and total >= 64
    assert alone < count  # some decodes carried several requests' texts
    assert f'localembed_decode_tokens_bucket{{{model},le="+Inf"}} {calls}' in text

# -- security ------------------------------------------------------------------------------------


def test_foreign_host_and_origin_are_refused(starter_server) -> None:
    url, _ = starter_server
    status, body, _ = call(url, "/v1/models", headers={"Host": "evil.example:8642"})
    assert status == 403 and body["error"]["code"] == "host_not_allowed"
    status, body, _ = call(url, "/v1/embeddings", {"input": "a"},
                           headers={"Origin": "https://evil.example"})
    assert status == 403 and body["error"]["code"] == "origin_not_allowed"
    for host in ("localhost:1", "127.0.0.1", "[::1]:8642"):
        assert call(url, "/health", headers={"Host": host})[0] == 200
    status, _, headers = call(url, "/v1/models", headers={"Origin": "http://localhost:5173"})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    status, _, headers = call(url, "/v1/embeddings", method="OPTIONS",
                              headers={"Origin": "http://127.0.0.1:3000",
                                       "Access-Control-Request-Method": "POST"})
    assert status == 204 and "POST" in headers["Access-Control-Allow-Methods"]


def test_configured_host_and_origin_are_allowed(synthetic) -> None:
    config = ServerConfig(allowed_hosts=("embed.lan",), cors_origins=("https://app.example",))
    with running(config, synthetic("bert")) as (url, _):
        assert call(url, "/health", headers={"Host": "embed.lan:8642"})[0] == 200
        status, _, headers = call(url, "/v1/models", headers={"Origin": "https://app.example"})
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert call(url, "/health", headers={"Host": "other.lan"})[0] == 403


def test_api_key_is_enforced(synthetic) -> None:
    with running(ServerConfig(api_key="s3cret"), synthetic("bert")) as (url, _):
        assert call(url, "/health")[0] == 200  # liveness stays open
        status, body, _ = call(url, "/v1/embeddings", {"input": "a"})
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        assert call(url, "/v1/embeddings", {"input": "a"},
                    headers={"Authorization": "Bearer wrong"})[0] == 401
        assert call(url, "/api/tags")[0] == 401
        assert call(url, "/v1/embeddings", {"input": "a"},
                    headers={"Authorization": "Bearer s3cret"})[0] == 200
        from openai import OpenAI

        client = OpenAI(base_url=url + "/v1", api_key="s3cret")
        assert len(client.embeddings.create(model="default", input="a").data) == 1


# -- concurrency ---------------------------------------------------------------------------------


def test_32_concurrent_clients_get_sequential_results(starter_gguf) -> None:
    texts = [f"client text number {i} about the sea and the {w}" for i, w in
             enumerate(["river", "mountain", "city", "forest"] * 10)]
    with running(ServerConfig(), starter_gguf("f16")) as (url, registry):
        expected = {t: registry.default.embed(t).vectors[0] for t in texts}
        errors: list[object] = []
        worst = [0.0]

        def client(c: int) -> None:
            for r in range(20):
                batch = [texts[(c * 20 + r + k) % len(texts)] for k in range(1 + r % 3)]
                status, body, _ = call(url, "/v1/embeddings", {"input": batch})
                if status != 200:
                    errors.append(body)
                    continue
                for text, item in zip(batch, body["data"], strict=True):
                    got = np.array(item["embedding"], dtype=np.float32)
                    worst[0] = max(worst[0], float(np.abs(got - expected[text]).max()))

        threads = [threading.Thread(target=client, args=(c,)) for c in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        decodes = registry.default.batcher.stats.decode_calls
    assert errors == []
    # Batched with other clients' texts, a vector may move by float rounding only (measured
    # ~1e-4 here: CPU kernels tile differently per batch size), never by a wrong pairing.
    assert worst[0] <= 2e-4
    print(f"640 requests, max deviation {worst[0]:.2e}, {decodes} decode calls")


def test_broken_installed_model_and_token_limit(synthetic, app_home: Path) -> None:
    models = app_home / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / "broken.gguf").write_bytes(b"GGUF" + b"\x00" * 64)
    good = synthetic("bert")
    (models / "tiny-bert.gguf").write_bytes(good.read_bytes())
    with running(ServerConfig(max_request_tokens=50), good) as (url, _):
        status, body, _ = call(url, "/v1/embeddings", {"input": "a", "model": "broken"})
        assert status == 500 and body["error"]["code"] == "model_load_failed"
        assert "broken.gguf" in body["error"]["message"]
        status, body, _ = call(url, "/v1/embeddings", {"input": ["word " * 30] * 2})
        assert status == 400 and body["error"]["code"] == "too_many_tokens"
        # Another installed model loads on first use and answers under its own id.
        status, body, _ = call(url, "/v1/embeddings", {"input": "a", "model": "tiny-bert"})
        assert status == 200 and body["model"] == "tiny-bert"
        ids = [m["id"] for m in call(url, "/v1/models")[1]["data"]]
        assert {"tiny-bert", "broken"} <= set(ids)
