"""Reading a GGUF's header: what gguf.GGUFReader reads, without reading the vocabulary.

gguf.GGUFReader is the independent reference here: every header read by our reader must equal
what GGUFReader reads, field by field and tensor by tensor, and ``inspect_gguf`` must describe
a file exactly as it would with GGUFReader doing the reading. Malformed headers must fail with
a ModelLoadError that names the file, quickly, whatever counts and lengths they claim.
"""

from __future__ import annotations

import filecmp
import signal
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gguf
import numpy as np
import pytest

import localembed.testing.synthetic as synthetic_module
from localembed.engine import Engine
from localembed.engine import inspect as inspect_module
from localembed.engine.inspect import GGUFInfo, ModelLoadError, inspect_gguf
from localembed.gguf.header import ArrayInfo, GGUFHeader, TensorInfo, read_header
from localembed.models.starter import starter_path
from localembed.testing.synthetic import REAL_VOCAB, write_model

QWEN3_VOCAB = REAL_VOCAB["qwen3"]  # 151,669
GEMMA_VOCAB = REAL_VOCAB["gemma-embedding"]  # 262,144


@contextmanager
def no_hang(seconds: int = 60) -> Iterator[None]:
    """Fail instead of hanging (where the platform has SIGALRM)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# -- the reference: gguf.GGUFReader ----------------------------------------------------------


def reference_header(path: Path) -> GGUFHeader:
    """The header as gguf.GGUFReader reads it, in our reader's terms."""
    reader = gguf.GGUFReader(path)
    fields: dict[str, object] = {}
    types: dict[str, int] = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):  # the reader's own entries for the file's counts
            continue
        kind = field.types[0]
        types[key] = int(kind)
        if kind == gguf.GGUFValueType.ARRAY:
            start = field.offset + sum(int(p.nbytes) for p in field.parts[:5])
            fields[key] = ArrayInfo(int(field.types[-1]), len(field.data), start)
        elif kind == gguf.GGUFValueType.STRING:
            fields[key] = bytes(field.parts[-1])
        else:
            fields[key] = field.contents()
    return GGUFHeader(
        path=Path(path),
        version=int(reader.fields["GGUF.version"].parts[0][0]),
        byte_order=">" if (reader.byte_order == "S") == (sys.byteorder == "little") else "<",
        fields=fields, types=types,
        tensors=tuple(TensorInfo(t.name, tuple(int(d) for d in t.shape), int(t.tensor_type),
                                 int(t.data_offset), int(t.n_bytes)) for t in reader.tensors),
        alignment=int(reader.alignment), data_offset=int(reader.data_offset),
    )


def assert_same_header(ours: GGUFHeader, reference: GGUFHeader) -> None:
    assert ours.version == reference.version and ours.byte_order == reference.byte_order
    assert list(ours.fields) == list(reference.fields)  # same keys, same order
    for key, value in reference.fields.items():
        assert ours.types[key] == reference.types[key], key
        assert type(ours.fields[key]) is type(value) and ours.fields[key] == value, key
    assert ours.tensors == reference.tensors
    assert (ours.alignment, ours.data_offset) == (reference.alignment, reference.data_offset)


def inspect_with_gguf_reader(path: Path, monkeypatch: pytest.MonkeyPatch,
                             reference: GGUFHeader | None = None) -> GGUFInfo:
    """``inspect_gguf`` as it would be with GGUFReader reading the file."""
    header = reference or reference_header(path)
    with monkeypatch.context() as patch:
        patch.setattr(inspect_module, "read_header", lambda _path: header)
        return inspect_gguf(path)


# -- the models ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen3_real_vocab(synthetic) -> Path:
    return synthetic("qwen3", vocab_size=QWEN3_VOCAB)


@pytest.fixture(scope="module")
def gemma_real_vocab(synthetic) -> Path:
    return synthetic("gemma-embedding", vocab_size=GEMMA_VOCAB)


TINY_MODELS = [
    ("bert", "f32", {}),
    ("bert", "f16", {}),
    ("qwen3", "q8_0", {}),
    ("qwen3", "f32", {"pooling": False, "name": "tiny-embedding"}),
    ("gemma-embedding", "f32", {}),
    ("gemma-embedding", "q8_0", {"dense": False}),
]


@pytest.mark.parametrize(("arch", "dtype", "options"), TINY_MODELS)
def test_header_is_what_gguf_reader_reads(synthetic, arch: str, dtype: str, options: dict,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = synthetic(arch, dtype, **options)
    reference = reference_header(path)
    assert_same_header(read_header(path), reference)
    if options.get("dense", True):
        assert inspect_gguf(path) == inspect_with_gguf_reader(path, monkeypatch, reference)


def test_the_starter_model_reads_as_gguf_reader_reads_it(monkeypatch) -> None:
    """The bundled model was written by convert.py: a real 30,522-token WordPiece vocabulary."""
    path = starter_path()
    header, reference = read_header(path), reference_header(path)
    assert_same_header(header, reference)
    assert header.array_length("tokenizer.ggml.tokens") == 30_522
    assert inspect_gguf(path) == inspect_with_gguf_reader(path, monkeypatch, reference)


def test_a_big_endian_file_reads_as_gguf_reader_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "big.gguf"
    writer = gguf.GGUFWriter(str(path), "qwen3", endianess=gguf.GGUFEndian.BIG)
    writer.add_name("big-endian-embedding")
    writer.add_context_length(4096)
    writer.add_embedding_length(16)
    writer.add_token_list(["a", "b", "ab"])
    writer.add_token_scores([0.5, -1.0, 2.0])
    writer.add_tensor("token_embd.weight", np.ones((3, 16), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    header = read_header(path)
    assert header.byte_order == ">" and header.get("qwen3.context_length") == 4096
    assert_same_header(header, reference_header(path))
    assert inspect_gguf(path).hidden == 16


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["qwen3", "gemma-embedding"])
def test_real_size_vocabularies_read_as_gguf_reader_reads_them(
        arch: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """GGUFReader takes seconds on these (that is the point of our reader), hence slow."""
    path = request.getfixturevalue("qwen3_real_vocab" if arch == "qwen3" else "gemma_real_vocab")
    reference = reference_header(path)
    assert_same_header(read_header(path), reference)
    assert inspect_gguf(path) == inspect_with_gguf_reader(path, monkeypatch, reference)


def test_inspect_never_reads_the_vocabulary(qwen3_real_vocab: Path, gemma_real_vocab: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("GGUFReader parses the whole vocabulary")

    monkeypatch.setattr(gguf, "GGUFReader", refuse)
    monkeypatch.setattr(gguf.gguf_reader, "GGUFReader", refuse)
    qwen3 = inspect_gguf(qwen3_real_vocab)
    assert (qwen3.arch, qwen3.family.name, qwen3.pooling, qwen3.context, qwen3.hidden,
            qwen3.file_type) == ("qwen3", "qwen3", 3, 8192, 32, "F32")
    gemma = inspect_gguf(gemma_real_vocab)
    assert (gemma.arch, gemma.family.name, gemma.pooling, gemma.context, gemma.hidden,
            gemma.name) == ("gemma-embedding", "gemma-embedding", 1, 2048, 32,
                            "synthetic-gemma-embedding-tiny")
    # The arrays are described, not read: a count and a position, no items.
    header = read_header(gemma_real_vocab)
    tokens = header.fields["tokenizer.ggml.tokens"]
    assert isinstance(tokens, ArrayInfo) and tokens.count == GEMMA_VOCAB
    assert header.array_length("tokenizer.ggml.scores") == GEMMA_VOCAB
    assert header.get("tokenizer.ggml.tokens") is tokens  # no list is ever built
    assert read_header(qwen3_real_vocab).array_length("tokenizer.ggml.merges") > 140_000


@pytest.mark.parametrize("arch", ["qwen3", "gemma-embedding"])
def test_real_size_vocabularies_load_in_llama_cpp_and_embed(
        arch: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue("qwen3_real_vocab" if arch == "qwen3" else "gemma_real_vocab")
    with Engine(path) as engine:
        assert engine.n_vocab == REAL_VOCAB[arch]  # llama.cpp's own count
        assert engine.dimensions == engine.info.hidden == 32
        result = engine.embed("hi")
        assert result.vectors.shape == (1, 32) and np.isfinite(result.vectors).all()
        assert np.linalg.norm(result.vectors[0]) == pytest.approx(1.0, abs=1e-4)
        tokens = engine.runner.tokenize("hi")
        if arch == "qwen3":
            assert tokens[-1] == engine.runner.eos == QWEN3_VOCAB - 26  # <|endoftext|>
        else:
            assert tokens[0] == engine.runner.bos and tokens[-1] == engine.runner.eos
        assert engine.embed(["the search model", "hi"]).vectors.shape == (2, 32)


def test_the_bulk_array_writer_writes_the_stock_writers_bytes(tmp_path: Path,
                                                               monkeypatch) -> None:
    """The test models' fast writer is only a faster GGUFWriter: the same bytes."""
    cases = [("bert", {}), ("qwen3", {}), ("gemma-embedding", {}),
             ("bert", {"vocab_size": REAL_VOCAB["bert"]}),
             ("qwen3", {"vocab_size": 20_000}), ("gemma-embedding", {"vocab_size": 20_000})]
    for arch, options in cases:
        fast = write_model(arch, tmp_path / "fast.gguf", **options)
        with monkeypatch.context() as patch:
            patch.setattr(synthetic_module, "_BulkArrayWriter", gguf.GGUFWriter)
            stock = write_model(arch, tmp_path / "stock.gguf", **options)
        assert filecmp.cmp(fast, stock, shallow=False), (arch, options)


@pytest.mark.parametrize("arch", ["bert", "qwen3", "gemma-embedding"])
def test_padded_vocabularies_have_unique_tokens_and_valid_merges(arch: str,
                                                                 tmp_path: Path) -> None:
    reader = gguf.GGUFReader(write_model(arch, tmp_path / "m.gguf", vocab_size=20_000 + 522))
    vocab = reader.fields["tokenizer.ggml.tokens"].contents()
    assert len(vocab) == len(set(vocab)) == 20_522
    assert len(reader.fields["tokenizer.ggml.token_type"].data) == 20_522
    if arch == "gemma-embedding":
        assert len(reader.fields["tokenizer.ggml.scores"].data) == 20_522
    if arch == "qwen3":  # every merge joins two tokens into a third
        known = set(vocab)
        for merge in reader.fields["tokenizer.ggml.merges"].contents():
            left, right = merge.split(" ")
            assert left in known and right in known and left + right in known
    with pytest.raises(ValueError, match="smaller than"):
        write_model(arch, tmp_path / "small.gguf", vocab_size=100)


def test_info_survives_a_trip_to_a_child_process(gemma_real_vocab: Path) -> None:
    info = inspect_gguf(gemma_real_vocab)
    assert GGUFInfo.from_json(info.to_json()) == info


def test_import_reads_the_header_once_in_this_process(synthetic, app_home: Path,
                                                      monkeypatch) -> None:
    from localembed.models import store

    reads: list[Path] = []
    real = inspect_module.read_header
    monkeypatch.setattr(inspect_module, "read_header",
                        lambda path: reads.append(Path(path)) or real(path))
    store.import_model(synthetic("qwen3"), "once")
    assert len(reads) == 1


# -- malformed headers -----------------------------------------------------------------------


def _s(text: str | bytes) -> bytes:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack("<Q", len(data)) + data


def _kv_str(key: str, value: str) -> bytes:
    return _s(key) + struct.pack("<I", 8) + _s(value)


def _kv_u32(key: str, value: int, vtype: int = 4) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + struct.pack("<I", value)


def _kv_strings(key: str, items: list[str], count: int | None = None) -> bytes:
    return (_s(key) + struct.pack("<IIQ", 9, 8, len(items) if count is None else count)
            + b"".join(_s(i) for i in items))


def _tensor(name: str, shape: tuple[int, ...], ggml_type: int = 0, offset: int = 0) -> bytes:
    return (_s(name) + struct.pack("<I", len(shape)) + struct.pack(f"<{len(shape)}Q", *shape)
            + struct.pack("<IQ", ggml_type, offset))


TOKENS = [f"tok{i}" for i in range(50)]


def _kvs() -> list[bytes]:
    return [
        _kv_str("general.architecture", "qwen3"),
        _kv_str("general.name", "hand-made-embedding"),
        _kv_u32("qwen3.pooling_type", 3),
        _kv_u32("qwen3.context_length", 512),
        _kv_u32("qwen3.embedding_length", 8),
        _kv_strings("tokenizer.ggml.tokens", TOKENS),
        _s("tokenizer.ggml.token_type") + struct.pack("<IIQ", 9, 5, len(TOKENS))
        + struct.pack(f"<{len(TOKENS)}i", *[1] * len(TOKENS)),
        _kv_u32("general.file_type", 0),
    ]


def _tensors() -> list[bytes]:
    return [_tensor("token_embd.weight", (8, len(TOKENS))), _tensor("output_norm.weight", (8,),
                                                                    offset=8 * len(TOKENS) * 4)]


def _gguf(kvs: list[bytes] | None = None, tensors: list[bytes] | None = None,
          version: int = 3, n_kv: int | None = None, n_tensors: int | None = None,
          data_bytes: int = 4 * 8 * (len(TOKENS) + 1)) -> bytes:
    kvs = _kvs() if kvs is None else kvs
    tensors = _tensors() if tensors is None else tensors
    head = (b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_tensors is None
                                  else n_tensors, len(kvs) if n_kv is None else n_kv)
            + b"".join(kvs) + b"".join(tensors))
    return head + b"\0" * (-len(head) % 32) + b"\0" * data_bytes


def _refused(tmp_path: Path, data: bytes, name: str = "bad.gguf") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    with no_hang(), pytest.raises(ModelLoadError) as error:
        inspect_gguf(path)
    message = str(error.value)
    assert name in message
    return message


def test_the_hand_made_header_is_valid(tmp_path: Path, monkeypatch) -> None:
    """The base of the malformed cases below: a well-formed file both readers accept."""
    path = tmp_path / "good.gguf"
    path.write_bytes(_gguf())
    assert_same_header(read_header(path), reference_header(path))
    info = inspect_gguf(path)
    assert (info.arch, info.hidden, info.name) == ("qwen3", 8, "hand-made-embedding")
    assert info == inspect_with_gguf_reader(path, monkeypatch)


def test_a_file_cut_anywhere_is_refused(tmp_path: Path) -> None:
    good = _gguf()
    data_start = len(_gguf(data_bytes=0))
    for cut in [*range(data_start + 1), *range(data_start + 1, len(good), 97)]:
        message = _refused(tmp_path, good[:cut])
        assert "corrupt or truncated" in message or "truncated (tensor" in message or (
            "not a GGUF file" in message and cut < 4)


def test_a_written_model_cut_in_its_header_or_data_is_refused(synthetic, tmp_path: Path) -> None:
    good = synthetic("gemma-embedding").read_bytes()
    header_end = read_header(synthetic("gemma-embedding")).data_offset
    cuts = sorted({*range(0, 64), *range(64, header_end, max(1, header_end // 40)),
                   header_end, header_end + 1, len(good) // 2, len(good) - 1})
    for cut in cuts:
        _refused(tmp_path, good[:cut], "cut.gguf")


HUGE = 2**62

MALFORMED = {
    "version 1": lambda: _gguf(version=1),
    "version 4": lambda: _gguf(version=4),
    "version 0": lambda: _gguf(version=0),
    "huge metadata count": lambda: _gguf(n_kv=HUGE),
    "one metadata entry too many": lambda: _gguf(n_kv=len(_kvs()) + 1),
    "huge tensor count": lambda: _gguf(n_tensors=HUGE),
    "one tensor too many": lambda: _gguf(n_tensors=3),
    "huge key length": lambda: _gguf([struct.pack("<Q", 2**63) + b"general", *_kvs()[1:]]),
    "huge string length": lambda: _gguf([
        _s("general.architecture") + struct.pack("<IQ", 8, 2**64 - 1) + b"qwen3",
        *_kvs()[1:]]),
    "huge string array count": lambda: _gguf(
        [*_kvs()[:5], _kv_strings("tokenizer.ggml.tokens", TOKENS, count=HUGE), *_kvs()[6:]]),
    "huge token length": lambda: _gguf(
        [*_kvs()[:5], _kv_strings("tokenizer.ggml.tokens", TOKENS[:3])[:-12]
         + struct.pack("<Q", 2**40) + b"tok2", *_kvs()[6:]]),
    "largest token length": lambda: _gguf(
        [*_kvs()[:5], _kv_strings("tokenizer.ggml.tokens", TOKENS[:3])[:-12]
         + struct.pack("<Q", 2**64 - 1) + b"tok2", *_kvs()[6:]]),
    "huge numeric array count": lambda: _gguf(
        [*_kvs()[:6], _s("tokenizer.ggml.token_type") + struct.pack("<IIQ", 9, 5, HUGE),
         *_kvs()[7:]]),
    "huge nested array count": lambda: _gguf(
        [*_kvs(), _s("nested") + struct.pack("<IIQ", 9, 9, HUGE)]),
    "unknown value type": lambda: _gguf([*_kvs(), _kv_u32("x", 1, vtype=13)]),
    "unknown array item type": lambda: _gguf([*_kvs(), _s("x") + struct.pack("<IIQ", 9, 42, 1)]),
    "duplicate key": lambda: _gguf([*_kvs(), _kv_u32("qwen3.context_length", 8)]),
    "key not UTF-8": lambda: _gguf([*_kvs(), _s(b"\xff\xfe") + struct.pack("<II", 4, 1)]),
    "alignment zero": lambda: _gguf([*_kvs(), _kv_u32("general.alignment", 0)]),
    "alignment not a power of two": lambda: _gguf([*_kvs(), _kv_u32("general.alignment", 24)]),
    "alignment not a uint32": lambda: _gguf([*_kvs(), _kv_u32("general.alignment", 32, 5)]),
    "tensor with five dimensions": lambda: _gguf(tensors=[_tensor("t", (1, 1, 1, 1, 1))]),
    "tensor of unknown type": lambda: _gguf(tensors=[_tensor("t", (8,), ggml_type=99)]),
    "quantized rows not whole blocks": lambda: _gguf(tensors=[_tensor("t", (8, 4), 8)]),
    "duplicate tensor": lambda: _gguf(tensors=[_tensor("t", (8,)), _tensor("t", (8,), 0, 32)]),
    "tensor name not UTF-8": lambda: _gguf(
        tensors=[_s(b"\xc3") + struct.pack("<IQIQ", 1, 8, 0, 0)]),
    "huge tensor shape": lambda: _gguf(tensors=[_tensor("t", (2**40, 2**40))]),
    "tensor data past the end": lambda: _gguf(tensors=[_tensor("t", (8,), offset=2**50)]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_headers_are_refused_quickly(case: str, tmp_path: Path) -> None:
    message = _refused(tmp_path, MALFORMED[case]())
    if case.startswith(("huge tensor shape", "tensor data past")):
        assert "truncated (tensor t ends past the end of the file)" in message
    elif case != "one tensor too many":  # that one reads the padding as a tensor, and then
        assert "corrupt or truncated" in message  # the data it describes is past the end


def test_malformed_header_messages_say_what_is_wrong(tmp_path: Path) -> None:
    assert "version 1 is not supported" in _refused(tmp_path, _gguf(version=1))
    assert "duplicate metadata key 'qwen3.context_length'" in _refused(
        tmp_path, MALFORMED["duplicate key"]())
    assert "runs past the end of the file" in _refused(tmp_path,
                                                       MALFORMED["huge token length"]())
    assert "claims 4611686018427387904 tensors" in _refused(tmp_path,
                                                            MALFORMED["huge tensor count"]())


def test_unreadable_and_missing_files_are_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        inspect_gguf(tmp_path / "missing.gguf")
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty.gguf is not a GGUF file"):
        inspect_gguf(tmp_path / "empty.gguf")
    (tmp_path / "short.gguf").write_bytes(b"GGUF\x03\x00")
    with pytest.raises(ModelLoadError, match="short.gguf is corrupt or truncated"):
        inspect_gguf(tmp_path / "short.gguf")
