"""localembed on Ray Data: ``Embedder`` for your own pipelines, and ``embed_corpus``, the
corpus pipeline of ``localembed index`` (reading, chunking, prompts, embedding) as Ray Data
stages writing the dataset ``localembed.collections.corpus`` describes.

    import ray
    from localembed.ray import Embedder

    ds = ray.data.read_parquet("s3://bucket/chunks/")
    ds = ds.map_batches(Embedder, fn_constructor_kwargs={"model": "qwen3-embedding-0.6b",
                                                         "task": "document"},
                        batch_size=64, compute=ray.data.ActorPoolStrategy(size=4))

Each actor opens the model once with the same engine as a local run, so its vectors are a
local run's; its llama.cpp threads are the CPUs the actor was given, and it offloads every
layer to a GPU when it was given one (``num_gpus``), none otherwise. The model is a catalog id
(pulled into that node's model store once, under the pull's own lock) or a path every node
sees. Needs the ``ray`` extra: ``pip install "localembed[ray]"``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from localembed.collections import DOCUMENTS_PER_CALL, corpus
from localembed.collections.ingest import IndexOptions, IndexProgress, bind, embedded
from localembed.collections.sources import ReadOptions, Skipped, read_sources
from localembed.collections.store import Binding
from localembed.config.settings import load_config
from localembed.engine import EmbedOptions, RunnerOptions
from localembed.models.catalog import lookup
from localembed.models.store import ModelNotFound, resolve
from localembed.service.execute import EmbedRequest, Limits, Service
from localembed.service.registry import Registry, cache_from_config

# Ray Data splits a stage's output into blocks of at most this size, and an actor takes a
# block at a time: small blocks of documents, so that every actor gets its share to the end
# (Ray's 128 MiB would put a folder's documents in one block, for one actor; with 1 MiB, 900
# documents made 3 blocks and two one-CPU nodes ran at 0.5 of one process, with 256 KiB at
# 1.2). Embedding a block costs far more than moving it.
BLOCK_BYTES = 256 * 1024
# Embedding calls an actor runs at once (each a batch of documents, sharing the engine).
CALLS_PER_ACTOR = 2


def _assigned() -> dict[str, float]:
    import ray

    try:
        return dict(ray.get_runtime_context().get_assigned_resources())
    except Exception:  # not in a Ray worker (a test calling the class directly)
        return {}


def ensure_model(model: str | None) -> str | None:
    """A catalog id pulled into this node's store if it is not there yet (the pull takes its
    own lock, so actors of one node pull it once); a path or installed id as it is."""
    if model is None:
        return None
    try:
        resolve(model, allow_path=True)
    except ModelNotFound:
        if lookup(model) is None:
            raise
        from localembed.models.pull import pull

        pull(model)
    return model


def runner_options(threads: int | None = None, gpu_layers: int | None = None) -> RunnerOptions:
    """llama.cpp settings for this actor: its CPUs as threads, all layers on its GPU if it
    has one, else none (a node's GPU belongs to the actors Ray gave it to)."""
    resources = _assigned()
    if threads is None and resources.get("CPU"):
        threads = max(1, int(resources["CPU"]))
    if gpu_layers is None and resources:
        gpu_layers = -1 if resources.get("GPU") else 0
    return RunnerOptions(threads=threads, gpu_layers=gpu_layers)


class Embedder:
    """A callable class for ``Dataset.map_batches``: adds ``output_column`` (float32 vectors)
    to each batch, embedding ``text_column`` with the model's prompt for ``task`` and, when the
    batch has ``title_column``, each row's title (EmbeddingGemma's document title)."""

    def __init__(self, model: str | None = None, task: str | None = "document", *,
                 text_column: str = "text", title_column: str = "title",
                 output_column: str = "embedding", dimensions: int | None = None,
                 truncate: str = "end", threads: int | None = None,
                 gpu_layers: int | None = None) -> None:
        # The node's own settings (its LOCALEMBED_* variables, its config.json) size the cache.
        self.registry = Registry(ensure_model(model), runner_options(threads, gpu_layers),
                                 cache=cache_from_config(load_config()))
        self.service = Service(self.registry, Limits())
        self.engine = self.registry.default
        self.options = EmbedOptions(task=task, dimensions=dimensions, truncate=truncate)
        self.text_column, self.title_column = text_column, title_column
        self.output_column = output_column

    def vectors(self, texts: Sequence[str], titles: Sequence[str | None] | None = None,
              options: EmbedOptions | None = None) -> np.ndarray:
        """Vectors of ``texts`` (rows of one title share a request, and so their batches)."""
        options = options or self.options
        groups: dict[str | None, list[int]] = {}
        for i in range(len(texts)):
            groups.setdefault(None if titles is None else titles[i], []).append(i)
        keys = list(groups)
        requests = [EmbedRequest([str(texts[i]) for i in groups[k]],
                                 replace(options, title=k) if k is not None else options,
                                 self.engine.id) for k in keys]
        out = np.zeros((len(texts), self.engine.dimensions if options.dimensions is None
                        else options.dimensions), dtype=np.float32)
        for n, result in self.service.embed_many(requests, self.engine):
            out[groups[keys[n]]] = result.vectors
        return out

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        texts = list(batch[self.text_column])
        titles = None
        if self.title_column in batch:
            titles = [None if t is None or (isinstance(t, float) and np.isnan(t)) else str(t)
                      for t in batch[self.title_column]]
        batch[self.output_column] = self.vectors(texts, titles)
        return batch

    def __del__(self) -> None:
        registry = getattr(self, "registry", None)
        if registry is not None:
            registry.close()


class _CorpusEmbedder(Embedder):
    """``embed_corpus``'s embedding stage: a batch of documents in, their chunk rows out
    (chunked as ``index`` chunks, with the document prompt and title); marker rows (skipped,
    unchanged) pass through."""

    def __init__(self, model: str | None, binding: str, **kwargs: Any) -> None:
        super().__init__(model, "document", **kwargs)
        self.binding = Binding.from_dict(json.loads(binding))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        markers: list[dict[str, Any]] = []
        todo = []
        for record in _records(batch):
            markers.append({k: record[k] for k in ("status", "id", "reason", "stale")})
            if record["status"] == "embed":
                document, digest = corpus.record_document(record)
                todo.append((document, digest, True))
        # As a local run: each document chunked as it is sent, its chunks sharing the
        # engine's batches with the other documents in flight (and with the other call this
        # actor runs at the same time, so the engine does not idle while a call ends).
        rows: list[dict[str, Any]] = []
        for item, result in embedded(self.service, self.engine, self.binding, todo,
                                     IndexProgress(""), None):
            rows += corpus.chunk_rows(item, result.vectors)
        return {"rows": [json.dumps(_jsonable(rows))], "markers": [json.dumps(markers)]}


def _records(batch: dict[str, Any]) -> list[dict[str, Any]]:
    names = list(batch)
    return [{n: _plain(batch[n][i]) for n in names} for i in range(len(batch[names[0]]))]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["embedding"] = np.asarray(row["embedding"], np.float32).tolist()
    return rows


def _read(row: dict[str, Any], read: str, binding: str, held: Any) -> list[dict[str, Any]]:
    """The read stage: one input's documents as records ("embed"), with markers for what is
    skipped or already written."""
    import ray

    options = ReadOptions(**json.loads(read))
    bound = Binding.from_dict(json.loads(binding))
    written = ray.get(held) if isinstance(held, ray.ObjectRef) else held
    out: list[dict[str, Any]] = []
    for item in read_sources([row["input"]], options):
        if isinstance(item, Skipped):
            out.append(_marker("skipped", item.path, item.reason))
            continue
        digest, done, older = corpus.version(item, bound, written)
        stale = [str(part) for part in older]
        if done:
            out.append(_marker("unchanged", item.id, "", stale))
            continue
        record = corpus.document_record(item, digest)
        out.append({**_marker("embed", item.id, "", stale), **record})
    return out


def _marker(status: str, name: str, reason: str, stale: list[str] | None = None
            ) -> dict[str, Any]:
    return {"status": status, "id": name, "reason": reason, "stale": json.dumps(stale or []),
            "text": "", "source": "", "title": None, "metadata": "{}", "line_based": False,
            "document_hash": ""}


class _Writer:
    """The write stage: each embedding call's rows (whole documents) as one part. One
    long-lived actor: a task per part would start a fresh Ray worker (a second of CPU for its
    imports) again and again, taken from the embedding actors' cores."""

    def __init__(self, out: str, binding: str) -> None:
        self.out = Path(out)
        self.binding = Binding.from_dict(json.loads(binding))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        documents = chunks = tokens = 0
        for rows_json in batch["rows"]:
            rows = json.loads(rows_json)
            corpus.write_part(self.out, self.binding, rows)
            documents += len({r["document"] for r in rows})
            chunks += len(rows)
            tokens += sum(r["tokens"] for r in rows)
        return {"documents": [documents], "chunks": [chunks], "tokens": [tokens],
                "markers": [json.dumps([m for ms in batch["markers"] for m in json.loads(ms)])]}


def _bind(model: str | None, chunk_tokens: int | None, overlap: int | None) -> str:
    """The run's binding, made where the model is (a Ray task): the driver loads no model."""
    registry = Registry(ensure_model(model), runner_options())
    try:
        return bind(registry.default, chunk_tokens, overlap).to_json()
    finally:
        registry.close()


def embed_corpus(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str],
                 options: IndexOptions | None = None, *, address: str | None = None,
                 actors: int | None = None, batch_size: int | None = None,
                 num_cpus: float | None = None, num_gpus: float | None = None,
                 block_bytes: int = BLOCK_BYTES,
                 progress: Callable[[IndexProgress], None] | None = None
                 ) -> corpus.CorpusReport:
    """``embed-corpus --ray``: see the module's docstring. ``output`` is a folder every node
    writes to (a shared filesystem, or this machine's for a local cluster); inputs are read
    where their stage runs, so they too must be where the nodes see them. ``block_bytes``:
    how much read text goes to one embedding task (smaller spreads a small corpus over more
    actors). ``progress`` is called as parts are written (documents, chunks, tokens so far)."""
    import ray

    options = options or IndexOptions()
    out = Path(output).expanduser().resolve()
    corpus.pyarrow_modules()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    try:
        binding_json = ray.get(ray.remote(_bind).remote(options.model,
                                                        *corpus.chunk_settings(out, options)))
        binding = Binding.from_dict(json.loads(binding_json))
        corpus.check_dataset(out, binding)
        held = {doc: [(h, str(p)) for h, p in versions]
                for doc, versions in corpus.written(out).items()}
        context = ray.data.DataContext.get_current()
        context.target_max_block_size = block_bytes
        # By default one actor per node, with all of that node's CPUs (llama.cpp's threads);
        # reading and writing take no CPU of their own, so they never wait for the actors.
        nodes = [n["Resources"].get("CPU", 0) for n in ray.nodes()
                 if n["Alive"] and n["Resources"].get("CPU", 0) >= 1]
        pool = actors or max(1, len(nodes))
        cpus = num_cpus or max(1.0, min(nodes, default=1.0))
        gpus = {} if num_gpus is None else {"num_gpus": num_gpus}
        inputs_ = [str(p) if "://" in str(p) else str(Path(p).expanduser().resolve())
                   for p in inputs]
        ds = ray.data.from_items([{"input": p} for p in inputs_])
        ds = ds.flat_map(_read, fn_kwargs={"read": json.dumps(asdict(options.read)),
                                           "binding": binding_json, "held": ray.put(held)},
                         num_cpus=0)
        ds = ds.map_batches(_CorpusEmbedder, batch_size=batch_size or DOCUMENTS_PER_CALL,
                            fn_constructor_kwargs={"model": options.model,
                                                   "binding": binding_json},
                            # Ray Data restarts a lost actor and retries its task by
                            # default (max_restarts, max_task_retries -1): a retried batch
                            # writes the same part again, so every chunk is written once.
                            # Two calls at once per actor: the next batch's documents are
                            # chunked and fill the engine's batches while one call's last
                            # chunks are decoded.
                            compute=ray.data.ActorPoolStrategy(
                                size=pool, max_concurrent_calls_per_actor=CALLS_PER_ACTOR,
                                enable_true_multi_threading=True),
                            num_cpus=cpus, **gpus)
        ds = ds.map_batches(_Writer, batch_size=None, num_cpus=0,
                            compute=ray.data.ActorPoolStrategy(size=1),
                            fn_constructor_kwargs={"out": str(out), "binding": binding_json})
        report = corpus.CorpusReport(str(out), binding.model)
        state = IndexProgress(str(out), status="embedding")
        tell = progress or (lambda _p: None)
        stale: dict[Path, set[str]] = {}
        for row in ds.iter_rows():
            report.written += int(row["documents"])
            report.chunks += int(row["chunks"])
            report.tokens += int(row["tokens"])
            state.documents_done, state.chunks_done = report.written, report.chunks
            state.tokens = report.tokens
            tell(state)
            for marker in json.loads(row["markers"]):
                if marker["status"] == "skipped":
                    report.skipped.append(Skipped(marker["id"], marker["reason"]))
                elif marker["status"] == "unchanged":
                    report.unchanged += 1
                for part in json.loads(marker["stale"]):
                    stale.setdefault(Path(part), set()).add(marker["id"])
        corpus.drop_documents(out, binding, stale)
        state.status = "done"
        tell(state)
        return report
    finally:
        if started:
            ray.shutdown()
