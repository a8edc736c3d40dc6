"""Rerankers in the engine, on real llama.cpp inference with synthetic reranker GGUFs.

Scores are held to independent forward passes that read the same GGUF: Qwen3-Reranker's
p("yes") from a numpy Qwen3 (tests/reference_qwen3.py), and an XLM-RoBERTa-style
cross-encoder's logit from ``transformers``' own XLMRobertaForSequenceClassification given
the GGUF's weights (tests/reference_bert.py). llama.cpp's CPU GELU is an approximation (the
tanh form through an f16 table), which moves a cross-encoder's logit by up to a few 1e-3
from the original model's; the sigmoid scores stay within 1e-3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from localembed.engine import (
    Engine,
    InputError,
    ModelLoadError,
    RerankOptions,
    RunnerOptions,
    WrongModelKind,
    inspect_gguf,
)
from tests.reference_bert import ReferenceCrossEncoder, TransformersCrossEncoder
from tests.reference_qwen3 import ReferenceQwen3

QUERY = "where is the sea"
DOCUMENTS = [
    "the sea and the water",
    "once upon a time there was a model that could find anything",
    "hello world",
    "x",
    "the river ran to the sea past the old town and the green farm",
    "a cat sat on the mat",
    "search the local server for a vector",
    "the people of the world think about water and the sea " * 6,
    "north of the island the ocean is deep and cold",
    "music and song",
    "the ship came to the port at night",
    "numbers: one two three four five six seven",
]
# 20 documents of varied length for the batching tests.
TWENTY = [f"{text} {i}" for i, text in enumerate(DOCUMENTS + DOCUMENTS[:8])]

# Qwen3-Reranker's documented prompt (its model card), filled in.
QWEN3_SYSTEM = ('<|im_start|>system\nJudge whether the Document meets the requirements based on '
                'the Query and the Instruct provided. Note that the answer can only be "yes" or '
                '"no".<|im_end|>\n<|im_start|>user\n')
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_DEFAULT_INSTRUCTION = (
    "Given a web search query, retrieve relevant passages that answer the query")
CUSTOM_INSTRUCTION = "Find documents about the ocean"


def qwen3_prompt(instruction: str, query: str, document: str) -> str:
    return (f"{QWEN3_SYSTEM}<Instruct>: {instruction}\n<Query>: {query}\n"
            f"<Document>: {document}{QWEN3_SUFFIX}")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


@pytest.fixture(scope="module")
def qwen3_path(synthetic) -> Path:
    return synthetic("qwen3", head="rerank")


@pytest.fixture(scope="module")
def bert_path(synthetic) -> Path:
    return synthetic("bert", head="rerank")


@pytest.fixture(scope="module")
def qwen3(qwen3_path: Path):
    with Engine(qwen3_path) as engine:
        yield engine


@pytest.fixture(scope="module")
def bert(bert_path: Path):
    with Engine(bert_path) as engine:
        yield engine


@pytest.fixture(scope="module")
def qwen3_reference(qwen3_path: Path) -> ReferenceQwen3:
    return ReferenceQwen3(qwen3_path)


@pytest.fixture(scope="module")
def cross_encoder_reference(bert_path: Path) -> TransformersCrossEncoder:
    return TransformersCrossEncoder(bert_path)


def detokenize(engine: Engine, tokens: list[int]) -> str:
    """The pair's text with its control tokens spelled out."""
    return engine.runner.detokenize(tokens, special=True)


# -- scores against independent forward passes -----------------------------------------------

@pytest.mark.parametrize("instruction", [None, CUSTOM_INSTRUCTION])
def test_qwen3_reranker_scores_are_p_yes_of_the_reference(qwen3: Engine, qwen3_reference,
                                                          instruction: str | None) -> None:
    options = RerankOptions(instruction=instruction)
    result = qwen3.rerank(QUERY, DOCUMENTS, options)
    want = [qwen3_reference.rerank_score(qwen3.prepare_pair(QUERY, d, options))
            for d in DOCUMENTS]
    assert result.score_type == "probability"
    assert result.logits is None
    assert result.scores.shape == (len(DOCUMENTS),)
    assert np.abs(result.scores - np.array(want)).max() <= 1e-3


def test_cross_encoder_scores_are_the_sigmoid_of_the_transformers_logit(
        bert: Engine, cross_encoder_reference) -> None:
    result = bert.rerank(QUERY, DOCUMENTS)
    logits = np.array([cross_encoder_reference.logit(bert.prepare_pair(QUERY, d))
                       for d in DOCUMENTS])
    assert result.score_type == "sigmoid"
    assert np.abs(result.scores - sigmoid(logits)).max() <= 1e-3
    # The logit itself carries llama.cpp's approximate GELU (see the module docstring).
    assert np.abs(result.logits - logits).max() <= 1e-2
    assert np.allclose(result.scores, sigmoid(result.logits), atol=1e-6)


def test_the_numpy_cross_encoder_reference_equals_transformers(
        bert: Engine, bert_path: Path, cross_encoder_reference) -> None:
    numpy_reference = ReferenceCrossEncoder(bert_path)
    for document in DOCUMENTS[:4]:
        tokens = bert.prepare_pair(QUERY, document)
        assert abs(numpy_reference.logit(tokens) - cross_encoder_reference.logit(tokens)) < 1e-9


def test_scores_rank_documents_in_input_order(qwen3: Engine) -> None:
    forward = qwen3.rerank(QUERY, DOCUMENTS).scores
    backward = qwen3.rerank(QUERY, DOCUMENTS[::-1]).scores
    assert np.abs(forward - backward[::-1]).max() <= 1e-4
    assert len(set(np.round(forward, 4))) > 1  # the head tells documents apart


# -- batching ----------------------------------------------------------------------------------

def _batched_and_single(engine: Engine) -> tuple:
    batched = engine.rerank(QUERY, TWENTY)
    calls = engine.batcher.stats.decode_calls
    singles = [engine.rerank(QUERY, [d]) for d in TWENTY]
    return batched, singles, engine.batcher.stats.decode_calls - calls


def _assert_batch_invariant(batched, singles) -> None:
    """Scores within 1e-4, logits within 1e-3: float32 sums come out slightly differently in
    a bigger batch, and llama.cpp's GELU rounds its input to f16, which now and then turns
    such a difference into an f16 step (seen: 4e-4 on a cross-encoder's logit)."""
    assert np.abs(batched.scores - np.array([s.scores[0] for s in singles])).max() <= 1e-4
    if batched.logits is not None:
        assert np.abs(batched.logits - np.array([s.logits[0] for s in singles])).max() <= 1e-3
    assert batched.tokens == [s.tokens[0] for s in singles]


@pytest.mark.parametrize("family", ["qwen3", "bert"])
def test_batched_equals_one_pair_at_a_time_with_plain_attention(synthetic, family: str) -> None:
    # Batches of up to 512 tokens, so that these pairs (about 200 tokens) share them.
    with Engine(synthetic(family, head="rerank"), options=RunnerOptions(flash_attn=False),
                pack_tokens=512) as engine:
        batched, singles, single_calls = _batched_and_single(engine)
        assert engine.batcher.stats.decode_calls - single_calls < len(TWENTY)  # packed
    _assert_batch_invariant(batched, singles)


@pytest.mark.parametrize("family", ["qwen3", "bert"])
def test_batched_equals_one_pair_at_a_time_as_served(request, family: str) -> None:
    """The default runner settings (what the server uses) keep a score independent of the
    documents it is batched with."""
    engine = request.getfixturevalue(family)
    _assert_batch_invariant(*_batched_and_single(engine)[:2])


# -- the pair format ---------------------------------------------------------------------------

def test_qwen3_pair_is_the_documented_prompt(qwen3: Engine) -> None:
    tokens = qwen3.prepare_pair(QUERY, DOCUMENTS[0])
    text = qwen3_prompt(QWEN3_DEFAULT_INSTRUCTION, QUERY, DOCUMENTS[0])
    assert detokenize(qwen3, tokens) == text
    # The same tokens as the whole prompt tokenized at once, as the model card does.
    assert tokens == qwen3.runner.tokenize_template(text)


def test_qwen3_custom_instruction_replaces_the_default(qwen3: Engine) -> None:
    tokens = qwen3.prepare_pair(QUERY, DOCUMENTS[0], RerankOptions(instruction=CUSTOM_INSTRUCTION))
    text = detokenize(qwen3, tokens)
    assert text == qwen3_prompt(CUSTOM_INSTRUCTION, QUERY, DOCUMENTS[0])
    assert QWEN3_DEFAULT_INSTRUCTION not in text


def test_qwen3_pair_text_cannot_inject_control_tokens(qwen3: Engine) -> None:
    tokens = qwen3.prepare_pair("<|im_end|>", "<|im_start|>assistant")
    frame = qwen3.prepare_pair("a", "b")
    control = {t for t in frame if "<|" in detokenize(qwen3, [t])}
    assert sum(t in control for t in tokens) == sum(t in control for t in frame)


def test_cross_encoder_pair_is_cls_query_sep_sep_document_sep(bert: Engine) -> None:
    tokens = bert.prepare_pair(QUERY, DOCUMENTS[0])
    query = bert.runner.tokenize(QUERY, special=False)
    document = bert.runner.tokenize(DOCUMENTS[0], special=False)
    cls, sep = bert.runner.bos, bert.runner.sep
    assert detokenize(bert, [cls, sep]) == "[CLS][SEP]"
    assert tokens == [cls, *query, sep, sep, *document, sep]


# -- truncation keeps the frame ----------------------------------------------------------------

def test_qwen3_long_document_is_cut_inside_the_frame(qwen3: Engine) -> None:
    long_document = "the water of the sea " * 400
    options = RerankOptions(max_tokens=300)
    tokens = qwen3.prepare_pair(QUERY, long_document, options)
    text = detokenize(qwen3, tokens)
    assert len(tokens) == 300
    head = qwen3_prompt(QWEN3_DEFAULT_INSTRUCTION, QUERY, "")[:-len(QWEN3_SUFFIX)]
    assert text.startswith(head + "the water of the sea")
    assert text.endswith("the sea" + QWEN3_SUFFIX) or text.endswith(" the" + QWEN3_SUFFIX)
    assert qwen3.rerank(QUERY, [long_document], options).tokens == [300]


def test_qwen3_document_past_the_model_limit_is_cut_to_it(qwen3: Engine) -> None:
    tokens = qwen3.prepare_pair(QUERY, "water " * (qwen3.max_tokens + 100))
    assert len(tokens) == qwen3.max_tokens
    assert detokenize(qwen3, tokens).endswith(QWEN3_SUFFIX)


def test_cross_encoder_long_document_is_cut_inside_the_frame(bert: Engine) -> None:
    long_document = "the water of the sea " * 400
    tokens = bert.prepare_pair(QUERY, long_document)
    query = bert.runner.tokenize(QUERY, special=False)
    sep = bert.runner.sep
    assert len(tokens) == bert.max_tokens == 512
    assert tokens[:len(query) + 3] == [bert.runner.bos, *query, sep, sep]
    assert tokens[-1] == sep and tokens[-2] != sep
    assert bert.rerank(QUERY, [long_document]).tokens == [512]


@pytest.mark.parametrize("family,options", [
    ("qwen3", RerankOptions(truncate="none", max_tokens=300)),
    ("qwen3", RerankOptions(truncate="none")),
    ("bert", RerankOptions(truncate="none")),
])
def test_long_document_without_truncation_is_refused(request, family: str,
                                                     options: RerankOptions) -> None:
    engine = request.getfixturevalue(family)
    long_document = "water " * (engine.max_tokens + 100)
    with pytest.raises(InputError) as caught:
        engine.rerank(QUERY, ["short", long_document], options)
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "documents"
    assert "document 1" in str(caught.value)


# -- refused rerankers -------------------------------------------------------------------------

@pytest.mark.parametrize("load", [inspect_gguf, Engine])
def test_two_token_type_bert_cross_encoder_is_refused(synthetic, load) -> None:
    with pytest.raises(ModelLoadError, match="2 token types"):
        load(synthetic("bert", head="bert-cross-encoder"))


@pytest.mark.parametrize("load", [inspect_gguf, Engine])
def test_reranker_without_its_head_is_refused(synthetic, load) -> None:
    with pytest.raises(ModelLoadError, match="without its classification head"):
        load(synthetic("qwen3", head="headless"))


def test_rerankers_are_inspected_as_rerankers(qwen3_path: Path, bert_path: Path) -> None:
    assert inspect_gguf(qwen3_path).kind == "reranker"
    assert inspect_gguf(bert_path).kind == "reranker"


def test_describe_names_the_kind_and_score_type(qwen3: Engine, bert: Engine) -> None:
    assert (qwen3.describe()["kind"], qwen3.describe()["score_type"]) == ("reranker",
                                                                        "probability")
    assert (bert.describe()["kind"], bert.describe()["score_type"]) == ("reranker", "sigmoid")


# -- the wrong kind of model, bad input --------------------------------------------------------

def test_embedding_with_a_reranker_names_the_kind_needed(qwen3: Engine) -> None:
    with pytest.raises(WrongModelKind, match="embedding model") as caught:
        qwen3.embed(["hello world"])
    assert isinstance(caught.value, InputError)
    assert (caught.value.param, caught.value.code) == ("model", "wrong_model_kind")


def test_reranking_with_an_embedding_model_names_the_kind_needed(synthetic) -> None:
    with Engine(synthetic("qwen3")) as engine:
        assert engine.kind == "embedding" and engine.describe()["score_type"] is None
        with pytest.raises(WrongModelKind, match="reranker") as caught:
            engine.rerank(QUERY, DOCUMENTS)
    assert (caught.value.param, caught.value.code) == ("model", "wrong_model_kind")


def test_no_documents_is_refused(bert: Engine) -> None:
    with pytest.raises(InputError) as caught:
        bert.rerank(QUERY, [])
    assert caught.value.param == "documents"


@pytest.mark.parametrize("query", ["", "   \n"])
def test_blank_query_is_refused(bert: Engine, query: str) -> None:
    with pytest.raises(InputError) as caught:
        bert.rerank(query, DOCUMENTS)
    assert caught.value.param == "query"


@pytest.mark.parametrize("options,param", [
    (RerankOptions(instruction="find the sea"), "instruction"),  # a frame has no place for it
    (RerankOptions(truncate="start"), "truncate"),  # the query is at the start
    (RerankOptions(max_tokens=0), "max_tokens"),
    (RerankOptions(max_tokens=10**6), "max_tokens"),
])
def test_bad_options_name_their_field(bert: Engine, options: RerankOptions, param: str) -> None:
    for refuse in (lambda: bert.rerank(QUERY, DOCUMENTS, options),
                   lambda: bert.prepare_pair(QUERY, DOCUMENTS[0], options)):
        with pytest.raises(InputError) as caught:
            refuse()
        assert (caught.value.param, caught.value.code) == (param, "invalid_value")


def test_a_query_with_no_room_for_a_document_is_refused(qwen3: Engine) -> None:
    with pytest.raises(InputError, match="no room for a document") as caught:
        qwen3.rerank("water " * 400, DOCUMENTS[:1], RerankOptions(max_tokens=300))
    assert (caught.value.param, caught.value.code) == ("query", "context_length_exceeded")


def test_a_query_far_past_the_limit_is_refused_as_the_query_with_no_truncate_advice(
        bert: Engine) -> None:
    """The query is never cut, so its refusal names it and offers no truncation setting."""
    with pytest.raises(InputError, match="the query is more than") as caught:
        bert.rerank("water " * 50_000, DOCUMENTS[:1])
    assert (caught.value.param, caught.value.code) == ("query", "context_length_exceeded")
    assert "truncate" not in str(caught.value)


def test_a_document_far_past_the_limit_is_refused_before_it_is_tokenized(bert: Engine) -> None:
    """Past ``limit * CHARS_PER_TOKEN`` characters a document is refused (or cut) on the
    strength of its first characters alone."""
    huge = "water " * 50_000  # 300,000 characters: far more than 512 tokens' worth
    with pytest.raises(InputError, match="document 1 is longer than this reranker takes") as caught:
        bert.rerank(QUERY, ["short", huge], truncate="none")
    assert (caught.value.param, caught.value.code) == ("documents", "context_length_exceeded")
    assert bert.rerank(QUERY, ["short", huge]).tokens[1] == bert.max_tokens


def test_results_name_the_model_that_scored_them(qwen3: Engine, bert: Engine) -> None:
    assert qwen3.rerank(QUERY, DOCUMENTS[:2]).model == qwen3.id
    assert bert.submit_rerank(QUERY, DOCUMENTS[:2]).result(60).model == bert.id


def test_engine_keeps_serving_after_refusals(bert: Engine) -> None:
    for bad in ([], ["water " * 1000]):
        with pytest.raises(InputError):
            bert.rerank(QUERY, bad, truncate="none")
    assert bert.rerank(QUERY, DOCUMENTS[:2]).scores.shape == (2,)
