"""Writing tensors into GGUF files: shared by the converter and the test-model writer.

Production code (``convert.py``) and the random-weight test models (``synthetic.py``) store
weights the same way; keeping that here means the converter never imports test code.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from localembed.gguf.dtypes import DTYPES

_QUANTS = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}


def add_matrix(writer: gguf.GGUFWriter, name: str, data: np.ndarray, dtype: str) -> None:
    """Add a 2-D float32 array (shape ``(out, in)``) as f32, f16, q8_0 (or q4_0, which only
    the kernel check writes)."""
    if dtype == "f32":
        writer.add_tensor(name, data.astype(np.float32))
    elif dtype == "f16":
        writer.add_tensor(name, data.astype(np.float16))
    elif dtype in _QUANTS:
        qtype = _QUANTS[dtype]
        writer.add_tensor(name, gguf.quants.quantize(data.astype(np.float32), qtype),
                          raw_dtype=qtype)
    else:
        raise ValueError(f"unknown dtype {dtype!r}; use {', '.join(DTYPES)}")


def file_type(dtype: str) -> int:
    """The ``general.file_type`` value llama.cpp reports for a model stored as ``dtype``."""
    return {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
    }[dtype]


def write_kernel_check_model(path: Path, dtype: str) -> Path:
    """A one-layer BERT whose matrices are ``dtype`` and wide enough (256 x 512) for every
    repacked llama.cpp CPU kernel (AMX tiles, 8x8 interleaving) to take them: what
    ``engine.probe`` runs to learn whether those kernels work on this CPU. Random weights."""
    hidden, ff, context = 256, 512, 64
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
             *("\u2581" + c for c in "abcdefghijklmnopqrstuvwxyz")]
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_name("localembed-kernel-check")
    writer.add_file_type(file_type(dtype))
    writer.add_context_length(context)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ff)
    writer.add_block_count(1)
    writer.add_head_count(4)
    writer.add_layer_norm_eps(1e-12)
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab)
    writer.add_token_types([gguf.TokenType.CONTROL] * 5 + [gguf.TokenType.NORMAL] * 26)
    writer.add_token_type_count(2)
    for key, value in (("pad", 0), ("unk", 1), ("bos", 2), ("sep", 3), ("mask", 4)):
        getattr(writer, f"add_{key}_token_id")(value)
    writer.add_add_bos_token(True)
    writer.add_add_sep_token(True)

    def matrix(name: str, rows: int, cols: int) -> None:
        add_matrix(writer, name, rng.normal(0, 0.05, (rows, cols)).astype(np.float32), dtype)

    def vector(name: str, size: int, value: float = 0.0) -> None:
        writer.add_tensor(name, np.full((size,), value, dtype=np.float32))

    writer.add_tensor("token_embd.weight", rng.normal(0, 0.5, (len(vocab), hidden))
                      .astype(np.float32))
    writer.add_tensor("position_embd.weight", rng.normal(0, 0.1, (context, hidden))
                      .astype(np.float32))
    writer.add_tensor("token_types.weight", np.zeros((2, hidden), dtype=np.float32))
    vector("token_embd_norm.weight", hidden, 1.0)
    vector("token_embd_norm.bias", hidden)
    for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
        matrix(f"blk.0.{part}.weight", hidden, hidden)
        vector(f"blk.0.{part}.bias", hidden)
    for norm in ("attn_output_norm", "layer_output_norm"):
        vector(f"blk.0.{norm}.weight", hidden, 1.0)
        vector(f"blk.0.{norm}.bias", hidden)
    matrix("blk.0.ffn_up.weight", ff, hidden)
    vector("blk.0.ffn_up.bias", ff)
    matrix("blk.0.ffn_down.weight", hidden, ff)
    vector("blk.0.ffn_down.bias", hidden)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
