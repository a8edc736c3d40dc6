"""A command that runs no model starts without llama.cpp, numpy or flask: `localembed --help`
and each command's help import only click and the constants the options show (the time a
person waits for help is the imports; benchmarks/load_bench.py measures it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("llama_cpp", "numpy", "flask", "waitress", "gguf", "pyarrow", "ray", "simsimd")
PROBE = f"""
import atexit, sys
atexit.register(lambda: print("LOADED", sorted(m for m in {HEAVY!r} if m in sys.modules)))
sys.argv = ["localembed", *sys.argv[1:]]
from localembed.cli import main
main()
"""


def loaded(args: list[str], home: Path) -> tuple[str, list[str]]:
    run = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                         timeout=60, env={"LOCALEMBED_HOME": str(home), "PATH": "/usr/bin:/bin"})
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("LOADED"), run.stdout + run.stderr
    return run.stdout, eval(last.removeprefix("LOADED "))  # a list literal we printed


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["serve", "--help"],
                                  ["embed", "--help"], ["rerank", "--help"],
                                  ["index", "--help"], ["embed-corpus", "--help"],
                                  ["search", "--help"], ["convert", "--help"]])
def test_help_loads_no_model_library(args: list[str], tmp_path: Path) -> None:
    output, heavy = loaded(args, tmp_path)
    assert heavy == []
    assert "Usage:" in output or "version" in output


def test_the_help_still_offers_the_engines_choices(tmp_path: Path) -> None:
    from localembed.engine.families import TASK_LABELS
    from localembed.engine.framing import TRUNCATE_MODES

    output, _ = loaded(["embed", "--help"], tmp_path)
    flat = " ".join(output.split())
    assert all(task in flat for task in TASK_LABELS)
    assert "|".join(TRUNCATE_MODES) in flat


def test_the_engine_imports_only_the_parts_of_llama_cpp_and_gguf_it_uses() -> None:
    """llama-cpp-python's package __init__ also imports its high-level Llama (jinja2 chat
    templates, a disk cache), gguf's its reader and writer (yaml, sentencepiece): the engine
    and the server skip them, and code asking for them later still gets them."""
    script = """
import sys
from localembed.engine import Engine  # the engine, loaded for real
import localembed.engine.llama, localembed.server, localembed.service.registry
skipped = [m for m in ("llama_cpp.llama", "llama_cpp.llama_chat_format", "diskcache",
                       "gguf.gguf_writer", "yaml", "sentencepiece") if m in sys.modules]
import llama_cpp
from llama_cpp import Llama, LlamaGrammar
from gguf import GGUFWriter, PoolingType
print(skipped, llama_cpp.__version__, Llama.__name__, callable(llama_cpp.llama_backend_init),
      "llama_cpp.llama" in sys.modules, GGUFWriter.__name__, PoolingType.MEAN.value)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    from importlib.metadata import version

    assert run.stdout.split() == ["[]", version("llama-cpp-python"), "Llama", "True", "True",
                                  "GGUFWriter", "1"]


TEXTS = ["Hello, World!", "naïve café déjà vu", "한국어 문장입니다", "東京タワー",
         "unbelievably tokenized ##words [SEP] [UNK]", ""]


def test_a_wordpiece_tokenizer_read_from_the_cache_tokenizes_as_a_built_one(
        starter_gguf, app_home: Path) -> None:
    """The starter's tokenizer is kept in the home's cache after its first load (building it
    from the vocabulary was 0.11 s of every start); read back, it gives the same ids."""
    from localembed.engine import Engine
    from localembed.engine.probe import repack_allowed

    repack_allowed()  # its own probe model, in a child, first
    folder = app_home / "cache" / "tokenizers"
    before = set(folder.glob("*.json"))
    model = starter_gguf("f16")
    first = Engine(model)  # builds and stores it
    try:
        (stored,) = set(folder.glob("*.json")) - before
        written = stored.stat().st_mtime_ns
        built = [first.runner.tokenize(text) for text in TEXTS]
    finally:
        first.close()
    second = Engine(model)
    try:
        assert [second.runner.tokenize(text) for text in TEXTS] == built
    finally:
        second.close()
    assert stored.stat().st_mtime_ns == written  # read back, not built and written again


def test_a_damaged_cached_tokenizer_is_built_again(starter_gguf, app_home: Path) -> None:
    from localembed.engine import Engine
    from localembed.engine.probe import repack_allowed

    repack_allowed()
    folder = app_home / "cache" / "tokenizers"
    before = set(folder.glob("*.json"))
    model = starter_gguf("f16")
    Engine(model).close()
    (stored,) = set(folder.glob("*.json")) - before
    stored.write_text('{"version": "1.0", "model": {"type": "WordPiece"')  # cut short
    engine = Engine(model)
    try:
        assert engine.runner.tokenize("Hello, World!")[1:-1] == [7592, 1010, 2088, 999]
    finally:
        engine.close()
    assert stored.read_text().endswith("}")  # written again, whole
