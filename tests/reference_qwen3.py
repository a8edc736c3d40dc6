"""An independent Qwen3 forward pass in numpy, last-token pooled as Qwen3-Embedding is, and
scored as Qwen3-Reranker is.

It reads an f32 GGUF's tensors with the ``gguf`` package and follows the published Qwen3
architecture (RMSNorm, per-head q/k RMSNorm, NEOX rotary embedding, grouped-query causal
attention, SwiGLU), sharing nothing with llama.cpp's graph or its context/ubatch handling,
so it can tell whether a long input split across ubatches is still embedded whole.

Qwen3-Reranker is the same network read at its last token through the language model's rows
for "yes" and "no" (kept in the GGUF as ``cls.output.weight``): the relevance score is
softmax over those two logits, p("yes"), as the model card computes it.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np


class ReferenceQwen3:
    def __init__(self, path: Path) -> None:
        reader = gguf.GGUFReader(path)
        fields = {f.name: f for f in reader.fields.values()}

        def scalar(key: str) -> float:
            return fields[key].contents()

        self.eps = scalar("qwen3.attention.layer_norm_rms_epsilon")
        self.rope_base = scalar("qwen3.rope.freq_base")
        self.heads = scalar("qwen3.attention.head_count")
        self.kv_heads = scalar("qwen3.attention.head_count_kv")
        self.layers = scalar("qwen3.block_count")
        labels = fields.get("qwen3.classifier.output_labels")
        # The head's rows by label (a reranker's); empty for an embedding model.
        self.labels: list[str] = list(labels.contents()) if labels is not None else []
        self.w = {t.name: np.asarray(t.data, dtype=np.float64) for t in reader.tensors}

    def _rms(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * g

    def _rope(self, x: np.ndarray) -> np.ndarray:
        """NEOX rotation: dimension i pairs with i + d/2. x: (tokens, heads, d)."""
        d = x.shape[-1]
        pos = np.arange(x.shape[0], dtype=np.float64)[:, None]
        angles = pos * self.rope_base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
        cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
        a, b = x[..., : d // 2], x[..., d // 2:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)

    def embed(self, tokens: list[int], chunk: int = 1024) -> np.ndarray:
        """The normalized last-token vector of one sequence."""
        last = self.last_hidden(tokens, chunk)
        return last / np.linalg.norm(last)

    def rerank_logits(self, tokens: list[int]) -> np.ndarray:
        """The reranker head's logits at the last token, one per label (["yes", "no"])."""
        return self.w["cls.output.weight"] @ self.last_hidden(tokens)

    def rerank_score(self, tokens: list[int]) -> float:
        """Qwen3-Reranker's relevance: p("yes") of the softmax over the yes/no logits."""
        logits = self.rerank_logits(tokens)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        return float(p[self.labels.index("yes")])

    def last_hidden(self, tokens: list[int], chunk: int = 1024) -> np.ndarray:
        """The last token's final hidden state (after the output norm)."""
        w = self.w
        x = w["token_embd.weight"][tokens]
        n = len(tokens)
        for i in range(self.layers):
            p = f"blk.{i}."
            h = self._rms(x, w[p + "attn_norm.weight"])
            q = (h @ w[p + "attn_q.weight"].T).reshape(n, self.heads, -1)
            k = (h @ w[p + "attn_k.weight"].T).reshape(n, self.kv_heads, -1)
            v = (h @ w[p + "attn_v.weight"].T).reshape(n, self.kv_heads, -1)
            q = self._rope(self._rms(q, w[p + "attn_q_norm.weight"]))
            k = self._rope(self._rms(k, w[p + "attn_k_norm.weight"]))
            d = q.shape[-1]
            group = self.heads // self.kv_heads
            out = np.empty_like(q)
            for start in range(0, n, chunk):  # query rows in chunks bound the score matrix
                stop = min(start + chunk, n)
                rows = np.arange(start, stop)[:, None]
                masked = np.arange(n)[None, :] > rows
                for head in range(self.heads):
                    kv = head // group
                    scores = q[start:stop, head] @ k[:, kv].T / np.sqrt(d)
                    scores[masked] = -np.inf
                    scores = np.exp(scores - scores.max(-1, keepdims=True))
                    scores /= scores.sum(-1, keepdims=True)
                    out[start:stop, head] = scores @ v[:, kv]
            x = x + out.reshape(n, -1) @ w[p + "attn_output.weight"].T
            h = self._rms(x, w[p + "ffn_norm.weight"])
            gate = h @ w[p + "ffn_gate.weight"].T
            up = h @ w[p + "ffn_up.weight"].T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "ffn_down.weight"].T
        return self._rms(x[-1], w["output_norm.weight"])
