"""Families are data: one entry per family, read by generic code."""

from __future__ import annotations

import inspect as pyinspect
import re
from fractions import Fraction

import gguf
import pytest

from localembed.engine import families
from localembed.engine.families import (
    BERT_LIKE,
    FAMILIES,
    TASKS,
    Family,
    TaskError,
    canonical_task,
    family_for,
)
from localembed.engine.inspect import POOLING_NAMES, ModelLoadError, inspect_gguf
from localembed.testing.synthetic import write_model
from tests.test_engine import GEMMA_PROMPTS

GEMMA = FAMILIES["gemma-embedding"]
QWEN3 = FAMILIES["qwen3"]
BERT = FAMILIES["bert"]
GENERIC = FAMILIES["generic"]

QWEN3_QUERIES = {
    "query": "Instruct: Given a web search query, retrieve relevant passages that answer the "
             "query\nQuery:",
    "similarity": "Instruct: Retrieve semantically similar text\nQuery:",
    "classification": "Instruct: Classify the topic of the given text\nQuery:",
    "clustering": "Instruct: Identify the topic or theme of the given text\nQuery:",
    "code": "Instruct: Given a code search query, retrieve relevant code snippets that answer "
            "the query\nQuery:",
    "qa": "Instruct: Given a question, retrieve passages that answer the question\nQuery:",
    "fact_check": "Instruct: Given a claim, retrieve documents that support or refute the "
                  "claim\nQuery:",
    "summarization": "Instruct: Given a text, retrieve summaries of the same content\nQuery:",
    "document": "",
}


def test_gemma_prompt_for_every_task_is_exact():
    assert set(GEMMA_PROMPTS) == set(TASKS)
    for task, expected in GEMMA_PROMPTS.items():
        assert GEMMA.prompt(task) == expected, task


def test_qwen3_prompt_for_every_task_is_exact():
    assert set(QWEN3_QUERIES) == set(TASKS)
    for task, expected in QWEN3_QUERIES.items():
        assert QWEN3.prompt(task) == expected, task


def test_bert_and_generic_prompts_are_empty_for_every_task():
    for family in (BERT, GENERIC):
        for task in (None, *TASKS):
            assert family.prompt(task) == ""
            assert family.prompt(task, instruction="Do it", title="T") == ""


def test_no_task_gives_no_prompt():
    for family in FAMILIES.values():
        assert family.prompt(None) == ""


def test_gemma_document_prompt_uses_stripped_title_else_none():
    assert GEMMA.prompt("document", title="  Moby Dick ") == "title: Moby Dick | text: "
    assert GEMMA.prompt("document", title="") == "title: none | text: "
    assert GEMMA.prompt("document", title=None) == "title: none | text: "


def test_gemma_document_prompt_ignores_instruction():
    assert GEMMA.prompt("document", instruction="Find whales", title="X") == "title: X | text: "


def test_gemma_instruction_replaces_task_phrase():
    assert GEMMA.prompt("query", instruction="find whales") == "task: find whales | query: "
    assert GEMMA.prompt(None, instruction="find whales") == "task: find whales | query: "


def test_qwen3_instruction_replaces_task_phrase_even_for_documents():
    expected = "Instruct: find whales\nQuery:"
    assert QWEN3.prompt("query", instruction="find whales") == expected
    assert QWEN3.prompt("document", instruction="find whales") == expected
    assert QWEN3.prompt(None, instruction="find whales") == expected


def test_task_aliases_give_the_canonical_tasks_prompt():
    assert GEMMA.prompt("search_query") == GEMMA_PROMPTS["query"]
    assert QWEN3.prompt("Sentence-Similarity") == QWEN3_QUERIES["similarity"]
    assert canonical_task("retrieval.passage") == "document"


def test_unknown_task_is_a_task_error_for_every_family():
    for family in FAMILIES.values():
        with pytest.raises(TaskError, match="unknown task 'bogus'"):
            family.prompt("bogus")


def test_task_errors_name_their_field():
    """The field comes with the error: a caller never tells "task" from "dimensions" by
    reading the message (a Matryoshka message can mention a task, and a task can be named
    anything)."""
    refusals = [
        (lambda: canonical_task("dimensions"), "task"),
        (lambda: GEMMA.prompt("bogus"), "task"),
        (lambda: BERT.check_dimensions(128, 384), "dimensions"),
        (lambda: QWEN3.check_dimensions(31, 1024), "dimensions"),
        (lambda: GEMMA.check_dimensions(300, 768), "dimensions"),
    ]
    for refuse, param in refusals:
        with pytest.raises(TaskError) as err:
            refuse()
        assert err.value.param == param, str(err.value)


def test_has_prompts_only_for_prompted_families():
    assert GEMMA.has_prompts and QWEN3.has_prompts
    assert not BERT.has_prompts and not GENERIC.has_prompts


def test_only_qwen3_needs_a_final_eos():
    assert QWEN3.eos_last
    assert not GEMMA.eos_last and not BERT.eos_last and not GENERIC.eos_last


def test_default_pooling_is_gguf_pooling_type_as_int():
    assert GEMMA.pooling is gguf.PoolingType.MEAN and GEMMA.default_pooling == 1
    assert QWEN3.pooling is gguf.PoolingType.LAST and QWEN3.default_pooling == 3
    assert BERT.pooling is gguf.PoolingType.MEAN and BERT.default_pooling == 1
    assert GENERIC.pooling is None and GENERIC.default_pooling is None
    assert type(GEMMA.default_pooling) is int


def test_pooling_names_map_llama_cpp_values():
    assert POOLING_NAMES == {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}


def test_gemma_matryoshka_sizes_are_full_two_thirds_third_sixth():
    assert GEMMA.dimensions(768) == [768, 512, 256, 128]
    assert GEMMA.dimensions(96) == [96, 64, 32, 16]


def test_qwen3_matryoshka_sizes_are_every_size_from_32_to_full():
    assert QWEN3.dimensions(1024) == list(range(1024, 31, -1))
    assert QWEN3.dimensions(32) == [32]


def test_bert_and_generic_have_no_matryoshka_sizes():
    assert BERT.dimensions(384) is None
    assert GENERIC.dimensions(384) is None


def test_check_dimensions_accepts_none_full_and_trained_sizes():
    assert GEMMA.check_dimensions(None, 768) == 768
    assert GEMMA.check_dimensions(256, 768) == 256
    assert QWEN3.check_dimensions(33, 1024) == 33
    assert BERT.check_dimensions(384, 384) == 384


def test_check_dimensions_error_without_matryoshka():
    with pytest.raises(TaskError) as err:
        BERT.check_dimensions(128, 384)
    assert str(err.value) == (
        "this model was not trained for Matryoshka truncation; dimensions must be 384"
    )


def test_check_dimensions_error_for_qwen3_range():
    for requested in (31, 1025):
        with pytest.raises(TaskError) as err:
            QWEN3.check_dimensions(requested, 1024)
        assert str(err.value) == "dimensions must be between 32 and 1024"


def test_check_dimensions_error_for_gemma_levels():
    with pytest.raises(TaskError) as err:
        GEMMA.check_dimensions(300, 768)
    assert str(err.value) == "dimensions must be one of 768, 512, 256, 128"


def test_families_methods_never_compare_their_own_name():
    source = pyinspect.getsource(families)
    assert "self.name ==" not in source
    assert "self.name !=" not in source
    assert not re.search(r"self\.name\s+(==|!=|in)\b", source)


def test_family_for_maps_architectures_to_entries():
    assert family_for("gemma-embedding") is GEMMA
    assert family_for("qwen3") is QWEN3
    for arch in BERT_LIKE:
        assert family_for(arch) is BERT
    assert family_for("llama") is GENERIC
    assert set(BERT.architectures) == BERT_LIKE


def test_every_family_is_keyed_by_its_name():
    for name, family in FAMILIES.items():
        assert family.name == name


def test_adding_a_family_is_one_data_entry(monkeypatch):
    new = Family(
        "toy",
        architectures=("toy-arch",),
        pooling=gguf.PoolingType.CLS,
        query_template="<{task}> ",
        task_phrases={"query": "find", "code": "find code"},
        instruction_template="<<{instruction}>> ",
        document_template="[{title}] ",
        untitled="untitled",
        matryoshka_fractions=(1, 0.5, 0.25),
    )
    monkeypatch.setitem(FAMILIES, "toy", new)
    assert family_for("toy-arch") is new
    assert new.has_prompts and new.default_pooling == 2
    assert new.prompt("query") == "<find> "
    assert new.prompt("code") == "<find code> "
    assert new.prompt("similarity") == ""  # no phrase for this task: raw text
    assert new.prompt("query", instruction="look") == "<<look>> "
    assert new.prompt("document") == "[untitled] "
    assert new.prompt("document", title=" T ") == "[T] "
    assert new.dimensions(768) == [768, 384, 192]
    assert new.check_dimensions(192, 768) == 192
    with pytest.raises(TaskError, match="dimensions must be one of 768, 384, 192"):
        new.check_dimensions(100, 768)


def test_float_matryoshka_fractions_give_exact_sizes():
    family = Family("f", matryoshka_fractions=(1.0, 2 / 3, 1 / 3, 1 / 6))
    assert family.dimensions(768) == [768, 512, 256, 128]
    assert family.dimensions(768) == GEMMA.dimensions(768)
    assert GEMMA.matryoshka_fractions[1] == Fraction(2, 3)


def test_a_family_with_phrases_for_an_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown tasks: nope"):
        Family("bad", query_template="{task}", task_phrases={"nope": "x"})


def test_a_new_familys_min_size_appears_in_the_range_error():
    family = Family("m", matryoshka_min=64)
    assert family.dimensions(66) == [66, 65, 64]
    with pytest.raises(TaskError) as err:
        family.check_dimensions(63, 128)
    assert str(err.value) == "dimensions must be between 64 and 128"


def test_required_tensors_are_reported_with_the_familys_message():
    assert GEMMA.required_tensors == ("dense_2.weight", "dense_3.weight")
    assert GEMMA.tensor_problem("m.gguf", {"dense_2.weight", "dense_3.weight"}) is None
    assert GEMMA.tensor_problem("m.gguf", {"dense_2.weight"}) == (
        "m.gguf lacks EmbeddingGemma's dense projection layers (dense_2, dense_3) and would "
        "give wrong vectors; this is an early, broken upload: download the model again "
        "(e.g. `localembed pull embeddinggemma-300m`)"
    )
    assert QWEN3.tensor_problem("m.gguf", set()) is None


def test_a_new_familys_missing_tensors_are_named_by_default():
    family = Family("t", required_tensors=("a.weight", "b.weight"))
    assert family.tensor_problem("x.gguf", {"a.weight"}) == (
        "x.gguf lacks tensors this model needs: b.weight"
    )


def test_inspect_refuses_gemma_gguf_without_dense_layers(tmp_path):
    path = write_model("gemma-embedding", tmp_path / "x.gguf", dense=False)
    with pytest.raises(ModelLoadError) as err:
        inspect_gguf(path)
    assert str(err.value) == (
        "x.gguf lacks EmbeddingGemma's dense projection layers (dense_2, dense_3) and would "
        "give wrong vectors; this is an early, broken upload: download the model again "
        "(e.g. `localembed pull embeddinggemma-300m`)"
    )


def test_inspect_accepts_gemma_gguf_with_dense_layers(tmp_path):
    info = inspect_gguf(write_model("gemma-embedding", tmp_path / "x.gguf"))
    assert info.family is GEMMA
    assert type(info.pooling) is int and info.pooling == 1


def test_inspect_uses_family_default_pooling_when_gguf_declares_none(tmp_path):
    info = inspect_gguf(write_model("qwen3", tmp_path / "q.gguf", pooling=False,
                                    name="tiny-embedding"))
    assert info.family is QWEN3
    assert info.pooling == int(gguf.PoolingType.LAST)
