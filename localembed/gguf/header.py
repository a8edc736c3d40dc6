"""Reading a GGUF file's header: its metadata and tensor table, never its vocabulary.

``gguf.GGUFReader`` turns every element of every metadata array into numpy objects, so a model
with a real vocabulary (Qwen3: 151,669 tokens and as many merges; EmbeddingGemma: 262,144
tokens with scores and types) takes many seconds to open. Everything localembed needs before
loading a model is in the scalar and string values and in the tensor table, so this reader
decodes those and steps over arrays: numeric arrays in one jump, string arrays by hopping from
length prefix to length prefix over a memory map. A header with a quarter of a million tokens
is read in milliseconds.

Malformed input (a wrong version, absurd counts or lengths, a file that ends inside the header)
raises ``GGUFHeaderError``: every length and count is checked against the file's size before it
is used, so a bad file can neither hang the reader nor make it allocate memory.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from localembed.config.imports import partial_package

# gguf's constants without the rest of the package (config.imports says why).
gguf = partial_package("gguf", "constants")
GGML_QUANT_SIZES = gguf.GGML_QUANT_SIZES

# localembed's own metadata keys. llama.cpp ignores keys it does not know; localembed reads
# these to honour what sentence-transformers configured for the model.
MAX_SEQ_LENGTH_KEY = "sentence_transformers.max_seq_length"
# A converted BERT cross-encoder's document (token type 1) ids start here (see convert.py).
SEGMENT_B_KEY = "localembed.segment_b_offset"

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS: llama.cpp refuses tensors with more

# Metadata value types (gguf.GGUFValueType), with the struct format of the fixed-size ones.
STRING, ARRAY = 8, 9
_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?",
                   10: "Q", 11: "q", 12: "d"}
UINT32 = 4
# The fewest bytes one key/value pair (8-byte key length, 4-byte type, 1-byte value) and one
# tensor description (name length, dimension count, type, offset) can take: counts that could
# not fit in the file are refused before any loop runs.
_MIN_KV_BYTES = 13
_MIN_TENSOR_BYTES = 24
# ggml type -> (elements per block, bytes per block)
_TYPE_SIZES = {int(t): sizes for t, sizes in GGML_QUANT_SIZES.items()}


class GGUFHeaderError(ValueError):
    """The file is not a well-formed GGUF header; the message says what is wrong."""


@dataclass(frozen=True)
class ArrayInfo:
    """A metadata array, described but not read: its item type, length and position."""

    item_type: int
    count: int
    offset: int  # where its first item starts in the file


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table."""

    name: str
    shape: tuple[int, ...]  # GGUF order: the fastest-varying dimension (ne[0]) first
    ggml_type: int
    data_offset: int  # absolute position of its data in the file
    n_bytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class GGUFHeader:
    """A GGUF file's metadata and tensor table.

    ``fields`` holds each key's raw value: int, float or bool for numbers, ``bytes`` for strings
    (decoded by ``get``) and an ``ArrayInfo`` for arrays, whose items are never read.
    """

    path: Path
    version: int
    byte_order: str  # "<" or ">" (a file written on a big-endian machine)
    fields: Mapping[str, object]
    types: Mapping[str, int]
    tensors: tuple[TensorInfo, ...]
    alignment: int
    data_offset: int  # where the tensor data section starts

    def get(self, key: str) -> object | None:
        """The value of ``key``, strings decoded; None if absent or not valid UTF-8."""
        value = self.fields.get(key)
        if isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return value

    def array_length(self, key: str) -> int | None:
        """The number of items of array ``key`` (e.g. the vocabulary size), or None."""
        value = self.fields.get(key)
        return value.count if isinstance(value, ArrayInfo) else None


def read_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Read the metadata and tensor table of the GGUF file at ``path``.

    Raises ``GGUFHeaderError`` for anything that is not a well-formed GGUF v2/v3 header, and
    ``OSError`` when the file cannot be read.
    """
    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 24:
            if f.read(4) != MAGIC:
                raise GGUFHeaderError("not a GGUF file (no GGUF magic)")
            raise GGUFHeaderError(f"the file ends inside the GGUF header ({size} bytes)")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _Parser(buf, size).parse(path)


class _Parser:
    def __init__(self, buf: mmap.mmap, size: int) -> None:
        self.buf = buf
        self.size = size
        self.off = 0
        self.order = "<"

    # -- primitives ---------------------------------------------------------------------------

    def _need(self, n: int, what: str) -> None:
        if n < 0 or self.off + n > self.size:
            raise GGUFHeaderError(
                f"{what} at byte {self.off} runs past the end of the file ({self.size} bytes)")

    def _unpack(self, fmt: str, n: int, what: str) -> tuple:
        self._need(n, what)
        values = struct.unpack_from(self.order + fmt, self.buf, self.off)
        self.off += n
        return values

    def _u32(self, what: str) -> int:
        return self._unpack("I", 4, what)[0]

    def _u64(self, what: str) -> int:
        return self._unpack("Q", 8, what)[0]

    def _string(self, what: str) -> bytes:
        n = self._u64(what)
        self._need(n, what)
        data = self.buf[self.off:self.off + n]
        self.off += n
        return data

    def _name(self, what: str) -> str:
        raw = self._string(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GGUFHeaderError(f"{what} at byte {self.off - len(raw)} is not UTF-8") from exc

    # -- structure ----------------------------------------------------------------------------

    def parse(self, path: Path) -> GGUFHeader:
        if self.buf[:4] != MAGIC:
            raise GGUFHeaderError("not a GGUF file (no GGUF magic)")
        self.off = 4
        version = struct.unpack_from("<I", self.buf, 4)[0]
        if version & 0xFFFF == 0:  # written for the other byte order (as GGUFReader decides)
            self.order = ">"
            version = struct.unpack_from(">I", self.buf, 4)[0]
        if version not in SUPPORTED_VERSIONS:
            raise GGUFHeaderError(
                f"GGUF version {version} is not supported (only versions 2 and 3 are)")
        self.off = 8
        n_tensors = self._u64("the tensor count")
        n_kv = self._u64("the metadata count")
        room = self.size - self.off
        if n_kv * _MIN_KV_BYTES > room:
            raise GGUFHeaderError(f"the header claims {n_kv} metadata entries, more than the "
                                  f"file could hold")
        if n_tensors * _MIN_TENSOR_BYTES > room:
            raise GGUFHeaderError(f"the header claims {n_tensors} tensors, more than the file "
                                  f"could hold")

        fields: dict[str, object] = {}
        types: dict[str, int] = {}
        for _ in range(n_kv):
            key = self._name("a metadata key")
            if key in fields:
                raise GGUFHeaderError(f"duplicate metadata key {key!r}")
            vtype = self._u32(f"the type of {key}")
            fields[key] = self._value(key, vtype)
            types[key] = vtype

        alignment = DEFAULT_ALIGNMENT
        if "general.alignment" in fields:
            value = fields["general.alignment"]
            if types["general.alignment"] != UINT32:
                raise GGUFHeaderError("general.alignment is not a uint32")
            assert isinstance(value, int)
            if value == 0 or value & (value - 1):
                raise GGUFHeaderError(f"general.alignment {value} is not a power of two")
            alignment = value

        infos = [self._tensor_info() for _ in range(n_tensors)]
        data_offset = self.off + (-self.off) % alignment
        tensors = []
        seen: set[str] = set()
        for name, shape, ggml_type, offset in infos:
            if name in seen:
                raise GGUFHeaderError(f"duplicate tensor {name!r}")
            seen.add(name)
            block, type_size = _TYPE_SIZES[ggml_type]
            n_elements = 1
            for d in shape:
                n_elements *= d
            tensors.append(TensorInfo(name, shape, ggml_type, data_offset + offset,
                                      n_elements * type_size // block))
        return GGUFHeader(
            path=path, version=version, byte_order=self.order,
            fields=MappingProxyType(fields), types=MappingProxyType(types),
            tensors=tuple(tensors), alignment=alignment, data_offset=data_offset,
        )

    def _value(self, key: str, vtype: int) -> object:
        fmt = _SCALAR_FORMATS.get(vtype)
        if fmt is not None:
            return self._unpack(fmt, struct.calcsize(fmt), f"the value of {key}")[0]
        if vtype == STRING:
            return self._string(f"the value of {key}")
        if vtype == ARRAY:
            item_type = self._u32(f"the item type of {key}")
            count = self._u64(f"the length of {key}")
            start = self.off
            self._skip_array(key, item_type, count)
            return ArrayInfo(item_type, count, start)
        raise GGUFHeaderError(f"{key} has an unknown value type {vtype}")

    def _skip_array(self, key: str, item_type: int, count: int) -> None:
        """Step over ``count`` items without decoding them."""
        what = f"the array {key}"
        fmt = _SCALAR_FORMATS.get(item_type)
        if fmt is not None:
            self._need(count * struct.calcsize(fmt), what)
            self.off += count * struct.calcsize(fmt)
        elif item_type == STRING:
            self._need(count * 8, what)  # each item has at least its 8-byte length
            self.off = _skip_strings(self.buf, self.off, count, self.size, self.order, what)
        elif item_type == ARRAY:  # nested arrays: allowed by the format, rare in practice
            self._need(count * 12, what)
            for _ in range(count):
                inner_type = self._u32(what)
                inner_count = self._u64(what)
                self._skip_array(key, inner_type, inner_count)
        else:
            raise GGUFHeaderError(f"{key} has an unknown item type {item_type}")

    def _tensor_info(self) -> tuple[str, tuple[int, ...], int, int]:
        name = self._name("a tensor name")
        n_dims = self._u32(f"the dimension count of tensor {name}")
        if n_dims > MAX_DIMS:
            raise GGUFHeaderError(f"tensor {name} has {n_dims} dimensions (at most {MAX_DIMS})")
        shape = self._unpack("Q" * n_dims, 8 * n_dims, f"the shape of tensor {name}")
        ggml_type = self._u32(f"the type of tensor {name}")
        if ggml_type not in _TYPE_SIZES:
            raise GGUFHeaderError(f"tensor {name} has an unknown type {ggml_type}")
        block = _TYPE_SIZES[ggml_type][0]
        if shape and shape[0] % block:
            raise GGUFHeaderError(f"tensor {name} has rows of {shape[0]} values, not a multiple "
                                  f"of its type's block size {block}")
        offset = self._u64(f"the data offset of tensor {name}")
        return name, tuple(shape), ggml_type, offset


def _skip_strings(buf: mmap.mmap, off: int, count: int, size: int, order: str,
                  what: str) -> int:
    """The offset just past ``count`` length-prefixed strings starting at ``off``.

    The one loop that sees every token of a vocabulary: kept to a bare unpack and add. A length
    that points past the end of the file makes the next unpack fail (struct.error), which ends
    the loop at once whatever ``count`` claims.
    """
    length = struct.Struct(order + "Q").unpack_from
    try:
        for _ in range(count):
            off += 8 + length(buf, off)[0]
    except (struct.error, OverflowError):  # an offset past the end, or past any file size
        off = size + 1
    if off > size:
        raise GGUFHeaderError(f"{what} runs past the end of the file ({size} bytes)")
    return off
