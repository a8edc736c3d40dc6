"""Models on disk: names to paths, listing, removal, import, the default model.

Model ids are plain names (``all-minilm-l6-v2``) for ``<id>.gguf`` files in the model directory;
anything that looks like a path must be given as an existing ``.gguf`` file explicitly (CLI
only), so a name received over HTTP can never walk out of the model directory.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from localembed.config.paths import home_dir, models_dir, write_private
from localembed.models.catalog import STARTER, lookup
from localembed.models.description import ModelDescription, modified
from localembed.models.starter import STARTER_ID, StarterMissing, ensure_starter

if TYPE_CHECKING:
    from localembed.models.convert import BertFolder

DISK_MARGIN = 64 * 1024 * 1024  # room left free after an import, as after a pull
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class ModelNotFound(LookupError):
    """No installed model has that name."""


class StoreError(Exception):
    """A model operation that cannot be done; the message says why."""


def valid_id(name: str) -> bool:
    """True for a plain model id: no separators, no '..', not absolute."""
    return bool(_ID_RE.match(name)) and ".." not in name


def check_id(name: str) -> str:
    if not valid_id(name):
        raise StoreError(f"invalid model name {name!r}: use letters, digits, '.', '_', '-' "
                         "(no paths)")
    return name


def model_path(model_id: str) -> Path:
    return models_dir() / f"{check_id(model_id)}.gguf"


def installed() -> list[str]:
    """Ids of installed models (the starter counts as installed: it is always available)."""
    ids = {p.stem for p in models_dir().glob("*.gguf") if valid_id(p.stem)}
    ids.add(STARTER_ID)
    return sorted(ids)



def resolve(name: str, allow_path: bool = False) -> tuple[str, Path]:
    """(id, path) for a model id, or for a .gguf path when ``allow_path`` (CLI only); the
    default model is named by ``models.defaults`` first."""
    if name == STARTER_ID:
        try:
            return STARTER_ID, ensure_starter()
        except StarterMissing as exc:
            raise ModelNotFound(str(exc)) from exc
    if allow_path and (name.endswith(".gguf") or "/" in name or "\\" in name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelNotFound(f"no such model file: {path}")
        return path.stem, path.resolve()
    entry = lookup(name) if valid_id(name) else None
    if entry is not None:
        name = entry.id
    if not valid_id(name):
        raise ModelNotFound(f"invalid model name {name!r}")
    path = models_dir() / f"{name}.gguf"
    if not path.is_file():
        hint = f"; pull it with `localembed pull {name}`" if entry else ""
        raise ModelNotFound(
            f"model {name!r} is not installed{hint}; installed: {', '.join(installed())}")
    return name, path


def describe(model_id: str) -> ModelDescription:
    """What `ls`, /v1/models and the web UI show about an installed model (no loading); a file
    that cannot be served is described with its ``error``."""
    from localembed.engine.inspect import ModelLoadError, inspect_gguf

    _, path = resolve(model_id)
    facts: dict = {"modified": modified(path)}
    entry = lookup(model_id)
    if entry:
        facts.update(description=entry.description, license=entry.license, repo=entry.repo)
    elif model_id == STARTER_ID:
        facts.update(description=STARTER["description"], license=STARTER["license"])
    meta = models_dir() / f"{model_id}.json"
    if meta.exists():
        facts["source"] = json.loads(meta.read_text())
    try:
        info = inspect_gguf(path)
    except ModelLoadError as exc:
        return ModelDescription(id=model_id, path=str(path), size_bytes=path.stat().st_size,
                                error=str(exc), **facts)
    return ModelDescription.of(model_id, info, **facts)


def remove(model_id: str) -> None:
    """Delete an installed model's files."""
    with removal(model_id):
        pass


@contextmanager
def removal(model_id: str) -> Iterator[None]:
    """Delete an installed model around what must happen first (unloading it from a server).

    The file is first moved aside (an atomic rename in its own directory, which needs the same
    permission as deleting it): a read-only or immutable model directory fails here, before
    the caller's block runs, so nothing has changed. If the block fails, the file is put back;
    once it succeeds, the moved-aside file and the model's record are deleted.
    """
    check_id(model_id)
    if model_id == STARTER_ID:
        raise StoreError("the starter model is built in and cannot be removed")
    path = models_dir() / f"{model_id}.gguf"
    if not path.exists():
        raise ModelNotFound(f"model {model_id!r} is not installed")
    aside = path.with_name(f".{path.name}.removing")  # not *.gguf: no longer listed
    os.replace(path, aside)
    try:
        yield
    except BaseException:
        os.replace(aside, path)
        raise
    try:
        aside.unlink()
    except OSError:  # never hide a model that could not be deleted
        os.replace(aside, path)
        raise
    (models_dir() / f"{model_id}.json").unlink(missing_ok=True)


def _import_source(src: Path) -> BertFolder | None:
    """What an import reads from ``src``: a model folder's settings, or None for a file.

    A folder is checked to be a sentence-transformers model (its config.json first) before
    anything under it is sized or read, so `import /` or a folder of documents is refused at
    once rather than after stating every file beneath it; a path that cannot be read is a
    clear refusal too, not an I/O error.
    """
    from localembed.models.convert import inspect_folder

    try:
        if src.is_dir():
            return inspect_folder(src)  # ConversionError: not a model folder
        if src.is_file():
            return None
        exists = src.exists()
    except OSError as exc:
        raise StoreError(f"cannot read {src}: {exc.strerror or exc}") from exc
    raise StoreError(f"{src} is not a .gguf file or a model folder" if exists
                     else f"{src} does not exist")


def import_model(source: str | os.PathLike[str], model_id: str | None = None,
                 progress: Callable[[str], None] | None = None) -> str:
    """Install a .gguf file (validated, probed) or convert a sentence-transformers folder."""
    from localembed.engine.inspect import inspect_gguf
    from localembed.engine.llama import RunnerOptions
    from localembed.engine.probe import check_model
    from localembed.models.convert import convert_folder

    src = Path(source).expanduser()
    folder = _import_source(src)
    model_id = check_id(model_id or re.sub(r"[^A-Za-z0-9._-]", "-", src.stem).lower().strip("-."))
    target = models_dir() / f"{model_id}.gguf"
    if target.exists() or model_id == STARTER_ID:
        raise StoreError(f"a model named {model_id!r} is already installed; choose another "
                         "name with --id or remove it first")
    say = progress or (lambda _m: None)
    read = folder.input_files() if folder is not None else [src]
    needed = sum(p.stat().st_size for p in read) + DISK_MARGIN
    free = shutil.disk_usage(models_dir()).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"importing {src.name} needs about {needed // 10**6} MB "
                      f"and only {free // 10**6} MB are free", str(models_dir()))
    if folder is not None:
        convert_folder(src, target, dtype="f16", progress=say)
    else:
        info = inspect_gguf(src)  # ModelLoadError for anything unservable
        say(f"checking {src.name} ({info.arch}, {info.family.name}) in a separate process")
        check_model(info, RunnerOptions())
        fd, tmp = tempfile.mkstemp(prefix=f".{model_id}.", suffix=".part", dir=models_dir())
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    try:
        (models_dir() / f"{model_id}.json").write_text(json.dumps(
            {"id": model_id, "imported_from": str(src.resolve()), "imported_at": time.time()},
            indent=2))
    except OSError:  # all or nothing: no model without its record
        target.unlink(missing_ok=True)
        (models_dir() / f"{model_id}.json").unlink(missing_ok=True)
        raise
    return model_id


def disk_usage() -> int:
    return sum(p.stat().st_size for p in models_dir().rglob("*") if p.is_file())


def model_sha256(path: Path) -> str:
    """The sha256 of a model file: what a collection's vectors are bound to. Hashing a
    gigabyte takes seconds, so the digest is kept in the home's cache, keyed by the file's
    path, size and modification time (a changed file is hashed again)."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache = home_dir() / "cache" / "sha256.json"
    try:
        known = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), str):
        return known[key]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    known = known if isinstance(known, dict) else {}
    known[key] = digest.hexdigest()
    try:  # a cache: failing to write it only means hashing again next time
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_private(cache, json.dumps(known))
    except OSError:
        pass
    return known[key]
