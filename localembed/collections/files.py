"""Files uploaded for vector stores (OpenAI's ``/v1/files``), read as a collection reads any
file, and each vector store's record (display name, metadata) beside its collection.

Layout, and why:

* ``<home>/files/<file id>/<name>``: the upload under a safe form of its own name, because the
  extension decides how its text is read (``sources.format_of``), exactly as for a file on disk;
  ``.file.json`` beside it says its id, original name, size, purpose and time. A file exists
  once its ``.file.json`` does (written last, atomically), so a crash mid-upload leaves a
  folder that is never listed, and is removed with the file's id never handed out.
* ``<home>/collections/<store id>.vector_store.json``: a store's name and metadata, beside its
  collection's database; the collection is the store (its documents are the files), this is
  what OpenAI shows of it that a collection has no place for.

Files and records are readable by their owner only: they are the user's documents.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from localembed.collections.sources import Document, ReadOptions, Skipped, read_sources
from localembed.config.paths import collections_dir, files_dir, write_private

FILE_PREFIX = "file-"
STORE_PREFIX = "vs_"
META = ".file.json"  # a name no upload gets: safe names never start with "."
STORE_SUFFIX = ".vector_store.json"
_FILE_ID = re.compile(r"^file-[0-9a-f]{32}$")
_STORE_ID = re.compile(r"^vs_[0-9a-f]{32}$")
_UNSAFE = re.compile(r"[^\w.\- ]+")
COPY_BLOCK = 1 << 20
UNSUPPORTED = "not a supported format"


class FileNotFound(LookupError):
    """No uploaded file has that id."""


class FileTooLarge(ValueError):
    """An upload over the server's limit; nothing of it was kept."""


class UnreadableFile(ValueError):
    """A file whose text cannot be read; ``unsupported`` when its format is not one localembed
    reads (by extension), else it is damaged, binary, empty, ..."""

    def __init__(self, message: str, unsupported: bool) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(frozen=True)
class StoredFile:
    id: str
    filename: str  # as uploaded (its last path part)
    bytes: int
    created_at: int
    purpose: str
    stored_name: str  # the name on disk
    created: float = 0.0  # created_at to the microsecond: the order of uploads in one second

    @property
    def path(self) -> Path:
        return files_dir() / self.id / self.stored_name


def is_file_id(text: str) -> bool:
    return bool(_FILE_ID.match(text))


def is_store_id(text: str) -> bool:
    return bool(_STORE_ID.match(text))


def new_store_id() -> str:
    return f"{STORE_PREFIX}{uuid.uuid4().hex}"


def display_name(filename: str) -> str:
    """The last part of an uploaded name (a client may send a path), without control
    characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in name if unicodedata.category(c)[0] != "C").strip() or "upload"


def safe_name(filename: str) -> str:
    """A name for the disk that keeps the extension: letters, digits, '.', '_', '-', ' '; never
    hidden, never empty, at most 120 characters."""
    name = _UNSAFE.sub("_", unicodedata.normalize("NFC", display_name(filename))).strip(" .")
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    stem = stem.strip(" .")[:100] or "upload"
    return f"{stem}.{extension[:19]}" if extension else stem


# -- uploaded files -------------------------------------------------------------------------------

def save_upload(stream: BinaryIO, filename: str, purpose: str, limit: int) -> StoredFile:
    """Keep an upload: its bytes under a new id, then its record. Over ``limit`` bytes is a
    FileTooLarge, and a failure at any point leaves nothing behind."""
    file_id = f"{FILE_PREFIX}{uuid.uuid4().hex}"
    folder = files_dir() / file_id
    folder.mkdir(mode=0o700)
    try:
        stored_name = safe_name(filename)
        size = _copy(stream, folder / stored_name, limit)
        now = time.time()
        record = StoredFile(file_id, display_name(filename), size, int(now), purpose,
                            stored_name, now)
        write_private(folder / META, json.dumps(asdict(record), ensure_ascii=False))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return record


def _copy(stream: BinaryIO, target: Path, limit: int) -> int:
    fd, temporary = tempfile.mkstemp(prefix=".upload.", dir=target.parent)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while block := stream.read(COPY_BLOCK):
                size += len(block)
                if size > limit:
                    raise FileTooLarge(f"the file is larger than this server takes "
                                       f"({limit} bytes)")
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return size


def get_file(file_id: str) -> StoredFile:
    if not is_file_id(file_id):
        raise FileNotFound(f"No file with id {file_id!r}.")
    try:
        data = json.loads((files_dir() / file_id / META).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFound(f"No file with id {file_id!r}.") from None
    return StoredFile(**data)


def list_files() -> list[StoredFile]:
    """Every uploaded file, oldest first."""
    found = []
    for folder in files_dir().iterdir():
        if is_file_id(folder.name):
            try:
                found.append(get_file(folder.name))
            except (FileNotFound, ValueError, TypeError):  # being written or removed
                continue
    return sorted(found, key=lambda f: (f.created or f.created_at, f.id))


def delete_file(file_id: str) -> None:
    """Remove an upload: its record first (it is then gone), then its bytes."""
    stored = get_file(file_id)
    folder = files_dir() / stored.id
    (folder / META).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def read_document(stored: StoredFile, metadata: Mapping[str, object]) -> Document:
    """An uploaded file as one document (id = the file's id, title = its name), its text read
    as ``read_sources`` reads that file on disk; a record file's records are joined, in order,
    into one text. UnreadableFile says why there is no text."""
    text: list[str] = []
    skipped: list[Skipped] = []
    line_based = True
    options = ReadOptions(max_file_bytes=max(stored.bytes, ReadOptions().max_file_bytes))
    for item in read_sources([stored.path], options):
        if isinstance(item, Skipped):
            skipped.append(item)
        else:
            text.append(item.text)
            line_based = line_based and item.line_based
    if not text:
        reasons = "; ".join(dict.fromkeys(s.reason for s in skipped)) or "no text"
        unsupported = any(s.reason == UNSUPPORTED for s in skipped)
        if unsupported:
            reasons = (f"{stored.filename!r} is not a supported format: localembed reads "
                       "text, Markdown, HTML, PDF, source code and JSON Lines/CSV records")
        raise UnreadableFile(reasons, unsupported)
    return Document(id=stored.id, text="\n\n".join(text), source=str(stored.path),
                    title=stored.filename, metadata=dict(metadata),
                    line_based=line_based and len(text) == 1)


# -- vector store records -------------------------------------------------------------------------

@dataclass
class StoreRecord:
    """What OpenAI shows of a store that its collection does not hold."""

    name: str = ""
    description: str | None = None
    metadata: dict[str, str] | None = None
    created: float = field(default_factory=time.time)  # to the microsecond, for the order
    last_active_at: int | None = None

    @property
    def created_at(self) -> int:
        return int(self.created)


def _record_path(store_id: str) -> Path:
    if not is_store_id(store_id):
        raise ValueError(f"not a vector store id: {store_id!r}")
    return collections_dir() / f"{store_id}{STORE_SUFFIX}"


def read_store_record(store_id: str) -> StoreRecord | None:
    try:
        data = json.loads(_record_path(store_id).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    known = StoreRecord.__dataclass_fields__
    return StoreRecord(**{k: v for k, v in data.items() if k in known})


def write_store_record(store_id: str, record: StoreRecord) -> None:
    write_private(_record_path(store_id), json.dumps(asdict(record), ensure_ascii=False))


def remove_store_record(store_id: str) -> None:
    _record_path(store_id).unlink(missing_ok=True)
