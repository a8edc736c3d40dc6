"""What ``localembed serve`` can be told, and where each value comes from.

``ServerConfig``'s annotations are the validation rules: config.json, ``LOCALEMBED_*`` variables
and command-line options are all checked against them, one clear line per bad value.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Literal

import msgspec

from localembed.config.network import is_loopback
from localembed.config.paths import config_path, write_private

DEFAULT_HOST = "127.0.0.1"
# Our own port: not Ollama's 11434, LM Studio's 1234, llama.cpp's 8080 or Jan's 1337.
DEFAULT_PORT = 8642
# A request waiting for its vectors holds an HTTP thread, so this many callers at once can
# share one decode; idle threads cost next to nothing.
DEFAULT_HTTP_THREADS = 64
# The embedding cache's memory (engine/cache.py): 64k vectors of the starter's 384 floats, 8k of
# Qwen3-8B's 4096.
DEFAULT_CACHE_MB = 128


Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
# Printable ASCII, no space at either end: the server strips the header a key arrives in and
# compares it as ASCII, so any other key could never be sent by a client.
ApiKey = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[!-~]([ -~]*[!-~])?\Z")]
# What a setting's pattern rule means, in words (msgspec's own message shows the regex).
_PATTERN_REASONS = {
    "api_key": "an API key must be printable ASCII, with no space at either end: no client "
               "could send this one",
}


class ServerConfig(msgspec.Struct, kw_only=True):
    """Everything ``localembed serve`` can be told; see ``load_config`` for the sources.

    The annotations are also the validation rules: ``load_config`` checks every value from
    config.json, the environment and the command line against them.
    """

    host: NonEmpty = DEFAULT_HOST
    port: Port = DEFAULT_PORT
    model: NonEmpty | None = None
    threads: Annotated[int, msgspec.Meta(ge=1, le=1024)] | None = None  # llama.cpp threads
    gpu_layers: Annotated[int, msgspec.Meta(ge=-1)] | None = None
    http_threads: Annotated[int, msgspec.Meta(ge=1, le=512)] = DEFAULT_HTTP_THREADS
    api_key: ApiKey | None = None  # an empty key would silently turn auth off
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 32 * 1024 * 1024
    max_inputs: Positive = 2048
    max_request_tokens: Positive = 1_000_000
    token_ids: Literal["tiktoken", "model"] = "tiktoken"  # how token-id input is read
    request_timeout: Annotated[float, msgspec.Meta(gt=0)] = 600.0
    keep_alive: Annotated[float, msgspec.Meta(ge=0)] = 300.0  # idle seconds; 0 = forever
    # Vectors already computed, answered without a decode (engine/cache.py): MiB in memory
    # (0 = off), and MiB in a file in the home (0 = none), kept across restarts.
    cache_mb: Annotated[int, msgspec.Meta(ge=0, le=1 << 20)] = DEFAULT_CACHE_MB
    cache_disk_mb: Annotated[int, msgspec.Meta(ge=0, le=1 << 24)] = 0

    @property
    def is_local(self) -> bool:
        """Bound to loopback only (nothing else on the network can connect)."""
        return is_loopback(self.host)


SETTINGS = ServerConfig.__struct_fields__


def require_key_off_loopback(config: ServerConfig) -> str | None:
    """A server reachable from the network must not be open to it: when bound beyond
    loopback with no API key, generate one, store it in config.json and return a message
    saying so (Ollama's history of exposed model servers is the reason)."""
    if config.is_local or config.api_key:
        return None
    import secrets

    config.api_key = secrets.token_urlsafe(24)
    save_setting("api_key", config.api_key)
    return (f"{config.host} is reachable from the network, so an API key is required. "
            f"Generated one: {config.api_key}\n  (stored in {config_path()}; clients send "
            "'Authorization: Bearer <key>')")


def _check(name: str, value: object, source: str) -> tuple[object, str | None]:
    """(the value as its setting's type, or an error message naming the source)."""
    if isinstance(value, str) and name in ("cors_origins", "allowed_hosts"):
        value = [v.strip() for v in value.split(",") if v.strip()]
    try:
        checked = msgspec.convert({name: value}, ServerConfig, strict=False)
    except msgspec.ValidationError as exc:
        reason = str(exc).split(" - at ")[0]
        if "matching regex" in reason:
            reason = _PATTERN_REASONS.get(name, reason)
        return None, f"{source}: {name} = {value!r} is invalid ({reason[0].lower()}{reason[1:]})"
    return getattr(checked, name), None


def load_config(**overrides: object) -> ServerConfig:
    """Defaults, then ``config.json`` in the home dir, then ``LOCALEMBED_*`` variables, then
    ``overrides`` (command-line options; None means 'not given').

    Every value is validated at start; a ValueError lists one clear line per bad value.
    """
    values: dict[str, object] = {}
    problems: list[str] = []
    path = config_path()
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object")
        unknown = set(data) - set(SETTINGS)
        if unknown:
            raise ValueError(f"{path}: unknown settings {', '.join(sorted(unknown))}")
        sources = [(name, value, str(path)) for name, value in data.items()]
    else:
        sources = []
    for name in SETTINGS:
        env = os.environ.get(f"LOCALEMBED_{name.upper()}")
        if env is not None and env != "":
            sources.append((name, env, f"LOCALEMBED_{name.upper()}"))
    sources += [(name, value, f"--{name.replace('_', '-')}") for name, value in overrides.items()
                if value is not None and value != ()]
    for name, value, source in sources:
        checked, problem = _check(name, value, source)
        if problem:
            problems.append(problem)
        else:
            values[name] = checked
    if problems:
        raise ValueError("invalid settings:\n  " + "\n  ".join(problems))
    return ServerConfig(**values)  # type: ignore[arg-type]


def save_setting(name: str, value: object) -> None:
    """Persist one setting in config.json (the web UI's Set-as-default, for instance)."""
    if name not in SETTINGS:
        raise ValueError(f"unknown setting {name}")
    path = config_path()
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(data, indent=2))
