"""The ``localembed`` command line: a thin layer over the engine and the model store.

Only click and the constants its options show are imported here, so `localembed --help` and
every command's help load no llama.cpp, numpy or flask (tests/test_startup.py); each command
imports what it runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click
from click_default_group import DefaultGroup

from localembed import __version__
from localembed.config.network import local_url, reachable_urls
from localembed.config.settings import (
    DEFAULT_HOST,
    DEFAULT_HTTP_THREADS,
    DEFAULT_PORT,
    load_config,
    require_key_off_loopback,
)
from localembed.dialects.tokenids import TOKEN_ID_MODES
from localembed.engine.framing import TRUNCATE_MODES
from localembed.engine.tasks import TASKS
from localembed.gguf.dtypes import DTYPES

if TYPE_CHECKING:
    from localembed.service.execute import Service


def _say(message: str) -> None:
    click.echo(message, err=True)


def _loading_options(model_help: str, input_name: str):  # type: ignore[no-untyped-def]
    """The options of a command that loads a model; the model's help and what one input is
    differ between embedding commands and `rerank`."""
    options = [
        click.option("-m", "--model", default=None, help=model_help),
        click.option("--threads", type=int, default=None, help="CPU threads (default: all)."),
        click.option("--gpu-layers", type=int, default=None,
                     help="Layers to offload to the GPU (default: all if a GPU backend exists)."),
        click.option("--max-tokens", type=int, default=None,
                     help=f"Longest {input_name} in tokens (default: the model's own limit: "
                          "its sentence-transformers max_seq_length where the GGUF records "
                          "it, else its context, at most 8192; up to the context)."),
        click.option("--flash-attn/--no-flash-attn", default=True, show_default=True,
                     help="Flash attention (faster; off makes batching bit-stable)."),
    ]

    def apply(func):  # type: ignore[no-untyped-def]
        for option in reversed(options):
            func = option(func)
        return func

    return apply


model_options = _loading_options(
    "Model id or path to a .gguf file (default: the starter model).", "input")
reranker_options = _loading_options(
    "Reranker id or path to a .gguf file (default: the default model if it is a reranker, "
    "else an installed reranker).", "(query, document) pair")


def embed_options(func):  # type: ignore[no-untyped-def]
    options = [
        click.option("-t", "--task", type=click.Choice(TASKS), default=None,
                     help="Task prompt for models trained with prompts (EmbeddingGemma, Qwen3)."),
        click.option("--instruction", default=None, help="Custom instruction (Qwen3, Gemma)."),
        click.option("-d", "--dimensions", type=int, default=None,
                     help="Matryoshka output size (models trained for it)."),
        click.option("--truncate", type=click.Choice(TRUNCATE_MODES), default="end",
                     show_default=True, help="What to do with inputs longer than the model takes."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@contextmanager
def open_service(model: str | None, threads: int | None, gpu_layers: int | None,
                 max_tokens: int | None, flash_attn: bool = True) -> Iterator[Service]:
    """Load a model for one command and run requests through the core service (as the HTTP
    API does, with the same configured limits), turning every expected failure into a clean
    exit."""
    from localembed.engine import InputError, ModelLoadError, NonFiniteOutput, RunnerOptions
    from localembed.models.convert import ConversionError
    from localembed.models.store import ModelNotFound
    from localembed.service.execute import Limits, Service
    from localembed.service.registry import Registry, cache_from_config

    try:
        config = load_config()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    limits = Limits.of(config)
    try:
        registry = Registry(model, RunnerOptions(gpu_layers=gpu_layers, threads=threads,
                                                 max_tokens=max_tokens, flash_attn=flash_attn),
                            cache=cache_from_config(config))
    except (ModelNotFound, ModelLoadError, ConversionError) as exc:
        raise click.ClickException(str(exc)) from exc
    if registry.default.load_note:
        _say(f"note: {registry.default.load_note}")
    try:
        yield Service(registry, limits)
    except (InputError, NonFiniteOutput) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        registry.close()


# What a bare `-h` (no value after it) stands for: `-h` is `serve`'s --host, so
# `localembed -h 0.0.0.0` binds every interface, but alone it can only mean help.
_BARE_H = "\0help"


def _host_or_help(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value == _BARE_H:
        click.echo(ctx.get_help())
        ctx.exit()
    return value


class _Group(DefaultGroup):
    """`serve` is the default command; `localembed -h` alone is `localembed --help`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, ["--help"] if args == ["-h"] else args)


@click.group(cls=_Group, default="serve", default_if_no_args=True,
             context_settings={"help_option_names": ["--help"]})  # -h is --host
@click.version_option(__version__, prog_name="localembed")
def cli() -> None:
    """localembed: a local embeddings server for GGUF models.

    With no command, runs `serve`: `localembed --port 9000 -m MODEL` is
    `localembed serve --port 9000 -m MODEL`, and `localembed -h 0.0.0.0` binds every
    interface (-h is serve's --host; -h alone shows this help).
    """


@cli.command()
@click.option("-h", "--host", default=None, is_flag=False, flag_value=_BARE_H,
              callback=_host_or_help, is_eager=True,
              help=f"Interface to bind (default {DEFAULT_HOST}; keep it local). Alone, -h "
                   "shows this help.")
@click.option("-p", "--port", type=int, default=None,
              help=f"Port (default {DEFAULT_PORT}; 0 picks a free port).")
@click.option("-m", "--model", default=None, help="Model id or .gguf path to serve.")
@click.option("--threads", type=int, default=None, help="llama.cpp CPU threads.")
@click.option("--gpu-layers", type=int, default=None, help="Layers to offload to the GPU.")
@click.option("--http-threads", type=int, default=None,
              help=f"HTTP worker threads ({DEFAULT_HTTP_THREADS}).")
@click.option("--api-key", default=None, help="Require 'Authorization: Bearer KEY'.")
@click.option("--cors-origin", "cors_origins", multiple=True,
              help="Allow this browser origin (repeatable; local origins always are).")
@click.option("--allowed-host", "allowed_hosts", multiple=True,
              help="Accept this Host header besides localhost (repeatable).")
@click.option("--token-ids", type=click.Choice(TOKEN_ID_MODES), default=None,
              help="Token-id input is tiktoken cl100k_base (OpenAI clients) or the model's own.")
@click.option("--cache-mb", type=int, default=None,
              help="MiB of vectors kept to answer a repeated input without a decode (128; 0 "
                   "turns the cache off).")
def serve(host: str | None, port: int | None, model: str | None, threads: int | None,
          gpu_layers: int | None, http_threads: int | None, api_key: str | None,
          cors_origins: tuple[str, ...], allowed_hosts: tuple[str, ...],
          token_ids: str | None, cache_mb: int | None) -> None:
    """Serve the OpenAI-compatible (and Ollama-compatible) embeddings API.

    Every option can also be set as LOCALEMBED_<OPTION> (e.g. LOCALEMBED_PORT) or in
    config.json in the app's home directory.
    """
    import signal
    import threading

    # The model's load starts first and runs while the HTTP side is imported and bound (its
    # llama.cpp calls release the GIL): the server answers /health at once, and the first
    # request waits for the model rather than being refused.
    from localembed.engine import Kind, ModelLoadError
    from localembed.models.convert import ConversionError
    from localembed.models.store import ModelNotFound
    from localembed.service.registry import Registry

    try:
        config = load_config(host=host, port=port, model=model, threads=threads,
                             gpu_layers=gpu_layers, http_threads=http_threads,
                             api_key=api_key, cors_origins=cors_origins,
                             allowed_hosts=allowed_hosts, token_ids=token_ids,
                             cache_mb=cache_mb)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        notice = require_key_off_loopback(config)
    except OSError as exc:
        raise click.ClickException(f"cannot store a generated API key: {exc}") from exc
    if notice:
        _say(notice)
    _say(f"Loading {config.model or 'the starter model'}...")
    try:
        registry = Registry.from_config(config, background=True)
    except (ModelNotFound, ModelLoadError, ConversionError) as exc:
        raise click.ClickException(str(exc)) from exc

    from localembed.config.instances import registered, this_server
    from localembed.server import create_app, make_server, server_url
    from localembed.server.serving import GRACE_PERIOD

    app = create_app(config, registry)
    try:
        server = make_server(app, config)
    except OSError as exc:
        registry.close()
        raise click.ClickException(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}. "
            "Choose another port with --port (0 picks a free one).") from exc
    url = server_url(server)
    failed: list[Exception] = []

    def announce() -> None:
        """Say what is served once the model is ready; stop the server if it cannot load."""
        try:
            engine = registry.wait_ready()
        except ModelLoadError as exc:
            if registry.failure is not None:  # else: stopped (and closed) before it was ready
                failed.append(exc)
                server.stop(0)
            return
        if engine.load_note:
            _say(f"note: {engine.load_note}")
        shape = f"{engine.dimensions} dims" if engine.kind == Kind.EMBEDDING else "reranker"
        click.echo(f"localembed {__version__} serving {engine.id} ({engine.family.name}, "
                   f"{shape}, {engine.backend}) at {url}", err=True)

    click.echo(f"OpenAI base URL: {url}/v1   Ollama: {url}   Ctrl-C stops.", err=True)
    if not config.is_local:
        click.echo("Reachable at: " + "  ".join(reachable_urls(config.host, server.effective_port)),
                   err=True)
    stops: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        """The first signal finishes the requests already received (within the grace period);
        a second one stops at once."""
        stops.append(signum)
        server.stop(GRACE_PERIOD if len(stops) == 1 else 0)

    # Installed explicitly for both: a shell that starts a job in the background without job
    # control has it inherit SIGINT ignored, so Ctrl-C and `kill -INT` would do nothing.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    entry = this_server("serve", config.host, server.effective_port)
    announcer = threading.Thread(target=announce, name="localembed-announce", daemon=True)
    try:
        with registered(entry, warn=_say):
            click.echo(url, nl=True)  # stdout: just the URL, for scripts (useful with --port 0)
            sys.stdout.flush()
            announcer.start()
            server.run()
    finally:
        registry.close()
        if announcer.is_alive():
            announcer.join(1)  # its line is written before the last one
    if failed:
        raise click.ClickException(str(failed[0]))
    _say("localembed stopped.")


def _lines(stream: Iterable[str]) -> list[str]:
    """One input per line, a blank line being an empty text, so that output index i is line
    i + 1 of the input; the newline that ends the last line starts no input of its own."""
    return [line.rstrip("\r\n") for line in stream]


def _read_texts(texts: tuple[str, ...], file: click.File | None) -> list[str]:
    if file is not None:
        return _lines(file)  # type: ignore[arg-type]
    if texts:
        return list(texts)
    if not sys.stdin.isatty():
        return _lines(sys.stdin)
    raise click.UsageError("give texts as arguments, with --file, or on standard input")


@cli.command()
@click.option("-p", "--port", type=int, default=None, help=f"Port (default {DEFAULT_PORT}).")
@click.option("-m", "--model", default=None, help="Model id or .gguf path to serve.")
@click.option("--no-browser", is_flag=True, help="Do not open the playground on first launch.")
@click.option("--no-tray", is_flag=True, help="Run without a tray icon (server only).")
def app(port: int | None, model: str | None, no_browser: bool, no_tray: bool) -> None:
    """The desktop app: the server in the background, a tray icon, the playground.

    A second launch opens the running app's playground instead of starting another server.
    Without a system tray it runs as a server until Ctrl-C.
    """
    from localembed.desktop.run import AppError, run_app

    def announce(url: str) -> None:
        click.echo(url)
        sys.stdout.flush()

    try:
        run_app(port, model, open_browser=not no_browser, use_tray=not no_tray,
                say=_say, announce=announce)
    except AppError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
@click.argument("texts", nargs=-1)
@click.option("-f", "--file", type=click.File("r", encoding="utf-8"), default=None,
              help="Read one text per line from a file, a blank line being an empty text "
                   "(so index i is line i + 1; '-' for standard input).")
@click.option("--title", default=None, help="Document title (EmbeddingGemma document task).")
@click.option("--no-normalize", is_flag=True, help="Return raw pooled vectors.")
@embed_options
@model_options
def embed(texts: tuple[str, ...], file: click.File | None, title: str | None,
          no_normalize: bool, task: str | None, instruction: str | None,
          dimensions: int | None, truncate: str, model: str | None, threads: int | None,
          gpu_layers: int | None, max_tokens: int | None, flash_attn: bool) -> None:
    """Embed texts; prints JSON Lines: {"index", "tokens", "embedding"} per input."""
    from localembed.engine import EmbedOptions
    from localembed.service.execute import EmbedRequest

    items = _read_texts(texts, file)
    options = EmbedOptions(task=task, instruction=instruction, title=title,
                           dimensions=dimensions, normalize=not no_normalize, truncate=truncate)
    with open_service(model, threads, gpu_layers, max_tokens, flash_attn) as service:
        _require_embedding_model(service, "embed")
        result = service.embed(EmbedRequest(items, options))
    for i, (vector, count) in enumerate(zip(result.vectors, result.tokens, strict=True)):
        click.echo(json.dumps({"index": i, "tokens": count,
                               "embedding": [round(float(x), 7) for x in vector]}))


@cli.command()
@click.argument("query")
@click.argument("texts", nargs=-1, required=True)
@click.option("--matrix", is_flag=True, help="Print the N x N matrix of the query and texts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@embed_options
@model_options
def similarity(query: str, texts: tuple[str, ...], matrix: bool, as_json: bool,
               task: str | None, instruction: str | None, dimensions: int | None,
               truncate: str, model: str | None, threads: int | None,
               gpu_layers: int | None, max_tokens: int | None, flash_attn: bool) -> None:
    """Rank TEXTS by similarity to QUERY (cosine), or print a similarity matrix."""
    from localembed.engine import EmbedOptions
    from localembed.service.execute import matrix_request, ranking, similarity_request

    options = EmbedOptions(task=task, instruction=instruction, dimensions=dimensions,
                           truncate=truncate)
    items = [query, *texts]
    if matrix:
        request = matrix_request(items, options)
    else:
        request = similarity_request(query, texts, options, field="texts")
    with open_service(model, threads, gpu_layers, max_tokens, flash_attn) as service:
        _require_embedding_model(service, "similarity")
        result = service.compare(request)
    scores = result.scores.reshape(len(items), len(items)) if matrix else result.scores
    if matrix:
        if as_json:
            click.echo(json.dumps({"texts": items, "matrix": scores.tolist()}))
            return
        width = max(len(_short(t)) for t in items)
        for text, row in zip(items, scores, strict=True):
            click.echo(f"{_short(text):<{width}}  " + " ".join(f"{s:6.3f}" for s in row))
        return
    ranked = [(texts[i], float(scores[i])) for i in ranking(scores)]
    if as_json:
        click.echo(json.dumps([{"text": t, "score": s} for t, s in ranked]))
        return
    for rank, (text, score) in enumerate(ranked, 1):
        click.echo(f"{rank:>3}. {score:6.3f}  {_short(text, 70)}")


def _require_embedding_model(service: Service, command: str) -> None:
    """A reranker makes no vectors: say which command it does answer."""
    from localembed.engine import Kind

    engine = service.engine(None)
    if engine.kind == Kind.RERANKER:
        raise click.ClickException(
            f"{engine.id} is a reranker: it scores documents against a query and makes no "
            f"embeddings, so `{command}` needs an embedding model (-m). To rank documents with "
            "it, use `localembed rerank QUERY DOC...`")


@cli.command()
@click.argument("query")
@click.argument("documents", nargs=-1)
@click.option("-f", "--file", type=click.File("r", encoding="utf-8"), default=None,
              help="Read one document per line, a blank line being an empty document (so "
                   "each keeps its place in INDEX; '-' for standard input), after any "
                   "DOCUMENTS given as arguments.")
@click.option("-n", "--top", "top", type=click.IntRange(min=1), default=None,
              help="Show only the N most relevant documents.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--instruction", default=None,
              help="Task instruction for Qwen3-Reranker (default: its web-search one).")
@click.option("--truncate", type=click.Choice(["end", "none"]), default="end", show_default=True,
              help="Cut a long document's end to fit (the query is never cut), or refuse it.")
@reranker_options
def rerank(query: str, documents: tuple[str, ...], file: click.File | None, top: int | None,
           as_json: bool, instruction: str | None, truncate: str, model: str | None,
           threads: int | None, gpu_layers: int | None, max_tokens: int | None,
           flash_attn: bool) -> None:
    """Rank DOCUMENTS by relevance to QUERY with a reranker (a cross-encoder such as
    Qwen3-Reranker or bge-reranker-v2-m3), most relevant first.

    Scores are in 0..1: Qwen3-Reranker's probability of "relevant", or the sigmoid of a
    cross-encoder's logit. INDEX is the document's position in the input.
    """
    from localembed.engine import Kind, RerankOptions
    from localembed.models.defaults import default_model_id, reranker_id
    from localembed.service.execute import RerankRequest, ranking

    items = list(documents)
    if file is not None:
        items += _lines(file)  # type: ignore[arg-type]
    elif not items and not sys.stdin.isatty():
        items = _lines(sys.stdin)
    if not items:
        raise click.UsageError("give documents as arguments, with --file, or on standard input")
    if model is None:
        model = reranker_id([default_model_id(_configured_model())])
        if model is None:
            raise click.ClickException(
                "no reranker is installed: pull one (`localembed pull qwen3-reranker-0.6b` or "
                "`localembed pull bge-reranker-v2-m3`) or give a reranker .gguf with -m")
    options = RerankOptions(instruction=instruction, truncate=truncate)
    with open_service(model, threads, gpu_layers, max_tokens, flash_attn) as service:
        engine = service.engine(None)
        if engine.kind != Kind.RERANKER:
            raise click.ClickException(
                f"{engine.id} is an embedding model, not a reranker: `rerank` needs a reranker "
                "such as qwen3-reranker-0.6b or bge-reranker-v2-m3 (-m; `localembed ls` shows "
                "each model's KIND). To rank by embedding similarity instead, use "
                "`localembed similarity QUERY TEXT...`")
        result = service.rerank(RerankRequest(query, items, options, engine.id))
    order = ranking(result.scores, top)
    if as_json:
        rows = [{"rank": rank, "index": i, "score": float(result.scores[i]),
                 **({"logit": float(result.logits[i])} if result.logits is not None else {}),
                 "tokens": result.tokens[i], "text": items[i]}
                for rank, i in enumerate(order, 1)]
        click.echo(json.dumps(rows))
        return
    click.echo(f"{'RANK':>4}  {'SCORE':>6}  {'INDEX':>5}  DOCUMENT")
    for rank, i in enumerate(order, 1):
        click.echo(f"{rank:>4}  {float(result.scores[i]):6.4f}  {i:>5}  {_short(items[i], 64)}")


def _short(text: str, limit: int = 30) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@cli.command()
@click.option("-m", "--model", default=None, help="Also load this model and describe it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(model: str | None, as_json: bool) -> None:
    """Show directories, versions, compute backend, disk use (and a model's details)."""
    import llama_cpp

    from localembed.config.paths import config_path, home_dir, models_dir
    from localembed.engine import gpu_backend
    from localembed.models.defaults import default_model_id
    from localembed.models.store import disk_usage, installed

    data: dict = {
        "version": __version__,
        "llama_cpp_python": llama_cpp.__version__,
        "python": sys.version.split()[0],
        "backend": gpu_backend() or "cpu",
        "home": str(home_dir()),
        "models_dir": str(models_dir()),
        "config_file": str(config_path()),
        "disk_use_bytes": disk_usage(),
        "installed": installed(),
        "default_model": default_model_id(_configured_model()),
    }
    if model:
        with open_service(model, None, None, None) as service:
            data["model"] = service.engine(None).describe()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k}: {v}")
        else:
            click.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")


def _configured_model() -> str | None:
    try:
        return load_config().model
    except ValueError:
        return None


def _server_urls() -> list[str]:
    """Every running server: each one registered in the app's home (whatever its port), and
    whatever answers on the configured port (a server of an older version registers nothing)."""
    from localembed.config.instances import live_servers

    urls = [entry.url for entry in live_servers()]
    try:
        config = load_config()
    except ValueError:
        config = None
    if config is not None:
        urls.append(local_url(config.host, config.port))
    return list(dict.fromkeys(urls))


def _server_call(url: str, method: str, path: str) -> dict | None:
    """Ask the localembed server at ``url``; None if it does not answer (or is not one)."""
    import urllib.error
    import urllib.request

    try:
        key = load_config().api_key
    except ValueError:
        key = None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    req = urllib.request.Request(url + path, method=method, headers=headers,
                                 data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            answer = json.load(resp)
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
        raise click.ClickException(body.get("error", {}).get("message", str(exc))) from exc
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def _loaded_by() -> dict[str, list[str]]:
    """Each model some running server has loaded -> the URLs of those servers."""
    holders: dict[str, list[str]] = {}
    for url in _server_urls():
        health = _server_call(url, "GET", "/health") or {}
        for model_id in health.get("loaded", []):
            holders.setdefault(model_id, []).append(url)
    return holders


@cli.command()
@click.argument("model")
def pull(model: str) -> None:
    """Download a catalog MODEL from the Hugging Face Hub (resumable, verified)."""
    from localembed.models.catalog import is_builtin
    from localembed.models.pull import PullCancelled, PullError, PullTask
    from localembed.models.pull import pull as do_pull

    task = PullTask(model)
    width = 30
    last = [0.0]
    notices: list[str] = []

    def show(p) -> None:  # type: ignore[no-untyped-def]
        import time

        if p.notice and p.notice not in notices:  # an earlier source was passed over
            notices.append(p.notice)
            click.echo(f"\r{p.notice}", err=True)
        now = time.monotonic()
        if p.status == "downloading" and now - last[0] < 0.2 and p.downloaded != p.total:
            return
        last[0] = now
        if p.status == "downloading" and p.total:
            filled = int(width * p.downloaded / p.total)
            eta = f"{int(p.eta // 60)}:{int(p.eta % 60):02d}" if p.eta is not None else "--:--"
            line = (f"\r{p.model} [{'#' * filled}{'.' * (width - filled)}] {p.percent:5.1f}% "
                    f"{_size(p.downloaded)}/{_size(p.total)} {_size(p.speed)}/s ETA {eta}  ")
            click.echo(line, nl=False, err=True)
        elif p.status in ("checking", "verifying"):
            click.echo(f"\r{p.model}: {p.status}...{' ' * 40}", nl=False, err=True)

    task.listen(show)
    try:
        path = do_pull(model, task)
    except PullCancelled:
        click.echo("", err=True)
        raise click.ClickException("cancelled; run the same pull again to resume") from None
    except KeyboardInterrupt:
        click.echo("", err=True)
        raise click.ClickException("interrupted; run the same pull again to resume") from None
    except PullError as exc:
        click.echo("", err=True)
        raise click.ClickException(str(exc)) from exc
    if is_builtin(model):  # nothing was downloaded, as its notice said
        return
    click.echo(f"\r{task.progress.model}: installed {path} ({_size(path.stat().st_size)})"
               f"{' ' * 20}", err=True)


def _size(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@cli.command(name="ls")
@click.option("--catalog", "show_catalog", is_flag=True,
              help="List the models that can be pulled, and the built-in starter.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_models(show_catalog: bool, as_json: bool) -> None:
    """List installed models (* default, + loaded in a running server)."""
    import msgspec

    from localembed.models.catalog import listing
    from localembed.models.defaults import default_model_id
    from localembed.models.store import describe, installed

    if show_catalog:
        listed = listing(set(installed()))
        if as_json:
            click.echo(json.dumps(msgspec.to_builtins(listed), indent=2))
            return
        _model_row("", "ID", "KIND", "FAMILY", "QUANT", "DIMS", "SIZE")
        for e in listed:
            mark = "built in" if e.builtin else "installed" if e.installed else ""
            _model_row("", e.id, e.kind, e.family, e.quantization, _dims(e.dimensions),
                       _size(e.size_bytes), f"  {mark}")
        return
    default = default_model_id(_configured_model())
    loaded = set(_loaded_by())
    models = []
    for model_id in installed():
        model = describe(model_id)
        model.default, model.loaded = model_id == default, model_id in loaded
        models.append(model)
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(models), indent=2))
        return
    _model_row("  ", "ID", "KIND", "FAMILY", "QUANT", "DIMS", "SIZE")
    for m in models:
        unread = m.kind is None  # the file could not be read: its error says why
        _model_row(("*" if m.default else " ") + ("+" if m.loaded else " "), m.id,
                   "?" if unread else m.kind, m.family or "?", m.quantization or "?",
                   "?" if unread else _dims(m.dimensions), _size(m.size_bytes))


def _model_row(mark: str, model_id: str, kind: str, family: str, quantization: str,
               dims: str, size: str, suffix: str = "") -> None:
    """One line of `ls`: the same columns for installed and catalog models."""
    click.echo(f"{mark}{model_id:<32} {kind:<9} {family:<16} {quantization:<7} {dims:>5} "
               f"{size:>9}{suffix}")


def _dims(value: int | None) -> str:
    """A DIMS cell: rerankers make no vectors ("-")."""
    return "-" if value is None else str(value)


@cli.command()
@click.argument("model")
@click.option("--force", is_flag=True, help="Unload it from a running server first.")
def rm(model: str, force: bool) -> None:
    """Remove an installed MODEL (refused while a running server has it loaded)."""
    from localembed.models.store import ModelNotFound, StoreError, removal

    holders = _loaded_by().get(model, [])
    if holders and not force:
        servers = "the server" if len(holders) == 1 else "the servers"
        raise click.ClickException(
            f"{model} is loaded by {servers} at {', '.join(holders)}; use --force to unload "
            "and remove it")
    try:
        # The file is moved aside first: where it cannot be deleted, nothing is unloaded.
        with removal(model):
            for url in holders:
                _server_call(url, "POST", f"/v1/models/{model}/unload")
    except (StoreError, ModelNotFound) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise click.ClickException(f"cannot remove {model}{where}: {exc.strerror or exc}; "
                                   "nothing was changed") from exc
    click.echo(f"removed {model}", err=True)


@cli.command(name="import")
@click.argument("path", type=click.Path(exists=True, readable=False))  # the store says why
@click.option("--id", "model_id", default=None, help="Model id (default: from the file name).")
def import_cmd(path: str, model_id: str | None) -> None:
    """Install a .gguf file (validated) or convert a sentence-transformers BERT folder."""
    from localembed.engine import ModelLoadError
    from localembed.models.convert import ConversionError
    from localembed.models.store import StoreError, import_model

    try:
        new_id = import_model(path, model_id, progress=_say)
    except (StoreError, ModelLoadError, ConversionError) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # a full disk, a read-only home: nothing was installed
        where = f" ({exc.filename})" if exc.filename else ""
        raise click.ClickException(f"cannot import {path}{where}: {exc.strerror or exc}; "
                                   "nothing was installed") from exc
    click.echo(f"imported {new_id}", err=True)
    click.echo(new_id)


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--dtype", type=click.Choice(DTYPES), default="f16", show_default=True)
def convert(folder: str, output: str, dtype: str) -> None:
    """Convert a sentence-transformers BERT FOLDER into a GGUF file OUTPUT."""
    from localembed.models.convert import ConversionError, convert_folder

    try:
        convert_folder(folder, output, dtype=dtype, progress=_say)
    except ConversionError as exc:
        raise click.ClickException(str(exc)) from exc


def main() -> None:
    cli(prog_name="localembed")
