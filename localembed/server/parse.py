"""Turn JSON request bodies into engine calls, with an APIError for every bad field.

Each check names the offending field (OpenAI's ``param``) and says what is allowed, so a client
author can fix the request from the message alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import request

from localembed.engine import (
    EmbeddingResult,
    EmbedOptions,
    Engine,
    EngineClosed,
    InputError,
    ModelLoadError,
)
from localembed.engine.core import TRUNCATE_MODES, Input
from localembed.registry import Registry
from localembed.server.errors import APIError
from localembed.settings import ServerConfig
from localembed.store import ModelNotFound
from localembed.tokenids import MODEL_MODE, UNAVAILABLE, Decoder


def json_body() -> dict:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    data = request.get_json(silent=True, force=True)
    if data is None:
        if not request.get_data(cache=True):
            raise APIError(400, "The request body is empty; send a JSON object.",
                           code="invalid_json")
        raise APIError(400, "We could not parse the JSON body of your request. Send valid "
                            "JSON, e.g. {\"input\": \"hello\"}.", code="invalid_json")
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_json")
    return data


def optional(body: dict, key: str, kind: type | tuple[type, ...], what: str) -> object:
    """``body[key]`` if present and not null, checked against ``kind``."""
    value = body.get(key)
    if value is None:
        return None
    # bool is an int in Python; a JSON true is never a valid number here.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise APIError(400, f"'{key}' must be {what}.", param=key, code="invalid_type")
    if not isinstance(value, kind):
        raise APIError(400, f"'{key}' must be {what}.", param=key, code="invalid_type")
    return value


def required(body: dict, key: str, what: str = "a string") -> str:
    """A required string field."""
    value = optional(body, key, str, what)
    if value is None:
        raise APIError(400, f"'{key}' is required.", param=key,
                       code="missing_required_parameter")
    return value  # type: ignore[return-value]


def choice(body: dict, key: str, allowed: Sequence[str], default: str | None) -> str | None:
    value = optional(body, key, str, "a string")
    if value is None:
        return default
    if value not in allowed:
        raise APIError(400, f"'{key}' must be one of: {', '.join(allowed)} (got {value!r}).",
                       param=key, code="invalid_value")
    return value


def positive_int(body: dict, key: str) -> int | None:
    value = optional(body, key, int, "a positive integer")
    if value is not None and value <= 0:
        raise APIError(400, f"'{key}' must be a positive integer.", param=key,
                       code="invalid_value")
    return value  # type: ignore[return-value]


def parse_inputs(value: object, config: ServerConfig, decoder: Decoder | None,
                 key: str = "input") -> list[Input]:
    """OpenAI's input forms: a string, strings, token ids, or lists of token ids."""
    if value is None:
        raise APIError(400, f"'{key}' is required.", param=key, code="missing_required_parameter")
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise APIError(400, f"'{key}' must be a string, an array of strings, an array of token "
                            "ids, or an array of token-id arrays.", param=key,
                       code="invalid_type")
    if not value:
        raise APIError(400, f"'{key}' must not be an empty array.", param=key,
                       code="invalid_value")
    if len(value) > config.max_inputs:
        raise APIError(400, f"'{key}' has {len(value)} items; at most {config.max_inputs} "
                            "are allowed per request.", param=key, code="too_many_inputs")
    if all(isinstance(v, str) for v in value):
        return list(value)
    if all(_is_token(v) for v in value):
        token_lists = [value]
    elif all(isinstance(v, list) and all(_is_token(t) for t in v) for v in value):
        token_lists = value
    else:
        raise APIError(400, f"'{key}' mixes types: use all strings, all token ids, or all "
                            "token-id arrays.", param=key, code="invalid_type")
    if config.token_ids == MODEL_MODE:
        return token_lists
    if decoder is None:
        raise APIError(400, UNAVAILABLE, param=key, code="token_ids_unsupported")
    try:
        return [decoder.decode(ids) for ids in token_lists]
    except Exception as exc:  # ids outside cl100k_base
        raise APIError(400, f"'{key}' holds token ids that are not valid cl100k_base ids.",
                       param=key, code="invalid_value") from exc


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def embed_options(body: dict, truncate: str = "end") -> EmbedOptions:
    """The localembed extension fields shared by the embedding routes."""
    normalize = optional(body, "normalize", bool, "true or false")
    return EmbedOptions(
        task=optional(body, "task", str, "a string"),  # type: ignore[arg-type]
        instruction=optional(body, "instruction", str, "a string"),  # type: ignore[arg-type]
        title=optional(body, "title", str, "a string"),  # type: ignore[arg-type]
        dimensions=positive_int(body, "dimensions"),
        normalize=True if normalize is None else bool(normalize),
        truncate=truncate,
    )


def openai_truncate(body: dict) -> str:
    """``truncate`` is a mode string; JSON booleans are accepted as end / none."""
    value = body.get("truncate")
    if value is None or value is True:
        return "end"
    if value is False:
        return "none"
    if value not in TRUNCATE_MODES:
        raise APIError(400, f"'truncate' must be one of: {', '.join(TRUNCATE_MODES)}.",
                       param="truncate", code="invalid_value")
    return value


def get_engine(registry: Registry, body: dict | str | None) -> Engine:
    """The engine a request names (its body's "model", or a model id)."""
    name = optional(body, "model", str, "a string") if isinstance(body, dict) else body
    try:
        return registry.get(name)  # type: ignore[arg-type]
    except ModelNotFound as exc:
        raise APIError(404, f"The model '{name}' does not exist or is not installed. "
                            f"{exc}", param="model", code="model_not_found") from exc
    except ModelLoadError as exc:
        raise APIError(500, f"The model '{name}' could not be loaded: {exc}", param="model",
                       code="model_load_failed", type_="server_error") from exc


def run_embedding(engine: Engine, inputs: list[Input], options: EmbedOptions,
                  config: ServerConfig, registry: Registry | None = None
                  ) -> tuple[Engine, EmbeddingResult]:
    """Embed through the engine's worker, mapping engine errors onto HTTP errors.

    A model unloaded or switched between lookup and submission is looked up once more by id
    (and reloaded if need be), so switching models never fails a request.
    """
    try:
        try:
            future = engine.submit(inputs, options, max_total_tokens=config.max_request_tokens)
        except EngineClosed:
            if registry is None:
                raise
            engine = get_engine(registry, engine.id)
            future = engine.submit(inputs, options, max_total_tokens=config.max_request_tokens)
        return engine, future.result(timeout=config.request_timeout)
    except InputError as exc:
        raise APIError(400, str(exc), param=exc.param, code=exc.code) from exc
    except EngineClosed as exc:
        raise APIError(503, f"{exc}; retry the request.", code="model_unloaded",
                       type_="server_error") from exc
    except TimeoutError as exc:
        raise APIError(504, "The embedding took too long.", code="timeout",
                       type_="server_error") from exc
