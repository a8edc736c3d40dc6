"""An independent BERT forward pass in numpy, the yardstick for the GGUF conversion.

It reads the original safetensors with the ``safetensors`` package and tokenizes with Hugging
Face ``tokenizers``, so it shares no code with localembed's converter or llama.cpp.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from scipy.special import erf
from tokenizers import Tokenizer


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

    @staticmethod
    def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g + b

    def embed(self, text: str) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence embedding, as sentence-transformers computes."""
        ids = self.tokenize(text)
        w, c = self.w, self.config
        eps = c["layer_norm_eps"]
        heads = c["num_attention_heads"]
        n = len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                             eps)
        d = x.shape[1] // heads
        for i in range(c["num_hidden_layers"]):
            p = f"encoder.layer.{i}."

            def lin(t: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return t @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q, k, v = (lin(x, f"attention.self.{m}").reshape(n, heads, d).transpose(1, 0, 2)
                       for m in ("query", "key", "value"))
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(1, 0, 2).reshape(n, heads * d)
            x = self._layer_norm(x + lin(ctx, "attention.output.dense"),
                                 w[p + "attention.output.LayerNorm.weight"],
                                 w[p + "attention.output.LayerNorm.bias"], eps)
            h = lin(x, "intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))
            x = self._layer_norm(x + lin(h, "output.dense"), w[p + "output.LayerNorm.weight"],
                                 w[p + "output.LayerNorm.bias"], eps)
        pooled = x.mean(0)
        return pooled / np.linalg.norm(pooled)
