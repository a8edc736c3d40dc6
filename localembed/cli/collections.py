"""Collections from the command line: `index`, `search`, `collections` and `export`, over the
same service and collection code as the HTTP API (each command imports what it runs: the
help loads none of it)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from localembed.cli.commands import _say, _short, _size, open_service
from localembed.collections import DOCUMENTS_PER_CALL

if TYPE_CHECKING:
    from localembed.collections.ingest import IndexOptions, IndexProgress
    from localembed.collections.search import SearchAnswer


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


def _collection_model(name: str) -> str | None:
    """The model a collection was built with (None for a new one): every command on it
    loads that model."""
    from localembed.collections.ingest import model_missing
    from localembed.collections.store import Collection, CollectionError
    from localembed.models.store import installed

    try:
        with Collection.open(name) as collection:
            model = collection.binding.model
    except LookupError:
        return None
    except CollectionError as exc:
        raise _fail(exc) from exc
    if model not in installed():
        raise _fail(model_missing(name, model))
    return model


class Bar:
    """A one-line progress bar on standard error: documents, chunks, tokens/s, ETA."""

    WIDTH = 24

    def __init__(self) -> None:
        self.last = 0.0
        self.shown = False

    def __call__(self, p: IndexProgress) -> None:
        now = time.monotonic()
        if p.status not in ("done", "cancelled") and now - self.last < 0.2:
            return
        self.last = now
        if p.status == "reading":
            line = f"reading: {p.documents_read} documents, {p.documents_total} to embed"
        else:
            eta = "--:--" if p.eta is None else f"{int(p.eta // 60)}:{int(p.eta % 60):02d}"
            # A Ray run knows a document only once it is written: no total to show.
            total = f"/{p.documents_total}" if p.documents_total > p.documents_done else ""
            counts = (f"documents {p.documents_done}{total} chunks "
                      f"{p.chunks_done} {p.tokens_per_second:,.0f} tokens/s")
            if p.characters_total:  # how much there is, known once it was all read
                filled = int(self.WIDTH * p.fraction)
                line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {counts} ETA {eta}"
            else:  # streamed (embed-corpus): what is done so far
                line = counts
        click.echo(f"\r{line:<100}", nl=False, err=True)
        self.shown = True

    def end(self) -> None:
        if self.shown:
            click.echo("", err=True)


READING_OPTIONS = (
    click.option("--glob", default=None, help="Only files matching this pattern (e.g. '*.md')."),
    click.option("--text-field", default=None,
                 help="JSONL/CSV/Parquet records: the text field (text)."),
    click.option("--id-field", default=None,
                 help="JSONL/CSV/Parquet records: the id field (id)."),
    click.option("--chunk-tokens", type=click.IntRange(min=16), default=None,
                 help="Tokens per chunk (default: 512, or less where the model takes less)."),
    click.option("--overlap", type=click.IntRange(min=0), default=None,
                 help="Tokens each chunk repeats from the one before (default: an eighth)."),
)


def reading_options(command: Callable[..., None]) -> Callable[..., None]:
    """How `index` and `embed-corpus` read and chunk: one set of options, one meaning."""
    for option in reversed(READING_OPTIONS):
        command = option(command)
    return command


def _index_options(model: str | None, glob: str | None, text_field: str | None,
                   id_field: str | None, chunk_tokens: int | None, overlap: int | None,
                   rechunk: bool = False) -> IndexOptions:
    from localembed.collections.ingest import IndexOptions
    from localembed.collections.sources import ReadOptions

    return IndexOptions(model=model, chunk_tokens=chunk_tokens, overlap=overlap,
                        rechunk=rechunk,
                        read=ReadOptions(glob=glob, text_field=text_field, id_field=id_field))


@click.command(name="index")
@click.argument("name")
@click.argument("paths", nargs=-1, required=True)
@click.option("-m", "--model", default=None,
              help="Embedding model of a new collection (default: the default model); an "
                   "existing collection keeps its own.")
@reading_options
@click.option("--rechunk", is_flag=True,
              help="Let an existing collection take new --chunk-tokens/--overlap (its "
                   "documents are embedded again).")
def index_cmd(name: str, paths: tuple[str, ...], model: str | None, glob: str | None,
              text_field: str | None, id_field: str | None, chunk_tokens: int | None,
              overlap: int | None, rechunk: bool) -> None:
    """Index files, folders and JSONL/CSV/Parquet records into collection NAME (created on
    first use), or load a dataset written by embed-corpus (OUT) without embedding.

    Run it again to bring the collection up to date: only new and changed documents are
    embedded, documents gone from the folders are dropped, and an interrupted run goes on
    where it stopped."""
    from localembed.collections import corpus
    from localembed.collections.ingest import IndexCancelled, index
    from localembed.collections.store import CollectionError
    from localembed.engine import InputError

    options = _index_options(model, glob, text_field, id_field, chunk_tokens, overlap, rechunk)
    datasets = [Path(p) for p in paths if corpus.parts(Path(p))]
    if datasets:
        _load_datasets(name, paths, datasets)
        return
    bar = Bar()
    with open_service(model or _collection_model(name), None, None, None) as service:
        try:
            report = index(service, name, paths, options, progress=bar)
        except (CollectionError, InputError) as exc:
            bar.end()
            raise _fail(exc) from exc
        except (IndexCancelled, KeyboardInterrupt):
            bar.end()
            raise click.ClickException("interrupted: the documents indexed so far are kept; run "
                                       "the same command to go on") from None
        except OSError as exc:
            bar.end()
            raise click.ClickException(f"cannot write collection {name!r}: "
                                       f"{exc.strerror or exc}; what was indexed before is "
                                       "intact") from exc
    bar.end()
    _say(f"{name}: {report.added} added, {report.changed} changed, {report.unchanged} "
         f"unchanged, {report.removed} removed; {report.chunks} chunks, {report.tokens:,} "
         f"tokens in {report.seconds:.1f} s ({report.model})")
    if report.skipped:
        reasons: dict[str, int] = {}
        for s in report.skipped:
            reasons[s.reason] = reasons.get(s.reason, 0) + 1
        _say(f"skipped {len(report.skipped)}: "
             + ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())))
        for s in report.skipped[:20]:
            _say(f"  {s.path}: {s.reason}")
        if len(report.skipped) > 20:
            _say(f"  ... and {len(report.skipped) - 20} more")


def _load_datasets(name: str, paths: tuple[str, ...], datasets: list[Path]) -> None:
    """``index NAME OUT``: datasets written by embed-corpus, loaded without embedding."""
    from localembed.collections import corpus
    from localembed.collections.store import CollectionError
    from localembed.engine import InputError

    if len(datasets) != len(paths):
        raise click.UsageError("give either datasets written by embed-corpus or files and "
                               "folders to index, not both in one run")
    for dataset in datasets:
        try:
            binding = corpus.dataset_binding(dataset)
            if binding is None:
                raise InputError(f"{dataset} is not a dataset written by embed-corpus")
            with open_service(binding.model, None, None, None) as service:
                report = corpus.load_corpus(service, name, dataset)
        except (CollectionError, InputError) as exc:
            raise _fail(exc) from exc
        _say(f"{name}: {report.written} documents loaded from {dataset} ({report.chunks} "
             f"chunks, nothing embedded), {report.unchanged} unchanged ({report.model})")


@click.command(name="embed-corpus")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="The Parquet dataset to write (a folder; a rerun adds what is missing).")
@click.option("-m", "--model", default=None, help="Embedding model (default: the default "
                                                  "model); a path every Ray node sees works.")
@reading_options
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None,
              metavar="[ADDRESS]", help="Run on a Ray cluster (ADDRESS, or RAY_ADDRESS, or a "
                                        "local one started for the run).")
@click.option("--actors", type=click.IntRange(min=1), default=None,
              help="With --ray: embedding actors (default: one per node, with its CPUs).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="With --ray: documents per embedding call (default: "
                   f"{DOCUMENTS_PER_CALL}).")
@click.option("--gpus", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --ray: GPUs per embedding actor (each offloads every layer to its "
                   "GPU; default: none, the CPUs).")
def embed_corpus_cmd(inputs: tuple[str, ...], output: str, model: str | None,
                     glob: str | None, text_field: str | None, id_field: str | None,
                     chunk_tokens: int | None, overlap: int | None, ray_address: str | None,
                     actors: int | None, batch_size: int | None, gpus: float | None) -> None:
    """Embed files, folders and JSONL/CSV/Parquet records into a Parquet dataset (one row per
    chunk, chunked and prompted as `index` does), here or on a Ray cluster.

    Run it again into the same folder to add what is missing: documents already written are
    not embedded again. Load the dataset into a collection with `localembed index NAME OUT`."""
    from localembed.collections import corpus
    from localembed.collections.store import CollectionError
    from localembed.engine import InputError

    options = _index_options(model, glob, text_field, id_field, chunk_tokens, overlap)
    ray_only = {"--actors": actors, "--batch-size": batch_size, "--gpus": gpus}
    given = [name for name, value in ray_only.items() if value is not None]
    if ray_address is None and given:
        raise click.UsageError(f"{', '.join(given)} only with --ray")
    bar = Bar()
    try:
        if ray_address is not None:
            from localembed import ray as on_ray

            report = on_ray.embed_corpus(inputs, output, options, address=ray_address or None,
                                         actors=actors, batch_size=batch_size, num_gpus=gpus,
                                         progress=bar)
        else:
            with open_service(model, None, None, None) as service:
                report = corpus.embed_corpus(service, inputs, output, options, progress=bar)
    except (CollectionError, InputError) as exc:
        raise _fail(exc) from exc
    finally:
        bar.end()
    _say(f"{output}: {report.written} documents written ({report.chunks} chunks, "
         f"{report.tokens:,} tokens), {report.unchanged} already there ({report.model})")
    if report.skipped:
        _say(f"skipped {len(report.skipped)}: "
             + ", ".join(sorted({s.reason for s in report.skipped})))


def _where(pairs: tuple[str, ...]) -> dict[str, str] | None:
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: use KEY=VALUE", param_hint="--where")
        found[key] = value
    return found or None


@click.command(name="search")
@click.argument("name")
@click.argument("query")
@click.option("-k", "--top", "top", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="How many results.")
@click.option("--rerank", "rerank", is_flag=False, flag_value="", default=None,
              metavar="[MODEL]", help="Rerank the best candidates with a reranker (the "
                                      "installed one, or MODEL).")
@click.option("--hybrid", is_flag=True, help="Fuse keyword matches with the vector ranking.")
@click.option("--where", multiple=True, metavar="KEY=VALUE",
              help="Only documents whose metadata KEY is VALUE (repeatable).")
@click.option("--path", default=None, help="Only documents whose path matches this glob.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of results.")
def search_cmd(name: str, query: str, top: int, rerank: str | None, hybrid: bool,
               where: tuple[str, ...], path: str | None, as_json: bool) -> None:
    """Search collection NAME for QUERY: the best chunks, most relevant first."""
    from localembed.collections.search import SearchQuery, search
    from localembed.collections.store import CollectionError
    from localembed.engine import InputError

    request = SearchQuery(query, top_k=top, where=_where(where), path=path,
                          rerank=rerank is not None, reranker=rerank or None, hybrid=hybrid)
    model = _collection_model(name)
    if model is None:
        raise click.ClickException(f"no collection named {name!r}; `localembed collections` "
                                   "lists them")
    with open_service(model, None, None, None) as service:
        try:
            answer = search(service, name, request)
        except (CollectionError, InputError) as exc:
            raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps(results_json(answer)))
        return
    if not answer.results:
        _say("no results")
        return
    for rank, r in enumerate(answer.results, 1):
        where_from = r.document + (f":{r.start_line}-{r.end_line}" if r.start_line else "")
        click.echo(f"{rank:>2}. {r.score:6.3f}  {where_from}")
        click.echo(f"    {_short(r.text, 96)}")


def results_json(answer: SearchAnswer) -> list[dict[str, object]]:
    """The `--json` rows: every result field, by name."""
    import msgspec

    return msgspec.to_builtins(answer.results)


@click.group(name="collections", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def collections_group(ctx: click.Context, as_json: bool) -> None:
    """List collections (or show or remove one)."""
    from localembed.collections.store import list_collections

    if ctx.invoked_subcommand is not None:
        return
    rows = [_describe(n) for n in list_collections()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        _say("no collections yet: `localembed index NAME FOLDER` makes one")
        return
    click.echo(f"{'NAME':<24} {'MODEL':<32} {'DOCS':>6} {'CHUNKS':>7} {'SIZE':>9}")
    for r in rows:
        click.echo(f"{r['name']:<24} {r['model']:<32} {r['documents']:>6} {r['chunks']:>7} "
                   f"{_size(r['bytes']):>9}")


def _describe(name: str) -> dict[str, object]:
    """The collection as /v1/collections lists it, and where its database is."""
    import msgspec

    from localembed.collections.store import collection_path
    from localembed.dialects.collections import CollectionInfo

    info = msgspec.to_builtins(CollectionInfo.of(name))
    return {**info, "path": str(collection_path(name))}


@collections_group.command(name="show")
@click.argument("name")
def show(name: str) -> None:
    """Show a collection's model, settings and size."""
    from localembed.collections.store import CollectionError

    try:
        click.echo(json.dumps(_describe(name), indent=2))
    except CollectionError as exc:
        raise _fail(exc) from exc


@collections_group.command(name="remove")
@click.argument("name")
def remove(name: str) -> None:
    """Remove a collection (its vectors; the indexed files are not touched)."""
    from localembed.collections.store import CollectionError, remove_collection

    try:
        remove_collection(name)
    except CollectionError as exc:
        raise _fail(exc) from exc
    _say(f"removed collection {name}")


@click.command(name="export")
@click.argument("name")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), required=True,
              help="The JSONL file to write ('-' for standard output).")
def export(name: str, output: click.File) -> None:
    """Write every chunk of collection NAME as JSON Lines: id, document, text, embedding,
    metadata."""
    from localembed.collections.store import Collection, CollectionError

    try:
        with Collection.open(name) as collection:
            count = 0
            for row in collection.export():
                output.write(json.dumps(row) + "\n")  # type: ignore[attr-defined]
                count += 1
    except CollectionError as exc:
        raise _fail(exc) from exc
    if output is not sys.stdout:
        _say(f"exported {count} chunks of {name}")


COMMANDS = (index_cmd, search_cmd, collections_group, export, embed_corpus_cmd)
