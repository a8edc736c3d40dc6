"""Tiny random-weight GGUF models of the three architectures localembed serves.

No model hub is reachable from CI, and real checkpoints are hundreds of megabytes, so tests and
benchmarks write their own models: the real llama.cpp architectures (``bert``, ``qwen3``,
``gemma-embedding``) with the real tokenizer kinds (WordPiece, byte-level BPE, SentencePiece),
random weights and a small English vocabulary. They load in llama.cpp like the published GGUFs
and exercise the same code paths (pooling, special tokens, dense projection); their vectors
are meaningless, which is fine for checking plumbing.

``preset="full"`` writes the real layer shapes (with the small vocabulary) for benchmarks; those
files are large and are generated on demand, never committed.

``vocab_size`` fills the vocabulary up to a real model's size (``REAL_VOCAB``: 151,669 tokens
for Qwen3, 262,144 for EmbeddingGemma) with valid extra tokens: byte-level BPE pairs and
triples with their merges, SentencePiece pieces with scores, WordPiece pieces. The tiny preset
then narrows to ``VOCAB_HIDDEN`` wide so the token table stays a few megabytes; such a file is
written in about a second and exercises whatever scales with the vocabulary (reading the
header, llama.cpp's vocabulary load).
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import gguf
import numpy as np

from localembed.gguf.writer import add_matrix, file_type

ARCHITECTURES = ("bert", "qwen3", "gemma-embedding")
# The published models' vocabulary sizes (llama.cpp's n_vocab): all-MiniLM-L6-v2,
# Qwen3-Embedding and EmbeddingGemma.
REAL_VOCAB = {"bert": 30_522, "qwen3": 151_669, "gemma-embedding": 262_144}
# The tiny preset's width when a vocabulary size is asked for: the token table is
# n_vocab x hidden, 262,144 x 32 f32 = 32 MB for EmbeddingGemma's vocabulary.
VOCAB_HIDDEN = 32

_WORDS = """
the of and to a in is it you that he was for on are with as his they be at one have this from
or had by hot word but what some we can out other were all there when up use your how said an
each she which do their time if will way about many then them write would like so these her long
make thing see him two has look more day could go come did number sound no most people my over
know water than call first who may down side been now find any new work part take get place made
live where after back little only round man year came show every good me give our under name very
through just form sentence great think say help low line differ turn cause much mean before move
right boy old too same tell does set three want air well also play small end put home read hand
port large spell add even land here must big high such follow act why ask men change went light
kind off need house picture try us again animal point mother world near build self earth father
head stand own page should country found answer school grow study still learn plant cover food sun
four between state keep eye never last let thought city tree cross farm hard start might story saw
far sea draw left late run while press close night real life few north open seem together next
white children begin got walk example ease paper group always music those both mark often letter
until mile river car feet care second book carry took science eat room friend began idea fish
mountain stop once base hear horse cut sure watch color face wood main enough plain girl usual
young ready above ever red list though feel talk bird soon body dog family direct pose leave song
measure door product black short numeral class wind question happen complete ship area half rock
order fire south problem piece told knew pass since top whole king space heard best hour better
true during hundred five remember step early hold west ground interest reach fast verb sing listen
six table travel less morning ten simple several vowel toward war lay against pattern slow center
love person money serve appear road map rain rule govern pull cold notice voice unit power town
fine certain fly fall lead cry dark machine note wait plan figure star box noun field rest correct
able pound done beauty drive stood contain front teach week final gave green oh quick develop ocean
warm free minute strong special mind behind clear tail produce fact street inch multiply nothing
course stay wheel full force blue object decide surface deep moon island foot system busy test
record boat common gold possible plane stead dry wonder laugh thousand ago ran check game shape
equate miss brought heat snow tire bring yes distant fill east paint language among cat embedding
model vector search query document server local llama python code data text cosine similarity
""".split()

_PUNCT = list(".,;:!?'\"()[]{}-_/\\|@#$%^&*+=<>~`")


@dataclass(frozen=True)
class Shape:
    """Layer sizes of a synthetic model."""

    hidden: int
    layers: int
    heads: int
    ff: int
    context: int
    kv_heads: int | None = None
    head_dim: int | None = None


TINY = {
    "bert": Shape(hidden=64, layers=2, heads=4, ff=128, context=512),
    "qwen3": Shape(hidden=64, layers=2, heads=4, ff=128, context=8192, kv_heads=2),
    "gemma-embedding": Shape(hidden=96, layers=2, heads=4, ff=192, context=2048, kv_heads=1),
}

FULL = {
    # all-MiniLM-L6-v2, Qwen3-Embedding-0.6B and EmbeddingGemma-300m layer shapes.
    "bert": Shape(hidden=384, layers=6, heads=12, ff=1536, context=512),
    "qwen3": Shape(hidden=1024, layers=28, heads=16, ff=3072, context=32768, kv_heads=8,
                   head_dim=128),
    "gemma-embedding": Shape(hidden=768, layers=24, heads=3, ff=1152, context=2048, kv_heads=1,
                             head_dim=256),
}
# XLM-RoBERTa-large's layer shape (bge-m3 and bge-reranker-v2-m3), for the rerank benchmark.
LARGE = {"bert": Shape(hidden=1024, layers=24, heads=16, ff=4096, context=8192)}


class _Weights:
    """Draws weights and stores them in the requested file type.

    Matrices become ``dtype`` (f32, f16 or q8_0); vectors, norms and the BERT token-type table
    stay f32 as llama.cpp's own converter leaves them.
    """

    def __init__(self, writer: gguf.GGUFWriter, dtype: str, seed: int) -> None:
        self.writer = writer
        self.dtype = dtype
        self.rng = np.random.default_rng(seed)

    def matrix(self, name: str, out_features: int, in_features: int, std: float) -> None:
        data = self.rng.normal(0.0, std, size=(out_features, in_features)).astype(np.float32)
        add_matrix(self.writer, name, data, self.dtype)

    def vector(self, name: str, size: int, value: float | None = None, std: float = 0.02) -> None:
        if value is None:
            data = self.rng.normal(0.0, std, size=(size,)).astype(np.float32)
        else:
            data = np.full((size,), value, dtype=np.float32)
        self.writer.add_tensor(name, data)

    def f32_matrix(self, name: str, rows: int, cols: int, std: float) -> None:
        data = self.rng.normal(0.0, std, size=(rows, cols)).astype(np.float32)
        self.writer.add_tensor(name, data)


def _prefixes(pieces: Iterable[str]) -> list[str]:
    """Every prefix of every piece, in first-seen order (SentencePiece merges need them)."""
    seen: dict[str, None] = {}
    for piece in pieces:
        for end in range(1, len(piece) + 1):
            seen.setdefault(piece[:end], None)
    return list(seen)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table, used by byte-level BPE vocabs."""
    visible = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in visible}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _fill(candidates: Iterator[str], taken: Iterable[str], count: int) -> list[str]:
    """The first ``count`` candidates not already in ``taken``: extra tokens up to a size."""
    if count < 0:
        raise ValueError(f"vocab_size is {-count} smaller than this model's base vocabulary")
    seen = set(taken)
    return list(itertools.islice((c for c in candidates if c not in seen), count))


def _byte_pairs(base: Sequence[str]) -> Iterator[str]:
    """Byte-level BPE tokens: every pair of byte characters, then every triple.

    Each one's merge is (all but its last character, its last character): a pair merges two
    byte tokens, a triple a pair (all pairs come first) and a byte, so every merge is valid.
    """
    for a, b in itertools.product(base, repeat=2):
        yield a + b
    for a, b, c in itertools.product(base, repeat=3):
        yield a + b + c


def _letter_pieces() -> Iterator[str]:
    """SentencePiece / WordPiece pieces: letter and digit strings, word-initial and inner."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    for length in itertools.count(2):
        for letters in itertools.product(alphabet, repeat=length):
            piece = "".join(letters)
            yield "\u2581" + piece
            yield piece


class _BulkArrayWriter(gguf.GGUFWriter):
    """``GGUFWriter`` packing long metadata arrays in bulk: the same bytes, far faster.

    The stock writer packs a 262,144-token vocabulary item by item (seconds); this packs it
    with one join (strings) or one numpy conversion (numbers). Anything else, and any
    big-endian file, goes through the stock code.
    """

    _NUMPY = {gguf.GGUFValueType.INT32: "<i4", gguf.GGUFValueType.FLOAT32: "<f4",
              gguf.GGUFValueType.UINT32: "<u4"}

    def _pack_val(self, val: object, vtype: gguf.GGUFValueType, add_vtype: bool,
                  sub_type: gguf.GGUFValueType | None = None) -> bytes:
        if (vtype == gguf.GGUFValueType.ARRAY and isinstance(val, list) and len(val) > 256
                and self.endianess == gguf.GGUFEndian.LITTLE):
            item_type = sub_type or gguf.GGUFValueType.get_type(val[0])
            body = _bulk_pack(val, item_type, self._NUMPY.get(item_type))
            if body is not None:
                head = struct.pack("<I", vtype) if add_vtype else b""
                return head + struct.pack("<IQ", item_type, len(val)) + body
        return super()._pack_val(val, vtype, add_vtype, sub_type)


def _bulk_pack(items: list, item_type: gguf.GGUFValueType, np_dtype: str | None) -> bytes | None:
    """Little-endian GGUF array items, or None for a mix of types the stock writer should see."""
    one_of_each = {type(x): x for x in items}.values()  # the type check, once per class
    if any(gguf.GGUFValueType.get_type(x) is not item_type for x in one_of_each):
        return None
    if item_type == gguf.GGUFValueType.STRING:
        encoded = [x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in items]
        length = struct.Struct("<Q").pack
        return b"".join([part for e in encoded for part in (length(len(e)), e)])
    if np_dtype is None:
        return None
    return np.asarray([int(x) if isinstance(x, int) else x for x in items],
                      dtype=np_dtype).tobytes()


def _write_common(writer: gguf.GGUFWriter, shape: Shape, name: str, dtype: str,
                  pooling: gguf.PoolingType | None) -> None:
    writer.add_name(name)
    writer.add_file_type(file_type(dtype))
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_feed_forward_length(shape.ff)
    writer.add_block_count(shape.layers)
    writer.add_head_count(shape.heads)
    if shape.kv_heads is not None:
        writer.add_head_count_kv(shape.kv_heads)
    if shape.head_dim is not None:
        writer.add_key_length(shape.head_dim)
        writer.add_value_length(shape.head_dim)
    if pooling is not None:
        writer.add_pooling_type(pooling)


def _write_bert(writer: gguf.GGUFWriter, shape: Shape, dtype: str, seed: int,
                vocab_size: int | None, head: str | None = None) -> None:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + _PUNCT
    wordpieces = chars + ["##" + c for c in chars] + _WORDS + ["##s", "##ed", "##ing", "##ly"]
    wordpieces = list(dict.fromkeys(wordpieces))
    # llama.cpp's WordPiece vocab: word starts carry the phantom space, ## continuations don't.
    tokens = specials + [w[2:] if w.startswith("##") else "\u2581" + w for w in wordpieces]
    if vocab_size is not None:
        tokens += _fill(_letter_pieces(), tokens, vocab_size - len(tokens))
    types = [gguf.TokenType.CONTROL] * len(specials) + [gguf.TokenType.NORMAL] * (
        len(tokens) - len(specials))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # An XLM-RoBERTa-style cross-encoder has one token type; BERT (and its cross-encoders) two.
    token_types = 1 if head == "rerank" else 2
    writer.add_token_type_count(token_types)
    writer.add_pad_token_id(0)
    writer.add_unk_token_id(1)
    writer.add_bos_token_id(2)  # [CLS]
    writer.add_sep_token_id(3)  # [SEP]
    writer.add_mask_token_id(4)
    writer.add_add_bos_token(True)
    writer.add_add_sep_token(True)
    if head == "rerank":  # <s> query </s></s> document </s>, with [SEP] as </s>
        writer.add_eos_token_id(3)
        writer.add_add_eos_token(True)
    writer.add_layer_norm_eps(1e-12)
    writer.add_causal_attention(False)

    w = _Weights(writer, dtype, seed)
    h, ff = shape.hidden, shape.ff
    w.matrix("token_embd.weight", len(tokens), h, 0.5)
    w.matrix("position_embd.weight", shape.context, h, 0.1)
    w.f32_matrix("token_types.weight", token_types, h, 0.1)
    w.vector("token_embd_norm.weight", h, 1.0)
    w.vector("token_embd_norm.bias", h)
    for i in range(shape.layers):
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.matrix(f"blk.{i}.{part}.weight", h, h, 0.2)
            w.vector(f"blk.{i}.{part}.bias", h)
        w.vector(f"blk.{i}.attn_output_norm.weight", h, 1.0)
        w.vector(f"blk.{i}.attn_output_norm.bias", h)
        w.matrix(f"blk.{i}.ffn_up.weight", ff, h, 0.2)
        w.vector(f"blk.{i}.ffn_up.bias", ff)
        w.matrix(f"blk.{i}.ffn_down.weight", h, ff, 0.2)
        w.vector(f"blk.{i}.ffn_down.bias", h)
        w.vector(f"blk.{i}.layer_output_norm.weight", h, 1.0)
        w.vector(f"blk.{i}.layer_output_norm.bias", h)
    if head == "rerank":  # RoBERTa's classification head: dense + tanh, then one logit
        w.matrix("cls.weight", h, h, 0.2)
        w.vector("cls.bias", h, std=0.1)
        w.matrix("cls.output.weight", 1, h, 0.5)
        w.vector("cls.output.bias", 1, std=0.1)
    elif head == "bert-cross-encoder":  # as llama.cpp's converter writes it: the pooler dropped
        w.matrix("cls.output.weight", 1, h, 0.5)
        w.vector("cls.output.bias", 1, std=0.1)


QWEN3_EOS = "<|endoftext|>"
# Qwen3's added tokens (ids 151,643 to 151,668 in the published vocabulary); the ones its
# tokenizer does not mark special are user-defined tokens, the rest control tokens.
QWEN3_ADDED = (
    QWEN3_EOS, "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>",
    "</think>",
)
QWEN3_USER_DEFINED = frozenset(
    {"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"})


def _write_qwen3(writer: gguf.GGUFWriter, shape: Shape, dtype: str, seed: int,
                 vocab_size: int | None, head: str | None = None) -> None:
    byte_chars = _bytes_to_unicode()
    space = byte_chars[ord(" ")]
    base = [byte_chars[b] for b in range(256)]
    merges: dict[str, None] = {}
    merged: dict[str, None] = {}
    for word in _WORDS:
        for piece in (space + word, word):
            for end in range(2, len(piece) + 1):
                merges.setdefault(f"{piece[:end - 1]} {piece[end - 1]}", None)
                merged.setdefault(piece[:end], None)
    tokens = base + [t for t in merged if t not in set(base)]
    specials = list(QWEN3_ADDED if vocab_size is not None else QWEN3_ADDED[:3])
    if vocab_size is not None:
        extra = _fill(_byte_pairs(base), tokens, vocab_size - len(tokens) - len(specials))
        tokens += extra
        merges.update((f"{t[:-1]} {t[-1]}", None) for t in extra)
    eos_id = len(tokens)
    types = [gguf.TokenType.NORMAL] * len(tokens) + [
        gguf.TokenType.USER_DEFINED if t in QWEN3_USER_DEFINED else gguf.TokenType.CONTROL
        for t in specials]
    tokens += specials
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(list(merges))
    writer.add_eos_token_id(eos_id)
    writer.add_bos_token_id(eos_id)
    writer.add_pad_token_id(eos_id)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(head is None)  # the reranker's prompt ends the sequence itself
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(1_000_000.0)
    if head is not None:  # llama.cpp reads the head's rows as these labels
        writer.add_classifier_output_labels(["yes", "no"])

    w = _Weights(writer, dtype, seed)
    w.matrix("token_embd.weight", len(tokens), shape.hidden, 0.5)
    w.vector("output_norm.weight", shape.hidden, 1.0)
    _decoder_layers(w, shape, post_norms=False)
    if head == "rerank":  # the LM head's rows for "yes" and "no", as the converter keeps them
        w.matrix("cls.output.weight", 2, shape.hidden, 0.5)


def _decoder_layers(w: _Weights, shape: Shape, post_norms: bool) -> None:
    """The Qwen3-style blocks both decoder families share; Gemma adds post-norms."""
    h, ff = shape.hidden, shape.ff
    head_dim = shape.head_dim or h // shape.heads
    kv = shape.kv_heads or shape.heads
    for i in range(shape.layers):
        w.vector(f"blk.{i}.attn_norm.weight", h, 1.0)
        w.matrix(f"blk.{i}.attn_q.weight", shape.heads * head_dim, h, 0.2)
        w.matrix(f"blk.{i}.attn_k.weight", kv * head_dim, h, 0.2)
        w.matrix(f"blk.{i}.attn_v.weight", kv * head_dim, h, 0.2)
        w.matrix(f"blk.{i}.attn_output.weight", h, shape.heads * head_dim, 0.2)
        w.vector(f"blk.{i}.attn_q_norm.weight", head_dim, 1.0)
        w.vector(f"blk.{i}.attn_k_norm.weight", head_dim, 1.0)
        if post_norms:
            w.vector(f"blk.{i}.post_attention_norm.weight", h, 1.0)
        w.vector(f"blk.{i}.ffn_norm.weight", h, 1.0)
        if post_norms:
            w.vector(f"blk.{i}.post_ffw_norm.weight", h, 1.0)
        w.matrix(f"blk.{i}.ffn_gate.weight", ff, h, 0.2)
        w.matrix(f"blk.{i}.ffn_up.weight", ff, h, 0.2)
        w.matrix(f"blk.{i}.ffn_down.weight", h, ff, 0.2)


def _write_gemma_embedding(writer: gguf.GGUFWriter, shape: Shape, dtype: str, seed: int,
                           dense: bool, swa_pattern: list[bool] | None = None,
                           vocab_size: int | None = None) -> None:
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    pieces = _prefixes(["\u2581" + w for w in _WORDS] + _WORDS + _PUNCT + ["\u2581"])
    if vocab_size is not None:
        pieces += _fill(_letter_pieces(), pieces,
                        vocab_size - len(specials) - len(byte_tokens) - len(pieces))
    tokens = specials + byte_tokens + pieces
    types = (
        [gguf.TokenType.CONTROL, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL,
         gguf.TokenType.UNKNOWN]
        + [gguf.TokenType.BYTE] * len(byte_tokens)
        + [gguf.TokenType.NORMAL] * len(pieces)
    )
    # Longer pieces score higher so that whole words win over their fragments.
    scores = [0.0] * (len(specials) + len(byte_tokens)) + [
        float(len(p)) - i * 1e-4 for i, p in enumerate(pieces)
    ]
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_scores(scores)
    writer.add_pad_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_bos_token_id(2)
    writer.add_unk_token_id(3)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)
    writer.add_add_space_prefix(False)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_sliding_window(512)
    # With pattern 2 every other layer is global; all-sliding makes llama.cpp abort.
    writer.add_sliding_window_pattern(swa_pattern or (2 if shape.layers < 6 else 6))

    w = _Weights(writer, dtype, seed)
    h = shape.hidden
    if dense:
        writer.add_dense_features_dims("dense_2", h, 4 * h)
        writer.add_dense_features_dims("dense_3", 4 * h, h)
    w.matrix("token_embd.weight", len(tokens), h, 0.5)
    w.vector("output_norm.weight", h, 1.0)
    if dense:
        w.matrix("dense_2.weight", 4 * h, h, 0.2)
        w.matrix("dense_3.weight", h, 4 * h, 0.2)
    _decoder_layers(w, shape, post_norms=True)


# Reranker heads each architecture can be written with (see write_model).
HEADS = {"bert": ("rerank", "bert-cross-encoder"), "qwen3": ("rerank", "headless")}

_POOLING = {
    "bert": gguf.PoolingType.MEAN,
    "qwen3": gguf.PoolingType.LAST,
    "gemma-embedding": gguf.PoolingType.MEAN,
}


def write_model(arch: str, path: str | os.PathLike[str], *, dtype: str = "f32",
                preset: str = "tiny", seed: int = 0, dense: bool = True,
                context: int | None = None, name: str | None = None,
                pooling: bool = True, swa_pattern: list[bool] | None = None,
                vocab_size: int | None = None, hidden: int | None = None,
                head: str | None = None) -> Path:
    """Write a random-weight GGUF embedding model (or reranker) of ``arch`` to ``path``.

    ``dense=False`` (gemma-embedding only) leaves out the dense projection, like the broken
    early EmbeddingGemma uploads; ``context`` overrides the trained context length;
    ``pooling=False`` leaves out the pooling type (as a chat model's GGUF would);
    ``swa_pattern`` sets gemma-embedding's per-layer sliding-window flags.
    ``vocab_size`` pads the vocabulary to that many tokens (``REAL_VOCAB[arch]`` for the
    published size; the tiny preset then becomes ``VOCAB_HIDDEN`` wide); ``hidden`` overrides
    the width (the head count stays, so heads get narrower).
    ``head`` makes a reranker (rank pooling): ``"rerank"`` is Qwen3-Reranker's yes/no head on
    qwen3, an XLM-RoBERTa-style classification head (one token type) on bert;
    ``"bert-cross-encoder"`` a two-token-type BERT cross-encoder as llama.cpp's converter writes
    it (no pooler), and ``"headless"`` a qwen3 reranker without its head: both are refused.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
    presets = {"tiny": TINY, "full": FULL, "large": LARGE}
    if preset not in presets or arch not in presets[preset]:
        raise ValueError(f"no preset {preset!r} for {arch}; use tiny or full"
                         + (" (large: bert only)" if preset == "large" else ""))
    shape = presets[preset][arch]
    if context is not None:
        shape = replace(shape, context=context)
    if hidden is None and vocab_size is not None and preset == "tiny":
        hidden = VOCAB_HIDDEN
    if hidden is not None:
        if hidden <= 0 or hidden % shape.heads:
            raise ValueError(f"hidden {hidden} is not a multiple of the {shape.heads} heads")
        shape = replace(shape, hidden=hidden)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = _BulkArrayWriter(str(path), arch)
    heads = HEADS.get(arch, ())
    if head is not None and head not in heads:
        raise ValueError(f"{arch} takes no head {head!r}"
                         + (f"; choose from {', '.join(heads)}" if heads else ""))
    kind = "reranker" if head is not None else preset
    _write_common(writer, shape, name or f"synthetic-{arch}-{kind}", dtype,
                  gguf.PoolingType.RANK if head is not None
                  else _POOLING[arch] if pooling else None)
    if arch == "bert":
        _write_bert(writer, shape, dtype, seed, vocab_size, head)
    elif arch == "qwen3":
        _write_qwen3(writer, shape, dtype, seed, vocab_size, head)
    else:
        _write_gemma_embedding(writer, shape, dtype, seed, dense, swa_pattern, vocab_size)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
