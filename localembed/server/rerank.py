"""Rerank routes: Cohere's and Jina's (``/v1/rerank``, ``/v2/rerank``, ``/rerank``) and Hugging
Face TEI's (``/rerank`` with ``texts``), thin views over ``localembed.dialects.rerank`` and
``Service.rerank`` (which also chooses the reranker when a body names none)."""

from __future__ import annotations

import msgspec
from flask import Response, request

from localembed.dialects import rerank
from localembed.dialects.common import decode
from localembed.engine import InputError
from localembed.server.body import body, client_gone, reply
from localembed.server.errors import Error, TEIError, use_error_shape
from localembed.server.routes import Blueprint
from localembed.server.state import state

bp = Blueprint("rerank", __name__)


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
    core = req.to_request()
    result = st.service.rerank(core, client_gone())
    st.metrics.count_work(len(core.documents), result.total_tokens)
    version = "2" if request.path.startswith("/v2/") else "1"
    return reply(rerank.rerank_response(req, list(core.documents), result, version))


def _tei() -> Response:
    use_error_shape("tei")
    st = state()
    req = body(rerank.TEIRerankRequest)
    result = st.service.rerank(req.to_request(), client_gone())
    st.metrics.count_work(len(req.texts), result.total_tokens)
    return reply(rerank.tei_response(req, result))


@bp.operation("post", "/v1/rerank", "Rank documents with a reranker (Cohere, Jina)",
              rerank.RerankResponse, rerank.RerankRequest)
@bp.operation("post", "/v2/rerank", "Rank documents with a reranker (Cohere v2)",
              rerank.RerankResponse, rerank.RerankRequest)
def documents() -> Response:
    """Cohere (v1, v2) and Jina: results most relevant first, ``top_n`` of them."""
    return _documents()


@bp.operation("post", "/rerank", "Rank documents with a reranker: Jina's and Cohere's body "
              "(documents) or Hugging Face TEI's (texts), each answered in its own shape",
              (rerank.RerankResponse, rerank.TEIRerankResponse),
              (rerank.RerankRequest, rerank.TEIRerankRequest), error=(Error, TEIError))
def documents_or_texts() -> Response:
    """Jina's and Cohere's body, or TEI's (``texts``), each answered in its own shape."""
    return _tei() if _is_tei(request.get_data(cache=True)) else _documents()
