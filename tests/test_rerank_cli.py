"""Reranking from the command line (`localembed rerank`), the Python API (`LLM.rerank`,
`LLM.score` with a reranker) and the catalog's reranker entries, over synthetic rerankers
installed in a throwaway home."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from localembed.cli import cli
from localembed.engine import Engine, InputError, RerankOptions, WrongModelKind
from localembed.models import catalog
from localembed.models.pull import PullTask, pull
from tests.fixtures.models import install_model
from tests.hub import StandInHub

QUERY = "how do tides work"
DOCS = ["The moon pulls the ocean", "A recipe for bread", "Waves reach the shore twice a day",
        "Stock prices fell", "Tides rise and fall"]


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def qwen_reranker(synthetic, app_home: Path) -> Path:
    """A Qwen3-Reranker-style model (yes/no head) installed as `tiny-qwen-reranker`."""
    return install_model(app_home, "tiny-qwen-reranker", synthetic("qwen3", head="rerank"))


@pytest.fixture
def cross_encoder(synthetic, app_home: Path) -> Path:
    """An XLM-RoBERTa-style cross-encoder (one logit) installed as `tiny-cross-encoder`."""
    return install_model(app_home, "tiny-cross-encoder", synthetic("bert", head="rerank"))


def engine_scores(path: Path, query: str, docs: list[str], **options: object) -> np.ndarray:
    with Engine(path) as engine:
        return engine.rerank(query, docs, **options).scores


def table_rows(output: str) -> list[tuple[int, float, int, str]]:
    lines = output.splitlines()
    assert lines[0].split() == ["RANK", "SCORE", "INDEX", "DOCUMENT"]
    rows = []
    for line in lines[1:]:
        rank, score, index, text = line.split(maxsplit=3)
        rows.append((int(rank), float(score), int(index), text))
    return rows


# -- the command ----------------------------------------------------------------------------


def test_rerank_prints_documents_most_relevant_first_with_the_engines_scores(
        qwen_reranker: Path) -> None:
    result = run("rerank", "-m", "tiny-qwen-reranker", QUERY, *DOCS)
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    expected = engine_scores(qwen_reranker, QUERY, DOCS)
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert [r[2] for r in rows] == sorted(range(5), key=lambda i: -expected[i])
    for _, score, index, text in rows:
        assert score == pytest.approx(float(expected[index]), abs=1e-4)
        assert text == DOCS[index]


def test_rerank_json_gives_rank_index_score_and_text_of_every_document(
        qwen_reranker: Path) -> None:
    result = run("rerank", "-m", "tiny-qwen-reranker", "--json", QUERY, *DOCS)
    rows = json.loads(result.output)
    expected = engine_scores(qwen_reranker, QUERY, DOCS)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert sorted(r["index"] for r in rows) == list(range(5))
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    for row in rows:
        assert row["text"] == DOCS[row["index"]]
        assert row["score"] == pytest.approx(float(expected[row["index"]]), abs=1e-5)
        assert row["tokens"] > 0 and "logit" not in row  # p(yes): no logit to show


def test_a_cross_encoders_json_rows_carry_its_raw_logit(cross_encoder: Path) -> None:
    rows = json.loads(run("rerank", "-m", "tiny-cross-encoder", "--json", QUERY, *DOCS).output)
    for row in rows:
        assert row["score"] == pytest.approx(1 / (1 + np.exp(-row["logit"])), abs=1e-6)


def test_top_keeps_only_the_best_n(qwen_reranker: Path) -> None:
    everything = json.loads(run("rerank", "-m", "tiny-qwen-reranker", "--json", QUERY,
                                *DOCS).output)
    best_two = json.loads(run("rerank", "-m", "tiny-qwen-reranker", "--json", "--top", "2",
                              QUERY, *DOCS).output)
    assert best_two == everything[:2]
    table = run("rerank", "-m", "tiny-qwen-reranker", "-n", "3", QUERY, *DOCS)
    assert len(table_rows(table.output)) == 3
    too_many = json.loads(run("rerank", "-m", "tiny-qwen-reranker", "--json", "--top", "99",
                              QUERY, *DOCS).output)
    assert too_many == everything


def test_documents_come_one_per_line_from_a_file_after_the_arguments(
        qwen_reranker: Path, tmp_path: Path) -> None:
    listing = tmp_path / "docs.txt"
    listing.write_text("\n".join(DOCS[1:3]) + "\n" + DOCS[3] + "\r\n", encoding="utf-8")
    result = run("rerank", "-m", "tiny-qwen-reranker", "--json", QUERY, DOCS[0],
                 "-f", str(listing))
    rows = json.loads(result.output)
    assert sorted((r["index"], r["text"]) for r in rows) == list(enumerate(DOCS[:4]))


def test_a_blank_line_in_a_file_is_an_empty_document_that_keeps_its_place(
        qwen_reranker: Path, tmp_path: Path) -> None:
    listing = tmp_path / "docs.txt"
    listing.write_text(f"{DOCS[0]}\n\n   \n{DOCS[1]}\n", encoding="utf-8")
    rows = json.loads(run("rerank", "-m", "tiny-qwen-reranker", "--json", QUERY,
                          "-f", str(listing)).output)
    assert sorted((r["index"], r["text"]) for r in rows) == [
        (0, DOCS[0]), (1, ""), (2, "   "), (3, DOCS[1])]  # line n is index n - 1
    piped = run("rerank", "-m", "tiny-qwen-reranker", "--json", QUERY,
                input=listing.read_text(encoding="utf-8"))
    assert json.loads(piped.output) == rows


def test_documents_can_come_from_standard_input(qwen_reranker: Path) -> None:
    with_dash = run("rerank", "-m", "tiny-qwen-reranker", "--json", QUERY, "-f", "-",
                    input="\n".join(DOCS) + "\n")
    piped = run("rerank", "-m", "tiny-qwen-reranker", "--json", QUERY,
                input="\n".join(DOCS) + "\n")
    arguments = run("rerank", "-m", "tiny-qwen-reranker", "--json", QUERY, *DOCS)
    assert json.loads(with_dash.output) == json.loads(piped.output) == json.loads(
        arguments.output)


def test_the_instruction_reaches_qwen3_reranker(qwen_reranker: Path) -> None:
    instruction = "Find passages about astronomy"
    rows = json.loads(run("rerank", "-m", "tiny-qwen-reranker", "--json", "--instruction",
                          instruction, QUERY, *DOCS).output)
    expected = engine_scores(qwen_reranker, QUERY, DOCS, instruction=instruction)
    default = engine_scores(qwen_reranker, QUERY, DOCS)
    assert not np.allclose(expected, default, atol=1e-6)  # the instruction changes the scores
    for row in rows:
        assert row["score"] == pytest.approx(float(expected[row["index"]]), abs=1e-5)


def test_without_a_model_the_installed_reranker_is_used(qwen_reranker: Path) -> None:
    # The default model is the starter, an embedding model: rerank picks the reranker.
    rows = json.loads(run("rerank", "--json", QUERY, *DOCS).output)
    expected = engine_scores(qwen_reranker, QUERY, DOCS)
    assert [r["index"] for r in rows] == sorted(range(5), key=lambda i: -expected[i])


def test_a_reranker_gguf_path_is_accepted(synthetic) -> None:
    path = synthetic("bert", head="rerank")
    result = run("rerank", "-m", str(path), "--json", QUERY, *DOCS)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 5


def test_the_real_process_reads_a_pipe_and_prints_the_table(qwen_reranker: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "localembed", "rerank", "-m",
                             "tiny-qwen-reranker", "--top", "1", QUERY],
                            input="\n".join(DOCS) + "\n", capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    [(rank, _, index, text)] = table_rows(result.stdout)
    expected = engine_scores(qwen_reranker, QUERY, DOCS)
    assert (rank, index, text) == (1, int(np.argmax(expected)), DOCS[int(np.argmax(expected))])


def test_serve_announces_a_reranker_as_one(synthetic, app_home: Path) -> None:
    env = {**os.environ, "LOCALEMBED_HOME": str(app_home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "localembed", "serve", "--port", "0", "-m",
                             str(synthetic("qwen3", head="rerank"))], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "(qwen3, reranker, cpu)" in err and "Traceback" not in err


# -- its errors -----------------------------------------------------------------------------


def test_an_embedding_model_asked_to_rerank_says_to_use_a_reranker(synthetic) -> None:
    result = run("rerank", "-m", str(synthetic("bert")), QUERY, *DOCS)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is an embedding model, not a reranker" in result.output
    assert "qwen3-reranker-0.6b" in result.output and "localembed similarity" in result.output


def test_embed_and_similarity_with_a_reranker_say_to_use_rerank(qwen_reranker: Path) -> None:
    for args in (("embed", "hello"), ("similarity", QUERY, *DOCS)):
        result = run(args[0], "-m", "tiny-qwen-reranker", *args[1:])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "tiny-qwen-reranker is a reranker" in result.output
        assert "localembed rerank QUERY DOC" in result.output


def test_with_no_reranker_installed_rerank_says_how_to_get_one() -> None:
    result = run("rerank", QUERY, *DOCS)
    assert result.exit_code == 1
    assert "no reranker is installed" in result.output
    assert "localembed pull qwen3-reranker-0.6b" in result.output


def test_no_documents_is_a_usage_error(qwen_reranker: Path) -> None:
    result = run("rerank", "-m", "tiny-qwen-reranker", QUERY, input="")
    assert result.exit_code == 2 and "give documents" in result.output


def test_a_blank_query_is_refused(qwen_reranker: Path) -> None:
    result = run("rerank", "-m", "tiny-qwen-reranker", "  ", *DOCS)
    assert result.exit_code == 1 and "query must be a non-empty string" in result.output


def test_top_must_be_positive(qwen_reranker: Path) -> None:
    result = run("rerank", "-m", "tiny-qwen-reranker", "--top", "0", QUERY, *DOCS)
    assert result.exit_code == 2 and "--top" in result.output


def test_a_document_over_the_limit_is_refused_without_truncation(qwen_reranker: Path) -> None:
    long_doc = "the tide comes in " * 200
    refused = run("rerank", "-m", "tiny-qwen-reranker", "--max-tokens", "256", "--truncate",
                  "none", QUERY, DOCS[0], long_doc)
    assert refused.exit_code == 1
    assert "document 1" in refused.output and "at most 256" in refused.output
    cut = json.loads(run("rerank", "-m", "tiny-qwen-reranker", "--max-tokens", "256", "--json",
                         QUERY, DOCS[0], long_doc).output)
    assert {r["index"]: r["tokens"] for r in cut}[1] == 256


def test_a_reranker_without_its_head_is_refused_with_the_reason(synthetic) -> None:
    result = run("rerank", "-m", str(synthetic("qwen3", head="headless")), QUERY, *DOCS)
    assert result.exit_code == 1 and "without its classification head" in result.output


def test_a_two_token_type_bert_cross_encoder_is_refused_with_the_reason(synthetic) -> None:
    result = run("rerank", "-m", str(synthetic("bert", head="bert-cross-encoder")), QUERY,
                 *DOCS)
    assert result.exit_code == 1 and "2 token types" in result.output


# -- listing --------------------------------------------------------------------------------


def test_ls_shows_each_installed_models_kind(qwen_reranker: Path) -> None:
    table = run("ls").output.splitlines()
    assert table[0].split()[:3] == ["ID", "KIND", "FAMILY"]
    rows = {line[2:].split()[0]: line[2:].split() for line in table[1:]}
    assert rows["tiny-qwen-reranker"][1:3] == ["reranker", "qwen3"]
    assert rows["tiny-qwen-reranker"][4] == "-"  # no vectors, so no dimensions
    assert rows["all-minilm-l6-v2"][1] == "embedding"
    data = {r["id"]: r for r in json.loads(run("ls", "--json").output)}
    assert data["tiny-qwen-reranker"]["kind"] == "reranker"
    assert data["tiny-qwen-reranker"]["dimensions"] is None


def test_ls_catalog_shows_the_rerankers_kind() -> None:
    rows = {r["id"]: r for r in json.loads(run("ls", "--catalog", "--json").output)}
    assert rows["qwen3-reranker-0.6b-q8_0"]["kind"] == "reranker"
    assert rows["embeddinggemma-300m"]["kind"] == "embedding"
    table = run("ls", "--catalog").output.splitlines()
    assert table[0].split()[:2] == ["ID", "KIND"]
    line = next(line for line in table if line.startswith("bge-reranker-v2-m3-q8_0 "))
    assert line.split()[1:3] == ["reranker", "bert"]


# -- the Python API -------------------------------------------------------------------------


def test_llm_rerank_orders_documents_and_keeps_their_indices(qwen_reranker: Path) -> None:
    from localembed import LLM

    expected = engine_scores(qwen_reranker, QUERY, DOCS)
    with LLM("tiny-qwen-reranker") as llm:
        assert llm.kind == "reranker"
        results = llm.rerank(QUERY, DOCS)
        best = llm.rerank(QUERY, [{"text": d} for d in DOCS], top_n=2)
    assert [r.index for r in results] == sorted(range(5), key=lambda i: -expected[i])
    for r in results:
        assert r.document == DOCS[r.index] and r.relevance_score == r.score
        assert r.score == pytest.approx(float(expected[r.index]), abs=1e-5)
    assert best == results[:2]


def test_llm_rerank_options_reach_the_engine(cross_encoder: Path) -> None:
    from localembed import LLM

    long_doc = "the tide comes in " * 200
    with LLM("tiny-cross-encoder") as llm:
        with pytest.raises(InputError) as refused:
            llm.rerank(QUERY, [long_doc], truncate=False, max_tokens=64)
        cut = llm.rerank(QUERY, [long_doc], truncate="end", max_tokens=64)
    assert refused.value.param == "documents" and refused.value.code == "context_length_exceeded"
    expected = engine_scores(cross_encoder, QUERY, [long_doc], max_tokens=64)
    assert cut[0].score == pytest.approx(float(expected[0]), abs=1e-5)


def test_llm_rerank_refuses_bad_arguments_naming_the_field(qwen_reranker: Path) -> None:
    from localembed import LLM

    with LLM("tiny-qwen-reranker") as llm:
        for call, param in ((lambda: llm.rerank(QUERY, DOCS, top_n=0), "top_n"),
                            (lambda: llm.rerank(QUERY, []), "documents"),
                            (lambda: llm.rerank(QUERY, [3]), "documents"),
                            (lambda: llm.rerank("", DOCS), "query"),
                            (lambda: llm.rerank(QUERY, DOCS, colour="red"), "colour")):
            with pytest.raises(InputError) as info:
                call()
            assert info.value.param == param


def test_llm_score_with_a_reranker_gives_its_cross_encoder_scores(cross_encoder: Path) -> None:
    from localembed import LLM

    pairs_left, pairs_right = ["tides", "bread"], ["the moon and the sea", "flour and yeast"]
    with LLM("tiny-cross-encoder") as llm:
        one_to_many = [s.outputs.score for s in llm.score(QUERY, DOCS)]
        pairwise = [s.outputs.score for s in llm.score(pairs_left, pairs_right)]
        with pytest.raises(InputError) as dims:
            llm.score(QUERY, DOCS, dimensions=32)
    assert one_to_many == pytest.approx(engine_scores(cross_encoder, QUERY, DOCS), abs=1e-5)
    for (left, right), score in zip(zip(pairs_left, pairs_right, strict=True), pairwise,
                                    strict=True):
        assert score == pytest.approx(float(engine_scores(cross_encoder, left, [right])[0]),
                                      abs=1e-5)
    assert dims.value.param == "dimensions"


def test_llm_score_with_an_embedding_model_is_still_cosine(synthetic) -> None:
    from localembed import LLM

    path = synthetic("bert")
    with LLM(str(path)) as llm:
        scores = [s.outputs.score for s in llm.score(QUERY, DOCS)]
    with Engine(path) as engine:
        q = engine.embed([QUERY]).vectors[0]
        d = engine.embed(DOCS).vectors
    assert scores == pytest.approx((d @ q).tolist(), abs=1e-5)


def test_llm_score_refuses_an_instruction_for_an_embedding_model_as_http_does(
        synthetic) -> None:
    from localembed import LLM

    with LLM(str(synthetic("bert"))) as llm, pytest.raises(InputError) as refused:
        llm.score(QUERY, DOCS, instruction="Find passages about astronomy")
    assert refused.value.param == "instruction"


def test_llm_rerank_takes_the_rerank_bodys_fields(cross_encoder: Path) -> None:
    from localembed import LLM

    long_doc = "the tide comes in " * 200
    with LLM("tiny-cross-encoder") as llm:
        with pytest.raises(InputError) as refused:
            llm.rerank(QUERY, [long_doc], truncation=False, max_tokens_per_doc=8)
        cut = llm.rerank(QUERY, [long_doc], max_tokens_per_doc=8)
        with Engine(cross_encoder) as engine:
            frame = len(engine.prepare_pair(QUERY, "", RerankOptions()))
    assert refused.value.code == "context_length_exceeded"
    expected = engine_scores(cross_encoder, QUERY, [long_doc], max_tokens=frame + 8)
    assert cut[0].score == pytest.approx(float(expected[0]), abs=1e-5)


def test_llm_names_the_kind_of_model_each_call_needs(qwen_reranker: Path, synthetic) -> None:
    from localembed import LLM

    with LLM("tiny-qwen-reranker") as llm, pytest.raises(WrongModelKind) as embed:
        llm.embed(["hello"])
    with LLM(str(synthetic("bert"))) as llm, pytest.raises(WrongModelKind) as rerank:
        llm.rerank(QUERY, DOCS)
    assert embed.value.code == rerank.value.code == "wrong_model_kind"
    assert "is a reranker" in str(embed.value)
    assert "not a reranker" in str(rerank.value)


# -- the catalog ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["qwen3-reranker-0.6b", "qwen3-reranker-4b",
                                  "qwen3-reranker-8b", "bge-reranker-v2-m3"])
def test_the_catalog_offers_rerankers_of_kind_reranker(name: str) -> None:
    entry = catalog.lookup(name)
    assert entry is not None and entry.kind == "reranker" and entry.dimensions is None
    assert entry.family == ("bert" if name.startswith("bge") else "qwen3")
    # Nothing here could check their hashes: each follows main, checked against the hub's sha.
    assert not entry.pinned and entry.sources[0].sha256 is None


def test_catalog_embedding_entries_are_of_kind_embedding() -> None:
    embedding = [e for e in catalog.CATALOG if e.kind == "embedding"]
    assert {e.id for e in embedding} >= {"embeddinggemma-300m", "qwen3-embedding-0.6b-q8_0"}
    assert all(e.dimensions for e in embedding)
    assert {e.kind for e in catalog.CATALOG} == {"embedding", "reranker"}


def test_a_headless_qwen3_reranker_on_the_hub_is_refused_and_the_fallback_pulled(
        synthetic, app_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    entry = catalog.lookup("qwen3-reranker-0.6b")
    assert entry is not None and len(entry.sources) >= 2
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    first, second = entry.sources[:2]
    with StandInHub() as hub:
        hub.add(first.repo, first.filename, synthetic("qwen3", head="headless").read_bytes())
        hub.add(second.repo, second.filename, synthetic("qwen3", head="rerank").read_bytes())
        task = PullTask(entry.id)
        path = pull("qwen3-reranker", task, endpoint=hub.url)
    assert task.progress.source == second.repo
    assert "without its classification head" in (task.progress.notice or "")
    assert path == app_home / "models" / f"{entry.id}.gguf"
    rows = json.loads(run("rerank", "-m", "qwen3-reranker", "--json", QUERY, *DOCS).output)
    assert len(rows) == 5
