"""The corpus pipeline on Ray against the same pipeline in one process: chunks/s of
``embed-corpus`` locally, on Ray with one actor (all the CPUs), and on Ray with two one-CPU
nodes; and the driver's memory as the corpus grows (it holds document ids and hashes, never
the texts or vectors). Prints a table; the ratios are within one run.

    python benchmarks/ray_bench.py [--documents 300] [--copies 3]

Needs the ray extra. The corpus is the standard library's docstrings (as collections_bench.py),
embedded with the bundled starter model; the Ray clusters are ``ray.cluster_utils.Cluster``
nodes on this machine, each its own raylet.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("LOCALEMBED_HOME", tempfile.mkdtemp(prefix="localembed-bench-"))
# The corpus repeats itself (--copies): measure the pipeline, not the embedding cache (set
# before the clusters start, so their nodes read it too).
os.environ["LOCALEMBED_CACHE_MB"] = "0"

import ray  # noqa: E402
from collections_bench import corpus  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from localembed.collections.corpus import embed_corpus as local_run  # noqa: E402
from localembed.engine.cache import VectorCache  # noqa: E402
from localembed.models.starter import STARTER_ID  # noqa: E402
from localembed.ray import embed_corpus as ray_run  # noqa: E402
from localembed.service.execute import Limits, Service  # noqa: E402
from localembed.service.registry import Registry  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakRSS:
    """The driver's peak resident memory while a block runs, sampled every 50 ms."""

    def __enter__(self) -> PeakRSS:
        self.start, self.peak = rss_mb(), rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def steady(out: Path, chunks: int) -> float:
    """chunks/s between the first part written and the last: the run without its start (a
    Ray cluster's workers and actors starting, the model loading)."""
    import pyarrow.parquet as pq

    found = sorted(out.glob("part-*.parquet"), key=lambda p: p.stat().st_mtime)
    first = pq.read_metadata(found[0]).num_rows
    span = found[-1].stat().st_mtime - found[0].stat().st_mtime
    return (chunks - first) / span if span > 0 else float("nan")


def timed_local(folder: Path, out: Path) -> tuple[float, int]:
    registry = Registry(STARTER_ID, cache=VectorCache(0))
    try:
        service = Service(registry, Limits())
        started = time.perf_counter()
        report = local_run(service, [folder], out)
        return time.perf_counter() - started, report.chunks
    finally:
        registry.close()


def timed_ray(folder: Path, out: Path, nodes: list[int], actors: int) -> tuple[float, int,
                                                                                float]:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": nodes[0]})
    ray.init(address=cluster.address, log_to_driver=False)
    for cpus in nodes[1:]:
        cluster.add_node(num_cpus=cpus)
    cluster.wait_for_nodes()
    try:
        with PeakRSS() as memory:
            started = time.perf_counter()
            report = ray_run([folder], out, actors=actors, num_cpus=min(nodes))
            seconds = time.perf_counter() - started
        return seconds, report.chunks, memory.peak - memory.start
    finally:
        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--copies", type=int, default=3,
                        help="the corpus this many times, under other names")
    args = parser.parse_args()
    cpus = os.cpu_count() or 2
    print(f"CPU: {platform.processor() or platform.machine()}, {cpus} cores; "
          f"model: {STARTER_ID}; ray {ray.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "corpus"
        for copy in range(args.copies):
            corpus(folder / f"copy{copy}", args.documents)
        local_s, chunks = timed_local(folder, root / "local")
        one_s, one_chunks, _ = timed_ray(folder, root / "one", [cpus], 1)
        two_s, two_chunks, _ = timed_ray(folder, root / "two", [1, 1], 2)
        assert chunks == one_chunks == two_chunks, (chunks, one_chunks, two_chunks)
        base = steady(root / "local", chunks)
        print(f"\n| {chunks} chunks | seconds | chunks/s | against local | steady chunks/s "
              "| against local |\n|---|---|---|---|---|---|")
        for name, seconds, out in (("local, one process", local_s, "local"),
                                   (f"Ray, one actor ({cpus} CPUs)", one_s, "one"),
                                   ("Ray, two one-CPU nodes", two_s, "two")):
            rate = steady(root / out, chunks)
            print(f"| {name} | {seconds:.1f} | {chunks / seconds:.1f} | "
                  f"{local_s / seconds:.2f} | {rate:.1f} | {rate / base:.2f} |")
        print("\n| documents (small, many) | driver RSS growth during the run, MB |\n|---|---|")
        for n in (2000, 8000):
            many = root / f"many{n}"
            many.mkdir()
            for i in range(n):
                (many / f"d{i:05d}.txt").write_text(f"Short note number {i} about tides.\n")
            _, _, grown = timed_ray(many, root / f"out{n}", [cpus], 1)
            print(f"| {n:,} | {grown:.1f} |")


if __name__ == "__main__":
    main()
