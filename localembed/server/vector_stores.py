"""OpenAI's files and vector stores over localembed's collections (``/v1/files``,
``/v1/vector_stores``), so that an OpenAI SDK's file search works by base URL alone.

Each vector store IS a collection (its id, ``vs_<hex>``, is the collection's name; its name and
metadata are kept beside it, ``localembed.collections.files``) and each attached file is one
of its documents (document id = file id, title = file name, metadata = the file's attributes
and ``filename``). Attaching embeds in a background thread, as OpenAI processes files: the
file is ``in_progress``, then ``completed`` or ``failed`` with a ``last_error``; the SDK's
``upload_and_poll`` polls it (told to poll every ``POLL_AFTER_MS``).

What is kept where: a completed file is its document, so a restarted server lists the same
files; a file in progress or failed is known to this server's memory only. Files of
one store are embedded one at a time (SQLite has one writer), stores in parallel.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

from flask import Response, current_app, request

from localembed.collections.files import (
    FileNotFound,
    FileTooLarge,
    StoredFile,
    StoreRecord,
    UnreadableFile,
    delete_file,
    get_file,
    is_file_id,
    is_store_id,
    list_files,
    new_store_id,
    read_document,
    read_store_record,
    remove_store_record,
    save_upload,
    write_store_record,
)
from localembed.collections.ingest import IndexOptions, open_collection, upsert
from localembed.collections.store import (
    Binding,
    Collection,
    CollectionNotFound,
    collection_path,
    list_collections,
    remove_collection,
)
from localembed.dialects import vector_stores as wire
from localembed.engine import InputError
from localembed.server.body import body, reply
from localembed.server.errors import APIError
from localembed.server.metrics import Metrics
from localembed.server.routes import Blueprint
from localembed.server.state import state
from localembed.service.execute import Service

log = logging.getLogger("localembed.server")

bp = Blueprint("vector_stores", __name__)
FILE = "/v1/files/<file_id>"
STORE = "/v1/vector_stores/<vector_store_id>"
STORE_FILE = STORE + "/files/<file_id>"
POLL_AFTER_MS = "200"  # the SDK polls an in-progress file this often (it defaults to 1 s)
PURPOSES = ("assistants", "user_data")
PAGE = (("limit", "integer"), ("order", "string"), ("after", "string"), ("before", "string"))
LIST_ERRORS = (400, 401, 403, 500)
ONE_ERRORS = (401, 403, 404, 500)
_EXTENSION = "localembed.vector_stores"
T = TypeVar("T")


# -- attachments in flight ------------------------------------------------------------------------

@dataclass
class Attachment:
    """A file being attached to a store (or whose attaching failed), in this server's memory."""

    store: str
    file: StoredFile
    attributes: dict[str, object]
    created: float = field(default_factory=time.time)
    status: str = "in_progress"
    error: tuple[str, str] | None = None  # (code, message)
    detached: bool = False  # removed from the store (or the store deleted) meanwhile
    replaced: bool = False  # attached again meanwhile: the newer attachment decides

    def to_wire(self, chunking: wire.VectorStoreChunking | None) -> wire.VectorStoreFileObject:
        error = None if self.error is None else wire.VectorStoreLastError(
            code=self.error[0], message=self.error[1])  # type: ignore[arg-type]
        usage = self.file.bytes if self.status == "completed" else 0
        return wire.VectorStoreFileObject(
            id=self.file.id, created_at=int(self.created), vector_store_id=self.store,
            status=self.status, usage_bytes=usage, last_error=error,  # type: ignore[arg-type]
            attributes=dict(self.attributes), chunking_strategy=chunking)  # type: ignore[arg-type]


@dataclass
class Batch:
    """Files attached together (``/file_batches``), in this server's memory: a batch is only
    a handle for polling its files, each of which is an attachment like any other."""

    id: str
    store: str
    files: list[str]
    created: float = field(default_factory=time.time)
    cancelled: set[str] = field(default_factory=set)  # files detached by a cancel


class Attachments:
    """One server's attachments in flight: started, looked up, detached; a completed one
    leaves memory (its document is the record)."""

    def __init__(self) -> None:
        self.batches: dict[str, Batch] = {}
        self._lock = threading.Lock()
        self._live: dict[tuple[str, str], Attachment] = {}
        self._store_locks: dict[str, threading.Lock] = {}
        self._deleted: set[str] = set()
        self._active: dict[str, int] = {}

    def start(self, service: Service, metrics: Metrics, store: str, stored: StoredFile,
              attributes: Mapping[str, object]) -> Attachment:
        attachment = Attachment(store, stored, dict(attributes))
        with self._lock:
            old = self._live.get((store, stored.id))
            if old is not None:
                old.replaced = True
            self._live[(store, stored.id)] = attachment
            lock = self._store_locks.setdefault(store, threading.Lock())
        threading.Thread(target=self._run, args=(service, metrics, attachment, lock),
                         name=f"attach-{stored.id}", daemon=True).start()
        return attachment

    def of_store(self, store: str) -> dict[str, Attachment]:
        with self._lock:
            return {f: a for (s, f), a in self._live.items() if s == store}

    def detach(self, store: str, file_id: str) -> Attachment | None:
        with self._lock:
            attachment = self._live.pop((store, file_id), None)
        if attachment is not None:
            attachment.detached = True
        return attachment

    def forget_store(self, store: str) -> None:
        with self._lock:
            self._deleted.add(store)
            for key in [k for k in self._live if k[0] == store]:
                self._live.pop(key).detached = True

    def touch(self, store: str) -> None:
        self._active[store] = int(time.time())

    def last_active(self, store: str) -> int | None:
        return self._active.get(store)

    def _run(self, service: Service, metrics: Metrics, attachment: Attachment,
             lock: threading.Lock) -> None:
        """Embed the file into its store's collection, then say how it went."""
        with lock:
            if attachment.detached or attachment.replaced:
                return
            store, file_id = attachment.store, attachment.file.id
            try:
                document = read_document(attachment.file, wire.document_metadata(
                    attachment.attributes, attachment.file.filename))
                report = upsert(service, store, [document])
                metrics.count_work(report.chunks, report.tokens)
                outcome: tuple[str, tuple[str, str] | None] = ("completed", None)
            except UnreadableFile as exc:
                code = "unsupported_file" if exc.unsupported else "invalid_file"
                outcome = ("failed", (code, str(exc)))
            except InputError as exc:
                outcome = ("failed", ("invalid_file", str(exc)))
            except Exception as exc:  # never leave a file in progress forever
                log.warning("attaching %s to %s failed: %s", file_id, store, exc)
                outcome = ("failed", ("server_error", f"{type(exc).__name__}: {exc}"))
            with self._lock:
                deleted = store in self._deleted
                attachment.status, attachment.error = outcome
                if outcome[0] == "completed" and self._live.get((store, file_id)) is attachment:
                    del self._live[(store, file_id)]  # its document says it all now
            if deleted:  # the store went while this ran: what this wrote goes too
                with suppress(CollectionNotFound):
                    remove_collection(store)
            elif (attachment.detached or outcome[0] == "failed") and not attachment.replaced:
                _drop_documents(store, [file_id])  # a failed file is not searchable


def attachments() -> Attachments:
    found = current_app.extensions.get(_EXTENSION)
    if found is None:
        found = current_app.extensions.setdefault(_EXTENSION, Attachments())
    return found


def _drop_documents(store: str, ids: Iterable[str]) -> int:
    try:
        with Collection.open(store) as collection:
            return collection.delete_documents(ids)
    except CollectionNotFound:
        return 0


# -- lookups --------------------------------------------------------------------------------------

def _stored_file(file_id: str, param: str = "file_id") -> StoredFile:
    try:
        return get_file(file_id)
    except FileNotFound:
        raise APIError(404, f"No such File object: {file_id}", param=param,
                       code="not_found") from None


def _store(store_id: str) -> str:
    """The id of an existing store; a 404 otherwise (a malformed id included)."""
    if not is_store_id(store_id) or not collection_path(store_id).is_file():
        raise APIError(404, f"No vector store found with id '{store_id}'.",
                       param="vector_store_id", code="not_found")
    return store_id


def _chunking(binding: Binding) -> wire.VectorStoreChunking:
    return wire.VectorStoreChunking(static=wire.VectorStoreStaticChunking(
        max_chunk_size_tokens=binding.chunk_tokens, chunk_overlap_tokens=binding.overlap))


@lru_cache(maxsize=65536)
def _file_bytes(file_id: str) -> int:
    """An upload's size (an upload never changes, so it is read once)."""
    try:
        return get_file(file_id).bytes
    except FileNotFound:
        return 0


def _store_files(store: str, only: str | None = None) -> list[wire.VectorStoreFileObject]:
    """A store's files (or the one of id ``only``): its documents (completed), and those in
    flight or failed, which a document of the same id (an earlier version) does not hide."""
    # In flight first: one that completes meanwhile is then found as its new document, never
    # as the document it replaced.
    live = attachments().of_store(store)
    try:
        with Collection.open(store) as collection:
            documents, chunking = collection.documents(), _chunking(collection.binding)
    except CollectionNotFound:
        raise APIError(404, f"No vector store found with id '{store}'.",
                       param="vector_store_id", code="not_found") from None
    if only is not None:
        documents = {k: v for k, v in documents.items() if k == only}
        live = {k: v for k, v in live.items() if k == only}
    found = {doc_id: (doc.indexed_at, wire.VectorStoreFileObject(
        id=doc_id, created_at=int(doc.indexed_at), vector_store_id=store, status="completed",
        usage_bytes=_file_bytes(doc_id), attributes=wire.attributes_of(doc.metadata),
        chunking_strategy=chunking)) for doc_id, doc in documents.items() if doc_id not in live}
    found.update({file_id: (a.created, a.to_wire(chunking)) for file_id, a in live.items()})
    return [f for _, f in sorted(found.values(), key=lambda pair: (pair[0], pair[1].id))]


def _record(store: str) -> StoreRecord:
    """The store's record; a collection made otherwise (``/v1/collections``) gets a blank one,
    created when its database was."""
    return read_store_record(store) or StoreRecord(
        created=collection_path(store).stat().st_mtime)


def _store_object(store: str, record: StoreRecord | None = None) -> wire.VectorStoreObject:
    record = record or _record(store)
    files = _store_files(store)
    counts = wire.VectorStoreFileCounts.of(f.status for f in files)
    active = max(filter(None, (record.last_active_at, attachments().last_active(store))),
                 default=record.created_at)
    return wire.VectorStoreObject(
        id=store, created_at=record.created_at, name=record.name,
        usage_bytes=sum(f.usage_bytes for f in files if f.status == "completed"),
        file_counts=counts, status="in_progress" if counts.in_progress else "completed",
        last_active_at=active, metadata=record.metadata)


# -- pages ----------------------------------------------------------------------------------------

def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise APIError(400, f"Invalid '{name}': must be an integer between {low} and {high}.",
                       param=name, code="invalid_value")
    return value


def _page(items: list[T], ident: Callable[[T], str], default_limit: int = 20,
          max_limit: int = 100) -> tuple[list[T], bool]:
    """OpenAI's cursor paging over ``items`` (oldest first): ``order`` (desc by default),
    ``limit``, and ``after``/``before`` an id on the page before/after."""
    limit = _int_arg("limit", default_limit, 1, max_limit)
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise APIError(400, "Invalid 'order': must be 'asc' or 'desc'.", param="order",
                       code="invalid_value")
    ordered = items if order == "asc" else items[::-1]
    ids = [ident(i) for i in ordered]
    start, end = 0, len(ordered)
    for name in ("after", "before"):
        cursor = request.args.get(name)
        if cursor is None:
            continue
        if cursor not in ids:
            raise APIError(400, f"Invalid '{name}': no object with id '{cursor}' in this list.",
                           param=name, code="invalid_value")
        if name == "after":
            start = ids.index(cursor) + 1
        else:
            end = ids.index(cursor)
    window = ordered[start:end]
    return window[:limit], len(window) > limit


def _bounds(data: list, ident: Callable) -> dict[str, str | None]:  # type: ignore[type-arg]
    return {"first_id": ident(data[0]) if data else None,
            "last_id": ident(data[-1]) if data else None}


# -- files ----------------------------------------------------------------------------------------

def _file_object(stored: StoredFile) -> wire.FileObject:
    return wire.FileObject(id=stored.id, bytes=stored.bytes, created_at=stored.created_at,
                           filename=stored.filename, purpose=stored.purpose)  # type: ignore[arg-type]


@bp.operation("post", "/v1/files", "Upload a file for vector stores: multipart/form-data with "
              "'file' and 'purpose' ('assistants' or 'user_data')", wire.FileObject,
              errors=(400, 401, 403, 413, 500))
def upload() -> Response:
    if request.mimetype != "multipart/form-data":
        raise APIError(400, "Upload the file as multipart/form-data with the fields 'file' and "
                            "'purpose'.", param="file", code="invalid_request")
    purpose = request.form.get("purpose")
    if purpose not in PURPOSES:
        raise APIError(400, f"Invalid 'purpose': {purpose!r}; this server keeps files for "
                            f"vector stores: {' or '.join(PURPOSES)}.", param="purpose",
                       code="invalid_value")
    sent = request.files.get("file")
    if sent is None:
        raise APIError(400, "'file' is required: the file's content as a multipart part.",
                       param="file", code="missing_required_parameter")
    try:
        stored = save_upload(sent.stream, sent.filename or "upload", purpose,
                             state().config.max_body_bytes)
    except FileTooLarge as exc:
        raise APIError(413, f"File too large: {exc}.", param="file",
                       code="request_too_large") from exc
    return reply(_file_object(stored))


@bp.operation("get", "/v1/files", "Uploaded files", wire.FileList, errors=LIST_ERRORS,
              query=(*PAGE[:3], ("purpose", "string")))
def files() -> Response:
    found = list_files()
    purpose = request.args.get("purpose")
    if purpose is not None:
        found = [f for f in found if f.purpose == purpose]
    data, more = _page([_file_object(f) for f in found], lambda f: f.id, 10000, 10000)
    return reply(wire.FileList(data=data, has_more=more, **_bounds(data, lambda f: f.id)))


@bp.operation("get", FILE, "One uploaded file", wire.FileObject, errors=ONE_ERRORS)
def retrieve_file(file_id: str) -> Response:
    return reply(_file_object(_stored_file(file_id, "file_id")))


@bp.operation("delete", FILE, "Delete an uploaded file, and remove it from every vector store",
              wire.FileDeleted, errors=ONE_ERRORS)
def delete_file_route(file_id: str) -> Response:
    stored = _stored_file(file_id)
    for store in list_collections():
        if is_store_id(store):
            attachments().detach(store, stored.id)
            _drop_documents(store, [stored.id])
    delete_file(stored.id)
    return reply(wire.FileDeleted(id=stored.id))


@bp.operation("get", FILE + "/content", "An uploaded file's bytes", "application/octet-stream",
              errors=ONE_ERRORS)
def file_content(file_id: str) -> Response:
    stored = _stored_file(file_id)
    return Response(stored.path.read_bytes(), mimetype="application/octet-stream",
                    headers={"Content-Disposition": "attachment"})


# -- vector stores --------------------------------------------------------------------------------

@bp.operation("post", "/v1/vector_stores", "Create a vector store (an empty collection), "
              "attaching any file_ids in the background", wire.VectorStoreObject,
              wire.VectorStoreCreate)
def create_store() -> Response:
    asked = body(wire.VectorStoreCreate)
    uploads = [_stored_file(f, "file_ids") for f in dict.fromkeys(asked.file_ids)]
    sizes = asked.chunking_strategy.sizes() if asked.chunking_strategy else None
    st = state()
    store = new_store_id()
    options = IndexOptions(model=asked.model, chunk_tokens=sizes[0] if sizes else None,
                           overlap=sizes[1] if sizes else None)
    try:
        collection, _ = open_collection(st.service, store, options)
    except InputError as exc:
        if sizes and exc.param in ("chunk_tokens", "overlap"):
            raise InputError(f"chunking_strategy: {exc}", param="chunking_strategy") from exc
        raise
    collection.close()
    try:
        write_store_record(store, StoreRecord(name=asked.name or "",
                                              description=asked.description,
                                              metadata=asked.metadata))
    except BaseException:
        remove_collection(store)
        raise
    for stored in uploads:
        attachments().start(st.service, st.metrics, store, stored, {})
    return reply(_store_object(store))


@bp.operation("get", "/v1/vector_stores", "Vector stores", wire.VectorStoreList,
              errors=LIST_ERRORS, query=PAGE)
def stores() -> Response:
    found = []
    for name in list_collections():
        if is_store_id(name):
            with suppress(APIError, FileNotFoundError):  # removed meanwhile
                record = _record(name)
                found.append((record.created, _store_object(name, record)))
    found.sort(key=lambda pair: (pair[0], pair[1].id))
    data, more = _page([s for _, s in found], lambda s: s.id)
    return reply(wire.VectorStoreList(data=data, has_more=more, **_bounds(data, lambda s: s.id)))


@bp.operation("get", STORE, "One vector store", wire.VectorStoreObject, errors=ONE_ERRORS)
def retrieve_store(vector_store_id: str) -> Response:
    return reply(_store_object(_store(vector_store_id)))


@bp.operation("post", STORE, "Rename a vector store or replace its metadata",
              wire.VectorStoreObject, wire.VectorStoreUpdate)
def update_store(vector_store_id: str) -> Response:
    store = _store(vector_store_id)
    asked = body(wire.VectorStoreUpdate)
    record = _record(store)
    if asked.name is not None:
        record.name = asked.name
    if asked.metadata is not None:
        record.metadata = asked.metadata
    record.last_active_at = int(time.time())
    write_store_record(store, record)
    return reply(_store_object(store))


@bp.operation("delete", STORE, "Delete a vector store: its collection (the uploaded files "
              "stay)", wire.VectorStoreDeleted, errors=ONE_ERRORS)
def delete_store(vector_store_id: str) -> Response:
    store = _store(vector_store_id)
    attachments().forget_store(store)
    with suppress(CollectionNotFound):
        remove_collection(store)
    remove_store_record(store)
    return reply(wire.VectorStoreDeleted(id=store))


# -- a store's files ------------------------------------------------------------------------------

def _attached(store: str, file_id: str) -> wire.VectorStoreFileObject:
    found = _store_files(store, only=file_id)
    if found:
        return found[0]
    raise APIError(404, f"No file found with id '{file_id}' in vector store '{store}'.",
                   param="file_id", code="not_found")


def _file_reply(found: wire.VectorStoreFileObject | wire.VectorStoreFileBatchObject
                ) -> Response:
    """A file's (or a batch's) object, telling the SDK how soon to poll one in progress."""
    response = reply(found)
    if found.status == "in_progress":
        response.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return response


def _check_chunking(store: str, asked: wire.VectorStoreChunkingParam | None) -> None:
    sizes = asked.sizes() if asked else None
    if sizes is None:
        return
    with Collection.open(store) as collection:
        binding = collection.binding
    if sizes != (binding.chunk_tokens, binding.overlap):
        raise APIError(400, f"This vector store cuts files at {binding.chunk_tokens} tokens "
                            f"with {binding.overlap} overlap (set when it was created); a file "
                            "cannot be chunked otherwise: omit chunking_strategy, or create "
                            "another store.", param="chunking_strategy", code="invalid_value")


@bp.operation("post", STORE + "/files", "Attach an uploaded file: embedded in the background "
              "(poll it until it is no longer in_progress)", wire.VectorStoreFileObject,
              wire.VectorStoreFileCreate)
def attach(vector_store_id: str) -> Response:
    store = _store(vector_store_id)
    asked = body(wire.VectorStoreFileCreate)
    stored = _stored_file(asked.file_id)
    _check_chunking(store, asked.chunking_strategy)
    st = state()
    attachments().start(st.service, st.metrics, store, stored, asked.attributes or {})
    return _file_reply(_attached(store, stored.id))


@bp.operation("get", STORE + "/files", "A vector store's files", wire.VectorStoreFileList,
              errors=(400, 401, 403, 404, 500), query=(*PAGE, ("filter", "string")))
def store_files(vector_store_id: str) -> Response:
    return _file_list(_store_files(_store(vector_store_id)))


def _file_list(found: list[wire.VectorStoreFileObject]) -> Response:
    """A page of files, by the request's ``filter`` (a status) and paging arguments."""
    status = request.args.get("filter")
    if status is not None:
        if status not in ("in_progress", "completed", "failed", "cancelled"):
            raise APIError(400, "Invalid 'filter': one of in_progress, completed, failed, "
                                "cancelled.", param="filter", code="invalid_value")
        found = [f for f in found if f.status == status]
    data, more = _page(found, lambda f: f.id)
    return reply(wire.VectorStoreFileList(data=data, has_more=more,
                                          **_bounds(data, lambda f: f.id)))


@bp.operation("get", STORE_FILE, "One of a vector store's files: its status and last_error",
              wire.VectorStoreFileObject, errors=ONE_ERRORS)
def store_file(vector_store_id: str, file_id: str) -> Response:
    return _file_reply(_attached(_store(vector_store_id), file_id))


@bp.operation("post", STORE_FILE, "Replace a file's attributes (it is embedded again, in the "
              "background)", wire.VectorStoreFileObject, wire.VectorStoreFileUpdate)
def update_store_file(vector_store_id: str, file_id: str) -> Response:
    store = _store(vector_store_id)
    asked = body(wire.VectorStoreFileUpdate)
    _attached(store, file_id)
    stored = _stored_file(file_id)
    st = state()
    attachments().start(st.service, st.metrics, store, stored, asked.attributes or {})
    return _file_reply(_attached(store, file_id))


# -- file batches ---------------------------------------------------------------------------------

BATCH = STORE + "/file_batches/<batch_id>"


def _batch(store: str, batch_id: str) -> Batch:
    found = attachments().batches.get(batch_id)
    if found is None or found.store != store:
        raise APIError(404, f"No file batch found with id '{batch_id}' in vector store "
                            f"'{store}' (a batch is known to the server that took it, until "
                            "it restarts; its files stay listed in the store).",
                       param="batch_id", code="not_found")
    return found


def _batch_files(batch: Batch) -> list[wire.VectorStoreFileObject]:
    """The batch's files as the store lists them; one a cancel detached is ``cancelled``,
    and one no longer in the store (detached since) is left out."""
    mine = set(batch.files)
    listed = [f for f in _store_files(batch.store) if f.id in mine and f.id not in batch.cancelled]
    listed += [wire.VectorStoreFileObject(id=f, created_at=int(batch.created),
                                          vector_store_id=batch.store, status="cancelled",
                                          usage_bytes=0) for f in batch.files
               if f in batch.cancelled]
    return listed


def _batch_object(batch: Batch) -> wire.VectorStoreFileBatchObject:
    statuses = [f.status for f in _batch_files(batch)]
    status = ("in_progress" if "in_progress" in statuses else "cancelled" if batch.cancelled
              else "failed" if statuses and all(s == "failed" for s in statuses)
              else "completed")
    return wire.VectorStoreFileBatchObject(
        id=batch.id, created_at=int(batch.created), vector_store_id=batch.store,
        status=status, file_counts=wire.VectorStoreFileCounts.of(statuses))  # type: ignore[arg-type]


@bp.operation("post", STORE + "/file_batches", "Attach several uploaded files at once, each "
              "embedded in the background (poll the batch until it is no longer "
              "in_progress)", wire.VectorStoreFileBatchObject, wire.VectorStoreFileBatchCreate)
def create_batch(vector_store_id: str) -> Response:
    store = _store(vector_store_id)
    entries = body(wire.VectorStoreFileBatchCreate).entries()
    param = "files" if any(e.attributes is not None for e in entries) else "file_ids"
    stored = [_stored_file(e.file_id, param) for e in entries]  # all found before any starts
    for entry in entries:
        _check_chunking(store, entry.chunking_strategy)
    st = state()
    batch = Batch(f"vsfb_{uuid.uuid4().hex}", store, [f.id for f in stored])
    attachments().batches[batch.id] = batch
    for entry, file in zip(entries, stored, strict=True):
        attachments().start(st.service, st.metrics, store, file, entry.attributes or {})
    return _file_reply(_batch_object(batch))


@bp.operation("get", BATCH, "A file batch: its status and its files' counts",
              wire.VectorStoreFileBatchObject, errors=ONE_ERRORS)
def retrieve_batch(vector_store_id: str, batch_id: str) -> Response:
    return _file_reply(_batch_object(_batch(_store(vector_store_id), batch_id)))


@bp.operation("post", BATCH + "/cancel", "Cancel a file batch: its files still in progress "
              "are detached (those done stay)", wire.VectorStoreFileBatchObject,
              errors=ONE_ERRORS)
def cancel_batch(vector_store_id: str, batch_id: str) -> Response:
    batch = _batch(_store(vector_store_id), batch_id)
    live = attachments().of_store(batch.store)
    for file_id in batch.files:
        attachment = live.get(file_id)
        if attachment is not None and attachment.status == "in_progress":
            attachments().detach(batch.store, file_id)
            batch.cancelled.add(file_id)
    return _file_reply(_batch_object(batch))


@bp.operation("get", BATCH + "/files", "A file batch's files", wire.VectorStoreFileList,
              errors=(400, 401, 403, 404, 500), query=(*PAGE, ("filter", "string")))
def batch_files(vector_store_id: str, batch_id: str) -> Response:
    found = _batch_files(_batch(_store(vector_store_id), batch_id))
    return _file_list(found)


@bp.operation("delete", STORE_FILE, "Detach a file from a vector store: its chunks leave the "
              "store (the uploaded file stays)", wire.VectorStoreFileDeleted,
              errors=ONE_ERRORS)
def detach(vector_store_id: str, file_id: str) -> Response:
    store = _store(vector_store_id)
    was_live = attachments().detach(store, file_id) is not None
    if not (_drop_documents(store, [file_id]) or was_live):
        raise APIError(404, f"No file found with id '{file_id}' in vector store '{store}'.",
                       param="file_id", code="not_found")
    return reply(wire.VectorStoreFileDeleted(id=file_id))


@bp.operation("get", STORE_FILE + "/content", "The text of one of a vector store's files, as "
              "it was read", wire.VectorStoreFileContent, errors=ONE_ERRORS)
def store_file_content(vector_store_id: str, file_id: str) -> Response:
    store = _store(vector_store_id)
    attached = _attached(store, file_id)
    texts: list[wire.VectorStoreText] = []
    if attached.status == "completed" and is_file_id(file_id):
        with suppress(FileNotFound, UnreadableFile):
            texts.append(wire.VectorStoreText(text=read_document(get_file(file_id), {}).text))
    return reply(wire.VectorStoreFileContent(data=texts))


@bp.operation("post", STORE + "/search", "Search a vector store: its best chunks for a query, "
              "filtered by file attributes, optionally reranked",
              wire.VectorStoreSearchPage, wire.VectorStoreSearchRequest)
def search_store(vector_store_id: str) -> Response:
    store = _store(vector_store_id)
    asked = body(wire.VectorStoreSearchRequest)
    st = state()

    def documents() -> dict[str, Mapping[str, object]]:
        with Collection.open(store) as collection:
            return {d.id: d.metadata for d in collection.documents().values()}

    hits, tokens = wire.search_store(st.service, store, asked, documents,
                                     lambda: st.service.registry.reranker_id() is not None)
    st.metrics.count_work(len(asked.queries), tokens)
    attachments().touch(store)
    return reply(wire.search_page(asked.queries, hits))
