"""Rerank routes: Cohere's and Jina's (``/v1/rerank``, ``/v2/rerank``, ``/rerank``) and Hugging
Face TEI's (``/rerank`` with ``texts``), thin views over ``localembed.dialects.rerank``."""

from __future__ import annotations

import msgspec
from flask import Blueprint, Response, request

from localembed.dialects import rerank
from localembed.dialects.common import decode
from localembed.engine import Engine, InputError
from localembed.models.store import describe, installed
from localembed.server.body import body, client_gone, reply
from localembed.server.errors import use_error_shape
from localembed.server.state import state

bp = Blueprint("rerank", __name__)


def reranker(model: str | None) -> Engine:
    """The model a rerank request names; without a name, the default model if it is a reranker,
    else a loaded reranker, else an installed one (TEI's clients send no model). With none,
    the default model, which the engine refuses naming the kind of model needed."""
    registry = state().registry
    if model is not None or registry.default.kind == "reranker":
        return registry.get(model)
    for engine in registry.loaded():
        if engine.kind == "reranker":
            return engine
    for model_id in installed():
        try:
            kind = describe(model_id).get("kind")
        except (LookupError, OSError):  # removed meanwhile
            continue
        if kind == "reranker":
            return registry.get(model_id)
    return registry.default


def _is_tei(data: bytes) -> bool:
    """TEI's body has ``texts`` where Cohere's and Jina's have ``documents``."""
    try:
        keys = decode(data, dict[str, msgspec.Raw])
    except InputError:
        return False  # not a readable JSON object: the Cohere/Jina model says what is wrong
    return "texts" in keys and "documents" not in keys


def _documents() -> Response:
    st = state()
    req = body(rerank.RerankRequest)
    texts = req.texts()
    options = req.options()
    reranked = rerank.rerank(st.service, reranker(req.model), req.query, texts, options,
                             abandoned=client_gone(),
                             max_document_tokens=req.max_tokens_per_doc)
    st.metrics.count_work(len(texts), reranked.result.total_tokens)
    version = "2" if request.path.startswith("/v2/") else "1"
    return reply(rerank.rerank_response(req, texts, reranked, version))


def _tei() -> Response:
    use_error_shape("tei")
    st = state()
    req = body(rerank.TEIRerankRequest)
    options = req.options()
    reranked = rerank.rerank(st.service, reranker(req.model), req.query, req.texts, options,
                             field="texts", abandoned=client_gone())
    st.metrics.count_work(len(req.texts), reranked.result.total_tokens)
    return reply(rerank.tei_response(req, reranked))


@bp.post("/v1/rerank")
@bp.post("/v2/rerank")
def documents() -> Response:
    """Cohere (v1, v2) and Jina: results most relevant first, ``top_n`` of them."""
    return _documents()


@bp.post("/rerank")
def documents_or_texts() -> Response:
    """Jina's and Cohere's body, or TEI's (``texts``), each answered in its own shape."""
    return _tei() if _is_tei(request.get_data(cache=True)) else _documents()
