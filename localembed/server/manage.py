"""Model management over HTTP, for the web UI and the tray: catalog, pulls, load/switch/remove.

Everything here is a thin layer over ``catalog``, ``pull``, ``store`` and ``Registry`` — the same
operations the CLI performs.
"""

from __future__ import annotations

import json

import msgspec
from flask import Response, request

from localembed.dialects import manage, openai
from localembed.engine.inspect import ModelLoadError
from localembed.models.catalog import listing
from localembed.models.convert import ConversionError
from localembed.models.description import ModelDescription
from localembed.models.pull import FINAL, PullError
from localembed.models.store import (
    ModelNotFound,
    StoreError,
    check_id,
    import_model,
    installed,
    removal,
    valid_id,
)
from localembed.server.body import body, reply
from localembed.server.errors import APIError
from localembed.server.events import progress_events
from localembed.server.routes import READ_ERRORS, Blueprint
from localembed.server.state import state

bp = Blueprint("manage", __name__)


@bp.operation("get", "/v1/catalog", "Models that can be pulled, and the starter model",
              manage.Catalog, errors=READ_ERRORS)
def catalog() -> Response:
    return reply(manage.Catalog(listing(set(installed()))))


@bp.operation("post", "/v1/pull", "Start downloading a catalog model (202; 200 if already "
              "running)", manage.Progress, manage.PullBody, ok=(202, 200))
def start_pull() -> Response:
    name = _valid(body(manage.PullBody).model)
    try:
        task, started = state().pulls.start(name)
    except PullError as exc:
        raise APIError(404, str(exc), param="model", code="model_not_found") from exc
    return reply(task.progress, 202 if started else 200)


@bp.operation("get", "/v1/pull", "Pulls started in this session", manage.ProgressList,
              errors=READ_ERRORS)
def list_pulls() -> Response:
    return reply(manage.ProgressList([t.progress for t in state().pulls.all()]))


def _task(model_id: str):  # type: ignore[no-untyped-def]
    task = state().pulls.get(model_id)
    if task is None:
        raise APIError(404, f"no pull of '{model_id}' in this session", code="not_found")
    return task


@bp.operation("get", "/v1/pull/<model_id>", "One pull's progress", manage.Progress,
              errors=(401, 403, 404, 500))
def get_pull(model_id: str) -> Response:
    return reply(_task(model_id).progress)


@bp.operation("delete", "/v1/pull/<model_id>", "Cancel a pull (the partial file is kept)",
              manage.Progress, errors=(401, 403, 404, 500))
def cancel_pull(model_id: str) -> Response:
    task = state().pulls.cancel(model_id) or _task(model_id)
    return reply(task.progress)


def _event(progress: manage.Progress) -> str:
    """A pull's progress as an event's data (in json.dumps' spelling, as always)."""
    return json.dumps(msgspec.to_builtins(progress))


@bp.operation("get", "/v1/pull/<model_id>/events", "Server-sent events with the pull's "
              "progress until it ends", "text/event-stream", errors=(401, 403, 404, 500))
def pull_events(model_id: str) -> Response:
    """Server-sent events: the pull's progress on every change until it ends."""
    task = _task(model_id)
    return progress_events(task.changed, lambda: _event(task.progress),
                           lambda: task.progress.status in FINAL, f"/v1/pull/{model_id}")


def _valid(model_id: str) -> str:
    """A plain model id by the store's own rule; a path is a 400, not a store conflict."""
    try:
        return check_id(model_id)
    except StoreError as exc:
        raise APIError(400, str(exc), param="model", code="invalid_value") from exc


def _card(model_id: str) -> Response:
    """The model as it is after the operation; one unloaded after its file vanished is gone
    from the lists, and answered with its id alone."""
    try:
        described = state().service.describe(model_id)
    except LookupError:
        described = ModelDescription(id=model_id)
    return reply(openai.ModelCard.of(described))


def _installed_id(model_id: str, loaded_ok: bool = False) -> str:
    """An installed model's id (or, with ``loaded_ok``, a loaded one whose file is gone)."""
    if loaded_ok and state().registry.is_loaded(model_id):
        return model_id
    if not valid_id(model_id) or model_id not in installed():
        raise APIError(404, f"The model '{model_id}' is not installed.", param="model",
                       code="model_not_found")
    return model_id


@bp.operation("post", "/v1/models/<model_id>/load", "Load an installed model",
              openai.ModelCard)
def load(model_id: str) -> Response:
    state().registry.get(_installed_id(model_id))
    return _card(model_id)


@bp.operation("post", "/v1/models/<model_id>/unload", "Unload a model (queued requests "
              "finish first)", openai.ModelCard)
def unload(model_id: str) -> Response:
    state().registry.unload(_installed_id(model_id, loaded_ok=True))  # StoreError: 409
    return _card(model_id)


@bp.operation("post", "/v1/default", "Serve another installed model as the default",
              openai.ModelCard, manage.DefaultBody)
def set_default() -> Response:
    """Serve another model as the default (and remember it unless "persist": false)."""
    request = body(manage.DefaultBody)
    model_id = _installed_id(_valid(request.model))
    try:
        # A model that fails to load changes nothing; nor does a config.json that cannot be
        # written (OSError: 500/507, no switch).
        state().registry.set_default(model_id, persist=request.persist)
    except (ModelNotFound, ModelLoadError) as exc:
        raise APIError(500, f"cannot load {model_id}: {exc}", code="model_load_failed",
                       type_="server_error") from exc
    return _card(model_id)


@bp.operation("delete", "/v1/models/<model_id>", "Remove an installed model (force=true "
              "unloads it first)", manage.Deleted, errors=(401, 403, 404, 409, 500),
              query=(("force", "boolean"),))
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


@bp.operation("post", "/v1/models/import", "Install a .gguf file or sentence-transformers "
              "folder from a path on this machine", openai.ModelCard, manage.ImportBody)
def import_route() -> Response:
    """Install a .gguf file or sentence-transformers folder from a path on this machine."""
    request = body(manage.ImportBody)
    try:
        new_id = import_model(request.path, request.id)
    except (StoreError, ModelLoadError, ConversionError) as exc:
        raise APIError(400, str(exc), param="path", code="import_failed") from exc
    return _card(new_id)
