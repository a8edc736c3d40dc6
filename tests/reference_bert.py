"""Independent BERT forward passes: the yardsticks for the GGUF conversion and for
XLM-RoBERTa-style cross-encoders (rerankers).

``ReferenceBert`` reads the original safetensors with the ``safetensors`` package and tokenizes
with Hugging Face ``tokenizers``, so it shares no code with localembed's converter or llama.cpp.

``ReferenceCrossEncoder`` scores a (query, document) pair's token ids the way Hugging Face's
``XLMRobertaForSequenceClassification`` does (the encoder, then dense + tanh + one logit on the
first token), in numpy, with weights read from a GGUF by ``gguf.GGUFReader``;
``TransformersCrossEncoder`` runs that ``transformers`` class itself, built from the GGUF's
shapes and given its weights. Both use BERT's exact GELU, as the original models do; llama.cpp's
CPU backend computes an approximation (tanh form, through an f16 table), which moves a logit by
up to a few 1e-3.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file
from scipy.special import erf
from tokenizers import Tokenizer


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def encode(w: dict[str, np.ndarray], config: dict, ids: list[int]) -> np.ndarray:
    """BERT's encoder: the final hidden state of every token, (tokens, hidden).

    ``w`` holds Hugging Face BERT/RoBERTa names without the model prefix
    (``embeddings.word_embeddings.weight``, ``encoder.layer.0.attention.self.query.weight``, ...);
    every token is of token type 0 and positions count from 0.
    """
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    n = len(ids)
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][:n]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    d = x.shape[1] // heads
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def lin(t: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return t @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q, k, v = (lin(x, f"attention.self.{m}").reshape(n, heads, d).transpose(1, 0, 2)
                   for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        ctx = (scores @ v).transpose(1, 0, 2).reshape(n, heads * d)
        x = _layer_norm(x + lin(ctx, "attention.output.dense"),
                        w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"], eps)
        h = lin(x, "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))  # BERT's exact GELU
        x = _layer_norm(x + lin(h, "output.dense"), w[p + "output.LayerNorm.weight"],
                        w[p + "output.LayerNorm.bias"], eps)
    return x


class ReferenceBert:
    """all-MiniLM-L6-v2 (or any BERT sentence-transformers folder) as sentence-transformers
    runs it: inputs cut at ``sentence_bert_config.json``'s max_seq_length, special tokens
    included in that count."""

    def __init__(self, folder: Path) -> None:
        self.config = json.loads((folder / "config.json").read_text())
        raw = load_file(str(folder / "model.safetensors"))
        self.w = {k.removeprefix("bert."): v.astype(np.float64) for k, v in raw.items()}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        st_config = folder / "sentence_bert_config.json"
        limit = json.loads(st_config.read_text()).get("max_seq_length") if st_config.exists() \
            else None
        self.max_seq_length = limit or self.config["max_position_embeddings"]
        self.tokenizer.enable_truncation(self.max_seq_length)

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def embed(self, text: str) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence embedding, as sentence-transformers computes."""
        pooled = encode(self.w, self.config, self.tokenize(text)).mean(0)
        return pooled / np.linalg.norm(pooled)


# GGUF tensor names (llama.cpp's bert) -> Hugging Face's, per layer and for the rest.
_GGUF_LAYER_NAMES = {
    "attn_q": "attention.self.query",
    "attn_k": "attention.self.key",
    "attn_v": "attention.self.value",
    "attn_output": "attention.output.dense",
    "attn_output_norm": "attention.output.LayerNorm",
    "ffn_up": "intermediate.dense",
    "ffn_down": "output.dense",
    "layer_output_norm": "output.LayerNorm",
}
_GGUF_NAMES = {
    "token_embd.weight": "embeddings.word_embeddings.weight",
    "position_embd.weight": "embeddings.position_embeddings.weight",
    "token_types.weight": "embeddings.token_type_embeddings.weight",
    "token_embd_norm.weight": "embeddings.LayerNorm.weight",
    "token_embd_norm.bias": "embeddings.LayerNorm.bias",
    # RoBERTa's classification head: dense + tanh on the first token, then out_proj.
    "cls.weight": "classifier.dense.weight",
    "cls.bias": "classifier.dense.bias",
    "cls.output.weight": "classifier.out_proj.weight",
    "cls.output.bias": "classifier.out_proj.bias",
}


def _hf_name(gguf_name: str) -> str:
    if gguf_name in _GGUF_NAMES:
        return _GGUF_NAMES[gguf_name]
    blk, layer, part, kind = gguf_name.split(".")
    assert blk == "blk", gguf_name
    return f"encoder.layer.{layer}.{_GGUF_LAYER_NAMES[part]}.{kind}"


def gguf_bert_weights(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """An f32 bert-architecture GGUF's weights under Hugging Face names, and its config.

    ``GGUFReader`` gives each matrix in numpy's (out_features, in_features) order, which is
    ``torch.nn.Linear``'s too, so nothing is transposed.
    """
    reader = gguf.GGUFReader(path)
    fields = {f.name: f.contents() for f in reader.fields.values()
              if not f.name.startswith("tokenizer.ggml.")}
    weights = {}
    for t in reader.tensors:
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise ValueError(f"{t.name} is {t.tensor_type.name}; the reference reads f32 files")
        weights[_hf_name(t.name)] = np.asarray(t.data, dtype=np.float64)
    hidden = int(fields["bert.embedding_length"])
    config = {
        "hidden_size": hidden,
        "num_hidden_layers": int(fields["bert.block_count"]),
        "num_attention_heads": int(fields["bert.attention.head_count"]),
        "intermediate_size": int(fields["bert.feed_forward_length"]),
        "max_position_embeddings": int(fields["bert.context_length"]),
        "layer_norm_eps": float(fields["bert.attention.layer_norm_epsilon"]),
        "vocab_size": weights["embeddings.word_embeddings.weight"].shape[0],
        "type_vocab_size": weights["embeddings.token_type_embeddings.weight"].shape[0],
    }
    return weights, config


class ReferenceCrossEncoder:
    """An XLM-RoBERTa-style cross-encoder (bge-reranker-v2-m3's shape) from its GGUF.

    ``logit(ids)`` is the relevance logit of one pair's token ids (the caller's frame
    ``<s> query </s></s> document </s>``), ``score(ids)`` its sigmoid.
    """

    def __init__(self, path: Path) -> None:
        self.w, self.config = gguf_bert_weights(path)
        if self.config["type_vocab_size"] != 1 or "classifier.dense.weight" not in self.w:
            raise ValueError(f"{path} is not an XLM-RoBERTa-style cross-encoder")

    def logit(self, ids: list[int]) -> float:
        first = encode(self.w, self.config, ids)[0]
        dense = np.tanh(self.w["classifier.dense.weight"] @ first + self.w["classifier.dense.bias"])
        return float(self.w["classifier.out_proj.weight"][0] @ dense
                     + self.w["classifier.out_proj.bias"][0])

    def score(self, ids: list[int]) -> float:
        return float(1.0 / (1.0 + np.exp(-self.logit(ids))))


class TransformersCrossEncoder:
    """The same cross-encoder run by ``transformers``' own XLMRobertaForSequenceClassification
    (float64), its weights loaded from the GGUF: a reference written by other people.

    RoBERTa numbers positions from ``padding_idx + 1``; the GGUF's position table starts at 0
    (the converter dropped the offset rows), so positions 0..n-1 are passed explicitly.
    """

    def __init__(self, path: Path) -> None:
        import torch
        from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

        weights, c = gguf_bert_weights(path)
        config = XLMRobertaConfig(
            vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
            num_hidden_layers=c["num_hidden_layers"],
            num_attention_heads=c["num_attention_heads"],
            intermediate_size=c["intermediate_size"], hidden_act="gelu",
            max_position_embeddings=c["max_position_embeddings"],
            type_vocab_size=c["type_vocab_size"], layer_norm_eps=c["layer_norm_eps"],
            num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
            pad_token_id=0)
        model = XLMRobertaForSequenceClassification(config).double().eval()
        state = {(k if k.startswith("classifier.") else "roberta." + k): torch.from_numpy(v)
                 for k, v in weights.items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        # Only buffers may be left out (position_ids / token_type_ids defaults).
        assert not unexpected and all(k.endswith("_ids") for k in missing), (missing, unexpected)
        self.model, self.torch = model, torch

    def logit(self, ids: list[int]) -> float:
        torch = self.torch
        with torch.no_grad():
            out = self.model(input_ids=torch.tensor([ids]),
                             position_ids=torch.arange(len(ids))[None, :],
                             token_type_ids=torch.zeros((1, len(ids)), dtype=torch.long))
        return float(out.logits[0, 0])

    def score(self, ids: list[int]) -> float:
        return float(1.0 / (1.0 + np.exp(-self.logit(ids))))
