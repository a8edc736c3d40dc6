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
    return values.tolist()  # Python floats (or ints) already: no per-number conversion


# vLLM's base64 options: the float type and the byte order of the encoded values.
EMBED_DTYPES = ("float32", "float16", "bfloat16")
ENDIANNESS = ("native", "little", "big")


def to_bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest, ties to even."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = bits + (((bits >> 16) & 1) + 0x7FFF)
    return (rounded >> 16).astype(np.uint16)


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def as_embed_dtype(values: np.ndarray, embed_dtype: str) -> np.ndarray:
    """The values as stored in ``embed_dtype`` (bfloat16 as its uint16 bit patterns)."""
    if embed_dtype == "float32":
        return values.astype(np.float32, copy=False)
    if embed_dtype == "float16":
        return values.astype(np.float16)
    if embed_dtype == "bfloat16":
        return to_bfloat16_bits(values)
    raise ValueError(f"unknown embed dtype {embed_dtype!r}")


def rounded_to(values: np.ndarray, embed_dtype: str) -> np.ndarray:
    """Float values carrying only ``embed_dtype``'s precision (for float output)."""
    stored = as_embed_dtype(values, embed_dtype)
    if embed_dtype == "bfloat16":
        return from_bfloat16_bits(stored)
    return stored.astype(np.float32, copy=False)


def encode_base64(values: np.ndarray, embed_dtype: str = "float32",
                  endianness: str = "little") -> list[str]:
    """One base64 string per row, in ``embed_dtype`` with the requested byte order."""
    stored = as_embed_dtype(values, embed_dtype)
    order = {"native": "=", "little": "<", "big": ">"}[endianness]
    data = stored.astype(stored.dtype.newbyteorder(order), copy=False).tobytes()
    step = stored.itemsize * stored.shape[1]
    # One copy of the whole array, cut in bytes: no numpy view per row.
    return [base64.b64encode(data[i * step:(i + 1) * step]).decode("ascii")
            for i in range(len(stored))]
