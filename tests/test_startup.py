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
