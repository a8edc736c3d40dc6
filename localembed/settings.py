"""Where localembed keeps its files.

One function decides the home directory so that tests (and users with unusual setups) can move
everything at once with ``LOCALEMBED_HOME``; nothing else in the package hard-codes a path.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import msgspec
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
# A request waiting for its vectors holds an HTTP thread, so this many callers at once can
# share one decode; idle threads cost next to nothing.
DEFAULT_HTTP_THREADS = 64
CONFIG_FILE = "config.json"


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

    @property
    def is_local(self) -> bool:
        """Bound to loopback only (nothing else on the network can connect)."""
        return self.host in ("127.0.0.1", "localhost", "::1") or self.host.startswith("127.")


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


def reachable_urls(host: str, port: int) -> list[str]:
    """The URLs other machines can use for a server bound to ``host`` (wildcards expanded to
    this machine's interface addresses), loopback first."""
    from localembed.addresses import reachable_addresses

    return [local_url(a, port) for a in reachable_addresses(host)]


def local_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server bound to ``host``:``port``."""
    if host in ("0.0.0.0", ""):  # bound to every IPv4 interface: loopback reaches it
        host = "127.0.0.1"
    elif host == "::":  # waitress binds "::" IPv6-only, so 127.0.0.1 would not reach it
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def config_path() -> Path:
    return home_dir() / CONFIG_FILE


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


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` whole or not at all, readable by its owner only.

    config.json holds the API key, so it is never world-readable, not even for the moment
    between creating and restricting it (mkstemp creates the file 0600). A failed write (a
    full disk, a read-only home) removes its temporary file, leaves ``path`` as it was, and
    names ``path`` in the error: a failed write() reports no file name of its own.
    """
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # a full disk may only say so here
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
