"""The one execute path for embedding, similarity and scoring, whatever asked for it.

Every face (the HTTP dialects, the CLI, the in-process ``LLM``, the web UI through HTTP) turns
its request into an ``EmbedRequest`` or ``CompareRequest`` and runs it here, so the rules live
once: per-request limits (inputs, tokens, time), the retry when a model is switched or unloaded
between lookup and submission, usage counts, and the prompts similarity uses. Failures are core
exceptions (``InputError``, ``ModelNotFound``, ``ModelLoadError``, ``EngineClosed``,
``RequestTimeout``); only the HTTP layer knows status codes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from localembed.config.settings import ServerConfig
from localembed.engine import EmbeddingResult, EmbedOptions, Engine, EngineClosed, InputError
from localembed.engine.core import Input, similarity_options
from localembed.service.registry import Registry


class RequestTimeout(TimeoutError):
    """The work did not finish within the request timeout (its queued work was dropped)."""


class RequestAbandoned(RuntimeError):
    """The caller went away (an HTTP client disconnected); its queued work was dropped."""


T = TypeVar("T")

# How often a waiting request checks whether its caller is still there.
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Limits:
    """Per-request bounds; the server's come from its config."""

    max_inputs: int = 2048
    max_request_tokens: int = 1_000_000
    request_timeout: float = 600.0

    @classmethod
    def of(cls, config: ServerConfig) -> Limits:
        """The bounds a server's settings set."""
        return cls(config.max_inputs, config.max_request_tokens, config.request_timeout)


@dataclass(frozen=True)
class EmbedRequest:
    """Inputs (texts or the model's own token ids) embedded with one set of options."""

    inputs: Sequence[Input]
    options: EmbedOptions = EmbedOptions()
    model: str | None = None
    field: str = "input"  # the dialect's name for the inputs, for error messages


@dataclass(frozen=True)
class CompareRequest:
    """Cosine scores of ``pairs`` of (left index, right index) over two lists of texts.

    Similarity is a query (left) against documents (right) with the query and document
    prompts; vLLM's score is the same with the options the caller gives both sides.
    """

    left: Sequence[str]
    right: Sequence[str]
    pairs: Sequence[tuple[int, int]]
    left_options: EmbedOptions = EmbedOptions()
    right_options: EmbedOptions = EmbedOptions()
    model: str | None = None
    field: str = "input"


def similarity_request(query: str, documents: Sequence[str],
                       options: EmbedOptions | None = None, model: str | None = None,
                       field: str = "documents") -> CompareRequest:
    """A query against documents, with the engine's similarity prompts."""
    query_options, document_options = similarity_options(options or EmbedOptions())
    return CompareRequest([query], list(documents), [(0, i) for i in range(len(documents))],
                          query_options, document_options, model, field)


def matrix_request(texts: Sequence[str], options: EmbedOptions | None = None,
                   model: str | None = None, field: str = "texts") -> CompareRequest:
    """Every text against every text, all with the same options (an N x N matrix)."""
    options = options or EmbedOptions()
    texts = list(texts)
    pairs = [(i, j) for i in range(len(texts)) for j in range(len(texts))]
    return CompareRequest(texts, texts, pairs, options, options, model, field)


@dataclass
class Embedded:
    model: str
    vectors: np.ndarray
    tokens: list[int]

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)


@dataclass
class Compared:
    model: str
    scores: np.ndarray  # one per pair, float64
    total_tokens: int
    inputs: int = field(default=0)  # how many texts were embedded


class Service:
    """Runs requests against a registry of loaded models, within limits."""

    def __init__(self, registry: Registry, limits: Limits | None = None) -> None:
        self.registry = registry
        self.limits = limits or Limits()

    def engine(self, model: str | None) -> Engine:
        return self.registry.get(model)

    def check_count(self, count: int, field: str) -> None:
        if count > self.limits.max_inputs:
            raise InputError(f"'{field}' has {count} items; at most {self.limits.max_inputs} "
                             "are allowed per request.", param=field, code="too_many_inputs")

    def embed(self, request: EmbedRequest, engine: Engine | None = None,
              abandoned: Callable[[], bool] | None = None) -> Embedded:
        """Embed ``request`` on its model (or ``engine``), retrying once across a switch.

        The work belongs to the request: when ``abandoned()`` turns true (the client left) or
        the request times out, its queued sequences are dropped and the worker moves on.
        """
        self.check_count(len(request.inputs), request.field)
        engine = engine or self.engine(request.model)
        inputs = list(request.inputs)
        engine, future = self.submit(engine, request.model, lambda e: e.submit(
            inputs, request.options, max_total_tokens=self.limits.max_request_tokens))
        result: EmbeddingResult = self.wait(future, abandoned)
        return Embedded(engine.id, result.vectors, result.tokens)

    def submit(self, engine: Engine, name: str | None,
               submit: Callable[[Engine], Future[T]]) -> tuple[Engine, Future[T]]:
        """``submit(engine)``; when the model was switched or unloaded since it was looked
        up, asked again once of the model ``name`` now means."""
        try:
            return engine, submit(engine)
        except EngineClosed:
            engine = self.engine(name)
            return engine, submit(engine)

    def wait(self, future: Future[T], abandoned: Callable[[], bool] | None = None) -> T:
        """The result of work submitted for a request (embeddings or a rerank), within the
        request timeout; on a timeout, or when ``abandoned()`` turns true (the client left),
        its queued work is dropped so the worker moves on."""
        deadline = time.monotonic() + self.limits.request_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                future.cancel()
                raise RequestTimeout("The request took too long; its queued work was "
                                     "dropped.")
            try:
                return future.result(timeout=min(POLL_SECONDS, left))
            except FutureTimeout:
                if abandoned is not None and abandoned():
                    future.cancel()
                    raise RequestAbandoned("the client went away") from None

    def compare(self, request: CompareRequest, engine: Engine | None = None,
                abandoned: Callable[[], bool] | None = None) -> Compared:
        """Cosine scores of the request's pairs. Each side is embedded once; a matrix (the
        same texts and options on both sides) is embedded once in all."""
        self.check_count(len(request.left), request.field)
        self.check_count(len(request.right), request.field)
        engine = engine or self.engine(request.model)
        left_request = EmbedRequest(request.left, replace(request.left_options, normalize=True),
                                    request.model, request.field)
        left = self.embed(left_request, engine, abandoned)
        if request.right is request.left and request.right_options == request.left_options:
            right = left
        else:
            right = self.embed(EmbedRequest(request.right,
                                            replace(request.right_options, normalize=True),
                                            request.model, request.field), engine, abandoned)
        if right.model != left.model:  # a switch in between: both sides from one model
            left = self.embed(left_request, self.engine(right.model), abandoned)
        scores = np.array([float(left.vectors[a] @ right.vectors[b]) for a, b in request.pairs],
                          dtype=np.float64)
        if right is left:
            return Compared(left.model, scores, left.total_tokens, len(request.left))
        return Compared(right.model, scores, left.total_tokens + right.total_tokens,
                        len(request.left) + len(request.right))

    def tokenize(self, texts: Sequence[str], options: EmbedOptions,
                 model: str | None = None, field: str = "content") -> tuple[str, list[list[int]]]:
        """The exact token ids the model sees for each text (prompt and specials included)."""
        self.check_count(len(texts), field)
        engine = self.engine(model)
        return engine.id, [engine.prepare(t, options, i) for i, t in enumerate(texts)]
