"""The embedding cache: the same chunks embedded twice, the second time answered from the cache.

    python benchmarks/cache_bench.py [--chunks 2000] [--batch 64]

1. HTTP: a real ``localembed serve`` process (default cache) is sent ``--chunks`` chunks of
   standard-library docstrings in ``POST /v1/embeddings`` batches of ``--batch``, then the same
   chunks again; and a second server with ``--cache-mb 0`` gets both passes too (the repeat
   without a cache costs what the first pass did). The vectors of both passes are compared.
2. Collections: the same folder indexed into one collection, then into a second (every chunk
   of the second is a hit), in this process.

Prints seconds and the ratio first pass / second pass (goal >= 20).
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from collections_bench import corpus  # noqa: E402
from http_bench import Client, batches  # noqa: E402

from localembed.collections.ingest import bind, index, prepare, stored_hash  # noqa: E402
from localembed.collections.sources import ReadOptions, read_sources  # noqa: E402
from localembed.engine.cache import VectorCache  # noqa: E402
from localembed.models.starter import STARTER_ID  # noqa: E402
from localembed.service.execute import Limits, Service  # noqa: E402
from localembed.service.registry import Registry  # noqa: E402


def chunk_texts(folder: Path, wanted: int) -> list[str]:
    """The chunks ``index`` would make of the folder, as texts, until ``wanted``."""
    registry = Registry(STARTER_ID, cache=VectorCache(0))
    try:
        engine = registry.default
        binding = bind(engine, None, None)
        texts: list[str] = []
        for document in read_sources([folder], ReadOptions()):
            if hasattr(document, "reason"):
                continue
            item = prepare(engine, binding, document, stored_hash(document, binding), True)
            texts += [c.text for c in item.chunks]
            if len(texts) >= wanted:
                break
        return texts[:wanted]
    finally:
        registry.close()


def http_passes(texts: list[str], batch: int, cache_mb: int | None) -> tuple[float, float,
                                                                               bool]:
    import subprocess

    home = tempfile.mkdtemp(prefix="localembed-cache-bench-")
    argv = [sys.executable, "-m", "localembed", "serve", "--port", "0", "--model", STARTER_ID]
    if cache_mb is not None:
        argv += ["--cache-mb", str(cache_mb)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "LOCALEMBED_HOME": home})
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        client = Client(url)
        client.embed(["warm up"])
        seconds, vectors = [], []
        for _ in range(2):
            started = time.perf_counter()
            got = [client.embed(b) for b in batches(texts, batch)]
            seconds.append(time.perf_counter() - started)
            vectors.append(np.concatenate([
                np.stack([np.frombuffer(base64.b64decode(d["embedding"]), np.float32)
                          for d in reply["data"]]) for reply in got]))
        return seconds[0], seconds[1], bool(np.array_equal(vectors[0], vectors[1]))
    finally:
        proc.terminate()
        proc.wait(30)


def index_passes(folder: Path) -> tuple[float, float, int]:
    os.environ["LOCALEMBED_HOME"] = tempfile.mkdtemp(prefix="localembed-cache-bench-")
    registry = Registry(STARTER_ID)  # the default cache
    try:
        service = Service(registry, Limits())
        seconds = []
        for name in ("first", "second"):
            started = time.perf_counter()
            report = index(service, name, [folder])
            seconds.append(time.perf_counter() - started)
        return seconds[0], seconds[1], report.chunks
    finally:
        registry.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--documents", type=int, default=400,
                        help="documents indexed twice in part 2")
    args = parser.parse_args()
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"model: {STARTER_ID}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = corpus(Path(tmp) / "corpus", 2000)
        texts = chunk_texts(folder, args.chunks)
        print(f"\n| {len(texts)} chunks, batches of {args.batch} | first pass s | second pass s "
              "| first / second | same vectors |\n|---|---|---|---|---|")
        for label, cache_mb in (("HTTP, default cache", None), ("HTTP, --cache-mb 0", 0)):
            first, second, same = http_passes(texts, args.batch, cache_mb)
            print(f"| {label} | {first:.2f} | {second:.3f} | {first / second:.1f} | {same} |")
        small = corpus(Path(tmp) / "index", args.documents)
        first, second, chunks = index_passes(small)
        print(f"| index {args.documents} documents ({chunks} chunks) into a second collection "
              f"| {first:.2f} | {second:.3f} | {first / second:.1f} | |")


if __name__ == "__main__":
    main()
