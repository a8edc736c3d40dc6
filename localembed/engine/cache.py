"""Vectors already computed, answered without a decode.

An entry is one sequence's pooled output (before dimensions are cut and the vector is
normalised) keyed by the model file and the exact token ids the engine would decode: the
prompt, the title, truncation and special tokens are all in those ids, so two requests share
an entry exactly when llama.cpp would be given the same input. What is done after pooling
(``dimensions``, ``normalize``) is applied to the cached output as to a fresh one, so a hit
gives the vector the first request got, bit for bit.

Held in memory, least recently used first out, bounded by bytes; optionally also in a SQLite
file, so that a restart, a re-index or another process on the same home finds them too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from localembed.config.settings import DEFAULT_CACHE_MB

MIB = 1024 * 1024
DEFAULT_CACHE_BYTES = DEFAULT_CACHE_MB * MIB
# What an entry costs beyond its floats (the key, the dict slot, the array header).
ENTRY_OVERHEAD = 160


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    entries: int
    bytes: int
    max_bytes: int
    disk_hits: int = 0
    disk_entries: int = 0
    disk_bytes: int = 0

    @property
    def hit_rate(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0


def model_key(path: str | os.PathLike[str], *settings: object) -> bytes:
    """A model file's identity (its path, size and modification time: a file replaced or
    re-downloaded is another model) with the engine settings that change its numbers
    (flash attention, repacked kernels, GPU offload)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    text = "|".join([str(resolved), str(stat.st_size), str(stat.st_mtime_ns),
                     *map(repr, settings)])
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _key(model: bytes, tokens: Sequence[int]) -> bytes:
    return hashlib.blake2b(model + array("i", tokens).tobytes(), digest_size=16).digest()


class VectorCache:
    """Thread-safe: every HTTP thread looks up and stores through one cache."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES, disk: Path | None = None,
                 disk_bytes: int = 0) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._hits = self._misses = self._disk_hits = 0
        self._lock = threading.Lock()
        self._disk = _DiskTier(disk, disk_bytes) if disk is not None and disk_bytes > 0 else None

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0 or self._disk is not None

    def lookup(self, model: bytes, sequences: Sequence[Sequence[int]]
               ) -> tuple[list[bytes], list[np.ndarray | None]]:
        """Each sequence's key and its cached output (None for a miss)."""
        keys = [_key(model, s) for s in sequences]
        found: list[np.ndarray | None] = []
        with self._lock:
            for key in keys:
                vector = self._entries.get(key)
                if vector is not None:
                    self._entries.move_to_end(key)
                found.append(vector)
        if self._disk is not None and any(v is None for v in found):
            missing = [i for i, v in enumerate(found) if v is None]
            for i, vector in zip(missing, self._disk.get([keys[i] for i in missing]),
                                 strict=True):
                if vector is not None:
                    found[i] = vector
                    self._remember(keys[i], vector)
                    with self._lock:
                        self._disk_hits += 1
        hits = sum(v is not None for v in found)
        with self._lock:
            self._hits += hits
            self._misses += len(found) - hits
        return keys, found

    def store(self, keys: Sequence[bytes], vectors: Sequence[np.ndarray]) -> None:
        """Remember computed outputs (copies: a row of a batch would keep the batch alive)."""
        copies = [np.array(v, dtype=np.float32, copy=True) for v in vectors]
        for v in copies:
            v.flags.writeable = False  # shared by every request that hits it
        for key, vector in zip(keys, copies, strict=True):
            self._remember(key, vector)
        if self._disk is not None:
            # a full disk or a locked file: the memory tier still has them
            with contextlib.suppress(sqlite3.Error):
                self._disk.put(list(zip(keys, copies, strict=True)))

    def _remember(self, key: bytes, vector: np.ndarray) -> None:
        size = vector.nbytes + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes + ENTRY_OVERHEAD
            self._entries[key] = vector
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes + ENTRY_OVERHEAD

    def stats(self) -> CacheStats:
        with self._lock:
            memory = (self._hits, self._misses, len(self._entries), self._bytes,
                      self.max_bytes, self._disk_hits)
        disk = self._disk.size() if self._disk is not None else (0, 0)
        return CacheStats(*memory, *disk)

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()


class _DiskTier:
    """Entries in a SQLite file, oldest first out past ``max_bytes``."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a lost entry is only a decode again
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB UNIQUE NOT NULL, "
                         "vector BLOB NOT NULL)")
        self._entries, self._bytes = self._db.execute(
            "SELECT count(*), coalesce(sum(length(vector)), 0) FROM vectors").fetchone()

    def get(self, keys: list[bytes]) -> list[np.ndarray | None]:
        with self._lock:
            found: dict[bytes, bytes] = {}
            for start in range(0, len(keys), 500):
                part = keys[start:start + 500]
                marks = ",".join("?" * len(part))
                found.update(self._db.execute(
                    f"SELECT key, vector FROM vectors WHERE key IN ({marks})", part))
        return [None if (blob := found.get(key)) is None
                else np.frombuffer(blob, dtype=np.float32) for key in keys]

    def put(self, items: list[tuple[bytes, np.ndarray]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for key, vector in items:
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO vectors (key, vector) VALUES (?, ?)",
                        (key, vector.tobytes()))
                    if cursor.rowcount:
                        self._entries += 1
                        self._bytes += vector.nbytes
                while self._bytes > self.max_bytes and self._entries:
                    gone = self._db.execute(
                        "DELETE FROM vectors WHERE rowid IN (SELECT rowid FROM vectors "
                        "ORDER BY rowid LIMIT 256) RETURNING length(vector)").fetchall()
                    self._entries -= len(gone)
                    self._bytes -= sum(n for (n,) in gone)
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise

    def size(self) -> tuple[int, int]:
        with self._lock:
            return self._entries, self._bytes

    def close(self) -> None:
        with self._lock:
            self._db.close()
