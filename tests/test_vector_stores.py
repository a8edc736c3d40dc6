"""OpenAI's files and vector stores API over collections, through the real ``openai`` SDK
against a real server with the bundled starter model: upload, attach (and poll), search with
filters and ranking options, list/retrieve/update/delete, failures OpenAI-shaped."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import msgspec
import openai
import pytest
from openai import OpenAI

from localembed.config.settings import ServerConfig
from localembed.models.starter import ensure_starter
from tests.fixtures.models import install_model
from tests.fixtures.server import call, running

# Standard-library modules whose docstrings say what they are for, and a query for each
# written without the module's name.
QUERIES = {
    "csv": "read and write comma separated values files",
    "sqlite3": "a DB-API interface to an embedded SQL database",
    "zipfile": "read and write ZIP archive files",
    "heapq": "priority queue algorithm on a heap",
    "smtplib": "send mail with the SMTP protocol client",
    "ipaddress": "manipulate IPv4 and IPv6 addresses and networks",
}
# Half as Markdown, half as text: both are read as a collection reads files.
SUFFIX = {"csv": ".txt", "sqlite3": ".md", "zipfile": ".txt", "heapq": ".md",
          "smtplib": ".txt", "ipaddress": ".md"}
TOPICS = {"csv": "data", "sqlite3": "data", "zipfile": "archive", "heapq": "algorithms",
          "smtplib": "mail", "ipaddress": "network"}
YEARS = {"csv": 2019, "sqlite3": 2020, "zipfile": 2021, "heapq": 2022, "smtplib": 2023,
         "ipaddress": 2024}


def docstring(module: str) -> str:
    return (importlib.import_module(module).__doc__ or "").strip()


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "corpus"
    root.mkdir()
    paths = {}
    for module in QUERIES:
        path = root / f"{module}{SUFFIX[module]}"
        path.write_text(docstring(module) + "\n", encoding="utf-8")
        paths[module] = path
    return paths


@pytest.fixture
def server(app_home: Path) -> Iterator[str]:
    with running(ServerConfig(), ensure_starter()) as (url, _):
        yield url


def sdk(url: str) -> OpenAI:
    return OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def upload(client: OpenAI, store: str, path: Path, **attributes: object):  # type: ignore[no-untyped-def]
    with path.open("rb") as f:
        return client.vector_stores.files.upload_and_poll(
            vector_store_id=store, file=f, attributes=attributes or openai.omit,
            max_wait_seconds=120)


@pytest.fixture
def filled(server: str, corpus: dict[str, Path]) -> tuple[OpenAI, str, dict[str, str]]:
    """A store with the corpus attached, each file with its topic, year and a flag as
    attributes; (client, store id, file id by module)."""
    client = sdk(server)
    store = client.vector_stores.create(name="stdlib")
    ids = {}
    for module, path in corpus.items():
        attached = upload(client, store.id, path, topic=TOPICS[module], year=YEARS[module],
                          recent=YEARS[module] >= 2022)
        assert attached.status == "completed", attached.last_error
        ids[module] = attached.id
    return client, store.id, ids


def test_upload_and_poll_then_search_finds_the_right_file_first(
        server: str, corpus: dict[str, Path]) -> None:
    client = sdk(server)
    store = client.vector_stores.create(name="stdlib docs")
    assert (store.object, store.name, store.status) == ("vector_store", "stdlib docs",
                                                         "completed")
    assert store.id.startswith("vs_") and store.file_counts.total == 0
    ids = {}
    for module, path in corpus.items():
        attached = upload(client, store.id, path)
        assert attached.object == "vector_store.file"
        assert (attached.status, attached.last_error) == ("completed", None)
        assert attached.vector_store_id == store.id and attached.usage_bytes == path.stat().st_size
        ids[module] = attached.id
    again = client.vector_stores.retrieve(store.id)
    counts = again.file_counts
    assert (counts.completed, counts.total, counts.in_progress, counts.failed) == (6, 6, 0, 0)
    assert again.usage_bytes == sum(p.stat().st_size for p in corpus.values())
    for module, query in QUERIES.items():
        page = client.vector_stores.search(vector_store_id=store.id, query=query)
        best = page.data[0]
        assert best.file_id == ids[module], (query, [r.filename for r in page.data])
        assert best.filename == corpus[module].name
        assert best.content[0].type == "text" and best.content[0].text.strip()
        assert best.content[0].text in docstring(module)
        assert isinstance(best.score, float) and 0 < best.score <= 1
        scores = [r.score for r in page.data]
        assert scores == sorted(scores, reverse=True) and len(page.data) <= 10
    both = client.vector_stores.search(vector_store_id=store.id, max_num_results=4,
                                       query=[QUERIES["csv"], QUERIES["smtplib"]])
    assert {ids["csv"], ids["smtplib"]} <= {r.file_id for r in both.data}
    one = client.vector_stores.search(vector_store_id=store.id, query=QUERIES["heapq"],
                                      max_num_results=1, rewrite_query=True)
    assert [r.file_id for r in one.data] == [ids["heapq"]]


def test_a_file_batch_uploaded_and_polled_makes_every_file_searchable(
        server: str, corpus: dict[str, Path]) -> None:
    client = sdk(server)
    store = client.vector_stores.create(name="batch")
    handles = [path.open("rb") for path in corpus.values()]
    try:
        batch = client.vector_stores.file_batches.upload_and_poll(
            vector_store_id=store.id, files=handles, max_concurrency=3)
    finally:
        for handle in handles:
            handle.close()
    assert batch.object == "vector_store.files_batch" and batch.id.startswith("vsfb_")
    assert batch.status == "completed" and batch.vector_store_id == store.id
    counts = batch.file_counts
    assert (counts.completed, counts.total, counts.failed, counts.in_progress) == (6, 6, 0, 0)
    listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert sorted(f.status for f in listed.data) == ["completed"] * 6
    names = {f.id: client.files.retrieve(f.id).filename for f in listed.data}
    for module, query in QUERIES.items():
        best = client.vector_stores.search(vector_store_id=store.id, query=query).data[0]
        assert names[best.file_id] == corpus[module].name


def test_a_file_batch_gives_each_file_its_attributes(server: str,
                                                     corpus: dict[str, Path]) -> None:
    client = sdk(server)
    store = client.vector_stores.create(name="batch")
    ids = {}
    for module, path in corpus.items():
        with path.open("rb") as f:
            ids[module] = client.files.create(file=f, purpose="assistants").id
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id,
        files=[{"file_id": ids[m], "attributes": {"topic": TOPICS[m]}} for m in ids])
    assert batch.status == "completed" and batch.file_counts.completed == 6
    found = client.vector_stores.search(vector_store_id=store.id, query=QUERIES["csv"],
                                        filters={"type": "eq", "key": "topic",
                                                 "value": "data"})
    assert {r.file_id for r in found.data} <= {ids["csv"], ids["sqlite3"]} and found.data
    shared = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[ids["heapq"]], attributes={"topic": "heaps"})
    assert shared.file_counts.completed == 1
    assert client.vector_stores.files.retrieve(
        ids["heapq"], vector_store_id=store.id).attributes == {"topic": "heaps"}


def test_cancelling_a_file_batch_detaches_the_files_still_in_progress(
        server: str, tmp_path: Path) -> None:
    client = sdk(server)
    store = client.vector_stores.create(name="cancel")
    ids = []
    for n in range(8):
        path = tmp_path / f"note{n}.txt"
        path.write_text(f"Note {n}. " + "Words about tides, harbours and boats. " * 300)
        with path.open("rb") as f:
            ids.append(client.files.create(file=f, purpose="assistants").id)
    batch = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=ids)
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.status == "cancelled" and cancelled.file_counts.cancelled >= 1
    assert cancelled.file_counts.total == 8
    statuses = {}
    for _ in range(600):
        listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
        statuses = {f.id: f.status for f in listed.data}
        if "in_progress" not in statuses.values():
            break
    stored = {f.id for f in client.vector_stores.files.list(vector_store_id=store.id).data}
    assert stored == {f for f, status in statuses.items() if status == "completed"}
    assert {s for f, s in statuses.items() if f not in stored} == {"cancelled"}


def test_bad_file_batches_are_openai_shaped_errors(server: str,
                                                   corpus: dict[str, Path]) -> None:
    client = sdk(server)
    store = client.vector_stores.create(name="bad")
    with pytest.raises(openai.NotFoundError) as missing:
        client.vector_stores.file_batches.create(vector_store_id=store.id,
                                                 file_ids=["file-nope"])
    assert missing.value.body["param"] == "file_ids"
    with pytest.raises(openai.BadRequestError) as neither:
        client.vector_stores.file_batches.create(vector_store_id=store.id)
    assert neither.value.body["param"] == "file_ids"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.retrieve("vsfb_nope", vector_store_id=store.id)
    assert client.vector_stores.files.list(vector_store_id=store.id).data == []


def test_the_search_page_and_the_objects_have_openais_exact_shape(filled) -> None:  # type: ignore[no-untyped-def]
    client, store, ids = filled
    url = str(client.base_url).rstrip("/")
    status, page, _ = call(url, f"/vector_stores/{store}/search",
                           {"query": QUERIES["zipfile"], "max_num_results": 2})
    assert status == 200
    assert set(page) == {"object", "search_query", "data", "has_more", "next_page"}
    assert (page["object"], page["search_query"], page["has_more"], page["next_page"]) == (
        "vector_store.search_results.page", [QUERIES["zipfile"]], False, None)
    hit = page["data"][0]
    assert set(hit) == {"file_id", "filename", "score", "attributes", "content"}
    assert hit["attributes"] == {"topic": "archive", "year": 2021, "recent": False}
    status, shown, _ = call(url, f"/vector_stores/{store}", method="GET")
    assert set(shown) == {"id", "object", "created_at", "name", "usage_bytes", "file_counts",
                          "status", "last_active_at", "metadata", "expires_after",
                          "expires_at"}
    assert set(shown["file_counts"]) == {"in_progress", "completed", "failed", "cancelled",
                                         "total"}
    assert (shown["expires_after"], shown["expires_at"]) == (None, None)
    status, attached, _ = call(url, f"/vector_stores/{store}/files/{ids['csv']}", method="GET")
    assert attached["chunking_strategy"]["type"] == "static"
    assert attached["chunking_strategy"]["static"]["max_chunk_size_tokens"] > 0


def test_stores_are_listed_retrieved_updated_and_deleted(server: str, app_home: Path) -> None:
    client = sdk(server)
    first = client.vector_stores.create(name="first", metadata={"team": "a"})
    second = client.vector_stores.create(name="second")
    listed = client.vector_stores.list()
    assert [s.id for s in listed.data] == [second.id, first.id]  # newest first
    assert [s.id for s in client.vector_stores.list(order="asc").data] == [first.id, second.id]
    page = client.vector_stores.list(limit=1)
    assert [s.id for s in page.data] == [second.id] and page.has_more
    assert [s.id for s in client.vector_stores.list(limit=1, after=second.id).data] == [first.id]
    assert [s.id for s in client.vector_stores.list()] == [second.id, first.id]  # auto-paging
    shown = client.vector_stores.retrieve(first.id)
    assert (shown.name, shown.metadata) == ("first", {"team": "a"})
    updated = client.vector_stores.update(first.id, name="renamed", metadata={"team": "b"})
    assert (updated.name, updated.metadata) == ("renamed", {"team": "b"})
    assert client.vector_stores.retrieve(first.id).name == "renamed"
    # Each store is a collection of the same name.
    status, collection, _ = call(server, f"/v1/collections/{first.id}", method="GET")
    assert status == 200 and collection["name"] == first.id
    deleted = client.vector_stores.delete(first.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (first.id, True,
                                                            "vector_store.deleted")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(first.id)
    assert [s.id for s in client.vector_stores.list().data] == [second.id]
    assert not (app_home / "collections" / f"{first.id}.sqlite").exists()


def test_files_are_uploaded_listed_read_and_deleted_from_every_store(
        server: str, corpus: dict[str, Path], app_home: Path) -> None:
    client = sdk(server)
    with corpus["csv"].open("rb") as f:
        uploaded = client.files.create(file=f, purpose="assistants")
    assert (uploaded.object, uploaded.filename, uploaded.purpose, uploaded.bytes) == (
        "file", "csv.txt", "assistants", corpus["csv"].stat().st_size)
    assert uploaded.id.startswith("file-")
    assert [f.id for f in client.files.list().data] == [uploaded.id]
    assert client.files.retrieve(uploaded.id).filename == "csv.txt"
    assert client.files.content(uploaded.id).content == corpus["csv"].read_bytes()
    assert (app_home / "files" / uploaded.id / "csv.txt").is_file()
    stores = [client.vector_stores.create(name=n) for n in ("one", "two")]
    for store in stores:
        attached = client.vector_stores.files.create_and_poll(
            file_id=uploaded.id, vector_store_id=store.id, max_wait_seconds=120)
        assert attached.status == "completed"
        text = client.vector_stores.files.content(file_id=uploaded.id,
                                                  vector_store_id=store.id)
        assert "comma" in "".join(part.text or "" for part in text).lower()
    listed = client.vector_stores.files.list(vector_store_id=stores[0].id)
    assert [f.id for f in listed.data] == [uploaded.id]
    assert client.vector_stores.files.list(vector_store_id=stores[0].id,
                                           filter="failed").data == []
    gone = client.files.delete(uploaded.id)
    assert (gone.id, gone.deleted) == (uploaded.id, True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    for store in stores:
        assert client.vector_stores.files.list(vector_store_id=store.id).data == []
        found = client.vector_stores.search(vector_store_id=store.id, query=QUERIES["csv"])
        assert found.data == []
    assert not (app_home / "files" / uploaded.id).exists()


def test_filters_on_attributes_keep_only_matching_files(filled) -> None:  # type: ignore[no-untyped-def]
    client, store, ids = filled

    def found(filters: dict, query: str = "files and data") -> set[str]:
        page = client.vector_stores.search(vector_store_id=store, query=query, filters=filters,
                                           max_num_results=50)
        return {next(m for m, i in ids.items() if i == r.file_id) for r in page.data}

    assert found({"type": "eq", "key": "topic", "value": "data"}) == {"csv", "sqlite3"}
    assert found({"type": "and", "filters": [
        {"type": "eq", "key": "topic", "value": "data"},
        {"type": "gte", "key": "year", "value": 2020}]}) == {"sqlite3"}
    assert found({"type": "or", "filters": [
        {"type": "eq", "key": "topic", "value": "mail"},
        {"type": "eq", "key": "topic", "value": "network"}]}) == {"smtplib", "ipaddress"}
    assert found({"type": "eq", "key": "recent", "value": True}) == {"heapq", "smtplib",
                                                                      "ipaddress"}
    assert found({"type": "lt", "key": "year", "value": 2021}) == {"csv", "sqlite3"}
    assert found({"type": "ne", "key": "topic", "value": "data"}) == set(ids) - {"csv",
                                                                                "sqlite3"}
    assert found({"type": "in", "key": "topic", "value": ["archive", "mail"]}) == {"zipfile",
                                                                                  "smtplib"}
    assert found({"type": "nin", "key": "year", "value": [2019, 2020, 2021]}) == {
        "heapq", "smtplib", "ipaddress"}
    assert found({"type": "eq", "key": "filename", "value": "heapq.md"}) == {"heapq"}
    assert found({"type": "eq", "key": "topic", "value": "none such"}) == set()
    assert found({"type": "eq", "key": "year", "value": "2021"}) == set()  # a string, not 2021
    # The best match of a filtered search is the best among the files let through.
    best = client.vector_stores.search(
        vector_store_id=store, query=QUERIES["smtplib"],
        filters={"type": "and", "filters": [{"type": "eq", "key": "recent", "value": True},
                                            {"type": "ne", "key": "topic", "value": "x"}]})
    assert best.data[0].file_id == ids["smtplib"]
    assert best.data[0].attributes == {"topic": "mail", "year": 2023, "recent": True}
    for bad in ({"type": "eq", "key": "topic"}, {"type": "xor", "filters": []},
                {"type": "and", "filters": []}, {"type": "gt", "key": "year", "value": True},
                {"type": "in", "key": "topic", "value": "data"}):
        with pytest.raises(openai.BadRequestError) as caught:
            client.vector_stores.search(vector_store_id=store, query="x", filters=bad)
        assert caught.value.body["param"] == "filters", bad


def test_filters_compare_typed_values_as_openai_does() -> None:
    from localembed.dialects.vector_stores import VectorStoreFilter

    def passes(flt: dict, attributes: dict) -> bool:
        decoded = msgspec.convert(flt, VectorStoreFilter)
        decoded.check()
        return decoded.matches(attributes)

    attributes = {"year": 2021, "score": 0.5, "draft": True, "topic": "data", "day": "2024-05-01"}
    assert passes({"type": "eq", "key": "year", "value": 2021.0}, attributes)
    assert not passes({"type": "eq", "key": "year", "value": "2021"}, attributes)
    assert not passes({"type": "eq", "key": "draft", "value": 1}, attributes)
    assert passes({"type": "ne", "key": "missing", "value": "x"}, attributes)
    assert not passes({"type": "gt", "key": "topic", "value": 3}, attributes)
    assert passes({"type": "gte", "key": "day", "value": "2024-01-01"}, attributes)
    assert passes({"type": "lt", "key": "score", "value": 1}, attributes)
    assert passes({"type": "nin", "key": "missing", "value": ["a"]}, attributes)
    assert passes({"type": "or", "filters": [
        {"type": "eq", "key": "topic", "value": "x"},
        {"type": "and", "filters": [{"type": "eq", "key": "draft", "value": True},
                                    {"type": "in", "key": "year", "value": [2020, 2021]}]}]},
        attributes)


def test_attributes_are_replaced_and_files_attached_with_them(filled) -> None:  # type: ignore[no-untyped-def]
    client, store, ids = filled
    updated = client.vector_stores.files.update(ids["csv"], vector_store_id=store,
                                                attributes={"topic": "tables"})
    assert updated.attributes == {"topic": "tables"}
    done = client.vector_stores.files.poll(ids["csv"], vector_store_id=store,
                                           max_wait_seconds=120)
    assert done.status == "completed" and done.attributes == {"topic": "tables"}
    page = client.vector_stores.search(vector_store_id=store, query=QUERIES["csv"],
                                       filters={"type": "eq", "key": "topic", "value": "tables"})
    assert page.data and {r.file_id for r in page.data} == {ids["csv"]}


def test_an_unsupported_format_fails_with_last_error(server: str, tmp_path: Path) -> None:
    client = sdk(server)
    store = client.vector_stores.create(name="mixed")
    image = tmp_path / "diagram.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    failed = upload(client, store.id, image)
    assert failed.status == "failed"
    assert failed.last_error is not None and failed.last_error.code == "unsupported_file"
    assert "not a supported format" in failed.last_error.message
    binary = tmp_path / "notes.txt"
    binary.write_bytes(b"text\0with a NUL" * 10)
    invalid = upload(client, store.id, binary)
    assert invalid.status == "failed" and invalid.last_error.code == "invalid_file"
    assert "binary" in invalid.last_error.message
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.failed, counts.completed, counts.total) == (2, 0, 2)
    failed_list = client.vector_stores.files.list(vector_store_id=store.id, filter="failed")
    assert {f.id for f in failed_list.data} == {failed.id, invalid.id}


def test_detaching_a_file_drops_its_chunks_from_search(filled) -> None:  # type: ignore[no-untyped-def]
    client, store, ids = filled
    query = QUERIES["sqlite3"]
    before = client.vector_stores.search(vector_store_id=store, query=query, max_num_results=50)
    assert before.data[0].file_id == ids["sqlite3"]
    detached = client.vector_stores.files.delete(ids["sqlite3"], vector_store_id=store)
    assert (detached.id, detached.deleted, detached.object) == (
        ids["sqlite3"], True, "vector_store.file.deleted")
    after = client.vector_stores.search(vector_store_id=store, query=query, max_num_results=50)
    assert after.data and ids["sqlite3"] not in {r.file_id for r in after.data}
    assert ids["sqlite3"] not in {f.id for f in client.vector_stores.files.list(
        vector_store_id=store)}
    assert client.vector_stores.retrieve(store).file_counts.completed == 5
    assert client.files.retrieve(ids["sqlite3"]).id == ids["sqlite3"]  # the upload stays
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(ids["sqlite3"], vector_store_id=store)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.delete(ids["sqlite3"], vector_store_id=store)


def test_bad_requests_are_openai_shaped_400s_and_404s(server: str, corpus: dict[str, Path]) -> None:
    client = sdk(server)
    store = client.vector_stores.create(name="errors")
    with pytest.raises(openai.NotFoundError) as missing:
        client.vector_stores.search(vector_store_id="vs_" + "0" * 32, query="x")
    assert missing.value.body["code"] == "not_found"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve("../etc")
    for options in ({"max_num_results": 0}, {"max_num_results": 51}, {"query": ""},
                    {"query": []}, {"ranking_options": {"ranker": "default-2024-11-15"}}):
        with pytest.raises(openai.BadRequestError):
            client.vector_stores.search(**{"vector_store_id": store.id, "query": "x",
                                           **options})
    with pytest.raises(openai.NotFoundError) as unknown:
        client.vector_stores.files.create(vector_store_id=store.id, file_id="file-nope")
    assert unknown.value.body["param"] == "file_id"
    with corpus["csv"].open("rb") as f, pytest.raises(openai.BadRequestError) as purpose:
        client.files.create(file=f, purpose="fine-tune")
    assert purpose.value.body["param"] == "purpose"
    with corpus["csv"].open("rb") as f:
        uploaded = client.files.create(file=f, purpose="user_data")
    with pytest.raises(openai.BadRequestError) as chunking:
        client.vector_stores.files.create(
            vector_store_id=store.id, file_id=uploaded.id,
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100,
                                                            "chunk_overlap_tokens": 10}})
    assert chunking.value.body["param"] == "chunking_strategy"
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.list(limit=0)
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.create(metadata={f"k{i}": "v" for i in range(17)})
    status, raw, _ = call(server, "/v1/files", {"purpose": "assistants"})  # JSON, not multipart
    assert status == 400 and set(raw["error"]) == {"message", "type", "param", "code"}


def test_a_store_created_with_file_ids_attaches_them_in_the_background(
        server: str, corpus: dict[str, Path]) -> None:
    client = sdk(server)
    uploads = []
    for module in ("csv", "heapq"):
        with corpus[module].open("rb") as f:
            uploads.append(client.files.create(file=f, purpose="assistants"))
    store = client.vector_stores.create(
        name="seeded", file_ids=[u.id for u in uploads],
        expires_after={"anchor": "last_active_at", "days": 7})
    assert store.file_counts.total == 2 and (store.expires_after, store.expires_at) == (None,
                                                                                       None)
    for u in uploads:
        done = client.vector_stores.files.poll(u.id, vector_store_id=store.id,
                                               max_wait_seconds=120)
        assert done.status == "completed"
    shown = client.vector_stores.retrieve(store.id)
    assert (shown.status, shown.file_counts.completed) == ("completed", 2)
    page = client.vector_stores.search(vector_store_id=store.id, query=QUERIES["heapq"])
    assert page.data[0].file_id == uploads[1].id
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.create(file_ids=["file-" + "0" * 32])


def test_a_store_created_with_static_chunking_cuts_its_files_so(server: str,
                                                                corpus: dict[str, Path]) -> None:
    client = sdk(server)
    store = client.vector_stores.create(
        name="small chunks", chunking_strategy={
            "type": "static", "static": {"max_chunk_size_tokens": 100,
                                         "chunk_overlap_tokens": 20}})
    attached = upload(client, store.id, corpus["zipfile"])
    assert attached.chunking_strategy is not None
    assert attached.chunking_strategy.static.max_chunk_size_tokens == 100  # type: ignore[union-attr]
    status, collection, _ = call(server, f"/v1/collections/{store.id}", method="GET")
    assert (collection["chunk_tokens"], collection["overlap"]) == (100, 20)


def test_a_restarted_server_sees_the_completed_files(app_home: Path,
                                                    corpus: dict[str, Path]) -> None:
    with running(ServerConfig(), ensure_starter()) as (url, _):
        client = sdk(url)
        store = client.vector_stores.create(name="kept", metadata={"k": "v"})
        attached = upload(client, store.id, corpus["heapq"], topic="algorithms")
    with running(ServerConfig(), ensure_starter()) as (url, _):
        client = sdk(url)
        shown = client.vector_stores.retrieve(store.id)
        assert (shown.name, shown.metadata, shown.file_counts.completed) == ("kept", {"k": "v"},
                                                                             1)
        again = client.vector_stores.files.retrieve(attached.id, vector_store_id=store.id)
        assert (again.status, again.attributes) == ("completed", {"topic": "algorithms"})
        page = client.vector_stores.search(vector_store_id=store.id, query=QUERIES["heapq"])
        assert page.data[0].file_id == attached.id


def test_an_upload_over_the_body_limit_is_a_413(app_home: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("words " * 2000)
    with (running(ServerConfig(max_body_bytes=4096), ensure_starter()) as (url, _),
          big.open("rb") as f, pytest.raises(openai.APIStatusError) as caught):
        sdk(url).files.create(file=f, purpose="assistants")
    assert caught.value.status_code == 413
    assert not any((app_home / "files").glob("file-*"))


def test_ranking_options_rerank_with_an_installed_reranker(
        synthetic, app_home: Path, corpus: dict[str, Path]) -> None:
    install_model(app_home, "tiny-reranker", synthetic("bert", head="rerank"))
    with running(ServerConfig(), ensure_starter()) as (url, _):
        client = sdk(url)
        store = client.vector_stores.create(name="reranked")
        for path in corpus.values():
            assert upload(client, store.id, path).status == "completed"
        query = QUERIES["csv"]
        plain = client.vector_stores.search(vector_store_id=store.id, query=query,
                                            ranking_options={"ranker": "none"})
        auto = client.vector_stores.search(vector_store_id=store.id, query=query)
        named = client.vector_stores.search(vector_store_id=store.id, query=query,
                                            ranking_options={"ranker": "tiny-reranker"})
        filtered = client.vector_stores.search(
            vector_store_id=store.id, query=query, ranking_options={"ranker": "auto"},
            filters={"type": "ne", "key": "filename", "value": "csv.txt"})
        kept = client.vector_stores.search(
            vector_store_id=store.id, query=query,
            ranking_options={"ranker": "none", "score_threshold": plain.data[2].score})
    assert [r.score for r in auto.data] == [r.score for r in named.data]
    assert {r.score for r in auto.data} != {r.score for r in plain.data}
    for page in (plain, auto, filtered):
        scores = [r.score for r in page.data]
        assert scores == sorted(scores, reverse=True)
    assert "csv.txt" not in {r.filename for r in filtered.data} and filtered.data
    assert [r.score for r in kept.data] == [r.score for r in plain.data[:3]]


def test_the_routes_are_in_the_openapi_document(server: str) -> None:
    status, document, _ = call(server, "/openapi.json", method="GET")
    assert status == 200
    paths = document["paths"]
    assert set(paths["/v1/files"]) == {"get", "post"}
    assert set(paths["/v1/files/{file_id}"]) == {"get", "delete"}
    assert set(paths["/v1/vector_stores"]) == {"get", "post"}
    assert set(paths["/v1/vector_stores/{vector_store_id}"]) == {"get", "post", "delete"}
    assert set(paths["/v1/vector_stores/{vector_store_id}/files"]) == {"get", "post"}
    assert set(paths["/v1/vector_stores/{vector_store_id}/files/{file_id}"]) == {
        "get", "post", "delete"}
    assert set(paths["/v1/vector_stores/{vector_store_id}/search"]) == {"post"}
    schemas = document["components"]["schemas"]
    assert set(schemas["VectorStoreSearchRequest"]["properties"]) == {
        "query", "filters", "max_num_results", "ranking_options", "rewrite_query"}
