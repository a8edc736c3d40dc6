"""The request pipeline's behaviours that cross dialects: token ids that round-trip,
Ollama's per-request keep_alive and options, the in-process API raising core errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from localembed.config.settings import ServerConfig
from localembed.testing.synthetic import ARCHITECTURES


def vector(client, body: dict) -> np.ndarray:  # type: ignore[no-untyped-def]
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 200, response.get_json()
    return np.array(response.get_json()["data"][0]["embedding"], dtype=np.float64)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_ids_from_tokenize_sent_back_give_the_texts_own_vector(app_factory, arch: str) -> None:
    client = app_factory(ServerConfig(token_ids="model"), arch)
    text = "the sea is deep and full of fish"
    tokens = client.post("/tokenize", json={"content": text}).get_json()["tokens"]
    from_ids = vector(client, {"input": [tokens]})
    from_text = vector(client, {"input": text})
    assert from_ids @ from_text >= 0.99999


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_special_tokens_are_never_doubled(app_factory, arch: str) -> None:
    client = app_factory(ServerConfig(token_ids="model"), arch)
    tokens = client.post("/tokenize", json={"content": "hello there"}).get_json()["tokens"]
    response = client.post("/v1/embeddings", json={"input": [tokens]}).get_json()
    assert response["usage"]["prompt_tokens"] == len(tokens)


def test_ollama_keep_alive_zero_unloads_the_model_after_the_request(app_factory,
                                                                   synthetic) -> None:
    client = app_factory(ServerConfig(), "bert")
    other = str(synthetic("gemma-embedding"))
    registry = client.application.extensions["localembed"].registry
    import shutil

    from localembed.config.paths import models_dir

    shutil.copy(other, models_dir() / "other.gguf")
    response = client.post("/api/embed", json={"model": "other", "input": "a",
                                               "keep_alive": 0})
    assert response.status_code == 200
    assert not registry.is_loaded("other")


def test_ollama_keep_alive_duration_unloads_after_it_expires(app_factory, synthetic) -> None:
    import shutil

    from localembed.config.paths import models_dir

    client = app_factory(ServerConfig(), "bert")
    registry = client.application.extensions["localembed"].registry
    shutil.copy(synthetic("gemma-embedding"), models_dir() / "brief.gguf")
    assert client.post("/api/embed", json={"model": "brief", "input": "a",
                                           "keep_alive": "1s"}).status_code == 200
    assert registry.is_loaded("brief")
    deadline = time.monotonic() + 10
    while registry.is_loaded("brief") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not registry.is_loaded("brief")


def test_ollama_keep_alive_must_be_a_duration(client) -> None:
    response = client.post("/api/embed", json={"input": "a", "keep_alive": "soon"})
    assert response.status_code == 400 and "keep_alive" in response.get_json()["error"]


def test_ollama_num_ctx_limits_the_input_length(client) -> None:
    long = "word " * 300
    short = client.post("/api/embed", json={"input": long, "options": {"num_ctx": 16}})
    assert short.get_json()["prompt_eval_count"] == 16
    refused = client.post("/api/embed", json={"input": long, "truncate": False,
                                              "options": {"num_ctx": 16}})
    assert refused.status_code == 400


def test_ollama_options_that_need_a_reload_are_refused_by_name(client) -> None:
    response = client.post("/api/embed", json={"input": "a", "options": {"num_thread": 2}})
    assert response.status_code == 400 and "num_thread" in response.get_json()["error"]


def test_ollama_generation_options_are_accepted_and_ignored(client) -> None:
    response = client.post("/api/embed", json={"input": "a", "options": {"temperature": 0.2}})
    assert response.status_code == 200


def test_the_in_process_api_raises_core_errors_not_http_errors(synthetic) -> None:
    from localembed import LLM
    from localembed.engine import InputError

    with LLM(str(synthetic("bert"))) as llm, pytest.raises(InputError) as info:
        llm.embed("x", output_dtype="int4")
    assert info.value.param == "output_dtype"
    assert type(info.value).__module__ == "localembed.engine.core"


def test_the_similarity_matrix_is_the_cosine_of_every_pair(client) -> None:
    texts = ["the sea", "a cat", "the ocean"]
    body = client.post("/v1/similarity/matrix", json={"texts": texts}).get_json()
    vectors = np.array([d["embedding"] for d in client.post(
        "/v1/embeddings", json={"input": texts}).get_json()["data"]])
    matrix = np.array(body["matrix"])
    assert matrix.shape == (3, 3) and np.allclose(matrix, vectors @ vectors.T, atol=1e-5)
    assert body["usage"]["total_tokens"] > 0
