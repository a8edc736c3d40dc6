"""Shared fixtures: a throwaway app home, synthetic GGUF models and the converted starter."""

from __future__ import annotations

from pathlib import Path

import pytest

from localembed.convert import convert_folder
from localembed.starter import starter_source
from localembed.synthetic import ARCHITECTURES, write_model


@pytest.fixture(autouse=True)
def app_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own LOCALEMBED_HOME so nothing touches the user's models."""
    home = tmp_path / "home"
    monkeypatch.setenv("LOCALEMBED_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory):
    """Factory for tiny synthetic models, written once per (arch, dtype, options)."""
    root = tmp_path_factory.mktemp("synthetic")
    cache: dict[tuple, Path] = {}

    def make(arch: str, dtype: str = "f32", **kwargs: object) -> Path:
        key = (arch, dtype, repr(sorted(kwargs.items())))
        if key not in cache:
            suffix = "".join(f"-{k}{v}" for k, v in sorted(kwargs.items()))
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in suffix)
            cache[key] = write_model(arch, root / f"{arch}-{dtype}{safe}.gguf", dtype=dtype,
                                     **kwargs)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def starter_folder() -> Path:
    return starter_source()


@pytest.fixture(scope="session")
def starter_gguf(tmp_path_factory: pytest.TempPathFactory, starter_folder: Path):
    """The starter model converted to each dtype, once per session."""
    root = tmp_path_factory.mktemp("starter")
    cache: dict[str, Path] = {}

    def get(dtype: str = "f16") -> Path:
        if dtype not in cache:
            cache[dtype] = convert_folder(starter_folder, root / f"starter-{dtype}.gguf", dtype)
        return cache[dtype]

    return get


__all__ = ["ARCHITECTURES"]
