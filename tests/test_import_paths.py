"""Importing from a path: only a model folder is read, and anything else is a quick, clear
refusal, from the command line and over HTTP alike.

An unreadable folder needs a process without root's power to read anything (the tests run as
root): the CLI and the server run under ``setpriv`` with CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH dropped, so a ``chmod 000`` folder is unreadable to them for real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from localembed.cli import cli
from tests.fixtures.server import call

UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
HUGE = 4 * 10**12  # a sparse file's size: more than any disk here has free


def sparse(path: Path, size: int = HUGE) -> None:
    """A file of ``size`` bytes that takes no disk space."""
    with open(path, "wb") as f:
        f.truncate(size)


def not_a_model(kind: str, root: Path) -> Path:
    """A path that is not a model folder, of the given kind."""
    if kind == "the root folder":
        return Path("/")
    folder = root / kind.replace(" ", "-")
    folder.mkdir()
    (folder / "notes.txt").write_text("not a model")
    sparse(folder / "archive.bin")  # sizing this folder would refuse it as too big
    if kind == "an unreadable folder":
        (folder / "config.json").write_text("{}")
        folder.chmod(0)
    return folder


KINDS = {"the root folder": "/ has no config.json",
         "a folder of documents": "has no config.json",
         "an unreadable folder": "Permission denied"}


def unprivileged_env(home: Path) -> dict[str, str]:
    return {**os.environ, "LOCALEMBED_HOME": str(home), "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize("kind", KINDS)
def test_the_cli_refuses_a_path_that_is_not_a_model_folder(kind: str, tmp_path: Path,
                                                           app_home: Path) -> None:
    path = not_a_model(kind, tmp_path)
    proc = subprocess.run([*UNPRIVILEGED, sys.executable, "-m", "localembed", "import",
                           str(path), "--id", "probe"], capture_output=True, text=True,
                          env=unprivileged_env(app_home), timeout=120, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("Error: ") and KINDS[kind] in proc.stderr
    assert not list((app_home / "models").glob("probe*"))


@pytest.fixture(scope="module")
def unprivileged_server(synthetic, tmp_path_factory: pytest.TempPathFactory
                        ) -> Iterator[tuple[str, Path]]:
    """A real `localembed serve` that cannot read what its permissions forbid; yields
    (url, its home)."""
    home = tmp_path_factory.mktemp("server-home")
    proc = subprocess.Popen([*UNPRIVILEGED, sys.executable, "-m", "localembed", "serve",
                             "--port", "0", "-m", str(synthetic("bert"))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=unprivileged_env(home))
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()  # type: ignore[union-attr]
        yield url, home
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


@pytest.mark.parametrize("kind", KINDS)
def test_the_http_route_refuses_a_path_that_is_not_a_model_folder(
        kind: str, tmp_path: Path, unprivileged_server: tuple[str, Path]) -> None:
    url, home = unprivileged_server
    path = not_a_model(kind, tmp_path)
    status, body, _ = call(url, "/v1/models/import", {"path": str(path), "id": "probe"})
    assert status == 400 and body["error"]["code"] == "import_failed", body
    assert KINDS[kind] in body["error"]["message"]
    assert not list((home / "models").glob("probe*"))


def test_a_model_folder_is_sized_by_the_files_the_import_reads(starter_folder: Path,
                                                               tmp_path: Path,
                                                               app_home: Path) -> None:
    folder = tmp_path / "all-MiniLM-L6-v2"
    folder.mkdir()
    for item in starter_folder.iterdir():
        (folder / item.name).symlink_to(item)
    sparse(folder / "pytorch_model.bin")  # the same weights in formats never read
    (folder / "onnx").mkdir()
    sparse(folder / "onnx" / "model.onnx")
    result = CliRunner().invoke(cli, ["import", str(folder), "--id", "minilm"])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(CliRunner().invoke(cli, ["ls", "--json"]).output)}
    assert rows["minilm"]["dimensions"] == 384
