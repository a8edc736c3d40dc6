"""The one place that talks to llama.cpp: load a GGUF, tokenize, decode packed batches.

``Llama.embed`` packs naively and truncates away the EOS token that last-token pooling needs,
so localembed drives the context itself: callers hand over already-tokenized sequences and the
runner decodes them as one batch with one sequence id each, reading back the pooled vector per
sequence. A runner is not thread-safe; exactly one worker thread owns it (see batcher.py).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np

from localembed.engine.inspect import GGUFInfo, ModelLoadError
from localembed.engine.wordpiece import WordPiece

_GPU_LIBS = {"cuda": "ggml-cuda", "metal": "ggml-metal", "vulkan": "ggml-vulkan",
             "hip": "ggml-hip", "sycl": "ggml-sycl"}


def gpu_backend() -> str | None:
    """The GPU backend llama.cpp was built with (cuda, metal, vulkan, ...), or None."""
    if not llama_cpp.llama_supports_gpu_offload():
        return None
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    names = " ".join(p.name for p in lib_dir.glob("*")) if lib_dir.is_dir() else ""
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").lower()
    for backend, lib in _GPU_LIBS.items():
        if lib in names or f"{backend} :" in info or f"{backend} =" in info:
            return backend
    return "gpu"


@dataclass(frozen=True)
class RunnerOptions:
    """llama.cpp settings; None means 'pick a sensible default for this machine'."""

    gpu_layers: int | None = None  # None: all layers when a GPU backend exists, else 0
    threads: int | None = None
    max_tokens: int | None = None  # longest input (default: the model's own limit)
    # Flash attention skips the masked cells between packed sequences (~1.75x faster on CPU)
    # and keeps memory linear in context. It rounds K/V to f16, so a vector depends very
    # slightly (~1e-4) on its batch-mates; False makes batching exactly invariant.
    flash_attn: bool = True

    def resolved_threads(self) -> int:
        return self.threads or max(1, os.cpu_count() or 1)


DEFAULT_MAX_TOKENS = 8192
# Packed batches hold at least this many tokens when the model's context allows, even when
# its longest input is shorter (all-MiniLM-L6-v2 takes 256-token inputs, batches of 512).
MIN_BATCH_TOKENS = 512


class LlamaRunner:
    """A loaded model plus its llama.cpp context."""

    def __init__(self, info: GGUFInfo, options: RunnerOptions | None = None) -> None:
        options = options or RunnerOptions()
        self.info = info
        self.backend = gpu_backend()
        if options.gpu_layers is None:
            self.gpu_layers = -1 if self.backend else 0
        else:
            self.gpu_layers = options.gpu_layers
        if self.gpu_layers == 0:
            self.backend = None
        self.threads = options.resolved_threads()
        # Non-causal models abort llama.cpp when a batch exceeds n_ubatch, and BERT aborts past
        # its position table, so one size bounds every batch: n_ctx = n_batch = n_ubatch,
        # at least the longest input and never past the model's context.
        limit = options.max_tokens or min(info.default_max_tokens, DEFAULT_MAX_TOKENS)
        self.max_tokens = max(8, min(limit, info.context))
        self.batch_tokens = max(self.max_tokens, min(MIN_BATCH_TOKENS, info.context))
        self.flash_attn = options.flash_attn
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(info.path),
                embedding=True,
                pooling_type=info.pooling,
                n_ctx=self.batch_tokens,
                n_batch=self.batch_tokens,
                n_ubatch=self.batch_tokens,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                n_gpu_layers=self.gpu_layers,
                flash_attn=self.flash_attn,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {info.path.name}: {exc}") from exc
        model = self.llm._model.model
        self.dimensions = int(llama_cpp.llama_model_n_embd_out(model))
        self.max_sequences = int(self.llm.context_params.n_seq_max)
        vocab = llama_cpp.llama_model_get_vocab(model)
        self.eos = int(llama_cpp.llama_vocab_eos(vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(vocab))
        self._wordpiece = _wordpiece(vocab)  # any WordPiece vocabulary, whatever the family
        if self._wordpiece is not None:
            # llama.cpp adds [CLS] before and [SEP] after; keep that frame around our ids.
            frame = self.llm.tokenize(b"", add_bos=True, special=False)
            self._frame_head = frame[:1] if llama_cpp.llama_vocab_get_add_bos(vocab) else []
            self._frame_tail = frame[len(self._frame_head):]
        self.decode_calls = 0
        self._ctx = self.llm._ctx
        self._batch = self.llm._batch

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Token ids of ``text``, with the model's BOS/EOS/SEP when ``special``.

        Control-token spellings inside user text stay literal text (no injection of EOS).
        """
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: valid in JSON strings, not in UTF-8
            data = (text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
                    .encode("utf-8"))
        if self._wordpiece is not None:
            body = self._wordpiece.encode(data.decode("utf-8"))
            return [*self._frame_head, *body, *self._frame_tail] if special else body
        return self.llm.tokenize(data, add_bos=special, special=False)

    def detokenize(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens).decode("utf-8", "replace")

    def decode(self, sequences: list[list[int]]) -> np.ndarray:
        """Pooled vectors of several token sequences, decoded as one llama.cpp batch."""
        total = sum(len(s) for s in sequences)
        if not sequences or total > self.batch_tokens or len(sequences) > self.max_sequences:
            raise ValueError(f"batch of {len(sequences)} sequences / {total} tokens is too big")
        batch = self._batch
        batch.reset()
        for seq_id, tokens in enumerate(sequences):
            batch.add_sequence(tokens, seq_id, True)
        self._ctx.kv_cache_clear()
        self._ctx.decode(batch)
        self.decode_calls += 1
        out = np.empty((len(sequences), self.dimensions), dtype=np.float32)
        ctx = self._ctx.ctx
        for seq_id in range(len(sequences)):
            ptr = llama_cpp.llama_get_embeddings_seq(ctx, seq_id)
            if not ptr:
                raise RuntimeError("llama.cpp returned no pooled embedding")
            out[seq_id] = np.ctypeslib.as_array(
                ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self.dimensions,)
            )
        return out

    def close(self) -> None:
        self.llm.close()


def _wordpiece(vocab: object) -> WordPiece | None:
    """A Hugging Face-exact tokenizer for a WordPiece vocabulary; None for other vocabularies."""
    if llama_cpp.llama_vocab_type(vocab) != llama_cpp.LLAMA_VOCAB_TYPE_WPM:
        return None
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    tokens = [llama_cpp.llama_vocab_get_text(vocab, i).decode("utf-8", "replace")
              for i in range(n)]
    control = [bool(llama_cpp.llama_vocab_is_control(vocab, i)) for i in range(n)]
    unk = tokens.index("[UNK]") if "[UNK]" in tokens else -1
    return WordPiece(tokens, control, unk)


_PROBE = """
import sys
from localembed.engine.inspect import inspect_gguf
from localembed.engine.llama import LlamaRunner, RunnerOptions
runner = LlamaRunner(inspect_gguf(sys.argv[1]), RunnerOptions(max_tokens=int(sys.argv[2])))
runner.decode([runner.tokenize("probe")])
"""


def probe(info: GGUFInfo, max_tokens: int = 64, timeout: float = 300.0) -> None:
    """Load and run ``info`` once in a child process.

    Some malformed models make llama.cpp abort the process (a failed assertion, not an
    exception); trying an unknown file in a child first keeps the server alive.
    """
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(info.path), str(max_tokens)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        if proc.returncode < 0:
            reason = f"llama.cpp crashed (signal {-proc.returncode}): {reason}"
        raise ModelLoadError(f"{info.path.name} cannot be served: {reason}")
