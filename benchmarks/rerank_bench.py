"""What exact (f32) attention costs a reranker at real widths.

    python benchmarks/rerank_bench.py [--queries 4] [--documents 16] [--words 40-160]
                                      [--models qwen3,bge]

A reranker's score is one number read off a head, so localembed computes its attention in f32
(no flash attention, f32 K/V cache; ``RunnerOptions.exact_rerank``): flash attention and the f16
K/V cache moved Qwen3-Reranker's p(yes) by ~1.5e-3 from an exact forward pass. This measures
the price at the published shapes: full-shape synthetic Qwen3-Reranker-0.6B (``qwen3``: 28
layers, 1,024 wide) and a bge-reranker-v2-m3-shaped cross-encoder (``bge``: XLM-RoBERTa-large,
24 layers, 1,024 wide), f16 weights, written once under ~/.cache/localembed-bench/models.

Each model is loaded twice in this process, exact and with the embedding models' settings
(flash attention, f16 K/V), and reranks the same queries over the same documents (random
English words) on each, alternating, best of ``--rounds``. Prints pairs/s for both, their
ratio, and how far the fast settings' scores are from the exact ones.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_bench import make_texts  # noqa: E402

from localembed.engine import Engine, RunnerOptions  # noqa: E402

CACHE = Path(os.environ.get("LOCALEMBED_BENCH_CACHE", "~/.cache/localembed-bench")).expanduser()
MODELS = {"qwen3": ("qwen3", "full", "synthetic-qwen3-reranker-full-f16.gguf"),
          "bge": ("bert", "large", "synthetic-bert-reranker-large-f16.gguf")}


def model_file(name: str) -> Path:
    arch, preset, file = MODELS[name]
    path = CACHE / "models" / file
    if not path.is_file():
        from localembed.testing.synthetic import write_model

        print(f"writing {path}...", file=sys.stderr, flush=True)
        tmp = path.with_suffix(".tmp")
        write_model(arch, tmp, dtype="f16", preset=preset, head="rerank")
        tmp.replace(path)
    return path


def run(engine: Engine, queries: list[str], documents: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    scores = np.concatenate([engine.rerank(q, documents).scores for q in queries])
    return time.perf_counter() - started, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=4)
    parser.add_argument("--documents", type=int, default=16)
    parser.add_argument("--words", default="40-160", help="document length range, in words")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default="qwen3,bge")
    args = parser.parse_args()
    low, high = (int(x) for x in args.words.split("-"))
    queries = make_texts(args.queries, seed=1, words=(4, 12))
    documents = make_texts(args.documents, seed=2, words=(low, high))
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{args.queries} queries x {args.documents} documents of {args.words} words")
    rows = []
    for name in args.models.split(","):
        path = model_file(name)
        exact = Engine(path, options=RunnerOptions(exact_rerank=True))
        fast = Engine(path, options=RunnerOptions(exact_rerank=False))
        try:
            run(exact, queries[:1], documents[:2])
            run(fast, queries[:1], documents[:2])
            times: dict[str, list[float]] = {"exact": [], "fast": []}
            scores: dict[str, np.ndarray] = {}
            for _ in range(args.rounds):
                for label, engine in (("exact", exact), ("fast", fast)):
                    seconds, scores[label] = run(engine, queries, documents)
                    times[label].append(seconds)
        finally:
            exact.close()
            fast.close()
        pairs = args.queries * args.documents
        rate = {k: pairs / min(v) for k, v in times.items()}
        diff = np.abs(scores["exact"] - scores["fast"])
        rows.append((name, rate["exact"], rate["fast"], rate["exact"] / rate["fast"],
                     float(diff.max()), float(diff.mean())))
    print("\n| model | exact (f32) pairs/s | fast (flash, f16 K/V) pairs/s | exact / fast "
          "| max score difference | mean |\n|---|---|---|---|---|---|")
    for name, e, f, ratio, worst, mean in rows:
        print(f"| {name} | {e:.2f} | {f:.2f} | {ratio:.2f} | {worst:.2e} | {mean:.2e} |")


if __name__ == "__main__":
    main()
