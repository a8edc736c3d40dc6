"""Collections: what indexing costs beyond embedding, what a search costs beyond embedding its
query, and what a chunk costs on disk. Prints a table; ratios are measured within one run.

    python benchmarks/collections_bench.py [--documents 300] [--rows 100000] [--large]
                                           [--search-only]

- ingest: the same chunks embedded by the service, all queued at once (the engine's batched
  throughput with its fullest batches: the baseline) against a whole ``index`` run (read,
  hash, chunk, embed, store); goal >= 0.95.
- search: ``collections.search.find`` (the int8 index scanned, its candidates rescored with
  the stored vectors, top 10, chunks read back) on random unit vectors inserted directly (the
  hard case for quantization), p50 over 50 queries: 100k x 384 (goal <= 5 ms) and, with
  --large, 1M x 768 (goal <= 50 ms); recall@10 against exact cosine in numpy (goal >= 0.99).
- bytes on disk per chunk, from the same collections.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LOCALEMBED_HOME", tempfile.mkdtemp(prefix="localembed-bench-"))

from localembed.collections.ingest import index, prepare, stored_hash  # noqa: E402
from localembed.collections.search import SearchQuery, find  # noqa: E402
from localembed.collections.sources import ReadOptions, read_sources  # noqa: E402
from localembed.collections.store import Binding, ChunkRow, Collection  # noqa: E402
from localembed.engine.cache import VectorCache  # noqa: E402
from localembed.models.starter import STARTER_ID  # noqa: E402
from localembed.service.execute import EmbedRequest, Limits, Service  # noqa: E402
from localembed.service.registry import Registry  # noqa: E402

# Standard-library modules that import without side effects; their docstrings and those of
# their functions and classes are the corpus.
SAFE_MODULES = (
    "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "cmath", "codecs",
    "collections", "colorsys", "concurrent.futures", "configparser", "contextlib", "copy",
    "csv", "dataclasses", "datetime", "decimal", "difflib", "email", "enum", "fileinput",
    "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip",
    "hashlib", "heapq", "hmac", "html", "http.client", "imaplib", "inspect", "io",
    "ipaddress", "itertools", "json", "locale", "logging", "lzma", "mailbox", "math",
    "mimetypes", "operator", "optparse", "os", "pathlib", "pickle", "platform", "poplib",
    "pprint", "queue", "random", "re", "sched", "secrets", "selectors", "shelve", "shlex",
    "shutil", "signal", "smtplib", "socket", "sqlite3", "ssl", "statistics", "string",
    "struct", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit",
    "tokenize", "trace", "tracemalloc", "types", "typing", "unittest", "urllib.parse",
    "uuid", "wave", "weakref", "xml.dom.minidom", "zipfile", "zlib", "zoneinfo")


def corpus(folder: Path, documents: int) -> Path:
    """Standard-library docstrings (modules, then their functions' and classes'), one file
    each: real prose of mixed lengths that ships with Python."""
    texts: list[str] = []
    for name in sorted(SAFE_MODULES):
        module = importlib.import_module(name)
        for value in [module, *vars(module).values()]:
            doc = getattr(value, "__doc__", None)
            if isinstance(doc, str) and len(doc) > 200 and doc not in texts:
                texts.append(doc.strip())
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts[:documents]):
        (folder / f"doc{i:04d}.txt").write_text(text + "\n", encoding="utf-8")
    return folder


def ingest(service: Service, folder: Path, repeats: int) -> dict[str, float]:
    """chunks/s of the engine alone on the chunks an index makes, and of the index run."""
    engine = service.engine(None)
    from localembed.collections.ingest import bind

    binding = bind(engine, None, None)
    docs = [d for d in read_sources([folder], ReadOptions()) if not hasattr(d, "reason")]
    prepared = [prepare(engine, binding, d, stored_hash(d, binding), True) for d in docs]
    chunks = sum(len(p.chunks) for p in prepared)
    engine_rates, index_rates = [], []
    for r in range(repeats):  # interleaved: the machine's load hits both alike
        started = time.perf_counter()  # every chunk queued at once: the fullest batches
        requests = [EmbedRequest([c.text for c in p.chunks], p.options, engine.id)
                    for p in prepared]
        for _ in service.embed_many(requests, engine):
            pass
        engine_rates.append(chunks / (time.perf_counter() - started))
        started = time.perf_counter()
        report = index(service, f"bench{r}", [folder])
        index_rates.append(report.chunks / (time.perf_counter() - started))
        assert report.chunks == chunks, (report.chunks, chunks)
    with Collection.open("bench0") as collection:
        stats = collection.stats()
    return {"chunks": chunks, "engine": max(engine_rates), "index": max(index_rates),
            "bytes_per_chunk": stats.bytes / stats.chunks}


def latency(rows: int, dims: int, name: str) -> dict[str, float]:
    """p50 of ``find`` over random unit vectors inserted directly (500-character texts), and
    its recall@10 against exact cosine over the same vectors in numpy."""
    rng = np.random.default_rng(0)
    binding = Binding(model="bench", sha256="0" * 64, dimensions=dims,
                      document_options={"task": "document"}, query_options={"task": "query"},
                      chunk_tokens=256, overlap=32)
    text = ("lorem ipsum dolor sit amet " * 20)[:500]
    per_document = 1000
    with Collection.create(name, binding) as collection:
        for d in range(rows // per_document):
            vectors = rng.standard_normal((per_document, dims), dtype=np.float32)
            rows_ = [ChunkRow(n, text, None, None, 100) for n in range(per_document)]
            collection.replace_document(f"d{d}", f"/bench/d{d}", "h", {}, rows_, vectors)
        stats = collection.stats()
        started = time.perf_counter()
        collection.vector_index()  # built once: searches scan the cached index
        build = time.perf_counter() - started
        times, queries, found = [], [], []
        for _ in range(50):
            query = rng.standard_normal(dims).astype(np.float32)
            query /= np.linalg.norm(query)
            started = time.perf_counter()
            result = find(collection, query, SearchQuery("q", top_k=10))
            times.append(time.perf_counter() - started)
            queries.append(query)
            found.append({c.rowid for c in result.chunks})
        rowids, matrix = collection.vectors()
    exact = matrix @ np.stack(queries).T  # rows x queries
    del matrix
    hits = 0
    for q, got in enumerate(found):
        best = np.argpartition(-exact[:, q], 9)[:10]
        hits += len(got & set(rowids[best].tolist()))
    return {"p50_ms": statistics.median(times) * 1000, "bytes_per_chunk": stats.bytes / rows,
            "recall": hits / (10 * len(found)), "build_s": build}


def ingest_table(args: argparse.Namespace) -> None:
    registry = Registry(STARTER_ID, cache=VectorCache(0))  # the runs embed the same chunks
    try:
        service = Service(registry, Limits())
        with tempfile.TemporaryDirectory() as tmp:
            folder = corpus(Path(tmp) / "corpus", args.documents)
            got = ingest(service, folder, args.repeats)
    finally:
        registry.close()
    print(f"\n| ingest ({got['chunks']} chunks) | chunks/s |\n|---|---|")
    print(f"| engine, batched (baseline) | {got['engine']:.1f} |")
    print(f"| index run | {got['index']:.1f} |")
    print(f"| ratio (goal >= 0.95) | {got['index'] / got['engine']:.3f} |")
    print(f"| bytes on disk per chunk (this corpus) | {got['bytes_per_chunk']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--large", action="store_true", help="also 1M x 768 (about 4 GB)")
    parser.add_argument("--search-only", action="store_true", help="skip the ingest part")
    args = parser.parse_args()
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"model: {STARTER_ID}")
    if not args.search_only:
        ingest_table(args)
    sizes = [(args.rows, 384)] + ([(1_000_000, 768)] if args.large else [])
    print("\n| search, top 10 | p50 ms | goal | recall@10 vs exact | index built in s | "
          "bytes/chunk |\n|---|---|---|---|---|---|")
    for rows, dims in sizes:
        result = latency(rows, dims, f"lat{rows}x{dims}")
        goal = "<= 5 ms" if dims == 384 else "<= 50 ms"
        print(f"| {rows:,} x {dims} | {result['p50_ms']:.1f} | {goal} | {result['recall']:.3f} "
              f"| {result['build_s']:.1f} | {result['bytes_per_chunk']:.0f} |")


if __name__ == "__main__":
    main()
