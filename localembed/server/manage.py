"""Model management over HTTP, for the web UI and the tray: catalog, pulls, load/switch/remove.

Everything here is a thin layer over ``catalog``, ``pull``, ``store`` and ``Registry`` — the same
operations the CLI performs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

from flask import Blueprint, Response, request, stream_with_context

from localembed.config.settings import save_setting
from localembed.dialects import manage
from localembed.engine.inspect import ModelLoadError
from localembed.models.catalog import listing
from localembed.models.convert import ConversionError
from localembed.models.pull import PullError
from localembed.models.store import (
    ModelNotFound,
    StoreError,
    check_id,
    import_model,
    installed,
    removal,
    valid_id,
)
from localembed.server.body import body, client_gone, reply
from localembed.server.errors import APIError
from localembed.server.openai import model_card
from localembed.server.state import state

bp = Blueprint("manage", __name__)

FINAL = ("done", "error", "cancelled")


@bp.get("/v1/catalog")
def catalog() -> Response:
    rows = listing(set(installed()))
    return reply(manage.Catalog([manage.CatalogEntry(**row) for row in rows]))


@bp.post("/v1/pull")
def start_pull() -> Response:
    name = _valid(body(manage.PullBody).model)
    try:
        task, started = state().pulls.start(name)
    except PullError as exc:
        raise APIError(404, str(exc), param="model", code="model_not_found") from exc
    return reply(task.progress.as_dict(), 202 if started else 200)


@bp.get("/v1/pull")
def list_pulls() -> dict:
    return {"object": "list", "data": [t.progress.as_dict() for t in state().pulls.all()]}


def _task(model_id: str):  # type: ignore[no-untyped-def]
    task = state().pulls.get(model_id)
    if task is None:
        raise APIError(404, f"no pull of '{model_id}' in this session", code="not_found")
    return task


@bp.get("/v1/pull/<model_id>")
def get_pull(model_id: str) -> dict:
    return _task(model_id).progress.as_dict()


@bp.delete("/v1/pull/<model_id>")
def cancel_pull(model_id: str) -> dict:
    task = state().pulls.cancel(model_id) or _task(model_id)
    return task.progress.as_dict()


# Event streams hold an HTTP thread each: at most this many at once, each for at most
# STREAM_SECONDS (EventSource clients reconnect by themselves), and each ends as soon as its
# client has gone.
MAX_STREAMS = 4
STREAM_SECONDS = 60.0
_streams = threading.BoundedSemaphore(MAX_STREAMS)


@bp.get("/v1/pull/<model_id>/events")
def pull_events(model_id: str) -> Response:
    """Server-sent events: the pull's progress on every change until it ends."""
    task = _task(model_id)
    if not _streams.acquire(blocking=False):
        raise APIError(503, f"at most {MAX_STREAMS} event streams at once; poll "
                            f"GET /v1/pull/{model_id} instead", code="too_many_streams",
                       headers={"Retry-After": "5"})
    gone = client_gone()
    deadline = time.monotonic() + STREAM_SECONDS

    def stream() -> Iterator[str]:
        try:
            last = None
            while time.monotonic() < deadline and not (gone is not None and gone()):
                with task.changed:
                    snapshot = json.dumps(task.progress.as_dict())
                    if snapshot == last:
                        task.changed.wait(timeout=0.5)
                        snapshot = json.dumps(task.progress.as_dict())
                if snapshot != last:
                    yield f"data: {snapshot}\n\n"
                    last = snapshot
                if task.progress.status in FINAL:
                    return
        finally:
            _streams.release()

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _valid(model_id: str) -> str:
    """A plain model id by the store's own rule; a path is a 400, not a store conflict."""
    try:
        return check_id(model_id)
    except StoreError as exc:
        raise APIError(400, str(exc), param="model", code="invalid_value") from exc


def _installed_id(model_id: str, loaded_ok: bool = False) -> str:
    """An installed model's id (or, with ``loaded_ok``, a loaded one whose file is gone)."""
    if loaded_ok and state().registry.is_loaded(model_id):
        return model_id
    if not valid_id(model_id) or model_id not in installed():
        raise APIError(404, f"The model '{model_id}' is not installed.", param="model",
                       code="model_not_found")
    return model_id


@bp.post("/v1/models/<model_id>/load")
def load(model_id: str) -> Response:
    state().registry.get(_installed_id(model_id))
    return reply(model_card(model_id))


@bp.post("/v1/models/<model_id>/unload")
def unload(model_id: str) -> Response:
    state().registry.unload(_installed_id(model_id, loaded_ok=True))  # StoreError: 409
    return reply(model_card(model_id))


@bp.post("/v1/default")
def set_default() -> Response:
    """Serve another model as the default (and remember it unless "persist": false)."""
    request = body(manage.DefaultBody)
    model_id = _installed_id(_valid(request.model))
    registry = state().registry
    try:
        registry.load(model_id)  # may fail: then nothing has changed
    except (ModelNotFound, ModelLoadError) as exc:
        raise APIError(500, f"cannot load {model_id}: {exc}", code="model_load_failed",
                       type_="server_error") from exc
    if request.persist:
        save_setting("model", model_id)  # OSError (read-only, full): 500/507, no switch
    registry.set_default(model_id)
    return reply(model_card(model_id))


@bp.delete("/v1/models/<model_id>")
def delete(model_id: str) -> dict:
    """Remove an installed model; a loaded one only with ?force=true (it is unloaded).

    The deletion is prepared before the unload (``store.removal``): on a read-only model
    directory it fails first, and the model stays loaded and installed (500/507).
    """
    registry = state().registry
    _installed_id(model_id)
    force = request.args.get("force", "").lower() in ("1", "true", "yes")
    if registry.is_loaded(model_id) and not force:
        raise APIError(409, f"{model_id} is loaded; unload it first or pass force=true",
                       param="model", code="model_in_use")
    with removal(model_id):  # StoreError: 409; OSError: 500/507, nothing changed
        if registry.is_loaded(model_id):
            try:
                registry.unload(model_id)
            except StoreError as exc:
                raise APIError(409, str(exc), param="model", code="model_in_use") from exc
    return reply(manage.Deleted(model_id))


@bp.post("/v1/models/import")
def import_route() -> Response:
    """Install a .gguf file or sentence-transformers folder from a path on this machine."""
    request = body(manage.ImportBody)
    try:
        new_id = import_model(request.path, request.id)
    except (StoreError, ModelLoadError, ConversionError) as exc:
        raise APIError(400, str(exc), param="path", code="import_failed") from exc
    return reply(model_card(new_id))
