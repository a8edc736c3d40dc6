"""A BERT cross-encoder as llama.cpp's own converter writes it is known for a reranker, and
refused with the reason, since llama.cpp cannot give its scores.

The file is made the way users' files are: a (tiny, random) BertForSequenceClassification with
the real BERT WordPiece vocabulary of all-MiniLM-L6-v2, converted by llama.cpp's converter.
It carries ``cls.output.*`` and two token types, no pooling type and no pooler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localembed.engine import Kind, ModelLoadError
from localembed.engine.inspect import inspect_gguf
from localembed.gguf.header import read_header
from localembed.models.store import describe
from tests.fixtures.models import install_model
from tests.llama_convert import convert

REASON = "is a BERT cross-encoder (a reranker) with 2 token types"


@pytest.fixture(scope="module")
def checkpoint(starter_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BertForSequenceClassification with all-MiniLM-L6-v2's real vocabulary (and
    token-type embeddings that differ, as trained ones do)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30_522, hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=128, num_labels=1,
                        initializer_range=0.2)  # scores that differ between documents
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.bert.embeddings.token_type_embeddings.weight.normal_(0, 0.5)
    folder = tmp_path_factory.mktemp("cross") / "tiny-cross-encoder"
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):
        shutil.copy(starter_folder / name, folder)
    return folder


@pytest.fixture(scope="module")
def converted(checkpoint: Path) -> Path:
    """The checkpoint as llama.cpp's converter writes it."""
    return convert(checkpoint, checkpoint.parent / "cross-encoder.gguf")


def test_the_converter_writes_a_head_without_a_pooling_type_or_pooler(converted: Path) -> None:
    header = read_header(converted)
    names = {t.name for t in header.tensors}
    assert "cls.output.weight" in names and "cls.weight" not in names
    assert header.get("bert.pooling_type") is None
    assert header.get("tokenizer.ggml.token_type_count") == 2


def test_a_converted_cross_encoder_is_refused_as_a_reranker_with_what_to_use(
        converted: Path) -> None:
    with pytest.raises(ModelLoadError) as caught:
        inspect_gguf(converted)
    message = str(caught.value)
    assert REASON in message
    assert "pooler" in message
    assert "`localembed import FOLDER`" in message
    assert "qwen3-reranker-0.6b" in message and "bge-reranker-v2-m3" in message


def test_import_refuses_it_and_installs_nothing(converted: Path, app_home: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "localembed", "import", str(converted)],
                            capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert result.returncode == 1
    assert REASON in result.stderr and "embedding model" not in result.stderr
    assert not list((app_home / "models").glob("*.gguf"))


def test_rerank_with_it_names_the_reason_not_the_wrong_kind(converted: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "localembed", "rerank", "-m", str(converted),
                             "query", "document"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert REASON in result.stderr
    assert "is an embedding model" not in result.stderr


def test_an_installed_copy_is_listed_with_the_reason(converted: Path, app_home: Path) -> None:
    install_model(app_home, "cross", converted)
    assert REASON in describe("cross").error


# -- our converter keeps what llama.cpp's drops ---------------------------------------------------

QUERY = "how do plants make food?"
DOCUMENTS = ["Plants make food by photosynthesis, using light, water and carbon dioxide.",
             "The stock market fell on Tuesday.", "Leaves hold chlorophyll!", "",
             "光合作用 happens in leaves 🌿"]


def transformers_logits(checkpoint: Path, query: str, documents: list[str]) -> list[float]:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    batch = tokenizer([query] * len(documents), documents, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits[:, 0].tolist()


def test_our_converter_keeps_the_pooler_and_the_second_segment(
        checkpoint: Path, tmp_path: Path) -> None:
    from localembed.engine import Engine
    from localembed.models.convert import convert_folder

    with Engine(convert_folder(checkpoint, tmp_path / "ours.gguf", dtype="f32")) as engine:
        assert engine.kind == "reranker" and engine.score_type == "sigmoid"
        result = engine.rerank(QUERY, DOCUMENTS)
    want = transformers_logits(checkpoint, QUERY, DOCUMENTS)
    # llama.cpp's CPU GELU is a tanh approximation read from an f16 table (a few 1e-3).
    assert max(abs(a - b) for a, b in zip(result.logits, want, strict=True)) < 1e-3
    assert max(want) - min(want) > 0.1
    assert [int(i) for i in sorted(range(5), key=lambda i: -result.logits[i])] == sorted(
        range(5), key=lambda i: -want[i])


def test_the_pair_is_cls_query_sep_then_document_sep_in_the_second_segment(
        checkpoint: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from localembed.engine import Engine
    from localembed.models.convert import convert_folder

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    encoded = tokenizer(QUERY, DOCUMENTS[0])
    offset = 30_522
    want = [t + offset * s for t, s in zip(encoded["input_ids"], encoded["token_type_ids"],
                                            strict=True)]
    with Engine(convert_folder(checkpoint, tmp_path / "ours.gguf")) as engine:
        assert engine.prepare_pair(QUERY, DOCUMENTS[0]) == want


def test_import_of_a_cross_encoder_folder_installs_a_reranker(checkpoint: Path,
                                                              app_home: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "localembed", "import", str(checkpoint),
                             "--id", "cross"], capture_output=True, text=True, timeout=300,
                            env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    assert describe("cross").kind == Kind.RERANKER
