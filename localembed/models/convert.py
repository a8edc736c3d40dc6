"""Convert a sentence-transformers BERT folder into a GGUF file llama.cpp can serve.

This is how the bundled starter model (all-MiniLM-L6-v2) becomes servable offline, and how users
import BERT-family models they already have on disk. Only numpy and gguf are needed: no torch,
no transformers. The output is written to a temporary file and moved into place at the end, so
a failure never leaves a half-written GGUF behind.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from localembed.gguf.header import MAX_SEQ_LENGTH_KEY, SEGMENT_B_KEY
from localembed.gguf.writer import DTYPES, add_matrix, file_type


class ConversionError(Exception):
    """The folder cannot be converted; the message says why in user terms."""


_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def read_safetensors(path: Path, wanted: Callable[[str], bool] = lambda _name: True
                     ) -> dict[str, np.ndarray]:
    """Read the ``wanted`` tensors of a ``.safetensors`` file as float32, validating the layout.

    Written by hand (the format is a length-prefixed JSON header and raw little-endian data) so
    that a corrupt or truncated file is reported clearly instead of crashing somewhere later.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ConversionError(f"{path.name} is not a safetensors file (too short)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len <= 0 or 8 + header_len > size or header_len > 100_000_000:
            raise ConversionError(f"{path.name} is corrupt: its header length is invalid")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConversionError(f"{path.name} is corrupt: unreadable header ({exc})") from exc
    if not isinstance(header, dict):
        raise ConversionError(f"{path.name} is corrupt: header is not a JSON object")
    data_start = 8 + header_len
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__" or not wanted(name):
            continue
        try:
            dtype_name, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConversionError(f"{path.name} is corrupt: bad entry for {name}") from exc
        if dtype_name not in _SAFETENSORS_DTYPES:
            raise ConversionError(f"{path.name}: tensor {name} has unsupported dtype {dtype_name}")
        dtype = np.dtype(_SAFETENSORS_DTYPES[dtype_name])
        count = int(np.prod(shape)) if shape else 1
        if end - begin != count * dtype.itemsize or begin < 0 or data_start + end > size:
            raise ConversionError(
                f"{path.name} is corrupt or truncated: tensor {name} lies outside the file"
            )
        values = raw[data_start + begin : data_start + end].view(dtype).reshape(shape)
        if dtype_name == "BF16":
            values = (values.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = np.asarray(values, dtype=np.float32)
    if not tensors:
        raise ConversionError(f"{path.name} holds no tensors")
    return tensors


@dataclass
class BertFolder:
    """What the converter needs from a sentence-transformers folder."""

    path: Path
    config: dict
    pooling: gguf.PoolingType
    vocab: list[str]
    special: dict[str, int]
    lowercase: bool
    name: str
    max_seq_length: int | None  # sentence-transformers' cut; None when it declares none

    @property
    def cross_encoder(self) -> bool:
        """A BertForSequenceClassification checkpoint (a sentence-transformers CrossEncoder):
        converted as a reranker with its pooler and classifier."""
        return "BertForSequenceClassification" in (self.config.get("architectures") or [])

    def input_files(self) -> list[Path]:
        """The files a conversion reads, which an import sizes for its free-space check: a
        model folder often holds the same weights in other formats too (pytorch_model.bin,
        onnx/, openvino/), which are never read."""
        names = ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json",
                 "tokenizer_config.json", "sentence_bert_config.json", "modules.json")
        return [self.path / name for name in names if (self.path / name).is_file()]


_POOLING_MODES = [
    ("pooling_mode_mean_tokens", gguf.PoolingType.MEAN),
    ("pooling_mode_cls_token", gguf.PoolingType.CLS),
    ("pooling_mode_lasttoken", gguf.PoolingType.LAST),
]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConversionError(f"cannot read {path.name}: {exc}") from exc


def _pooling(folder: Path) -> gguf.PoolingType:
    """Pooling from the sentence-transformers Pooling module; mean when none is declared."""
    modules_file = folder / "modules.json"
    pooling_dir = folder / "1_Pooling"
    if modules_file.exists():
        for module in json.loads(modules_file.read_text(encoding="utf-8")):
            if str(module.get("type", "")).endswith("Pooling"):
                pooling_dir = folder / module.get("path", "1_Pooling")
    config_file = pooling_dir / "config.json"
    if not config_file.exists():
        return gguf.PoolingType.MEAN
    config = _read_json(config_file)
    for key, pooling in _POOLING_MODES:
        if config.get(key):
            return pooling
    raise ConversionError(
        f"unsupported pooling in {config_file}: only mean, CLS and last-token pooling convert"
    )


def _vocab(folder: Path) -> list[str]:
    vocab_file = folder / "vocab.txt"
    if vocab_file.exists():
        return vocab_file.read_text(encoding="utf-8").splitlines()
    tokenizer_file = folder / "tokenizer.json"
    if tokenizer_file.exists():
        model = _read_json(tokenizer_file).get("model", {})
        if model.get("type") == "WordPiece":
            table = model["vocab"]
            return [t for t, _ in sorted(table.items(), key=lambda item: item[1])]
    raise ConversionError(f"{folder} has no WordPiece vocabulary (vocab.txt or tokenizer.json)")


def inspect_folder(folder: str | os.PathLike[str]) -> BertFolder:
    """Check that ``folder`` is a BERT sentence-transformers model and gather its settings.

    Only the folder's own few files are looked at, config.json first, so anything else (``/``,
    a folder of documents) is refused at once; a folder that cannot be read is refused with
    the reason, not an I/O error.
    """
    path = Path(folder)
    try:
        return _inspect_folder(path)
    except OSError as exc:
        raise ConversionError(f"cannot read {exc.filename or path}: {exc.strerror or exc}"
                              ) from exc


def _inspect_folder(path: Path) -> BertFolder:
    if not path.is_dir():
        raise ConversionError(f"{path} is not a folder")
    config_file = path / "config.json"
    if not config_file.exists():
        raise ConversionError(f"{path} has no config.json: not a Hugging Face model folder")
    config = _read_json(config_file)
    model_type = config.get("model_type")
    if model_type != "bert":
        raise ConversionError(
            f"{path} holds a {model_type or 'unknown'} model; only BERT "
            "sentence-transformers models can be converted (import a GGUF file instead)"
        )
    if not (path / "model.safetensors").exists():
        raise ConversionError(f"{path} has no model.safetensors (PyTorch .bin is not supported)")
    vocab = _vocab(path)
    if len(vocab) != config.get("vocab_size", len(vocab)):
        raise ConversionError(
            f"vocabulary has {len(vocab)} tokens but config.json says {config['vocab_size']}"
        )
    index = {token: i for i, token in enumerate(vocab)}
    special = {}
    for role, token in [("cls", "[CLS]"), ("sep", "[SEP]"), ("pad", "[PAD]"), ("unk", "[UNK]"),
                        ("mask", "[MASK]")]:
        if token not in index:
            raise ConversionError(f"vocabulary lacks the {token} token")
        special[role] = index[token]
    tokenizer_config = path / "tokenizer_config.json"
    lowercase = True
    if tokenizer_config.exists():
        lowercase = bool(_read_json(tokenizer_config).get("do_lower_case", True))
    if not lowercase:
        raise ConversionError("cased BERT vocabularies are not supported by llama.cpp's WordPiece")
    _check_normalizer(path)
    name = config.get("_name_or_path") or path.name
    return BertFolder(path, config, _pooling(path), vocab, special, lowercase, str(name),
                      _max_seq_length(path, config))


def _max_seq_length(folder: Path, config: dict) -> int | None:
    """The input limit sentence-transformers applies (``sentence_bert_config.json``).

    It is often shorter than the position table (all-MiniLM-L6-v2: 256 of 512), and the
    vectors past it differ from what the model's users get, so the engine cuts there too.
    """
    st_config = folder / "sentence_bert_config.json"
    if not st_config.exists():
        return None
    value = _read_json(st_config).get("max_seq_length")
    if value is None:
        return None
    positions = int(config.get("max_position_embeddings", 512))
    if not isinstance(value, int) or isinstance(value, bool) or not value > 0:
        raise ConversionError(f"{st_config.name}: max_seq_length must be a positive integer")
    return min(value, positions)


def _check_normalizer(folder: Path) -> None:
    """Refuse tokenizers whose normalisation differs from standard uncased BERT.

    The engine tokenizes BERT-family models as Hugging Face's BertNormalizer does with
    lowercasing (accents stripped, CJK characters split); a tokenizer configured otherwise
    would be served with different token ids than the model was trained on.
    """
    tokenizer_file = folder / "tokenizer.json"
    if not tokenizer_file.exists():
        return
    normalizer = _read_json(tokenizer_file).get("normalizer") or {}
    if normalizer.get("type") != "BertNormalizer":
        return
    if (normalizer.get("strip_accents") is False
            or normalizer.get("handle_chinese_chars") is False
            or normalizer.get("lowercase") is False):
        raise ConversionError(
            "this tokenizer's normalisation (accents kept, cased or CJK not split) is not "
            "supported: localembed serves uncased BERT WordPiece vocabularies")


_LAYER_MAP = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}
_TOP_MAP = {
    "embeddings.word_embeddings": "token_embd",
    "embeddings.position_embeddings": "position_embd",
    "embeddings.token_type_embeddings": "token_types",
    "embeddings.LayerNorm": "token_embd_norm",
}
# A cross-encoder's head: BERT's pooler (dense + tanh on [CLS]) and the classifier, which
# llama.cpp's rank pooling computes as cls and cls.output. llama.cpp's own converter drops the
# pooler (upstream PR #21729), so its scores are about a logit off.
_HEAD_MAP = {
    "bert.pooler.dense.weight": "cls.weight",
    "bert.pooler.dense.bias": "cls.bias",
    "classifier.weight": "cls.output.weight",
    "classifier.bias": "cls.output.bias",
}
_LAYER_RE = re.compile(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias|gamma|beta)$")


def gguf_tensor_name(hf_name: str) -> str | None:
    """GGUF name for a Hugging Face BERT tensor; None for tensors llama.cpp doesn't use."""
    name = re.sub(r"^(bert\.|0\.auto_model\.|model\.)", "", hf_name)
    suffix_map = {"gamma": "weight", "beta": "bias"}
    match = _LAYER_RE.match(name)
    if match:
        layer, module, kind = match.groups()
        target = _LAYER_MAP.get(module)
        return f"blk.{layer}.{target}.{suffix_map.get(kind, kind)}" if target else None
    module, _, kind = name.rpartition(".")
    target = _TOP_MAP.get(module)
    return f"{target}.{suffix_map.get(kind, kind)}" if target else None


def _cross_encoder_tables(info: BertFolder, mapped: dict[str, np.ndarray]) -> None:
    """A cross-encoder's segment embeddings folded into its token table.

    BERT reads a pair as [CLS] query [SEP] (token type 0) then document [SEP] (token type 1),
    but llama.cpp adds the type-0 row to every token. So the table gets a second copy of the
    vocabulary whose rows already hold the type-1 difference: token t of the document is fed as
    t + vocab size, and embeds as E[t] + T[1] exactly as the model does (the engine shifts the
    document's ids by ``SEGMENT_B_KEY``).
    """
    labels = int(info.config.get("num_labels", len(info.config.get("id2label", {})) or 1))
    if labels != 1:
        raise ConversionError(f"{info.path.name} is a classifier with {labels} labels; a "
                              "reranker (cross-encoder) has one relevance output")
    for name in _HEAD_MAP.values():
        if name not in mapped:
            raise ConversionError(f"model.safetensors lacks the cross-encoder's {name} weights")
    types = mapped.get("token_types.weight")
    if types is None or types.shape[0] < 2:
        raise ConversionError("a cross-encoder needs BERT's two token-type embeddings")
    table = mapped["token_embd.weight"]
    mapped["token_embd.weight"] = np.concatenate([table, table + (types[1] - types[0])])
    mapped["token_types.weight"] = types[:1]


def _phantom(token: str) -> str:
    """llama.cpp's WordPiece spelling: word starts carry U+2581, ``##`` continuations don't."""
    if token.startswith("[") and token.endswith("]"):
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


def convert_folder(
    folder: str | os.PathLike[str],
    output: str | os.PathLike[str],
    dtype: str = "f16",
    progress: Callable[[str], None] | None = None,
    name: str | None = None,
) -> Path:
    """Convert a sentence-transformers BERT folder to a GGUF file at ``output``."""
    if dtype not in DTYPES:
        raise ConversionError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    info = inspect_folder(folder)
    say = progress or (lambda _message: None)
    say(f"reading {info.path / 'model.safetensors'}")
    head = _HEAD_MAP if info.cross_encoder else {}
    tensors = read_safetensors(info.path / "model.safetensors",
                               lambda name: gguf_tensor_name(name) is not None or name in head)
    config = info.config
    hidden = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    mapped: dict[str, np.ndarray] = {}
    for hf_name, value in tensors.items():
        gguf_name = head.get(hf_name) or gguf_tensor_name(hf_name)
        if gguf_name is not None:
            mapped[gguf_name] = value
    vocab_size = len(info.vocab)
    if info.cross_encoder:
        _cross_encoder_tables(info, mapped)
    required = ["token_embd.weight", "position_embd.weight", "token_embd_norm.weight",
                "token_embd_norm.bias"]
    required += [f"blk.{i}.{t}.weight" for i in range(layers) for t in _LAYER_MAP.values()]
    missing = [name for name in required if name not in mapped]
    if missing:
        raise ConversionError(
            f"model.safetensors lacks BERT weights ({', '.join(missing[:3])}...): "
            "not a BERT sentence-transformers model"
        )
    vocab_rows = mapped["token_embd.weight"].shape
    rows = vocab_size * (2 if info.cross_encoder else 1)
    if vocab_rows != (rows, hidden):
        raise ConversionError(
            f"word embeddings have shape {vocab_rows}, expected {(rows, hidden)}"
        )

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=output.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp_name, "bert")
        writer.add_name(name or info.name)
        writer.add_file_type(file_type(dtype))
        writer.add_context_length(int(config.get("max_position_embeddings", 512)))
        if info.max_seq_length is not None:
            writer.add_uint32(MAX_SEQ_LENGTH_KEY, info.max_seq_length)
        writer.add_embedding_length(hidden)
        writer.add_feed_forward_length(int(config["intermediate_size"]))
        writer.add_block_count(layers)
        writer.add_head_count(int(config["num_attention_heads"]))
        writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
        writer.add_causal_attention(False)
        writer.add_pooling_type(gguf.PoolingType.RANK if info.cross_encoder else info.pooling)
        writer.add_tokenizer_model("bert")
        writer.add_tokenizer_pre("default")
        tokens = [_phantom(t) for t in info.vocab]
        control = set(info.special.values())
        types = [gguf.TokenType.CONTROL if i in control else gguf.TokenType.NORMAL
                 for i in range(vocab_size)]
        if info.cross_encoder:  # the segment-B copies: never produced by the tokenizer
            tokens += [f"[segment-b]{t}" for t in tokens]
            types += [gguf.TokenType.UNUSED] * vocab_size
            writer.add_uint32(SEGMENT_B_KEY, vocab_size)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_type_count(1 if info.cross_encoder
                                    else int(config.get("type_vocab_size", 2)))
        writer.add_bos_token_id(info.special["cls"])
        writer.add_sep_token_id(info.special["sep"])
        writer.add_pad_token_id(info.special["pad"])
        writer.add_unk_token_id(info.special["unk"])
        writer.add_mask_token_id(info.special["mask"])
        writer.add_add_bos_token(True)
        if info.cross_encoder:  # the pair frame [CLS] query [SEP] document [SEP]
            writer.add_eos_token_id(info.special["sep"])
            writer.add_add_eos_token(True)
            writer.add_add_sep_token(False)
        else:
            writer.add_add_sep_token(True)
        say(f"writing {len(mapped)} tensors as {dtype}")
        for tensor_name, value in mapped.items():
            # Vectors and the token-type table stay f32, as in llama.cpp's own converter.
            if value.ndim == 2 and tensor_name != "token_types.weight":
                add_matrix(writer, tensor_name, value, dtype)
            else:
                writer.add_tensor(tensor_name, value.astype(np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; a model file is not secret
        os.replace(tmp_name, output)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    say(f"wrote {output}")
    return output
