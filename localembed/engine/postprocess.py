"""Vector post-processing: L2 normalisation and Matryoshka truncation.

Pure numpy on whole batches, run in the caller's thread so the model worker only decodes.
"""

from __future__ import annotations

import numpy as np


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero instead of becoming NaN."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def finish(vectors: np.ndarray, dimensions: int, normalize: bool) -> np.ndarray:
    """Cut pooled vectors to ``dimensions`` and normalise.

    Matryoshka models put the most information first, so a prefix of the full vector is a
    smaller embedding; it only has unit length again after re-normalising the prefix.
    """
    out = np.ascontiguousarray(vectors[:, :dimensions], dtype=np.float32)
    return l2_normalize(out) if normalize else out
