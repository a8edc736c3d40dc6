"""`localembed serve` as a real process, and where its settings come from."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from localembed.config.settings import DEFAULT_PORT, load_config


def start_serve(*args: str, home: Path, command: tuple[str, ...] = ("serve",)
                ) -> subprocess.Popen:
    env = {**os.environ, "LOCALEMBED_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "localembed", *command, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_serve_prints_url_serves_and_stops_cleanly(synthetic, app_home: Path) -> None:
    proc = start_serve("--port", "0", "--model", str(synthetic("bert")), home=app_home)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()  # type: ignore[union-attr]
        req = urllib.request.Request(url + "/v1/embeddings", data=b'{"input": "hi"}',
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:  # waits for the model's load
            assert len(json.load(resp)["data"][0]["embedding"]) == 64
        with urllib.request.urlopen(url + "/health", timeout=30) as resp:
            assert json.load(resp)["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "serving" in err and "stopped" in err and "Traceback" not in err


def test_the_default_command_takes_the_serve_options(synthetic, app_home: Path) -> None:
    """`localembed --port 0 -m X` is `localembed serve --port 0 -m X`."""
    proc = start_serve("--port", "0", "-m", str(synthetic("gemma-embedding")), home=app_home,
                       command=())
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()  # type: ignore[union-attr]
        req = urllib.request.Request(url + "/v1/embeddings", data=b'{"input": "hi"}',
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert len(json.load(resp)["data"][0]["embedding"]) == 96  # the gemma model
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_help_lists_the_commands_and_the_default() -> None:
    result = subprocess.run([sys.executable, "-m", "localembed", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    assert "localembed --port 9000" in result.stdout
    for command in ("serve", "app", "embed", "pull", "import"):
        assert command in result.stdout


def test_port_in_use_is_a_clear_error(synthetic, app_home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = start_serve("--port", str(port), "--model", str(synthetic("bert")),
                           home=app_home)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    assert "Traceback" not in err


def test_settings_precedence(app_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config().port == DEFAULT_PORT not in (11434, 1234, 8080, 1337)
    assert load_config().host == "127.0.0.1"
    app_home.mkdir(parents=True, exist_ok=True)
    (app_home / "config.json").write_text(json.dumps(
        {"port": 9001, "api_key": "from-file", "cors_origins": ["https://a.example"]}))
    config = load_config()
    assert (config.port, config.api_key, config.cors_origins) == (
        9001, "from-file", ("https://a.example",))
    monkeypatch.setenv("LOCALEMBED_PORT", "9002")
    monkeypatch.setenv("LOCALEMBED_CORS_ORIGINS", "https://b.example, https://c.example")
    config = load_config()
    assert config.port == 9002 and config.cors_origins == ("https://b.example",
                                                           "https://c.example")
    assert load_config(port=9003).port == 9003
    (app_home / "config.json").write_text('{"prot": 1}')
    with pytest.raises(ValueError, match="unknown settings prot"):
        load_config()


def test_bad_config_is_a_message_not_a_traceback(app_home: Path) -> None:
    app_home.mkdir(parents=True, exist_ok=True)
    (app_home / "config.json").write_text("{not json")
    proc = start_serve(home=app_home)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "config.json" in err and "Traceback" not in err


BAD_VALUES = [("http_threads", 0), ("port", {}), ("allowed_hosts", 5), ("request_timeout", 0),
              ("token_ids", "bogus"), ("api_key", ""), ("port", 70000), ("keep_alive", -1)]


@pytest.mark.parametrize("name,value", BAD_VALUES, ids=[f"{n}={v!r}" for n, v in BAD_VALUES])
def test_each_bad_config_value_is_named_at_start(app_home: Path, name: str,
                                                 value: object) -> None:
    app_home.mkdir(parents=True, exist_ok=True)
    (app_home / "config.json").write_text(json.dumps({name: value}))
    with pytest.raises(ValueError) as info:
        load_config()
    assert f"{name} = {value!r} is invalid" in str(info.value)


def test_all_bad_values_are_reported_at_once(app_home: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    app_home.mkdir(parents=True, exist_ok=True)
    (app_home / "config.json").write_text(json.dumps({"http_threads": 0, "api_key": ""}))
    monkeypatch.setenv("LOCALEMBED_PORT", "eighty")
    with pytest.raises(ValueError) as info:
        load_config()
    lines = str(info.value).splitlines()[1:]
    assert len(lines) == 3 and any("LOCALEMBED_PORT" in line for line in lines)


def test_serve_beyond_loopback_requires_and_prints_a_generated_key(app_home: Path) -> None:
    proc = start_serve("--host", "0.0.0.0", "--port", "0", home=app_home)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        port = url.rsplit(":", 1)[1]
        local = f"http://127.0.0.1:{port}"
        key = json.loads((app_home / "config.json").read_text())["api_key"]
        req = urllib.request.Request(local + "/v1/models")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=30)
        assert refused.value.code == 401
        req = urllib.request.Request(local + "/v1/models",
                                     headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert key in err and "config.json" in err and "Reachable at: http://127.0.0.1:" in err


BARE_H = [(["-h"], "Usage: localembed [OPTIONS] COMMAND"),
          (["serve", "-h"], "Usage: localembed serve [OPTIONS]"),
          (["--port", "0", "-h"], "Usage: localembed serve [OPTIONS]")]


@pytest.mark.parametrize("args,usage", BARE_H, ids=[" ".join(a) for a, _ in BARE_H])
def test_a_bare_h_shows_the_help(args: list[str], usage: str) -> None:
    result = subprocess.run([sys.executable, "-m", "localembed", *args], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(usage) and "-h" in result.stdout


@pytest.mark.parametrize("command", [(), ("serve",)], ids=["localembed", "localembed serve"])
def test_h_with_a_value_still_sets_the_host(synthetic, app_home: Path,
                                            command: tuple[str, ...]) -> None:
    proc = start_serve("-h", "127.0.0.2", "--port", "0", "-m", str(synthetic("bert")),
                       home=app_home, command=command)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.2:"), proc.stderr.read()  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
