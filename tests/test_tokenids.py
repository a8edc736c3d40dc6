"""Token ids from OpenAI clients are decoded offline with the bundled cl100k_base ranks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from localembed.dialects import tokenids
from localembed.dialects.tokenids import CL100K_SHA256, local_cl100k

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "localembed" / "bundled" / "cl100k_base.tiktoken"
# tiktoken names a cached download after the sha1 of its URL.
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CACHE_NAME = hashlib.sha1(CL100K_URL.encode()).hexdigest()


@pytest.fixture
def fresh_cl100k() -> Iterator[None]:
    """local_cl100k() builds its encoding once per process; these tests need a fresh build."""
    local_cl100k.cache_clear()
    yield
    local_cl100k.cache_clear()


def test_bundled_file_is_tiktokens_published_cl100k() -> None:
    assert hashlib.sha256(BUNDLED.read_bytes()).hexdigest() == CL100K_SHA256


def test_build_script_regenerates_the_bundled_file_byte_for_byte(tmp_path: Path) -> None:
    output = tmp_path / "cl100k_base.tiktoken"
    result = subprocess.run([sys.executable, str(ROOT / "installer" / "build_cl100k.py"),
                             "--output", str(output)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert CL100K_SHA256 in result.stdout
    assert output.read_bytes() == BUNDLED.read_bytes()


def test_cl100k_works_with_an_empty_tiktoken_cache_and_leaves_it_empty(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_cl100k: None) -> None:
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    encoding = local_cl100k()
    assert encoding is not None
    assert encoding.encode("hello world") == [15339, 1917]  # type: ignore[attr-defined]
    assert encoding.decode([15339, 1917]) == "hello world"
    assert encoding.n_vocab == 100277  # type: ignore[attr-defined]
    assert encoding.encode("<|endoftext|>", allowed_special="all") == [100257]  # type: ignore
    assert list(cache.iterdir()) == []
    assert local_cl100k() is encoding  # built once per process


def test_cl100k_ignores_an_unusable_tiktoken_cache_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_cl100k: None) -> None:
    """tiktoken's own loader fails when TIKTOKEN_CACHE_DIR names a file; the bundle does not."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(not_a_dir))
    encoding = local_cl100k()
    assert encoding is not None and encoding.decode([15339, 1917]) == "hello world"


def test_ranks_that_are_not_tiktokens_give_no_decoder(
        monkeypatch: pytest.MonkeyPatch, fresh_cl100k: None) -> None:
    monkeypatch.setattr(tokenids, "CL100K_SHA256", "0" * 64)
    assert local_cl100k() is None


def _embed_strings(url: str, texts: list[str]) -> np.ndarray:
    req = urllib.request.Request(url + "/v1/embeddings", data=json.dumps({"input": texts}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = json.load(resp)
    return np.array([d["embedding"] for d in body["data"]], dtype=np.float64)


def test_langchain_default_embeddings_match_text_on_a_server_with_no_tiktoken_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_openai import OpenAIEmbeddings

    server_cache = tmp_path / "server-tiktoken-cache"
    server_cache.mkdir()
    env = {**os.environ, "LOCALEMBED_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1",
           "TIKTOKEN_CACHE_DIR": str(server_cache)}
    proc = subprocess.Popen([sys.executable, "-m", "localembed", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()  # type: ignore[union-attr]

        # The client encodes with tiktoken too, which cannot download here: give it a cache.
        client_cache = tmp_path / "client-tiktoken-cache"
        client_cache.mkdir()
        shutil.copyfile(BUNDLED, client_cache / CACHE_NAME)
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(client_cache))

        embeddings = OpenAIEmbeddings(model="text-embedding-3-small", base_url=url + "/v1",
                                      api_key="unused")
        assert embeddings.check_embedding_ctx_length is True  # the default: it sends token ids
        sent: list[object] = []
        create = embeddings.client.create

        def spy(**kwargs: object) -> object:
            sent.append(kwargs["input"])
            return create(**kwargs)

        monkeypatch.setattr(embeddings.client, "create", spy)
        texts = ["The quick brown fox jumps over the lazy dog.",
                 "Embeddings turn text into vectors.",
                 "naïve café, 東京, and an emoji 🙂",
                 "  leading spaces\nand a newline"]
        got = np.array(embeddings.embed_documents(texts), dtype=np.float64)

        assert sent and all(isinstance(batch, list) and all(
            isinstance(ids, list) and all(isinstance(i, int) for i in ids) for ids in batch)
            for batch in sent), sent
        expected = _embed_strings(url, texts)
        assert got.shape == expected.shape == (len(texts), 384)
        cosine = (got * expected).sum(1) / (np.linalg.norm(got, axis=1)
                                            * np.linalg.norm(expected, axis=1))
        assert (cosine >= 0.9999).all(), cosine
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert list(server_cache.iterdir()) == []  # decoded from the bundle, not tiktoken's cache


def test_the_ranks_are_read_for_the_first_token_ids_not_the_first_texts(synthetic) -> None:
    """Reading cl100k's 100k ranks takes a good part of a second: a server that is only ever
    sent texts never pays it, and its first vector does not wait for it."""
    from localembed.config.settings import ServerConfig
    from localembed.server import create_app
    from localembed.service.registry import Registry

    reads: list[int] = []

    def counted_cl100k():  # type: ignore[no-untyped-def]
        reads.append(1)
        return local_cl100k()

    registry = Registry(str(synthetic("bert")))
    try:
        client = create_app(ServerConfig(), registry, decoder=counted_cl100k).test_client()
        assert client.post("/v1/embeddings", json={"input": ["a text", "two"]}).status_code == 200
        assert reads == []
        assert client.post("/v1/embeddings", json={"input": [[9906, 1917]]}).status_code == 200
        assert client.post("/v1/embeddings", json={"input": [[9906]]}).status_code == 200
        assert reads == [1]
    finally:
        registry.close()
