"""Other services' clients against localembed: real SDKs (Mistral, Cohere, Aleph Alpha), vLLM's
extensions over plain HTTP, and the in-process LLM API. Every vector is checked against the
engine's own."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from localembed.config.settings import ServerConfig
from localembed.dialects.encoding import from_bfloat16_bits
from localembed.engine import EmbedOptions
from tests.fixtures.server import call, running


@pytest.fixture(scope="module")
def gemma(synthetic):
    with running(ServerConfig(), synthetic("gemma-embedding")) as (url, registry):
        yield url, registry.default


def test_mistral_sdk_with_output_dtype_and_dimension(gemma) -> None:
    from mistralai.client import Mistral

    url, engine = gemma
    client = Mistral(api_key="unused", server_url=url)
    texts = ["the sea is deep", "a cat on the mat"]
    response = client.embeddings.create(model="default", inputs=texts)
    got = np.array([d.embedding for d in response.data], dtype=np.float32)
    assert np.array_equal(got, engine.embed(texts).vectors)
    assert response.usage.completion_tokens == 0 and response.usage.prompt_tokens > 0
    assert response.id and response.object == "list" and response.model == engine.id
    small = engine.embed(texts, dimensions=32).vectors
    for dtype, expected in [
        ("int8", np.clip(np.rint(small * 127), -127, 127)),
        ("uint8", np.clip(np.rint((small + 1) * 127.5), 0, 255)),
        ("binary", np.packbits(small > 0, axis=1).astype(np.int16) - 128),
        ("ubinary", np.packbits(small > 0, axis=1)),
    ]:
        response = client.embeddings.create(model="default", inputs=texts, output_dtype=dtype,
                                             output_dimension=32)
        got = np.array([d.embedding for d in response.data])
        assert np.array_equal(got, expected), dtype


def test_binary_bit_order_is_most_significant_first() -> None:
    from localembed.dialects.encoding import quantize

    v = np.array([[1, -1, -1, -1, -1, -1, -1, 1, -1, 1, -1, -1, -1, -1, -1, -1]], np.float32)
    assert quantize(v, "ubinary").tolist() == [[0b10000001, 0b01000000]]
    assert quantize(v, "binary").tolist() == [[0b10000001 - 128, 0b01000000 - 128]]


def test_cohere_sdk_embed_v2(gemma) -> None:
    import cohere

    url, engine = gemma
    client = cohere.ClientV2(api_key="unused", base_url=url)
    texts = ["how deep is the sea", "where do cats sleep"]
    response = client.embed(model="default", texts=texts, input_type="search_query",
                            embedding_types=["float", "int8", "ubinary", "base64"],
                            output_dimension=64)
    expected = engine.embed(texts, task="query", dimensions=64).vectors
    assert np.array_equal(np.array(response.embeddings.float_, dtype=np.float32), expected)
    assert np.array_equal(np.array(response.embeddings.int8),
                          np.clip(np.rint(expected * 127), -127, 127))
    assert np.array_equal(np.array(response.embeddings.ubinary),
                          np.packbits(expected > 0, axis=1))
    decoded = np.stack([np.frombuffer(base64.b64decode(b), "<f4")
                        for b in response.embeddings.base64])
    assert np.array_equal(decoded, expected)
    assert response.texts == texts and response.meta.billed_units.input_tokens > 0
    docs = client.embed(model="default", inputs=[{"content": [{"type": "text", "text": t}]}
                                                 for t in texts],
                        input_type="search_document", embedding_types=["float"])
    assert np.array_equal(np.array(docs.embeddings.float_, dtype=np.float32),
                          engine.embed(texts, task="document").vectors)


def test_aleph_alpha_client_openai_compatible_embeddings(gemma) -> None:
    from aleph_alpha_client import Client, EmbeddingV2Request

    url, engine = gemma
    client = Client(token="unused", host=url)
    texts = ["first text", "second text"]
    response = client.embeddings(EmbeddingV2Request(input=texts, dimensions=32), model="default")
    got = np.array([d.embedding for d in response.data], dtype=np.float32)
    assert np.array_equal(got, engine.embed(texts, dimensions=32).vectors)
    assert response.usage.total_tokens > 0
    assert call(url, "/models")[0] == 200  # bare paths, as such clients are configured


def test_vllm_truncation_activation_and_special_tokens(gemma) -> None:
    url, engine = gemma
    long_text = "the world of water and the sea " * 50
    for side, truncate in (("right", "end"), ("left", "start")):
        body = call(url, "/v1/embeddings", {"input": long_text, "truncate_prompt_tokens": 20,
                                            "truncation_side": side})[1]
        assert body["usage"]["prompt_tokens"] == 20
        expected = engine.embed(long_text, EmbedOptions(max_tokens=20, truncate=truncate))
        assert np.array_equal(np.array(body["data"][0]["embedding"], np.float32),
                              expected.vectors[0])
    full = call(url, "/v1/embeddings", {"input": long_text, "truncate_prompt_tokens": -1})[1]
    assert full["usage"]["prompt_tokens"] == len(engine.prepare(long_text))
    raw = call(url, "/v1/embeddings", {"input": "the sea", "use_activation": False})[1]
    vector = np.array(raw["data"][0]["embedding"], np.float32)
    assert abs(np.linalg.norm(vector) - 1) > 0.01
    assert np.array_equal(vector, engine.embed("the sea", normalize=False).vectors[0])
    with_special = call(url, "/v1/embeddings", {"input": "the sea"})[1]["usage"]["prompt_tokens"]
    without = call(url, "/v1/embeddings", {"input": "the sea", "add_special_tokens": False})[1]
    assert without["usage"]["prompt_tokens"] == with_special - 2  # no <bos>, no <eos>


@pytest.mark.parametrize("embed_dtype,tolerance", [("float32", 0), ("float16", 1e-3),
                                                   ("bfloat16", 8e-3)])
@pytest.mark.parametrize("endianness", ["native", "little", "big"])
def test_vllm_embed_dtype_and_endianness(gemma, embed_dtype: str, tolerance: float,
                                         endianness: str) -> None:
    url, engine = gemma
    texts = ["a cat", "the sea at night"]  # each row is its own string
    body = call(url, "/v1/embeddings", {"input": texts, "encoding_format": "base64",
                                        "embed_dtype": embed_dtype, "endianness": endianness})[1]
    order = {"native": "=", "little": "<", "big": ">"}[endianness]
    for row, expected in zip(body["data"], engine.embed(texts).vectors, strict=True):
        raw = base64.b64decode(row["embedding"])
        if embed_dtype == "bfloat16":
            decoded = from_bfloat16_bits(np.frombuffer(raw, f"{order}u2").astype(np.uint16))
        else:
            decoded = np.frombuffer(raw, f"{order}{'f4' if embed_dtype == 'float32' else 'f2'}")
        assert decoded.shape == expected.shape
        assert np.abs(decoded.astype(np.float32) - expected).max() <= tolerance
    expected = engine.embed("a cat").vectors[0]
    floats = call(url, "/v1/embeddings", {"input": "a cat", "embed_dtype": embed_dtype})[1]
    assert np.abs(np.array(floats["data"][0]["embedding"]) - expected).max() <= tolerance


def test_vllm_chat_messages_render_per_family(gemma, synthetic) -> None:
    url, engine = gemma
    body = call(url, "/v1/embeddings", {"messages": [
        {"role": "system", "content": "find poems"},
        {"role": "user", "content": [{"type": "text", "text": "about the sea"}]}]})[1]
    expected = engine.embed("about the sea", instruction="find poems").vectors[0]
    assert np.array_equal(np.array(body["data"][0]["embedding"], np.float32), expected)
    status, body, _ = call(url, "/v1/embeddings", {"messages": [{"role": "robot"}]})
    assert status == 400 and body["error"]["param"] == "messages"
    with running(ServerConfig(), synthetic("qwen3")) as (qurl, registry):
        body = call(qurl, "/v1/embeddings", {"messages": [
            {"role": "system", "content": "find poems"},
            {"role": "user", "content": "about the sea"}]})[1]
        expected = registry.default.embed("about the sea", instruction="find poems")
        assert np.array_equal(np.array(body["data"][0]["embedding"], np.float32),
                              expected.vectors[0])


def test_dimensions_on_a_model_without_matryoshka_is_a_400(synthetic) -> None:
    with running(ServerConfig(), synthetic("bert")) as (url, _):
        for field in ("dimensions", "output_dimension"):
            status, body, _ = call(url, "/v1/embeddings", {"input": "a", field: 32})
            assert status == 400 and body["error"]["param"] == "dimensions"
            assert "Matryoshka" in body["error"]["message"]


UNKNOWN_OPENAI = [("encoding_format", "hex"), ("output_dtype", "int4"),
                  ("embed_dtype", "float64"), ("endianness", "middle"),
                  ("truncation_side", "center")]
UNKNOWN_COHERE = [("input_type", "poems"), ("embedding_types", ["float", "int4"]),
                  ("truncate", "MIDDLE")]


def test_unknown_values_are_400_in_each_dialect(gemma) -> None:
    url, _ = gemma
    for field, value in UNKNOWN_OPENAI:
        status, body, _ = call(url, "/v1/embeddings", {"input": "a", field: value})
        assert status == 400 and body["error"]["param"] == field, (field, body)
    for field, value in UNKNOWN_COHERE:
        status, body, _ = call(url, "/v2/embed", {"model": "default", "texts": ["a"],
                                                  field: value})
        assert status == 400 and set(body) == {"id", "message"} and field in body["message"]
    status, body, _ = call(url, "/v2/embed", {"texts": []})
    assert status == 400 and "message" in body
    status, body, _ = call(url, "/v2/embed", raw=b"{broken", method="POST")
    assert status == 400 and "message" in body
    status, body, _ = call(url, "/v2/embed", {"inputs": [{"content": [
        {"type": "image_url", "image_url": {"url": "x"}}]}]})
    assert status == 400 and "image_url" in body["message"]


def test_score_endpoint(gemma) -> None:
    url, engine = gemma
    status, body, _ = call(url, "/score", {"text_1": "the sea",
                                           "text_2": ["water and the sea", "a cat"]})
    assert status == 200 and [d["index"] for d in body["data"]] == [0, 1]
    q = engine.embed("the sea").vectors[0]
    docs = engine.embed(["water and the sea", "a cat"]).vectors
    assert np.allclose([d["score"] for d in body["data"]], docs @ q, atol=1e-6)
    pairwise = call(url, "/v1/score", {"text_1": ["a", "b"], "text_2": ["c", "d"]})[1]
    assert len(pairwise["data"]) == 2
    status, body, _ = call(url, "/score", {"text_1": ["a", "b"], "text_2": ["c"]})
    assert status == 400 and body["error"]["param"] == "text_2"


def test_python_api_matches_http(gemma, synthetic) -> None:
    from localembed import LLM, Runner

    url, _ = gemma
    assert Runner is LLM
    with LLM(str(synthetic("gemma-embedding"))) as llm:
        outputs = llm.embed(["the sea", "a cat"], dimensions=32, task="query")
        http = call(url, "/v1/embeddings", {"input": ["the sea", "a cat"], "dimensions": 32,
                                            "task": "query"})[1]
        for out, item in zip(outputs, http["data"], strict=True):
            assert out.outputs.embedding == item["embedding"]
        scores = llm.score("the sea", ["water", "a cat"])
        http_scores = call(url, "/score", {"text_1": "the sea", "text_2": ["water", "a cat"]})[1]
        assert [s.outputs.score for s in scores] == pytest.approx(
            [d["score"] for d in http_scores["data"]], abs=1e-6)
        from localembed.api import APIError

        with pytest.raises(APIError, match="output_dtype"):
            llm.embed("x", output_dtype="int4")
