"""Collections end to end on the real engine with the bundled starter model: index a real
corpus (the standard library's own docstrings), search it, keep it up to date, survive kill -9,
and answer the same through the CLI, HTTP and Python."""

from __future__ import annotations

import importlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from localembed.cli import cli
from localembed.collections.ingest import IndexOptions, index
from localembed.collections.search import SearchQuery, search
from localembed.collections.store import Collection, CollectionError
from localembed.config.settings import ServerConfig
from localembed.engine import EmbedOptions
from localembed.models.starter import STARTER_ID
from localembed.server import create_app
from localembed.service.execute import EmbedRequest, Service
from localembed.service.registry import Registry
from tests.conftest import wait_until
from tests.fixtures.models import install_model

# Standard-library modules whose docstrings say plainly what they are for: the corpus.
MODULES = ("argparse", "csv", "json", "sqlite3", "zipfile", "tarfile", "gzip", "hashlib",
           "hmac", "secrets", "uuid", "heapq", "bisect", "statistics", "fractions", "decimal",
           "difflib", "textwrap", "shlex", "glob", "fnmatch", "tempfile", "shutil", "pickle",
           "copy", "pprint", "calendar", "smtplib", "imaplib", "ftplib", "http.cookies",
           "urllib.parse", "ipaddress", "mailbox", "wave", "colorsys", "timeit", "trace",
           "tracemalloc", "zoneinfo", "graphlib", "contextvars", "sched", "selectors")
# Queries written from a module's docstring, without its name.
QUERIES = {
    "argparse": "parse command line options and arguments",
    "csv": "read and write comma separated values files",
    "sqlite3": "a DB-API interface to an embedded SQL database",
    "zipfile": "read and write ZIP archive files",
    "heapq": "priority queue algorithm on a heap",
    "difflib": "compute differences between sequences of lines",
    "smtplib": "send mail with the SMTP protocol client",
    "ipaddress": "manipulate IPv4 and IPv6 addresses and networks",
    "tarfile": "read from and write to tar archives",
    "secrets": "generate cryptographically strong random numbers for passwords and tokens",
    "uuid": "generate universally unique identifiers",
}


def docstring(module: str) -> str:
    text = importlib.import_module(module).__doc__ or ""
    return text.strip()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One text file per module: its docstring (what ships with Python itself)."""
    root = tmp_path_factory.mktemp("corpus")
    for module in MODULES:
        text = docstring(module)
        if text:
            (root / f"{module}.txt").write_text(text + "\n", encoding="utf-8")
    return root


def exported(name: str) -> dict[str, dict]:
    with Collection.open(name) as collection:
        return {row["id"]: row for row in collection.export()}


def test_queries_written_from_a_document_find_it_in_the_top_3(service, corpus: Path) -> None:
    index(service, "docs", [corpus])
    misses = {}
    for module, query in QUERIES.items():
        found = [r.document for r in search(service, "docs", SearchQuery(query, top_k=3)).results]
        if f"{module}.txt" not in found:
            misses[module] = found
    assert misses == {}


def test_search_order_equals_brute_force_cosine_over_the_exported_vectors(service,
                                                                         corpus: Path) -> None:
    index(service, "docs", [corpus])
    rows = list(exported("docs").values())
    matrix = np.array([r["embedding"] for r in rows], dtype=np.float64)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    with Collection.open("docs") as collection:
        options = EmbedOptions(**collection.binding.query_options)
    for query in QUERIES.values():
        vector = service.embed(EmbedRequest([query], options)).vectors[0]
        expected = [rows[i]["id"] for i in np.argsort(-(matrix @ vector), kind="stable")[:10]]
        got = [r.id for r in search(service, "docs", SearchQuery(query, top_k=10)).results]
        assert got == expected, query


def test_indexing_again_embeds_nothing_when_nothing_changed(service, corpus: Path) -> None:
    first = index(service, "docs", [corpus])
    again = index(service, "docs", [corpus])
    assert first.added == len(list(corpus.iterdir())) and first.chunks > 0
    assert (again.added, again.changed, again.chunks, again.unchanged) == (0, 0, 0, first.added)


def test_a_changed_file_re_embeds_only_its_chunks_and_a_deleted_one_leaves(
        service, corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for path in sorted(corpus.iterdir())[:6]:
        (folder / path.name).write_text(path.read_text())
    index(service, "docs", [folder])
    before = exported("docs")
    changed, gone = sorted(folder.iterdir())[:2]
    changed.write_text("A new text about baking sourdough bread at home.\n")
    gone.unlink()
    report = index(service, "docs", [folder])
    assert (report.added, report.changed, report.removed, report.unchanged) == (0, 1, 1, 4)
    after = exported("docs")
    assert not any(k.startswith(gone.name + "#") for k in after)
    assert [k for k in after if k.startswith(changed.name + "#")] == [changed.name + "#0"]
    untouched = {k: v for k, v in before.items()
                 if not k.startswith((changed.name + "#", gone.name + "#"))}
    assert all(after[k]["embedding"] == v["embedding"] for k, v in untouched.items())


def test_other_chunk_settings_need_rechunk_which_embeds_every_document_again(
        service, corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for path in sorted(corpus.iterdir())[:5]:
        (folder / path.name).write_text(path.read_text())
    first = index(service, "docs", [folder])
    with pytest.raises(CollectionError, match="--rechunk"):
        index(service, "docs", [folder], IndexOptions(chunk_tokens=48))
    again = index(service, "docs", [folder], IndexOptions(chunk_tokens=48, rechunk=True))
    assert (again.changed, again.unchanged) == (first.added, 0)
    assert again.chunks > first.chunks
    with Collection.open("docs") as collection:
        assert (collection.binding.chunk_tokens, collection.binding.overlap) == (48, 6)
        path = collection.path
    with sqlite3.connect(path) as db:  # as any SQLite reader sees it
        assert db.execute("SELECT max(tokens) FROM chunks").fetchone()[0] <= 48
    assert index(service, "docs", [folder]).unchanged == first.added  # the new settings kept


def test_every_chunk_fits_the_model_with_its_prompt_and_none_is_cut(service,
                                                                    tmp_path: Path) -> None:
    folder = tmp_path / "long"
    folder.mkdir()
    text = "\n\n".join(docstring(m) for m in MODULES)  # far longer than 256 tokens
    (folder / "all.txt").write_text(text)
    index(service, "long", [folder])
    engine = service.engine(None)
    rows = sorted(exported("long").values(), key=lambda r: r["metadata"]["number"])
    assert len(rows) > 5
    words = " ".join(text.split())
    covered = np.zeros(len(words), dtype=bool)
    start = 0
    for row in rows:
        assert len(engine.prepare(row["text"])) <= engine.max_tokens
        piece = " ".join(row["text"].split())
        at = words.find(piece, start)
        assert at >= 0, row["id"]  # whole text, in order, uncut
        covered[at:at + len(piece)] = True
        start = at
    assert all(covered[i] for i, c in enumerate(words) if c != " ")  # nothing left out


def test_kill_9_at_any_moment_then_a_rerun_gives_exactly_a_clean_runs_chunks(
        corpus: Path, tmp_path: Path, app_home: Path) -> None:
    env = {**os.environ, "LOCALEMBED_HOME": str(app_home)}
    command = [sys.executable, "-m", "localembed", "index", "crashy", str(corpus)]
    for delay in (0.8, 1.6, 2.4, 3.2):
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    subprocess.run([sys.executable, "-m", "localembed", "index", "clean", str(corpus)], env=env,
                   check=True, capture_output=True, timeout=300)
    crashy, clean = exported("crashy"), exported("clean")
    assert sorted(crashy) == sorted(clean)
    for chunk_id, row in clean.items():
        assert crashy[chunk_id]["text"] == row["text"]
        # The same chunk in other company in a batch: equal up to float rounding.
        a, b = np.array(crashy[chunk_id]["embedding"]), np.array(row["embedding"])
        assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.99999


def test_cli_http_and_python_answer_a_search_alike(corpus: Path, app_home: Path) -> None:
    from localembed.api import LLM

    runner = CliRunner()
    assert runner.invoke(cli, ["index", "docs", str(corpus)]).exit_code == 0
    query = QUERIES["csv"]
    printed = json.loads(runner.invoke(cli, ["search", "docs", query, "--json", "-k", "5"]).output)
    registry = Registry(STARTER_ID)
    try:
        client = create_app(ServerConfig(), registry).test_client()
        answered = client.post("/v1/collections/docs/search",
                               json={"query": query, "top_k": 5}).get_json()
    finally:
        registry.close()
    with LLM() as llm:
        found = llm.search("docs", query, top_k=5)
    assert [r["id"] for r in printed] == [r["id"] for r in answered["results"]]
    assert [r["id"] for r in printed] == [r.id for r in found]
    assert {"id", "document", "score", "text"} <= set(printed[0])
    assert np.allclose([r["score"] for r in printed], [r.score for r in found], atol=1e-6)


def test_a_search_with_a_collection_whose_model_is_gone_says_which_to_pull(
        synthetic, app_home: Path, tmp_path: Path) -> None:
    install_model(app_home, "tiny", synthetic("bert"))
    (tmp_path / "a.txt").write_text("hello world\n")
    registry = Registry("tiny")
    try:
        service = Service(registry)
        index(service, "tiny-docs", [tmp_path], IndexOptions(model="tiny"))
    finally:
        registry.close()
    (app_home / "models" / "tiny.gguf").unlink()
    result = CliRunner().invoke(cli, ["search", "tiny-docs", "hello"])
    assert result.exit_code != 0
    assert "tiny" in result.output and "pull" in result.output


def test_indexing_into_a_collection_of_another_model_is_refused(
        service, synthetic, app_home: Path, corpus: Path) -> None:
    install_model(app_home, "tiny", synthetic("bert"))
    index(service, "docs", [corpus])
    result = CliRunner().invoke(cli, ["index", "docs", str(corpus), "-m", "tiny"])
    assert result.exit_code != 0
    assert STARTER_ID in result.output and "tiny" in result.output


def test_hybrid_search_finds_an_exact_code_the_vectors_rank_lower(service,
                                                                  tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(12):
        (folder / f"part{i}.txt").write_text(
            f"Spare part catalogue entry {i}: a steel bracket for shelving, code QX-{1000 + i}.\n")
    index(service, "parts", [folder])
    hybrid = search(service, "parts", SearchQuery("QX-1007", top_k=1, hybrid=True)).results
    assert hybrid[0].document == "part7.txt"
    assert hybrid[0].keyword_score is not None


def test_a_rerank_orders_the_candidates_by_the_rerankers_scores(
        service, synthetic, app_home: Path, corpus: Path) -> None:
    install_model(app_home, "tiny-reranker", synthetic("bert", head="rerank"))
    index(service, "docs", [corpus])
    answer = search(service, "docs", SearchQuery(QUERIES["csv"], top_k=5, rerank=True))
    assert answer.reranker == "tiny-reranker"
    scores = [r.rerank_score for r in answer.results]
    assert scores == sorted(scores, reverse=True) and all(s is not None for s in scores)
    assert all(r.score == r.rerank_score and r.vector_rank is not None for r in answer.results)


def test_where_and_path_filters_keep_only_matching_documents(service, tmp_path: Path) -> None:
    records = tmp_path / "notes.jsonl"
    records.write_text("\n".join(json.dumps(r) for r in [
        {"id": "n1", "text": "The tide rises twice a day.", "topic": "sea"},
        {"id": "n2", "text": "Tides follow the moon.", "topic": "sky"},
        {"id": "n3", "text": "Low tide uncovers the rocks.", "topic": "sea"}]) + "\n")
    index(service, "notes", [records])
    found = search(service, "notes", SearchQuery("tides", where={"topic": "sea"})).results
    assert sorted(r.document for r in found) == ["n1", "n3"]
    assert all(r.metadata.get("topic") == "sea" for r in found)


def test_indexing_a_path_over_http_is_a_management_action(corpus: Path) -> None:
    registry = Registry(STARTER_ID)
    try:
        client = create_app(ServerConfig(), registry).test_client()
        foreign = client.post("/v1/collections/docs/index", json={"paths": [str(corpus)]},
                              headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        started = client.post("/v1/collections/docs/index", json={"paths": [str(corpus)]})
        assert started.status_code == 202
        wait_until(lambda: client.get("/v1/collections/docs/index").get_json()["status"]
                   in ("done", "error"), timeout=120)
        done = client.get("/v1/collections/docs/index").get_json()
        assert done["status"] == "done" and done["report"]["added"] == len(list(corpus.iterdir()))
        assert client.get("/v1/collections/docs").get_json()["documents"] == done["report"]["added"]
        events = client.get("/v1/collections/docs/index/events")
        assert events.status_code == 200 and b'"status": "done"' in events.data
    finally:
        registry.close()


def test_apps_feed_and_delete_documents_by_id_over_http(app_home: Path) -> None:
    registry = Registry(STARTER_ID)
    try:
        client = create_app(ServerConfig(), registry).test_client()
        docs = [{"id": "a", "text": "Bread needs flour, water, salt and yeast."},
                {"id": "b", "text": "A bicycle chain needs oil.", "metadata": {"shelf": "2"}}]
        first = client.post("/v1/collections/app/documents", json={"upsert": docs}).get_json()
        assert (first["added"], first["chunks"]) == (2, 2)
        again = client.post("/v1/collections/app/documents", json={"upsert": docs}).get_json()
        assert (again["added"], again["unchanged"], again["chunks"]) == (0, 2, 0)
        hit = client.post("/v1/collections/app/search",
                          json={"query": "baking", "top_k": 1}).get_json()["results"][0]
        assert hit["document"] == "a"
        gone = client.post("/v1/collections/app/documents", json={"delete": ["a"]}).get_json()
        assert gone["deleted"] == 1
        left = client.post("/v1/collections/app/search", json={"query": "baking"}).get_json()
        assert [r["document"] for r in left["results"]] == ["b"]
        assert left["results"][0]["metadata"]["shelf"] == "2"
    finally:
        registry.close()


def test_a_search_with_include_vectors_returns_the_query_and_the_stored_vectors(
        service, corpus: Path) -> None:
    index(service, "docs", [corpus])
    client = create_app(ServerConfig(), service.registry).test_client()
    query = "read and write ZIP archive files"
    plain = client.post("/v1/collections/docs/search", json={"query": query, "top_k": 5})
    assert "embeddings" not in plain.get_json() and "query_embedding" not in plain.get_json()
    body = client.post("/v1/collections/docs/search",
                       json={"query": query, "top_k": 5, "include_vectors": True}).get_json()
    stored = exported("docs")
    assert len(body["embeddings"]) == len(body["results"]) == 5
    for result, vector in zip(body["results"], body["embeddings"], strict=True):
        np.testing.assert_allclose(vector, stored[result["id"]]["embedding"], rtol=1e-6)
        assert float(np.dot(vector, body["query_embedding"])) == pytest.approx(
            result["vector_score"], abs=1e-5)
    asked = client.post("/v1/embeddings", json={"input": query, "task": "query"}).get_json()
    np.testing.assert_allclose(body["query_embedding"], asked["data"][0]["embedding"],
                               atol=1e-6)


def test_bad_collection_requests_are_clear_400s_and_404s(app_home: Path) -> None:
    registry = Registry(STARTER_ID)
    try:
        client = create_app(ServerConfig(), registry).test_client()
        missing = client.post("/v1/collections/nope/search", json={"query": "x"})
        assert missing.status_code == 404
        assert missing.get_json()["error"]["code"] == "collection_not_found"
        path = client.post("/v1/collections/..%2Fetc/search", json={"query": "x"})
        assert path.status_code in (400, 404)
        empty = client.post("/v1/collections/nope/search", json={"query": ""})
        assert empty.status_code == 400 and empty.get_json()["error"]["param"] == "query"
    finally:
        registry.close()


def test_export_writes_one_json_object_per_chunk(service, corpus: Path, tmp_path: Path) -> None:
    index(service, "docs", [corpus])
    out = tmp_path / "docs.jsonl"
    result = CliRunner().invoke(cli, ["export", "docs", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(exported("docs"))
    assert {"id", "document", "text", "embedding", "metadata"} <= set(rows[0])
    assert len(rows[0]["embedding"]) == 384


def test_collections_lists_shows_and_removes(service, corpus: Path) -> None:
    index(service, "docs", [corpus])
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["collections", "--json"]).output)
    assert [c["name"] for c in listed] == ["docs"] and listed[0]["model"] == STARTER_ID
    shown = json.loads(runner.invoke(cli, ["collections", "show", "docs"]).output)
    assert shown["documents"] == len(list(corpus.iterdir()))
    assert runner.invoke(cli, ["collections", "remove", "docs"]).exit_code == 0
    assert json.loads(runner.invoke(cli, ["collections", "--json"]).output) == []


def test_searches_keep_answering_while_an_index_job_runs(corpus: Path, tmp_path: Path) -> None:
    registry = Registry(STARTER_ID)
    try:
        client = create_app(ServerConfig(), registry).test_client()
        first = tmp_path / "first"
        first.mkdir()
        (first / "tides.txt").write_text("The tide rises twice a day.\n")
        client.post("/v1/collections/docs/index", json={"paths": [str(first)]})
        wait_until(lambda: client.get("/v1/collections/docs/index").get_json()["status"]
                   == "done", timeout=60)
        client.post("/v1/collections/docs/index", json={"paths": [str(first), str(corpus)]})
        answered = []
        while client.get("/v1/collections/docs/index").get_json()["status"] not in (
                "done", "error"):
            reply = client.post("/v1/collections/docs/search", json={"query": "tide"})
            assert reply.status_code == 200
            answered.append(reply.get_json()["results"][0]["document"])
        assert answered and set(answered) == {"tides.txt"}
    finally:
        registry.close()
