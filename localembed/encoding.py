"""Output encodings of embedding vectors: float lists, base64, and quantized dtypes.

The OpenAI SDKs ask for base64 by default and decode little-endian float32, so base64 is always
little-endian float32 here regardless of the host. The quantized dtypes follow the convention
sentence-transformers, Cohere and Mistral share: ``int8``/``uint8`` scale each value of the
(unit) vector to 8 bits; ``binary``/``ubinary`` pack the sign bits 8 per byte, most
significant bit first, as int8 (offset by -128) or uint8.
"""

from __future__ import annotations

import base64

import numpy as np

OUTPUT_DTYPES = ("float", "int8", "uint8", "binary", "ubinary")
ENCODING_FORMATS = ("float", "base64")


def quantize(vectors: np.ndarray, dtype: str) -> np.ndarray:
    """``vectors`` (rows of floats, normally unit length) in ``dtype``."""
    if dtype == "float":
        return vectors.astype(np.float32, copy=False)
    if dtype == "int8":
        return np.clip(np.rint(vectors * 127.0), -127, 127).astype(np.int8)
    if dtype == "uint8":
        return np.clip(np.rint((vectors + 1.0) * 127.5), 0, 255).astype(np.uint8)
    if dtype in ("binary", "ubinary"):
        packed = np.packbits(vectors > 0, axis=-1)
        if dtype == "ubinary":
            return packed
        return (packed.astype(np.int16) - 128).astype(np.int8)
    raise ValueError(f"unknown output dtype {dtype!r}")


def encode_rows(values: np.ndarray, encoding_format: str) -> list:
    """One JSON value per row: a list of numbers, or base64 of the row's little-endian bytes."""
    if encoding_format == "base64":
        little = values.astype(values.dtype.newbyteorder("<"), copy=False)
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
    if values.dtype.kind == "f":
        return [[float(x) for x in row] for row in values.tolist()]
    return values.tolist()
