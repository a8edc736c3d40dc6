"""Where localembed keeps its files.

One function decides the home directory so that tests (and users with unusual setups) can move
everything at once with ``LOCALEMBED_HOME``; nothing else in the package hard-codes a path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

import platformdirs

APP_NAME = "localembed"
HOME_ENV = "LOCALEMBED_HOME"


def home_dir() -> Path:
    """The app's data directory: ``$LOCALEMBED_HOME`` or the platform's user data dir."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """Directory holding model files; created on first use."""
    path = home_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


DEFAULT_HOST = "127.0.0.1"
# Our own port: not Ollama's 11434, LM Studio's 1234, llama.cpp's 8080 or Jan's 1337.
DEFAULT_PORT = 8642
CONFIG_FILE = "config.json"


@dataclass
class ServerConfig:
    """Everything ``localembed serve`` can be told; see ``load_config`` for the sources."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    model: str | None = None
    threads: int | None = None  # llama.cpp CPU threads
    gpu_layers: int | None = None
    http_threads: int = 16
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = 32 * 1024 * 1024
    max_inputs: int = 2048
    max_request_tokens: int = 1_000_000
    token_ids: str = "tiktoken"  # how to read token-id input: "tiktoken" or "model"
    request_timeout: float = 600.0
    keep_alive: float = 300.0  # seconds a non-default model stays loaded unused; 0 = forever


    def limits(self):  # type: ignore[no-untyped-def]
        """The per-request bounds the core service enforces."""
        from localembed.service import Limits

        return Limits(self.max_inputs, self.max_request_tokens, self.request_timeout)


def local_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server bound to ``host``:``port``."""
    if host in ("0.0.0.0", "::", ""):  # bound to every interface: loopback reaches it
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _coerce(name: str, raw: object) -> object:
    """A config value from JSON or an environment string, as the field's type."""
    kind = {f.name: f.type for f in fields(ServerConfig)}[name]
    if raw is None:
        return None
    if "tuple" in str(kind):
        items = raw.split(",") if isinstance(raw, str) else list(raw)  # type: ignore[arg-type]
        return tuple(str(i).strip() for i in items if str(i).strip())
    if "int" in str(kind) and "str" not in str(kind):
        return int(raw)  # type: ignore[arg-type]
    if "float" in str(kind):
        return float(raw)  # type: ignore[arg-type]
    return str(raw)


def config_path() -> Path:
    return home_dir() / CONFIG_FILE


def load_config(**overrides: object) -> ServerConfig:
    """Defaults, then ``config.json`` in the home dir, then ``LOCALEMBED_*`` variables, then
    ``overrides`` (command-line options; None means 'not given')."""
    values: dict[str, object] = {}
    path = config_path()
    names = {f.name for f in fields(ServerConfig)}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object")
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{path}: unknown settings {', '.join(sorted(unknown))}")
        values.update({k: _coerce(k, v) for k, v in data.items()})
    for name in names:
        env = os.environ.get(f"LOCALEMBED_{name.upper()}")
        if env is not None and env != "":
            try:
                values[name] = _coerce(name, env)
            except ValueError as exc:
                raise ValueError(f"LOCALEMBED_{name.upper()}: {exc}") from exc
    values.update({k: v for k, v in overrides.items() if v is not None and v != ()})
    return ServerConfig(**values)  # type: ignore[arg-type]


def save_setting(name: str, value: object) -> None:
    """Persist one setting in config.json (the web UI's Set-as-default, for instance)."""
    if name not in {f.name for f in fields(ServerConfig)}:
        raise ValueError(f"unknown setting {name}")
    path = config_path()
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
