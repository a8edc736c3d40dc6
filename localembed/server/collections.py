"""Collections over HTTP (/v1/collections): list, create, describe, remove, feed documents,
search, and index paths on this machine as a background job with progress events, like
pulls. Thin views over ``localembed.dialects.collections`` and ``localembed.collections``."""

from __future__ import annotations

import json

import msgspec
from flask import Response

from localembed.collections.ingest import IndexOptions, check_paths, open_collection, upsert
from localembed.collections.jobs import IndexJob
from localembed.collections.search import search
from localembed.collections.store import (
    Collection,
    CollectionError,
    check_name,
    list_collections,
    remove_collection,
)
from localembed.dialects import collections as wire
from localembed.dialects.common import Usage
from localembed.server.body import body, reply
from localembed.server.errors import APIError
from localembed.server.events import progress_events
from localembed.server.routes import READ_ERRORS, Blueprint
from localembed.server.state import state

bp = Blueprint("collections", __name__)
ONE = "/v1/collections/<name>"


def _name(name: str) -> str:
    """A collection name by the store's rule; a path is a 400."""
    try:
        return check_name(name)
    except CollectionError as exc:
        raise APIError(400, str(exc), param="name", code="invalid_value") from exc


def _info(name: str) -> wire.CollectionInfo:
    job = state().jobs.get(name)
    return wire.CollectionInfo.of(name, _state(job) if job is not None else None)


def _state(job: IndexJob) -> wire.IndexState:
    return wire.IndexState.of(job.progress, job.report, job.error)


@bp.operation("get", "/v1/collections", "Collections on this machine", wire.CollectionList,
              errors=READ_ERRORS)
def collections() -> Response:
    infos = []
    for name in list_collections():
        try:
            infos.append(_info(name))
        except LookupError:  # removed meanwhile
            continue
    return reply(wire.CollectionList(infos))


@bp.operation("post", "/v1/collections", "Create an empty collection bound to a model",
              wire.CollectionInfo, wire.CollectionCreate)
def create() -> Response:
    request = body(wire.CollectionCreate)
    name = _name(request.name)
    if name in list_collections():
        raise APIError(409, f"a collection named {name!r} exists already", param="name",
                       code="collection_exists")
    collection, _ = open_collection(state().service, name, IndexOptions(
        model=request.model, chunk_tokens=request.chunk_tokens, overlap=request.overlap))
    collection.close()
    return reply(_info(name))


@bp.operation("get", ONE, "One collection: its model, settings, size and any index run",
              wire.CollectionInfo, errors=(400, 401, 403, 404, 500))
def describe(name: str) -> Response:
    return reply(_info(_name(name)))


@bp.operation("delete", ONE, "Remove a collection (the indexed files are not touched)",
              wire.Removed, errors=(400, 401, 403, 404, 409, 500))
def delete(name: str) -> Response:
    name = _name(name)
    if state().jobs.running(name):
        raise APIError(409, f"collection {name!r} is being indexed; cancel that first",
                       param="name", code="collection_in_use")
    remove_collection(name)
    return reply(wire.Removed(name))


@bp.operation("post", ONE + "/documents", "Upsert documents by id (only new or changed ones "
              "are embedded) and delete documents by id", wire.DocumentsResponse,
              wire.DocumentsRequest)
def documents(name: str) -> Response:
    name = _name(name)
    request = body(wire.DocumentsRequest)
    st = state()
    report = upsert(st.service, name, [d.document() for d in request.upsert], request.model)
    deleted = 0
    if request.delete:
        with Collection.open(name) as collection:
            deleted = collection.delete_documents(request.delete)
    st.metrics.count_work(report.chunks, report.tokens)
    return reply(wire.DocumentsResponse(
        collection=name, added=report.added, changed=report.changed,
        unchanged=report.unchanged, deleted=deleted, chunks=report.chunks,
        usage=Usage.of(report.tokens)))


@bp.operation("post", ONE + "/search", "The best chunks for a query: vector, optionally "
              "hybrid with keywords and reranked", wire.SearchResponse, wire.SearchRequest)
def search_route(name: str) -> Response:
    name = _name(name)
    st = state()
    answer = search(st.service, name, body(wire.SearchRequest).to_query())
    st.metrics.count_work(1, answer.tokens)
    return reply(wire.SearchResponse.of(answer))


@bp.operation("post", ONE + "/index", "Index files and folders on this machine in the "
              "background (202; 200 if already running)", wire.IndexState, wire.IndexRequest,
              ok=(202, 200))
def start_index(name: str) -> Response:
    name = _name(name)
    request = body(wire.IndexRequest)
    check_paths(request.paths)  # a typo is the caller's 400, not a job that fails
    job, started = state().jobs.start(name, request.paths, request.options())
    return reply(_state(job), 202 if started else 200)


def _job(name: str) -> IndexJob:
    job = state().jobs.get(_name(name))
    if job is None:
        raise APIError(404, f"no index run of {name!r} in this session", code="not_found")
    return job


@bp.operation("get", ONE + "/index", "The index run's progress (its report once done)",
              wire.IndexState, errors=(400, 401, 403, 404, 500))
def get_index(name: str) -> Response:
    return reply(_state(_job(name)))


@bp.operation("delete", ONE + "/index", "Cancel the index run (what was written is kept)",
              wire.IndexState, errors=(400, 401, 403, 404, 500))
def cancel_index(name: str) -> Response:
    job = _job(name)
    state().jobs.cancel(job.collection)
    return reply(_state(job))


@bp.operation("get", ONE + "/index/events", "Server-sent events with the index run's progress "
              "until it ends", "text/event-stream", errors=(400, 401, 403, 404, 500))
def index_events(name: str) -> Response:
    job = _job(name)
    return progress_events(job.changed,
                           lambda: json.dumps(msgspec.to_builtins(_state(job))),
                           lambda: not job.running, f"/v1/collections/{job.collection}/index")
