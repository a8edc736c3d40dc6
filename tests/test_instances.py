"""`ls` and `rm` ask every running server, whatever its port: each server registers itself in
the app's home while it runs, and entries of processes that died are cleaned up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from localembed.cli import cli
from localembed.config.instances import ServerEntry, live_servers, register, servers_dir
from localembed.config.settings import ServerConfig
from tests.fixtures.models import install_model
from tests.fixtures.server import call
from tests.test_serve_cli import start_serve


def localembed(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def two_servers(synthetic, app_home: Path) -> Iterator[tuple[str, str]]:
    """Two `serve` processes on ports other than the configured one, both serving "base";
    the second has "extra" loaded beside it. Yields their URLs."""
    install_model(app_home, "base", synthetic("bert"))
    install_model(app_home, "extra", synthetic("gemma-embedding"))
    procs = [start_serve("--port", "0", "-m", "base", home=app_home) for _ in range(2)]
    try:
        urls = [p.stdout.readline().strip() for p in procs]  # type: ignore[union-attr]
        assert all(u.startswith("http://127.0.0.1:") for u in urls), urls
        assert call(urls[1], "/v1/models/extra/load", method="POST")[0] == 200
        yield urls[0], urls[1]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.communicate(timeout=30)


def loaded(url: str) -> list[str]:
    with urllib.request.urlopen(url + "/health", timeout=10) as resp:
        return json.load(resp)["loaded"]


def test_ls_marks_models_loaded_by_servers_on_any_port(two_servers) -> None:
    result = localembed("ls", "--json")
    rows = {r["id"]: r for r in json.loads(result.output)}
    assert rows["extra"]["loaded"] and rows["base"]["loaded"]
    table = localembed("ls").output.splitlines()
    assert any(line.startswith(" +extra") for line in table), table


def test_rm_refuses_a_model_any_running_server_has_loaded(two_servers, app_home: Path) -> None:
    _first, second = two_servers
    result = localembed("rm", "extra")
    assert result.exit_code == 1
    assert f"extra is loaded by the server at {second}" in result.output
    assert "--force" in result.output
    assert (app_home / "models" / "extra.gguf").exists() and "extra" in loaded(second)


def test_rm_force_unloads_the_model_from_the_server_that_has_it(two_servers,
                                                                app_home: Path) -> None:
    first, second = two_servers
    result = localembed("rm", "extra", "--force")
    assert result.exit_code == 0, result.output
    assert not (app_home / "models" / "extra.gguf").exists()
    assert "extra" not in loaded(second) and loaded(first) == ["base"]


def test_rm_force_on_a_read_only_home_leaves_the_model_loaded_and_installed(
        two_servers, app_home: Path) -> None:
    from tests.test_disk_errors import immutable

    _first, second = two_servers
    with immutable(app_home / "models"):
        result = localembed("rm", "extra", "--force")
    assert result.exit_code == 1 and "nothing was changed" in result.output
    assert "Traceback" not in result.output
    assert (app_home / "models" / "extra.gguf").exists()
    assert "extra" in loaded(second)


def test_rm_names_every_server_that_has_the_model_loaded(two_servers) -> None:
    first, second = two_servers
    result = localembed("rm", "base")
    assert result.exit_code == 1 and "base is loaded by the servers at " in result.output
    assert first in result.output and second in result.output


def test_a_server_is_registered_while_it_serves_and_not_after(synthetic, app_home: Path) -> None:
    proc = start_serve("--port", "0", "-m", str(synthetic("bert")), home=app_home)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        entry = json.loads((servers_dir() / f"{proc.pid}.json").read_text())
        assert entry["url"] == url and entry["pid"] == proc.pid and entry["kind"] == "serve"
        assert entry["port"] == int(url.rsplit(":", 1)[1]) and entry["host"] == "127.0.0.1"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert not (servers_dir() / f"{proc.pid}.json").exists()


def test_entries_of_dead_processes_are_ignored_and_removed(app_home: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, timeout=60)
    dead_pid = int(gone.stdout)
    register(ServerEntry(dead_pid, "http://127.0.0.1:9", "127.0.0.1", 9, "serve"))
    register(ServerEntry(os.getpid(), "http://127.0.0.1:10", "127.0.0.1", 10, "serve"))
    assert [e.pid for e in live_servers()] == [os.getpid()]
    assert not (servers_dir() / f"{dead_pid}.json").exists()


def test_the_desktop_app_registers_its_server_until_it_quits(synthetic, app_home: Path) -> None:
    from localembed.desktop.controller import AppController

    install_model(app_home, "small", synthetic("bert"))
    controller = AppController(ServerConfig(model="small", port=0))
    controller.start()
    try:
        assert controller.wait_ready(60) == "ready"
        entries = live_servers()
        assert [(e.kind, e.url) for e in entries] == [("app", controller.url)]
        assert call(controller.url, "/health")[0] == 200
    finally:
        controller.quit()
    assert live_servers() == []
