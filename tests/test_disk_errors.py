"""Read-only and full disks, for real: "Nothing was changed" must be true when it is said.

A read-only model directory is made with ``chattr +i`` (even root can then neither create,
rename nor delete entries in it: the tests run as root, where chmod stops nothing), and a
full disk is a small tmpfs mounted over the app's home and filled up.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from localembed.config.paths import models_dir
from localembed.models.store import removal


@contextmanager
def immutable(folder: Path) -> Iterator[None]:
    """``folder`` cannot be changed while the block runs: no entry created, renamed or
    deleted, by anyone."""
    assert shutil.which("chattr"), "chattr is required (Debian's e2fsprogs)"
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.fixture()
def small_disk(app_home: Path) -> Iterator[Path]:
    """The app's home on a 4 MiB tmpfs of its own, to be filled by the test."""
    app_home.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(app_home)],
                   check=True)
    try:
        yield app_home
    finally:
        subprocess.run(["umount", "-l", str(app_home)], check=True)


def fill(disk: Path) -> None:
    """Write until the disk is full."""
    with open(disk / "filler", "wb", buffering=0) as f, pytest.raises(OSError) as full:
        while True:
            f.write(b"\0" * 65536)
    assert full.value.errno == errno.ENOSPC


def install(synthetic, name: str) -> Path:  # type: ignore[no-untyped-def]
    path = models_dir() / f"{name}.gguf"
    shutil.copy(synthetic("gemma-embedding"), path)
    return path


def test_force_deleting_a_loaded_model_from_a_read_only_home_keeps_it_loaded_and_installed(
        app_factory, synthetic) -> None:
    client = app_factory()
    path = install(synthetic, "kept")
    assert client.post("/v1/models/kept/load").status_code == 200
    with immutable(models_dir()):
        response = client.delete("/v1/models/kept?force=true")
    error = response.get_json()["error"]
    assert response.status_code == 500 and error["code"] == "disk_error"
    assert "kept.gguf" in error["message"] and "Nothing was changed" in error["message"]
    assert client.get("/v1/models/kept").get_json()["loaded"]
    assert path.exists()
    embedded = client.post("/v1/embeddings", json={"model": "kept", "input": "still here"})
    assert embedded.status_code == 200


def test_force_deleting_a_loaded_model_unloads_it_then_deletes_its_files(
        app_factory, synthetic) -> None:
    client = app_factory()
    path = install(synthetic, "gone")
    path.with_suffix(".json").write_text("{}")
    assert client.post("/v1/models/gone/load").status_code == 200
    response = client.delete("/v1/models/gone?force=true")
    assert response.status_code == 200 and response.get_json()["deleted"]
    assert not client.application.extensions["localembed"].registry.is_loaded("gone")
    assert sorted(p.name for p in models_dir().iterdir()) == []


def test_a_removal_that_cannot_delete_fails_before_its_block_runs(synthetic) -> None:
    path = install(synthetic, "kept")
    ran: list[bool] = []
    with immutable(models_dir()), pytest.raises(PermissionError), removal("kept"):
        ran.append(True)  # where a server would unload the model
    assert ran == [] and path.exists()


def test_a_removal_whose_block_fails_puts_the_model_back(synthetic) -> None:
    path = install(synthetic, "kept")
    original = path.read_bytes()
    with pytest.raises(RuntimeError), removal("kept"):
        assert not path.exists()  # moved aside, no longer listed
        raise RuntimeError("the unload failed")
    assert path.read_bytes() == original
    assert sorted(p.name for p in models_dir().iterdir()) == ["kept.gguf"]


def test_a_full_disk_names_the_settings_file_and_leaves_it_as_it_was(
        app_factory, synthetic, small_disk: Path) -> None:
    client = app_factory()
    install(synthetic, "other")
    config = small_disk / "config.json"
    config.write_text(json.dumps({"keep_alive": 120}))
    before = config.read_bytes()
    served = client.get("/health").get_json()["model"]
    fill(small_disk)
    response = client.post("/v1/default", json={"model": "other"})
    error = response.get_json()["error"]
    assert response.status_code == 507 and error["code"] == "insufficient_storage"
    assert str(config) in error["message"]
    assert config.read_bytes() == before
    assert [p.name for p in small_disk.iterdir() if "config" in p.name] == ["config.json"]
    assert client.get("/health").get_json()["model"] == served
