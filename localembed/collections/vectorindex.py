"""What a search scans: every stored vector as int8 codes with its own scale, in memory.

Exact float32 cosine is bound by memory bandwidth: 1M x 768 is 3 GB read per query (114 ms on
the 2-core Zen 4 this was measured on, 11 ms at 100k x 384). Int8 codes are a quarter of that,
and SimSIMD's int8 dot-product kernels (picked at run time for the CPU: AVX-512 VNNI, AVX2,
NEON, or plain C) scan them on every core: 22 ms at 1M x 768, 0.8 ms at 100k x 384. The scan
only chooses candidates; ``search.find`` rescores them with the stored float32 vectors, so the
scores a search returns are exact cosines and only the choice of candidates is approximate
(recall@10 1.0 against exact on random unit vectors, the hard case for quantization, with 50
candidates; ``benchmarks/collections_bench.py`` measures it).

Each row is scaled by its own largest component (symmetric, no offset): a unit vector's
components are small and unevenly spread, and one scale for the whole collection would be
fixed by its first vectors. Not an approximate-neighbour graph (HNSW): building one over a
million vectors takes minutes on two cores and needs rebuilding as documents change, while
codes are made as fast as rows are read and updated by rowid (see ``refreshed``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import simsimd

# Codes (bytes) from which the scan is shared between the cores. Below it one thread is quick
# enough (1.5 ms at 100k x 384), and threads waiting for a core busy elsewhere (an index job
# embedding) made it slower, not faster: 8 ms instead of 1.5 with one of two cores taken.
THREADED_FROM = 256 * 1024 * 1024
_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 codes, float32 scales) with ``codes * scale ~= vectors``, row by row."""
    vectors = np.asarray(vectors, dtype=np.float32)  # N x D
    largest = np.abs(vectors).max(axis=1, initial=0.0)
    scales = np.where(largest > 0, largest / 127.0, 1.0).astype(np.float32)
    codes = np.rint(vectors / scales[:, None]).astype(np.int8)
    return codes, scales


@dataclass(frozen=True)
class VectorIndex:
    """Rowids (sorted, int64), their codes (N x D int8) and scales (N float32)."""

    rowids: np.ndarray
    codes: np.ndarray
    scales: np.ndarray

    @classmethod
    def empty(cls, dimensions: int) -> VectorIndex:
        return cls(np.empty(0, np.int64), np.empty((0, dimensions), np.int8),
                   np.empty(0, np.float32))

    @classmethod
    def of(cls, rowids: np.ndarray, vectors: np.ndarray) -> VectorIndex:
        codes, scales = quantize(vectors)
        return cls(np.asarray(rowids, dtype=np.int64), codes, scales)

    def __len__(self) -> int:
        return len(self.rowids)

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Approximate cosines of every row with a unit ``query`` (float32, in rowid order)."""
        if not len(self.rowids):
            return np.empty(0, np.float32)
        codes, scale = quantize(np.asarray(query, dtype=np.float32)[None, :])
        threads = _THREADS if self.codes.nbytes >= THREADED_FROM else 1
        dots = simsimd.cdist(codes, self.codes, metric="dot", out_dtype="float32",
                             threads=threads)
        return np.asarray(dots).reshape(-1) * (self.scales * scale[0])

    def refreshed(self, present: np.ndarray, new_rowids: np.ndarray,
                  new_vectors: np.ndarray) -> VectorIndex:
        """This index after a change: rows whose rowid is no longer ``present`` dropped, rows
        with the new (higher: rowids are never reused) rowids appended."""
        keep = np.isin(self.rowids, present, assume_unique=True)
        codes, scales = quantize(new_vectors)
        return VectorIndex(np.concatenate([self.rowids[keep], new_rowids.astype(np.int64)]),
                           np.concatenate([self.codes[keep], codes]),
                           np.concatenate([self.scales[keep], scales]))
