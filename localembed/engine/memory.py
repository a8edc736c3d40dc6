"""What a loaded model holds in memory, and giving back what it no longer needs.

llama.cpp maps the GGUF file and, where it repacks weights into its CPU-specific layouts
("extra buffer types"), copies those tensors out of the mapping into anonymous memory. The
mapped pages it read them from stay resident (and counted in RSS) although nothing reads them
again: a repacked model then holds its weights twice. Dropping the mapping's resident pages
after the load (``madvise(MADV_DONTNEED)``) gives that copy back; pages of tensors still used
from the mapping fault back in from the page cache on their next read, with no disk I/O, so
this is safe whatever was repacked.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Collection
from pathlib import Path

MADV_DONTNEED = 4  # Linux


def resident_bytes() -> int | None:
    """This process's resident memory (Linux /proc); None where that cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def mapped_ranges(path: Path) -> list[tuple[int, int, int]]:
    """(start, length, resident bytes) of each of this process's mappings of ``path``."""
    target = str(Path(path).resolve())
    ranges: list[tuple[int, int, int]] = []
    try:
        with open("/proc/self/smaps") as smaps:
            current: list[int] | None = None
            for line in smaps:
                head = line.split(maxsplit=5)
                if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                    current = None
                    if len(head) == 6 and head[5].strip() == target:
                        start, end = (int(x, 16) for x in head[0].split("-"))
                        current = [start, end - start, 0]
                        ranges.append(current)  # type: ignore[arg-type]
                elif current is not None and head[0] == "Rss:":
                    current[2] = int(head[1]) * 1024
    except OSError:
        return []
    return [tuple(r) for r in ranges]  # type: ignore[misc]


def release_mapped_pages(path: Path, keep: Collection[int] = ()) -> int:
    """Drop this process's resident pages of ``path``'s mappings but those starting at an
    address in ``keep`` (another model's mapping of the same file, still in use); the bytes
    released (0 where the platform has no such call)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    released = 0
    for start, length, resident in mapped_ranges(path):
        if start in keep:
            continue
        with contextlib.suppress(OSError):
            if madvise(start, length, MADV_DONTNEED) == 0:
                released += resident
    return released
