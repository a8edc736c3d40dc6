"""The one execute path for every operation, whatever asked for it.

Every face (the HTTP dialects, the CLI, the in-process ``LLM``, the desktop app, the web UI
through HTTP) turns its request into one of the requests below and runs it here, so the rules
live once: per-request limits (inputs, tokens, time), cancellation when the caller goes away,
the retry when a model is switched or unloaded between lookup and submission, usage counts,
the prompts similarity uses, and what ``/score`` means for each kind of model. Failures are
core exceptions (``InputError``, ``ModelNotFound``, ``ModelLoadError``, ``EngineClosed``,
``RequestTimeout``); only the HTTP layer knows status codes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from localembed.config.settings import ServerConfig
from localembed.engine import (
    EmbeddingResult,
    EmbedOptions,
    Engine,
    EngineClosed,
    InputError,
    Kind,
    RerankOptions,
    RerankResult,
)
from localembed.engine.core import Input, similarity_options
from localembed.models.description import ModelDescription, modified
from localembed.models.store import ModelNotFound, describe, installed
from localembed.service.registry import Registry


class RequestTimeout(TimeoutError):
    """The work did not finish within the request timeout (its queued work was dropped)."""


class RequestAbandoned(RuntimeError):
    """The caller went away (an HTTP client disconnected); its queued work was dropped."""


T = TypeVar("T")
Abandoned = Callable[[], bool] | None

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
    prompts; a matrix is every text against every text with the same options.
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


@dataclass(frozen=True)
class RerankRequest:
    """Documents scored against a query by a reranker. Without a ``model``, the registry
    chooses the reranker (``Registry.reranker``)."""

    query: str
    documents: Sequence[str]
    options: RerankOptions = RerankOptions()
    model: str | None = None
    field: str = "documents"
    # Cohere's per-document token limit; the query and the reranker's prompt come on top.
    max_document_tokens: int | None = None


@dataclass(frozen=True)
class ScoreRequest:
    """vLLM's score of text pairs: what the score is depends on the model. An embedding model
    gives the cosine of the two texts' vectors (``dimensions`` may shorten them); a reranker
    gives its cross-encoder's score (``instruction`` is its task). ``max_tokens`` cuts each
    text (embedding) or each pair (reranker)."""

    left: Sequence[str]
    right: Sequence[str]
    pairs: Sequence[tuple[int, int]]
    model: str | None = None
    dimensions: int | None = None
    max_tokens: int | None = None
    instruction: str | None = None
    field: str = "input"


@dataclass
class Compared:
    model: str
    scores: np.ndarray  # one per pair, float64
    total_tokens: int
    inputs: int = field(default=0)  # how many texts were embedded (or pairs scored)


def ranking(scores: np.ndarray, top_n: int | None = None) -> list[int]:
    """Indices of ``scores``, highest first (ties keep the input order), the best ``top_n``."""
    return sorted(range(len(scores)), key=lambda i: -float(scores[i]))[:top_n]


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

    # -- embeddings and cosine scores -----------------------------------------------------------

    def embed(self, request: EmbedRequest, engine: Engine | None = None,
              abandoned: Abandoned = None) -> EmbeddingResult:
        """Embed ``request`` on its model (or ``engine``), retrying once across a switch.

        The work belongs to the request: when ``abandoned()`` turns true (the client left) or
        the request times out, its queued sequences are dropped and the worker moves on.
        """
        self.check_count(len(request.inputs), request.field)
        engine = engine or self.engine(request.model)
        inputs = list(request.inputs)
        _, future = self._submit(engine, request.model, lambda e: e.submit(
            inputs, request.options, max_total_tokens=self.limits.max_request_tokens))
        return self._wait(future, abandoned)

    def embed_many(self, requests: Sequence[EmbedRequest], engine: Engine,
                   abandoned: Abandoned = None) -> Iterator[tuple[int, EmbeddingResult]]:
        """Several requests queued at once, so that their sequences share the workers'
        batches, each result yielded as soon as it is done: (its index in ``requests``, its
        result). See ``embed_stream``."""
        for request in requests:
            self.check_count(len(request.inputs), request.field)
        return self.embed_stream(enumerate(requests), engine, len(requests) or 1, abandoned)

    def embed_stream(self, requests: Iterable[tuple[T, EmbedRequest]], engine: Engine,
                     in_flight: int, abandoned: Abandoned = None) -> Iterator[tuple[T,
                                                                                 EmbeddingResult]]:
        """Tagged requests kept ``in_flight`` at a time, the next taken from ``requests`` as
        soon as one is done, so the engine's batches stay full (an index run's documents,
        each with its own title, read and chunked while the ones before are embedded); each
        result is yielded as soon as it is done, with its tag. Each request is held to the
        same limits as ``embed``; the request timeout bounds how long no result comes, and
        work not yet done when the caller stops reading (or fails) is dropped."""
        pending = iter(requests)
        futures: dict[Future, T] = {}
        try:
            def top_up() -> None:
                nonlocal engine
                while len(futures) < in_flight:
                    tagged = next(pending, None)
                    if tagged is None:
                        return
                    tag, request = tagged
                    self.check_count(len(request.inputs), request.field)

                    def submit(e: Engine, request: EmbedRequest = request) -> Future:
                        return e.submit(list(request.inputs), request.options,
                                        max_total_tokens=self.limits.max_request_tokens)

                    engine, future = self._submit(engine, engine.id, submit)
                    futures[future] = tag

            top_up()
            deadline = time.monotonic() + self.limits.request_timeout
            while futures:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RequestTimeout("The request took too long; its queued work was "
                                         "dropped.")
                done, _ = wait(futures, timeout=min(POLL_SECONDS, left),
                               return_when=FIRST_COMPLETED)
                if not done and abandoned is not None and abandoned():
                    raise RequestAbandoned("the client went away")
                if done:
                    deadline = time.monotonic() + self.limits.request_timeout
                for future in done:
                    tag = futures.pop(future)
                    result = future.result()
                    top_up()  # the engine gets more before the caller handles this one
                    yield tag, result
        finally:
            for future in futures:
                future.cancel()

    def compare(self, request: CompareRequest, engine: Engine | None = None,
                abandoned: Abandoned = None) -> Compared:
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

    # -- reranking and scores of pairs -------------------------------------------------------

    def rerank(self, request: RerankRequest, abandoned: Abandoned = None) -> RerankResult:
        """The reranker's score of each document against the query, in input order
        (``ranking`` orders them)."""
        self.check_count(len(request.documents), request.field)
        engine = self.registry.reranker(request.model)
        documents = list(request.documents)

        def submit(e: Engine) -> Future:
            return e.submit_rerank(request.query, documents,
                                   self._document_limit(e, request),
                                   max_total_tokens=self.limits.max_request_tokens)

        _, future = self._submit(engine, engine.id, submit)
        return self._wait(future, abandoned)

    def score(self, request: ScoreRequest, abandoned: Abandoned = None) -> Compared:
        """vLLM's ``/score``: cosine with an embedding model, the cross-encoder's score with a
        reranker; an option that means nothing to the model is refused, naming it."""
        engine = self.engine(request.model)
        if engine.kind == Kind.RERANKER:
            if request.dimensions is not None:
                raise InputError(f"{engine.id} is a reranker: 'dimensions' applies to "
                                 "embedding models only.", param="dimensions")
            return self._cross_scores(engine, request, abandoned)
        if request.instruction is not None:
            raise InputError("'instruction' applies to rerankers; this is an embedding model.",
                             param="instruction")
        options = EmbedOptions(dimensions=request.dimensions, max_tokens=request.max_tokens)
        return self.compare(CompareRequest(request.left, request.right, request.pairs, options,
                                           options, request.model, request.field),
                            engine, abandoned)

    def _cross_scores(self, engine: Engine, request: ScoreRequest,
                      abandoned: Abandoned) -> Compared:
        """The pairs of one left text are one rerank; all are queued before any is awaited,
        so they share the workers' batches, and a refused group drops the others' work."""
        self.check_count(len(request.left), request.field)
        self.check_count(len(request.right), request.field)
        options = RerankOptions(instruction=request.instruction, max_tokens=request.max_tokens)
        groups: dict[int, list[int]] = {}
        for k, (left, _) in enumerate(request.pairs):
            groups.setdefault(left, []).append(k)
        futures: list[tuple[list[int], Future]] = []
        scores = np.empty(len(request.pairs), dtype=np.float64)
        tokens = 0
        try:
            for left, ks in groups.items():
                documents = [request.right[request.pairs[k][1]] for k in ks]

                def submit(e: Engine, query: str = request.left[left],
                           documents: list[str] = documents) -> Future:
                    return e.submit_rerank(query, documents, options,
                                           max_total_tokens=self.limits.max_request_tokens)

                engine, future = self._submit(engine, engine.id, submit)
                futures.append((ks, future))
            for ks, future in futures:
                result: RerankResult = self._wait(future, abandoned)
                scores[ks] = result.scores
                tokens += result.total_tokens
        except BaseException:
            for _, future in futures:
                future.cancel()
            raise
        return Compared(engine.id, scores, tokens, len(request.pairs))

    @staticmethod
    def _document_limit(engine: Engine, request: RerankRequest) -> RerankOptions:
        """Cohere's per-document token limit as the core's per-pair one (the query and the
        reranker's prompt around it come on top)."""
        if request.max_document_tokens is None:
            return request.options
        frame = len(engine.prepare_pair(request.query, "", request.options))
        return replace(request.options,
                       max_tokens=min(engine.max_tokens, frame + request.max_document_tokens))

    # -- what every request shares -------------------------------------------------------------

    def _submit(self, engine: Engine, name: str | None,
                submit: Callable[[Engine], Future[T]]) -> tuple[Engine, Future[T]]:
        """``submit(engine)``; when the model was switched or unloaded since it was looked
        up, asked again once of the model ``name`` now means."""
        try:
            return engine, submit(engine)
        except EngineClosed:
            engine = self.engine(name)
            return engine, submit(engine)

    def _wait(self, future: Future[T], abandoned: Abandoned = None) -> T:
        """The result of submitted work within the request timeout; on a timeout, or when
        ``abandoned()`` turns true (the client left), its queued work is dropped so the
        worker moves on."""
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

    # -- what the faces list -------------------------------------------------------------------

    def describe(self, model_id: str) -> ModelDescription:
        """A model as every face shows it: its file's facts, and what this server knows (loaded,
        default, its memory); a loaded model whose file vanished is still described."""
        registry = self.registry
        engine = next((e for e in registry.loaded() if e.id == model_id), None)
        default = model_id == registry.default_id
        if engine is None:
            if model_id not in installed():  # an alias or a path names no listed model
                raise ModelNotFound(f"model {model_id!r} is not installed")
            described = describe(model_id)
            described.default = default
            return described
        when = modified(engine.info.path)
        return ModelDescription.of(model_id, engine.info, modified=when, missing=when is None,
                                   loaded=True, default=default, max_tokens=engine.max_tokens,
                                   rss_bytes=engine.resident_bytes)

    def models(self) -> list[ModelDescription]:
        """Every installed or loaded model, by id."""
        ids = sorted(set(installed()) | {e.id for e in self.registry.loaded()})
        described = []
        for model_id in ids:
            try:
                described.append(self.describe(model_id))
            except LookupError:  # removed since it was listed
                continue
        return described
