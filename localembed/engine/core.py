"""The engine: the one core the CLI, HTTP API, web UI and tray all call.

An ``Engine`` is one loaded model, an embedding model or a reranker. It turns texts (or token
ids) into the exact token sequences the model's family expects (task prompt, BOS/EOS/SEP,
truncation that keeps those special tokens), hands them to the model's worker threads, and
post-processes the pooled outputs (Matryoshka cut, normalisation; relevance scores) in the
caller's thread. How a reranker's (query, document) pair is framed is pairs.py's; the request
path (validate, tokenize, enqueue, finish) is the same for both kinds and stays here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from localembed.engine.batcher import Batcher, EngineClosed, NonFiniteOutput
from localembed.engine.cache import VectorCache, model_key
from localembed.engine.families import TaskError, canonical_task
from localembed.engine.framing import TRUNCATE_MODES, Cut, TooLong, fit, precut
from localembed.engine.inspect import (
    POOLING_NAMES,
    GGUFInfo,
    Kind,
    ModelLoadError,
    inspect_gguf,
)
from localembed.engine.llama import LlamaRunner, RunnerOptions
from localembed.engine.memory import resident_bytes
from localembed.engine.pairs import PairError, Pairs, RerankOptions
from localembed.engine.postprocess import finish
from localembed.engine.probe import check_model, repack_allowed

# TRUNCATE_MODES (framing's) and RerankOptions (pairs') are imported from here too: the CLI
# and the dialects name them as the engine's.
Input = str | Sequence[int]


class InputError(ValueError):
    """A request the model cannot serve as asked (too long, bad token id, bad option)."""

    def __init__(self, message: str, param: str | None = None,
                 code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class WrongModelKind(InputError):
    """An embedding model asked to rerank, or a reranker asked for embeddings."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="model", code="wrong_model_kind")


@dataclass
class RerankResult:
    """One relevance score per document, in input order.

    ``scores`` are in 0..1: Qwen3-Reranker's probability of "yes" (``score_type``
    "probability"), or the sigmoid of a cross-encoder's logit ("sigmoid"), whose raw logits are
    in ``logits``. ``model`` is the engine's id: a request can be served by another model than
    it named (a switch mid-request), so the answer says which one scored it.
    """

    scores: np.ndarray
    logits: np.ndarray | None
    tokens: list[int]
    score_type: str
    model: str = ""

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)


@dataclass(frozen=True)
class EmbedOptions:
    """How to embed: what the API's extension fields map onto."""

    task: str | None = None
    instruction: str | None = None
    title: str | None = None
    dimensions: int | None = None
    normalize: bool = True
    truncate: str = "end"  # cut the end, cut the start, or "none": refuse long inputs
    max_tokens: int | None = None  # a tighter per-request limit than the model's
    add_special_tokens: bool = True  # BOS/CLS/EOS/SEP as the model's tokenizer adds them


def similarity_options(options: EmbedOptions) -> tuple[EmbedOptions, EmbedOptions]:
    """(query options, document options) for ranking documents against a query.

    Retrieval is asymmetric for prompted models: the query gets the query prompt (and any
    instruction), the documents the document prompt (and any title), unless a task is given.
    Scores are cosines, so both sides are normalized.
    """
    query = replace(options, task=options.task or "query", title=None, normalize=True)
    document = replace(options, task=options.task or "document", instruction=None,
                       normalize=True)
    return query, document


@dataclass
class EmbeddingResult:
    """Vectors in input order, the token count of each input (for usage reporting), and the
    engine's id: vectors are only comparable with others from the same model, and a switch
    mid-request can serve a request on another model than it named."""

    vectors: np.ndarray
    tokens: list[int]
    model: str = ""

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)


class Engine:
    """One loaded GGUF embedding model and its worker thread."""

    def __init__(self, path: str | os.PathLike[str], *, model_id: str | None = None,
                 options: RunnerOptions | None = None, pack_tokens: int | None = None,
                 safe_load: bool = False, cache: VectorCache | None = None) -> None:
        started = time.perf_counter()
        resident_before = resident_bytes()
        self.info: GGUFInfo = inspect_gguf(path)
        options = options or RunnerOptions()
        # A note when loading needed a fallback (e.g. no weight repacking on this CPU).
        self.load_note: str | None = None
        if safe_load:  # run in a child first: a crash there is a message here
            options, self.load_note = check_model(self.info, options)
        elif options.repack is None:  # the repacked kernels, checked once for this CPU
            options = replace(options, repack=repack_allowed())
        self.id = model_id or Path(path).stem
        self.family = self.info.family
        self.runner = LlamaRunner(self.info, options)
        empty = self.runner.tokenize("", special=True)
        sample = self.runner.tokenize("hello", special=True)
        # One decode before serving (one thread: no OpenMP team is left behind for the loading
        # thread): the weights are paged in now, not in the first request, what the model holds
        # in memory can be measured, and a model computing NaN is refused.
        try:
            self.runner.self_test()
        except ModelLoadError:
            self.runner.close()
            raise
        except RuntimeError as exc:
            self.runner.close()
            raise ModelLoadError(f"{self.info.path.name} loads but cannot be run: {exc}") from exc
        resident_after = resident_bytes()
        self.resident_bytes = (
            # The process's growth, or at least the weights it holds: memory an earlier,
            # closed model freed is reused without growing the process (glibc keeps it).
            max(resident_after - resident_before, self.runner.held_weight_bytes())
            if resident_after is not None and resident_before is not None else None)
        self.batcher = Batcher(self.runner, pack_tokens=pack_tokens or self.runner.plan_tokens,
                               name=self.id, warmup=sample)
        head = 0
        while head < min(len(empty), len(sample)) and empty[head] == sample[head]:
            head += 1
        self._head = empty[:head]
        self._tail = empty[head:]
        if self.family.eos_last and self.kind == Kind.EMBEDDING:
            final = self._final_token()
            if self._tail[-1:] != [final]:
                # The GGUF's own EOS (added by its tokenizer flags) gives way to the right one.
                tail = self._tail[:-1] if self._tail[-1:] == [self.runner.eos] else self._tail
                self._tail = [*tail, final]
        self.n_vocab = self.runner.n_vocab
        # Tokenizing touches the llama.cpp model; closing frees it. The lock makes sure no
        # tokenization is in progress, or starts, once the model is being freed.
        self._lock = threading.Lock()
        self._closed = False
        # Outputs already computed by this file with these settings (engine.cache).
        self.cache = cache if cache is not None and cache.enabled else None
        self._cache_model = model_key(self.info.path, self.runner.flash_attn, self.runner.repack,
                                      self.runner.gpu_layers, self.runner.backend)
        self.load_seconds = time.perf_counter() - started

    def _final_token(self) -> int:
        """The token last-token pooling must end on: the family's, found by its spelling in
        this vocabulary, else the GGUF's EOS."""
        if self.family.final_token is not None:
            ids = self.runner.tokenize_template(self.family.final_token)
            if len(ids) == 1 and self.runner.is_special(ids[0]):
                return ids[0]
        return self.runner.eos

    # -- properties ----------------------------------------------------------------------------

    @property
    def dimensions(self) -> int:
        """Full output size (after any dense projection)."""
        return self.runner.dimensions

    @property
    def max_tokens(self) -> int:
        """Longest input in tokens, special tokens and prompt included."""
        return self.runner.max_tokens

    @property
    def backend(self) -> str:
        """Where the model runs ("cpu" when llama.cpp names no GPU backend)."""
        return self.runner.backend or "cpu"

    @property
    def kind(self) -> Kind:
        """Embedding model or reranker: decided from the file, since one loaded model serves
        only one of the two (see ``_require``)."""
        return self.info.kind

    @property
    def score_type(self) -> str | None:
        """How a reranker's scores read (see RerankResult); None for embedding models."""
        if self.kind != Kind.RERANKER:
            return None
        return "probability" if self.runner.dimensions > 1 else "sigmoid"

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for `info`, /v1/models and the web UI."""
        return {
            "id": self.id,
            "kind": self.kind,
            "score_type": self.score_type,
            "path": str(self.info.path),
            "name": self.info.name,
            "architecture": self.info.arch,
            "family": self.family.name,
            "pooling": POOLING_NAMES.get(self.info.pooling, "unknown"),
            "dimensions": self.dimensions if self.kind == Kind.EMBEDDING else None,
            "matryoshka_dimensions": (self.family.dimensions(self.dimensions)
                                      if self.kind == Kind.EMBEDDING else None),
            "context_length": self.info.context,
            "max_seq_length": self.info.max_seq_length,
            "max_tokens": self.max_tokens,
            "file_type": self.info.file_type,
            "size_bytes": self.info.size,
            "rss_bytes": self.resident_bytes,
            "backend": self.backend,
            "gpu_layers": self.runner.gpu_layers,
            "threads": self.runner.threads,
            "workers": self.runner.workers,
            "batch_tokens": self.runner.batch_tokens,
            "flash_attn": self.runner.flash_attn,
            "repack": self.runner.repack,
            "load_note": self.load_note,
            "prompts": self.family.has_prompts if self.kind == Kind.EMBEDDING
            else self.family.rerank_template is not None,
        }

    @contextmanager
    def _open(self) -> Iterator[None]:
        """Hold the model for tokenizing and queueing; EngineClosed once it is unloaded."""
        with self._lock:
            if self._closed:
                raise EngineClosed("the model has been unloaded")
            yield

    # -- tokenization --------------------------------------------------------------------------

    def prompt(self, options: EmbedOptions) -> str:
        """The family's prefix for the request's task; an unknown task is the caller's error."""
        try:
            return self.family.prompt(options.task, options.instruction, options.title)
        except TaskError as exc:
            raise InputError(str(exc), param=exc.param) from exc

    def count(self, text: str) -> int:
        """How many tokens ``text`` is on its own (normalised as the model's tokenizer does,
        no prompt, no specials): what a chunker packs by before it checks the whole prompt."""
        with self._open():
            return len(self.runner.tokenize(self.runner.normalize(text), special=False))

    def prepare(self, item: Input, options: EmbedOptions = EmbedOptions(),
                index: int = 0) -> list[int]:
        """The exact token sequence the model will see for one input."""
        with self._open():
            return self._prepare(item, options, index)

    def _prepare(self, item: Input, options: EmbedOptions, index: int) -> list[int]:
        """``prepare`` for a caller already holding ``_open`` (a request tokenizes many)."""
        if options.truncate not in TRUNCATE_MODES:
            raise InputError(
                f"truncate must be one of {', '.join(TRUNCATE_MODES)}", param="truncate"
            )
        head, tail = (self._head, self._tail) if options.add_special_tokens else ([], [])
        limit = self.max_tokens
        if options.max_tokens is not None:
            if not 0 < options.max_tokens <= self.max_tokens:
                raise InputError(f"the token limit must be between 1 and {self.max_tokens} "
                                 "for this model", param="truncate_prompt_tokens")
            limit = options.max_tokens
        room = max(limit - len(head) - len(tail), 0)
        if isinstance(item, str):
            # The task prompt and the text are one string to the tokenizer (see framing).
            prefix = self.runner.normalize(self.prompt(options))
            try:
                text = self.runner.normalize(precut(self.runner, item,
                                                    Cut(limit, options.truncate)))
            except TooLong as exc:
                raise InputError(str(exc), param="input",
                                 code="context_length_exceeded") from exc
            body = self.runner.tokenize(prefix + text, special=False)
            if len(body) > room and options.truncate != "none":
                # "end" cuts the text's end, "start" its start (the prompt stays).
                body = fit(self.runner, prefix, text, "", room,
                           keep="start" if options.truncate == "end" else "end")[:room]
        else:
            body = [int(t) for t in item]
            bad = [t for t in body if not 0 <= t < self.n_vocab]
            if bad:
                raise InputError(
                    f"input {index} has token id {bad[0]} outside this model's vocabulary "
                    f"(0..{self.n_vocab - 1})", param="input",
                )
            # Ids from /tokenize already carry the frame; never add BOS/EOS/CLS/SEP twice.
            if head and body[:len(head)] == head:
                body = body[len(head):]
            if tail and body[-len(tail):] == tail:
                body = body[:-len(tail)]
            if len(body) > room and options.truncate != "none":
                body = body[:room] if options.truncate == "end" else body[len(body) - room:]
        if len(body) > room:
            raise InputError(
                f"input {index} is {len(body) + len(head) + len(tail)} tokens "
                f"long; this request takes at most {limit}. Shorten it or set "
                "truncate to 'end' or 'start'", param="input", code="context_length_exceeded",
            )
        tokens = head + body + tail
        if not tokens:  # a model with no special tokens and an empty text
            tokens = [max(self.runner.eos, 0)]
        return tokens

    # -- embedding -----------------------------------------------------------------------------

    def _check(self, options: EmbedOptions) -> int:
        """The output size, with the task checked too: both are refused before any input is
        tokenized, each naming its own field (the error says which)."""
        try:
            canonical_task(options.task)
            return self.family.check_dimensions(options.dimensions, self.dimensions)
        except TaskError as exc:
            raise InputError(str(exc), param=exc.param) from exc

    def submit(self, inputs: Sequence[Input], options: EmbedOptions = EmbedOptions(),
               max_total_tokens: int | None = None) -> Future:
        """Queue inputs for embedding; the future yields an ``EmbeddingResult``.

        Validation and tokenization happen here, in the caller's thread, so a bad request
        (including one over ``max_total_tokens`` in all) fails at once and never reaches the
        worker.
        """
        self._require(Kind.EMBEDDING)
        dimensions = self._check(options)
        with self._open():
            sequences = [self._prepare(item, options, i) for i, item in enumerate(inputs)]
            return self._enqueue(
                sequences, max_total_tokens, "input",
                lambda pooled, counts: EmbeddingResult(
                    finish(pooled, dimensions, options.normalize), counts, self.id))

    def _enqueue(self, sequences: list[list[int]], max_total_tokens: int | None, param: str,
                 make: Callable[[np.ndarray, list[int]], object]) -> Future:
        """Queue a request's sequences (holding ``_open``); the future yields ``make(pooled
        outputs, tokens per sequence)``, and cancelling it (a timeout, a client gone) drops
        what is still queued. A request over ``max_total_tokens`` fails here, in the caller's
        thread, and never reaches the workers."""
        counts = [len(s) for s in sequences]
        if max_total_tokens is not None and sum(counts) > max_total_tokens:
            raise InputError(f"the request holds {sum(counts)} tokens; at most "
                             f"{max_total_tokens} are allowed per request", param=param,
                             code="too_many_tokens")
        result: Future = Future()
        keys: list[bytes] = []
        found: list[np.ndarray | None] = [None] * len(sequences)
        if self.cache is not None and sequences:
            keys, found = self.cache.lookup(self._cache_model, sequences)
        # Only what the cache lacks is decoded, each distinct sequence once.
        slot: dict[tuple[int, ...], int] = {}
        place: list[int] = []  # each input's row among the decoded ones (-1: from the cache)
        todo: list[list[int]] = []
        todo_keys: list[bytes] = []
        origin: list[int] = []  # each decoded sequence's first place in the request
        for i, vector in enumerate(found):
            if vector is not None:
                place.append(-1)
                continue
            row = slot.setdefault(tuple(sequences[i]), len(todo))
            place.append(row)
            if row == len(todo):
                todo.append(sequences[i])
                todo_keys.append(keys[i] if keys else b"")
                origin.append(i)

        def assemble(pooled: np.ndarray) -> object:
            if self.cache is not None and todo:
                self.cache.store(todo_keys, list(pooled))
            if len(todo) == len(sequences):  # nothing from the cache, nothing repeated
                return make(pooled, counts)
            return make(np.stack([pooled[row] if row >= 0 else found[i]
                                  for i, row in enumerate(place)]), counts)

        if sequences and not todo:  # every one from the cache
            result.set_result(assemble(np.zeros((0, 0), dtype=np.float32)))
            return result
        raw = self.batcher.submit(todo)

        def done(f: Future) -> None:
            if result.done():  # the caller cancelled it
                return
            if f.cancelled():
                result.cancel()
            elif isinstance(f.exception(), NonFiniteOutput):  # named by its place in the request
                result.set_exception(NonFiniteOutput(origin[f.exception().index]))
            elif f.exception() is not None:
                result.set_exception(f.exception())
            else:
                result.set_result(assemble(f.result()))

        raw.add_done_callback(done)
        result.add_done_callback(lambda f: raw.cancel() if f.cancelled() else None)
        return result

    def embed(self, inputs: Input | Sequence[Input], options: EmbedOptions | None = None,
              timeout: float | None = None, **kwargs: object) -> EmbeddingResult:
        """Embed one text or a list of texts / token-id lists; blocks until done.

        Keyword arguments are ``EmbedOptions`` fields: ``engine.embed(texts, task="query")``.
        """
        if options is None:
            options = EmbedOptions(**kwargs)  # type: ignore[arg-type]
        items = [inputs] if isinstance(inputs, str) else list(inputs)
        return self.submit(items, options).result(timeout)

    def similarity(self, query: str, texts: Sequence[str],
                   options: EmbedOptions = EmbedOptions()) -> np.ndarray:
        """Cosine similarity of ``query`` against each of ``texts`` (query and document
        prompts unless ``options`` names a task; see ``similarity_options``)."""
        query_options, document_options = similarity_options(options)
        q = self.embed([query], query_options).vectors[0]
        d = self.embed(list(texts), document_options).vectors
        return d @ q

    def matrix(self, texts: Sequence[str], options: EmbedOptions = EmbedOptions()
               ) -> np.ndarray:
        """N x N cosine similarity matrix of ``texts``, all embedded with ``options``."""
        v = self.embed(list(texts), replace(options, normalize=True)).vectors
        return v @ v.T

    # -- reranking -----------------------------------------------------------------------------

    def _require(self, kind: Kind) -> None:
        """Refuse work for the other kind of model by name: a reranker's outputs are scores,
        not vectors, and an embedding model has no head to score with."""
        if self.kind == kind:
            return
        if kind == Kind.EMBEDDING:
            raise WrongModelKind(f"{self.id} is a reranker: it scores documents against a "
                                 "query (rerank) and makes no embeddings; choose an embedding "
                                 "model for embeddings")
        raise WrongModelKind(f"{self.id} is an embedding model, not a reranker; choose a "
                             "reranker model (such as Qwen3-Reranker) to rerank")

    def _pairs(self, query: str, documents: Sequence[str],
               options: RerankOptions) -> list[list[int]]:
        """The tokens of each (query, document) pair, for a caller holding ``_open``; a pair
        refused by pairs.py is the caller's InputError, its param and code kept."""
        try:
            pairs = Pairs.prepare(self.runner, self.info, query, options)
            return [pairs.tokens(document, i) for i, document in enumerate(documents)]
        except PairError as exc:
            raise InputError(str(exc), param=exc.param, code=exc.code) from exc

    def prepare_pair(self, query: str, document: str,
                     options: RerankOptions = RerankOptions(),  # noqa: B008 - frozen
                     ) -> list[int]:
        """The exact tokens the reranker sees for one (query, document) pair."""
        self._require(Kind.RERANKER)
        with self._open():
            return self._pairs(query, [document], options)[0]

    def submit_rerank(self, query: str, documents: Sequence[str],
                      options: RerankOptions = RerankOptions(),  # noqa: B008 - frozen
                      max_total_tokens: int | None = None) -> Future:
        """Queue (query, document) pairs for scoring; the future yields a ``RerankResult``.

        Pairs are tokenized here and decoded by the same workers, packed with any other work.
        """
        self._require(Kind.RERANKER)
        if not documents:
            raise InputError("documents must hold at least one document", param="documents")
        with self._open():
            sequences = self._pairs(query, documents, options)
            return self._enqueue(sequences, max_total_tokens, "documents", self._relevance)

    def _relevance(self, pooled: np.ndarray, counts: list[int]) -> RerankResult:
        """Scores from the head's outputs: p("yes") after llama.cpp's softmax over the labels,
        or the sigmoid of a cross-encoder's single logit."""
        score_type = self.score_type or "sigmoid"
        if score_type == "probability":
            labels = self.runner.labels
            yes = labels.index("yes") if "yes" in labels else 0
            return RerankResult(pooled[:, yes].astype(np.float32), None, counts, score_type,
                                self.id)
        logits = pooled[:, 0].astype(np.float32)
        scores = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
        return RerankResult(scores, logits, counts, score_type, self.id)

    def rerank(self, query: str, documents: Sequence[str],
               options: RerankOptions | None = None, timeout: float | None = None,
               **kwargs: object) -> RerankResult:
        """Relevance of each document to ``query``; blocks until done.

        Keyword arguments are ``RerankOptions`` fields: ``engine.rerank(q, docs, truncate="none")``.
        """
        if options is None:
            options = RerankOptions(**kwargs)  # type: ignore[arg-type]
        return self.submit_rerank(query, list(documents), options).result(timeout)

    def close(self, drain: bool = False) -> None:
        """Stop the worker and free the model.

        ``drain`` serves every request already submitted first (unloading without dropping
        work); otherwise queued requests fail with EngineClosed. New submissions fail at once.
        """
        with self._lock:
            self._closed = True
        self.batcher.close(drain=drain)

    @property
    def closed(self) -> bool:
        """Whether the model has been unloaded: work submitted now fails with EngineClosed."""
        return self._closed

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
