"""config.json holds the API key: it is private to its owner, and only keys a client can send
are accepted."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from localembed.cli import cli
from localembed.config.settings import (
    ServerConfig,
    load_config,
    require_key_off_loopback,
    save_setting,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_generated_api_key_is_stored_readable_by_its_owner_only(app_home: Path) -> None:
    config = ServerConfig(host="0.0.0.0")
    assert require_key_off_loopback(config)
    assert json.loads((app_home / "config.json").read_text())["api_key"] == config.api_key
    assert mode(app_home / "config.json") == 0o600


def test_saving_a_setting_makes_a_world_readable_config_private_and_keeps_it(
        app_home: Path) -> None:
    app_home.mkdir(parents=True, exist_ok=True)
    path = app_home / "config.json"
    path.write_text(json.dumps({"api_key": "old-secret"}))
    path.chmod(0o644)  # as earlier versions wrote it
    save_setting("model", "some-model")
    assert mode(path) == 0o600
    save_setting("keep_alive", 60)
    assert mode(path) == 0o600
    assert json.loads(path.read_text()) == {"api_key": "old-secret", "model": "some-model",
                                            "keep_alive": 60}


UNSENDABLE_KEYS = ["  ", " secret", "secret ", "secret\n", "sec\tret", "s\x00cret", "sécret"]


@pytest.mark.parametrize("key", UNSENDABLE_KEYS, ids=repr)
def test_a_key_no_client_can_send_is_refused_in_config_json(app_home: Path, key: str) -> None:
    app_home.mkdir(parents=True, exist_ok=True)
    (app_home / "config.json").write_text(json.dumps({"api_key": key}))
    with pytest.raises(ValueError) as refused:
        load_config()
    lines = str(refused.value).splitlines()[1:]
    assert len(lines) == 1 and f"config.json: api_key = {key!r} is invalid" in lines[0]
    assert "printable ASCII" in lines[0]


def test_a_key_with_spaces_around_it_is_refused_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALEMBED_API_KEY", " secret ")
    with pytest.raises(ValueError, match=r"LOCALEMBED_API_KEY: api_key = ' secret ' is invalid"):
        load_config()


def test_a_blank_key_on_the_command_line_stops_serve_with_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.gguf")  # were the key accepted, serve would stop here
    result = CliRunner().invoke(cli, ["serve", "--api-key", "  ", "-m", missing])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--api-key: api_key = '  ' is invalid (an API key must be printable ASCII" in (
        result.output)


def test_keys_a_client_can_send_are_accepted(app_home: Path) -> None:
    assert load_config(api_key="s3cret-with inner space_~").api_key == "s3cret-with inner space_~"
