"""Model load time against vocabulary size: header inspection, model ready, `embed` end to end.

    python benchmarks/load_bench.py [--repeats 3] [--threads N] [--keep DIR] [--skip-old]

Three models: the bundled starter (all-MiniLM-L6-v2, 30,522 WordPiece tokens) and synthetic
tiny-weight GGUFs with the real vocabularies of Qwen3-Embedding (151,669 byte-level BPE tokens
and their merges) and EmbeddingGemma (262,144 SentencePiece tokens with scores), so that what
scales with the vocabulary shows and nothing else does. For each:

- inspect, old: ``inspect_gguf`` reading the file with ``gguf.GGUFReader`` (the reader it used
  before issue 14), measured once in this run as the baseline;
- inspect, new: ``inspect_gguf`` as it is (median of the repeats);
- model ready: ``Engine(path)`` to the first vector of "hi", in a fresh process whose imports
  are done (target: under 1 s);
- of which llama.cpp's vocabulary: ``llama_cpp.Llama(vocab_only=True)`` in a fresh process,
  the part of loading that llama.cpp (and so llama-server too) spends on the vocabulary;
- embed CLI: ``python -m localembed embed --model PATH "hi"`` as a subprocess, wall clock,
  with LOCALEMBED_HOME in a temporary folder (target: under 2 s);
- import CLI: ``python -m localembed import PATH`` (inspect, probe in a child process, copy).

Also printed: a bare interpreter's start and ``import localembed.cli``, which every CLI command
pays before it touches a model. Medians of ``--repeats`` runs; min in brackets.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gguf  # noqa: E402

from localembed.engine import inspect as inspect_module  # noqa: E402
from localembed.engine.inspect import inspect_gguf  # noqa: E402
from localembed.gguf.header import ArrayInfo, GGUFHeader, TensorInfo  # noqa: E402
from localembed.models.starter import starter_path  # noqa: E402
from localembed.testing.synthetic import REAL_VOCAB, write_model  # noqa: E402

READY = """
import json, sys, time
from localembed.engine import Engine, RunnerOptions
threads = int(sys.argv[2]) or None
start = time.perf_counter()
engine = Engine(sys.argv[1], options=RunnerOptions(threads=threads))
loaded = time.perf_counter()
engine.embed("hi")
done = time.perf_counter()
print(json.dumps({"load": loaded - start, "ready": done - start}))
engine.close()
"""

VOCAB = """
import sys, time
import llama_cpp
start = time.perf_counter()
llama_cpp.Llama(model_path=sys.argv[1], vocab_only=True, verbose=False).close()
print(time.perf_counter() - start)
"""


def gguf_reader_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """The header as gguf.GGUFReader reads it: what inspect_gguf did before issue 14."""
    reader = gguf.GGUFReader(path)
    fields: dict[str, object] = {}
    types: dict[str, int] = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        kind = field.types[0]
        types[key] = int(kind)
        if kind == gguf.GGUFValueType.ARRAY:
            fields[key] = ArrayInfo(int(field.types[-1]), len(field.data), 0)
        elif kind == gguf.GGUFValueType.STRING:
            fields[key] = bytes(field.parts[-1])
        else:
            fields[key] = field.contents()
    tensors = tuple(TensorInfo(t.name, tuple(int(d) for d in t.shape), int(t.tensor_type),
                               int(t.data_offset), int(t.n_bytes)) for t in reader.tensors)
    return GGUFHeader(Path(path), 3, "<", fields, types, tensors, int(reader.alignment),
                      int(reader.data_offset))


def old_inspect(path: Path) -> None:
    saved = inspect_module.read_header
    inspect_module.read_header = gguf_reader_header
    try:
        inspect_gguf(path)
    finally:
        inspect_module.read_header = saved


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def repeat(fn: Callable[[], float], times: int) -> list[float]:
    return [fn() for _ in range(times)]


def child_env(home: Path) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "LOCALEMBED_HOME": str(home),
            "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600,
                          check=False, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr}")
    return proc


def model_ready(path: Path, threads: int, env: dict[str, str]) -> float:
    proc = run([sys.executable, "-c", READY, str(path), str(threads)], env)
    return json.loads(proc.stdout.strip().splitlines()[-1])["ready"]


def vocab_load(path: Path, env: dict[str, str]) -> float:
    proc = run([sys.executable, "-c", VOCAB, str(path)], env)
    return float(proc.stdout.strip().splitlines()[-1])


def import_cli(path: Path, env: dict[str, str], n: int) -> float:
    args = [sys.executable, "-m", "localembed", "import", str(path), "--id", f"bench-{n}"]
    return timed(lambda: run(args, env))


def embed_cli(path: Path, threads: int, env: dict[str, str]) -> float:
    args = [sys.executable, "-m", "localembed", "embed", "--model", str(path), "hi"]
    if threads:
        args += ["--threads", str(threads)]
    start = time.perf_counter()
    proc = run(args, env)
    elapsed = time.perf_counter() - start
    assert json.loads(proc.stdout.splitlines()[0])["embedding"], proc.stdout
    return elapsed


def fmt(values: list[float], unit: str = "s") -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    if unit == "ms":
        text = f"{median * 1000:.1f} ms"
        return text if len(values) == 1 else f"{text} ({min(values) * 1000:.1f})"
    text = f"{median:.2f} s"
    return text if len(values) == 1 else f"{text} ({min(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: all)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write (and reuse) the synthetic models in this folder")
    parser.add_argument("--skip-old", action="store_true",
                        help="leave out the GGUFReader baseline (it takes tens of seconds)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        env = child_env(Path(tmp) / "home")
        models = [("all-minilm-l6-v2 (starter)", starter_path(), REAL_VOCAB["bert"])]
        for arch, label in (("qwen3", "qwen3, synthetic"),
                            ("gemma-embedding", "gemma-embedding, synthetic")):
            path = folder / f"{arch}-vocab{REAL_VOCAB[arch]}.gguf"
            if not path.exists():
                took = timed(lambda a=arch, p=path: write_model(a, p, vocab_size=REAL_VOCAB[a]))
                print(f"wrote {path.name} in {took:.2f} s", file=sys.stderr)
            models.append((label, path, REAL_VOCAB[arch]))

        python = repeat(lambda: timed(lambda: run([sys.executable, "-c", "pass"], env)),
                        args.repeats)
        cli_import = repeat(lambda: timed(lambda: run(
            [sys.executable, "-c", "import localembed.cli"], env)), args.repeats)

        rows = []
        for label, path, vocab in models:
            print(f"measuring {label} ...", file=sys.stderr)
            old = [] if args.skip_old else [timed(lambda p=path: old_inspect(p))]
            new = repeat(lambda p=path: timed(lambda: inspect_gguf(p)), max(5, args.repeats))
            ready = repeat(lambda p=path: model_ready(p, args.threads, env), args.repeats)
            vocab_part = repeat(lambda p=path: vocab_load(p, env), args.repeats)
            cli = repeat(lambda p=path: embed_cli(p, args.threads, env), args.repeats)
            imports = [import_cli(path, env, n) for n in range(len(rows) * 100,
                                                               len(rows) * 100 + args.repeats)]
            speedup = (f"{statistics.median(old) / statistics.median(new):.0f}x" if old
                       else "-")
            rows.append((label, f"{vocab:,}", f"{path.stat().st_size / 1e6:.0f}",
                         fmt(old), fmt(new, "ms"), speedup, fmt(ready), fmt(vocab_part),
                         fmt(cli), fmt(imports)))

    header = ("model", "vocab", "MB", "inspect, old (GGUFReader)", "inspect, new",
              "speedup", "model ready (<1 s)", "of which llama.cpp vocab", "embed CLI (<2 s)",
              "import CLI")
    print(f"\n{sys.platform}, {os.cpu_count()} CPUs, threads: {args.threads or 'all'}, "
          f"medians of {args.repeats} (min)\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\npython -c pass: {fmt(python)}; python -c 'import localembed.cli': "
          f"{fmt(cli_import)}")


if __name__ == "__main__":
    main()
