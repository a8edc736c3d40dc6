"""``localembed embed-corpus`` in this process: the corpus pipeline of ``index`` (the same
chunks, prompts and vectors) written as a Parquet dataset that data tools read, resumable,
and loaded back into a collection by ``localembed index NAME OUT`` without embedding again."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from localembed.cli import cli
from localembed.collections import corpus as corpus_module
from localembed.collections.corpus import embed_corpus, parts
from localembed.collections.ingest import IndexOptions, index
from localembed.collections.search import SearchQuery, search
from localembed.collections.sources import ReadOptions
from localembed.collections.store import Binding, Collection, CollectionError
from localembed.models.starter import STARTER_ID
from localembed.service.execute import Limits, Service
from localembed.service.registry import Registry
from tests.fixtures.models import install_model

MODULES = ("argparse", "csv", "json", "sqlite3", "zipfile", "tarfile", "gzip", "hashlib",
           "heapq", "bisect", "difflib", "textwrap", "smtplib", "ipaddress", "uuid",
           "secrets", "calendar", "shutil", "pickle", "tempfile", "glob", "fnmatch")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One text file per module: its docstring; one JSON Lines file of records besides."""
    root = tmp_path_factory.mktemp("corpus")
    for module in MODULES:
        text = (importlib.import_module(module).__doc__ or "").strip()
        (root / f"{module}.txt").write_text(text + "\n", encoding="utf-8")
    with (root / "notes.jsonl").open("w") as f:
        for n, text in enumerate(["The rent is due on the first of the month.",
                                  "Water the plants on Sundays."]):
            f.write(json.dumps({"id": f"note-{n}", "text": text, "shelf": n}) + "\n")
    return root


def table(out: Path) -> list[dict]:
    return sorted(pq.read_table(out).to_pylist(), key=lambda r: r["id"])


def cosine(a: object, b: object) -> float:
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def test_the_dataset_holds_the_chunks_and_vectors_an_index_run_makes(
        service, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = embed_corpus(service, [folder], out)
    index(service, "direct", [folder])
    with Collection.open("direct") as collection:
        direct = {row["id"]: row for row in collection.export()}
    rows = table(out)
    assert [r["id"] for r in rows] == sorted(direct)
    assert report.written == len(MODULES) + 2 and report.chunks == len(rows)
    for row in rows:
        assert row["text"] == direct[row["id"]]["text"]
        assert cosine(row["embedding"], direct[row["id"]]["embedding"]) > 0.99999
        assert row["chunks"] == sum(1 for r in rows if r["document"] == row["document"])
    note = next(r for r in rows if r["document"] == "note-1")
    assert json.loads(note["metadata"]) == {"shelf": 1}


def test_the_dataset_reads_as_a_plain_table_in_pyarrow_pandas_and_duckdb(
        service, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    embed_corpus(service, [folder], out)
    arrow = pq.read_table(out)
    kind = arrow.schema.field("embedding").type
    assert (kind.list_size, str(kind.value_type)) == (384, "float")  # fixed-size float32
    meta = json.loads(arrow.schema.metadata[b"localembed"])
    assert meta["model"] == STARTER_ID and len(meta["sha256"]) == 64
    with Collection.open_or_create("same", Binding.from_dict(meta)) as made:
        assert made.binding.chunk_tokens == meta["chunk_tokens"] > 0  # a collection's binding
    frame = arrow.to_pandas()
    assert len(frame) == arrow.num_rows and frame["embedding"].iloc[0].shape == (384,)
    query = f"SELECT count(*), count(DISTINCT id) FROM '{out}/*.parquet'"
    counted = duckdb.sql(query).fetchall()[0]
    assert counted == (arrow.num_rows, arrow.num_rows)


def test_parquet_records_are_read_as_documents_from_a_path_or_a_uri(
        service, tmp_path: Path) -> None:
    import pyarrow as pa

    records = pa.table({"id": ["r1", "r2"], "body": ["Tides rise twice a day.",
                                                     "Bread needs flour and yeast."],
                        "shelf": [3, 4]})
    source = tmp_path / "records.parquet"
    pq.write_table(records, source)
    for given, out in ((str(source), tmp_path / "a"), (source.as_uri(), tmp_path / "b")):
        report = embed_corpus(service, [given], out, IndexOptions(
            read=ReadOptions(text_field="body")))
        got = table(out)
        assert report.written == 2 and [r["document"] for r in got] == ["r1", "r2"]
        assert [r["text"] for r in got] == ["Tides rise twice a day.",
                                            "Bread needs flour and yeast."]
        assert json.loads(got[0]["metadata"]) == {"shelf": 3}


def test_a_rerun_embeds_only_the_documents_not_yet_written(service, folder: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = embed_corpus(service, [folder], out)
    again = embed_corpus(service, [folder], out)
    assert (again.written, again.unchanged, again.chunks) == (0, first.written, 0)
    lost = parts(out)[0]  # as if the run had been killed before writing this part
    documents = set(pq.read_table(lost, columns=["document"]).column("document").to_pylist())
    lost.unlink()
    resumed = embed_corpus(service, [folder], out)
    assert resumed.written == len(documents)
    assert resumed.unchanged == first.written - len(documents)
    rows = table(out)
    assert len({r["id"] for r in rows}) == len(rows) == first.chunks


def test_a_changed_document_replaces_its_old_rows(service, folder: Path,
                                                  tmp_path: Path) -> None:
    source = tmp_path / "docs"
    source.mkdir()
    for path in sorted(folder.glob("*.txt"))[:4]:
        (source / path.name).write_text(path.read_text())
    out = tmp_path / "out"
    embed_corpus(service, [source], out)
    changed = sorted(source.iterdir())[0]
    changed.write_text("A new text about baking sourdough bread at home.\n")
    report = embed_corpus(service, [source], out)
    assert (report.written, report.unchanged) == (1, 3)
    rows = [r for r in table(out) if r["document"] == changed.name]
    assert [r["text"] for r in rows] == ["A new text about baking sourdough bread at home."]
    assert len({r["id"] for r in table(out)}) == len(table(out))


def test_index_loads_the_dataset_into_a_collection_that_searches_like_a_direct_one(
        service, folder: Path, tmp_path: Path, app_home: Path) -> None:
    out = tmp_path / "out"
    embed_corpus(service, [folder], out)
    result = CliRunner().invoke(cli, ["index", "loaded", str(out)])
    assert result.exit_code == 0, result.output
    assert "nothing embedded" in result.output
    index(service, "direct", [folder])
    for query in ("read and write ZIP archive files", "when is the rent due"):
        loaded = search(service, "loaded", SearchQuery(query, top_k=5)).results
        direct = search(service, "direct", SearchQuery(query, top_k=5)).results
        assert [r.id for r in loaded] == [r.id for r in direct]
        assert [r.document for r in loaded][:1] == [r.document for r in direct][:1]
    with Collection.open("loaded") as loaded_collection:
        assert loaded_collection.binding == Collection.open("direct").binding
    again = CliRunner().invoke(cli, ["index", "loaded", str(out)])
    assert "0 documents loaded" in again.output


def test_a_dataset_of_another_model_is_refused(service, synthetic, folder: Path,
                                               tmp_path: Path, app_home: Path) -> None:
    install_model(app_home, "tiny", synthetic("bert"))
    out = tmp_path / "out"
    embed_corpus(service, [folder / "csv.txt"], out)
    tiny = Registry("tiny")
    try:
        other = Service(tiny, Limits())
        with pytest.raises(CollectionError, match="holds vectors of all-minilm-l6-v2"):
            embed_corpus(other, [folder / "csv.txt"], out, IndexOptions(model="tiny"))
        index(other, "tiny-docs", [folder / "json.txt"], IndexOptions(model="tiny"))
    finally:
        tiny.close()
    result = CliRunner().invoke(cli, ["index", "tiny-docs", str(out)])
    assert result.exit_code != 0 and "tiny" in result.output


def test_embed_corpus_writes_only_into_an_empty_folder_or_its_own_dataset(
        service, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("not a dataset")
    with pytest.raises(corpus_module.InputError, match="not a dataset"):
        embed_corpus(service, [folder / "csv.txt"], out)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]


def test_the_cli_writes_a_dataset_and_says_what_it_did(folder: Path, tmp_path: Path,
                                                       app_home: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["embed-corpus", str(folder), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{len(MODULES) + 2} documents written" in result.output
    again = CliRunner().invoke(cli, ["embed-corpus", str(folder), "-o", str(out)])
    assert "0 documents written" in again.output and "already there" in again.output


def test_ray_options_without_ray_are_refused_by_name(folder: Path, tmp_path: Path,
                                                     app_home: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["embed-corpus", str(folder), "-o", str(out),
                                      "--actors", "2", "--gpus", "1"])
    assert result.exit_code == 2
    assert "--actors, --gpus only with --ray" in result.output
    assert not out.exists()
