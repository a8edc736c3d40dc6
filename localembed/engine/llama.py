"""The one place that talks to llama.cpp: load a GGUF, tokenize, decode packed batches.

``Llama.embed`` packs naively and truncates away the EOS token that last-token pooling needs,
so localembed drives the context itself: callers hand over already-tokenized sequences and the
runner decodes them as one batch with one sequence id each, reading back the pooled vector per
sequence. Each of the batcher's worker threads decodes in a context of its own (see
batcher.py); tokenizing is safe from any thread.
"""

from __future__ import annotations

import ctypes
import importlib
import mmap
import os
import re
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from localembed.config.imports import partial_package
from localembed.engine.inspect import GGUFInfo, Kind, ModelLoadError
from localembed.engine.memory import mapped_ranges, release_mapped_pages
from localembed.engine.wordpiece import WordPiece

# llama.cpp's CPU threads are an OpenMP team that meets at a barrier after every graph op.
# libgomp spins about 300,000 times before a waiting thread sleeps: on a machine whose cores are
# shared (the HTTP threads, other processes, a hypervisor), one preempted thread keeps the
# other spinning for a whole time slice, and a two-thread decode was measured 2-25x slower
# than a one-thread one. Spinning briefly keeps barriers fast (a one-text request on the
# starter: 6.2 ms p50 against 8.5 ms) without that collapse; sleeping at every barrier
# (OMP_WAIT_POLICY=PASSIVE) costs 10-30 ms per decode. Read by libgomp when llama_cpp loads
# it, so set before the import; the user's own setting wins.
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

llama_cpp = partial_package("llama_cpp", "llama_cpp")  # its ctypes bindings, not its Llama

from llama_cpp._internals import LlamaModel  # noqa: E402
from llama_cpp._logger import llama_log_callback as _default_log  # noqa: E402
from llama_cpp._logger import set_verbose  # noqa: E402

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
    # Decoding workers, each with its own context (None: one per CPU thread, up to
    # MAX_WORKERS, on CPU; one with a GPU).
    workers: int | None = None
    # llama.cpp's weight repacking into CPU-specific layouts ("extra buffer types"): faster
    # kernels on most CPUs, a SIGILL in its AMX q8_0 kernel on some. None: an Engine decides
    # once per llama.cpp build and CPU (engine.probe.repack_allowed), the server per model;
    # a bare LlamaRunner does not repack.
    repack: bool | None = None
    # A reranker computes attention in f32 (no flash attention, f32 K/V cache): see
    # LlamaRunner. False gives it the embedding models' settings (benchmarks/rerank_bench.py
    # measures both).
    exact_rerank: bool = True

    def resolved_threads(self) -> int:
        return self.threads or max(1, os.cpu_count() or 1)


DEFAULT_MAX_TOKENS = 8192
# On CPU, several single-threaded decodes side by side beat one decode spread over the same
# cores: no barrier between threads waits for one the OS has preempted (on a busy machine a
# two-thread decode of a small batch was measured 2-4x slower than two one-thread decodes).
# Each worker holds its own packed-batch context (buffers, KV cache), so their number is capped.
MAX_WORKERS = 4
MIB = 1 << 20
# Packed batches hold this many tokens (when the model's context allows): on CPU a bigger
# batch is no faster per token, and llama.cpp's buffers grow with it.
PACK_TOKENS = 512
# What the workers pack into one decode on CPU, though a context takes PACK_TOKENS: every
# sequence of a batch attends over the whole batch (masked), so a packed batch's cost per text
# grows with its size, and four batches of 128 tokens beat one of 512 (gemma shape, 3-20-word
# texts, 2 cores: 32 clients 35.8 -> 42.2 req/s, batches of 32 41.5 -> 49.8 texts/s; the
# starter's 32 clients 0.95 -> 1.03 of llama-server). A GPU gains from the bigger batch.
CPU_PLAN_TOKENS = 128
# A model with an LM head (Qwen3) computes logits for every token even in embedding mode, and
# llama.cpp holds them twice (compute and output buffers): tokens x vocabulary x 4 bytes each.
# Its batches are capped so that each holds at most this much (96 tokens for a 151k vocab).
LOGITS_BUDGET_BYTES = 64 << 20
# Sequences per decode: 64 short texts already fill a 512-token batch, and llama.cpp reserves
# (and zeroes) vocabulary x this many floats of logits per context.
MAX_SEQUENCES = 64
# The Unicode normalisation a vocabulary's own tokenizer applies before its pre-tokenizer, by
# llama.cpp's pre-tokenizer name; llama.cpp applies none. Qwen2/Qwen3's tokenizer.json has an
# NFC normalizer: "e" + U+0301 is "é" (one token) to the model, two pieces to llama.cpp.
UNICODE_NORMALIZATION = {"qwen2": "NFC"}
# The smallest context llama.cpp makes (its KV cache is padded to 256 cells).
MIN_CONTEXT = 256
# Contexts for long inputs are sized in steps of this many tokens, so that inputs of similar
# length reuse one context instead of creating a new one each.
LONG_STEP = 256


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


class _Context:
    """A llama.cpp context plus a reusable input batch whose arrays numpy fills in one pass.

    ``llama_batch_init`` allocates one seq_id array per token and ``LlamaBatch.add_sequence``
    fills them token by token in Python (about 2 ms per 512-token batch); here every field of
    ``llama_batch`` points into numpy arrays owned by this object.
    """

    def __init__(self, ctx: llama_cpp.llama_context_p, batch_tokens: int, max_sequences: int,
                 dimensions: int, n_vocab: int, lm_head: bool,
                 context_tokens: int | None = None) -> None:
        self.ctx = ctx
        self.batch_tokens = batch_tokens  # tokens per llama_decode call
        self.capacity = context_tokens or batch_tokens  # the longest sequence it takes
        self.max_sequences = max_sequences
        self.dimensions = dimensions
        self._n_vocab = n_vocab
        self._lm_head = lm_head
        self._reserved = 0
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._token = np.zeros(batch_tokens, dtype=np.int32)
        self._pos = np.zeros(batch_tokens, dtype=np.int32)
        self._n_seq_id = np.ones(batch_tokens, dtype=np.int32)
        self._seq = np.zeros(batch_tokens, dtype=np.int32)
        self._positions = np.arange(batch_tokens, dtype=np.int32)
        self._logits = np.ones(batch_tokens, dtype=np.int8)  # pooling needs every output
        self._seq_ptrs = (self._seq.ctypes.data
                          + 4 * np.arange(batch_tokens, dtype=np.uintp)).astype(np.uintp)
        batch = llama_cpp.llama_batch()
        batch.token = self._token.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token))
        batch.embd = ctypes.POINTER(ctypes.c_float)()
        batch.pos = self._pos.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_pos))
        batch.n_seq_id = self._n_seq_id.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        batch.seq_id = ctypes.cast(self._seq_ptrs.ctypes.data,
                                   ctypes.POINTER(ctypes.POINTER(llama_cpp.llama_seq_id)))
        batch.logits = self._logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))
        self._batch = batch
        self._threads = 0
        self._drop_unused_logits(max_sequences)

    def set_threads(self, threads: int) -> None:
        if threads != self._threads:
            llama_cpp.llama_set_n_threads(self.ctx, threads, threads)
            self._threads = threads

    @classmethod
    def create(cls, model: llama_cpp.llama_model_p, params: llama_cpp.llama_context_params,
               tokens: int, batch: int, dimensions: int, n_vocab: int,
               lm_head: bool) -> _Context:
        """A new context for sequences of up to ``tokens`` tokens, ``batch`` per decode call
        (and per ubatch)."""
        p = llama_cpp.llama_context_params.from_buffer_copy(params)
        p.n_ctx = tokens
        p.n_batch = p.n_ubatch = batch
        p.n_seq_max = min(batch, MAX_SEQUENCES, llama_cpp.llama_max_parallel_sequences())
        ctx = llama_cpp.llama_init_from_model(model, p)
        if not ctx:
            raise RuntimeError(f"llama.cpp could not create a {tokens}-token context "
                               "(out of memory?)")
        return cls(ctx, batch, p.n_seq_max, dimensions, n_vocab=n_vocab,
                   lm_head=lm_head, context_tokens=tokens)

    def decode(self, sequences: list[list[int]]) -> np.ndarray:
        if len(sequences) == 1 and self.batch_tokens < len(sequences[0]) <= self.capacity:
            return self._decode_in_chunks(sequences[0])
        total = sum(map(len, sequences))
        if not sequences or total > self.batch_tokens or len(sequences) > self.max_sequences:
            raise ValueError(f"batch of {len(sequences)} sequences / {total} tokens is too big")
        if len(sequences) == 1:
            # A lone request's batch in three array writes: every numpy call after a decode
            # has evicted the caches costs 5-20 us, not the 1-2 us it costs hot.
            self._token[:total] = sequences[0]
            self._pos[:total] = self._positions[:total]
            self._seq[:total] = 0
        else:
            lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
            starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
            self._token[:total] = [t for s in sequences for t in s]
            self._pos[:total] = self._positions[:total] - starts
            self._seq[:total] = np.repeat(np.arange(len(sequences), dtype=np.int32), lengths)
        self._clear()
        self._run(total)
        return self._pooled(len(sequences))

    def _decode_in_chunks(self, tokens: list[int]) -> np.ndarray:
        """One long sequence of a causal model over several decode calls, its KV cache carried
        from one to the next: llama.cpp's output buffers scale with the tokens of one call
        (times the vocabulary, for a model with an LM head), the KV cache with the sequence."""
        self._clear()
        step = self.batch_tokens
        self._seq[:step] = 0
        for start in range(0, len(tokens), step):
            chunk = tokens[start:start + step]
            self._token[:len(chunk)] = chunk
            self._pos[:len(chunk)] = np.arange(start, start + len(chunk))
            self._run(len(chunk))
        return self._pooled(1)  # last-token pooling: the final call's vector is the sequence's

    def _clear(self) -> None:
        if self._memory:
            # Forget the previous batch's cells; their contents are finite values that the
            # mask hides, so wiping the whole buffer (data=True) would only cost time.
            _HOLDING_GIL.llama_memory_clear(self._memory, False)

    def _run(self, tokens: int) -> None:
        self._batch.n_tokens = tokens
        status = llama_cpp.llama_decode(self.ctx, self._batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        self._drop_unused_logits(tokens)

    def _pooled(self, count: int) -> np.ndarray:
        out = np.empty((count, self.dimensions), dtype=np.float32)
        base, size = out.__array_interface__["data"][0], 4 * self.dimensions
        for seq_id in range(count):
            address = _HOLDING_GIL.llama_get_embeddings_seq(self.ctx, seq_id)
            if not address:
                raise RuntimeError("llama.cpp returned no pooled embedding")
            _HOLDING_GIL.memmove(base + seq_id * size, address, size)
        return out

    def _drop_unused_logits(self, outputs: int) -> None:
        """Give back the pages of llama.cpp's logits buffer when the model never fills it.

        In embedding mode llama.cpp still reserves (and zeroes) vocabulary x outputs floats
        for logits: 537 MB for a 512-token batch of a 262k vocabulary. A model without an LM
        head (BERT, EmbeddingGemma) never writes them and nothing reads them, so once the
        buffer has been (re)allocated its pages are returned to the OS; they read as zeros,
        as they were.
        """
        if self._lm_head or _MADVISE is None or outputs <= self._reserved:
            return
        self._reserved = max(outputs, self.max_sequences)
        base = ctypes.cast(llama_cpp.llama_get_logits(self.ctx), ctypes.c_void_p).value
        if not base:
            return
        page = mmap.PAGESIZE
        start = _round_up(base, page)
        end = (base + self._n_vocab * self._reserved * 4) // page * page
        if end > start:
            _MADVISE(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED)

    def close(self) -> None:
        if self.ctx:
            llama_cpp.llama_free(self.ctx)
        self.ctx = None


def _madvise() -> Callable[..., int] | None:
    """libc's madvise on Linux, where MADV_DONTNEED frees anonymous pages at once."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None


_MADVISE = _madvise()
_MADV_DONTNEED = 4


def _holding_gil() -> ctypes.PyDLL:
    """llama.cpp's quick lookups, called without letting go of the GIL.

    A ctypes call lets go of the GIL and takes it back on return; with 32 HTTP threads
    wanting it, taking it back can wait for one of them, and a worker reading a decode's
    vectors did that once per sequence while its core sat idle. These calls take
    microseconds, so they keep it (the decode itself still lets go).
    """
    lib = ctypes.PyDLL(importlib.import_module("llama_cpp.llama_cpp")._lib._name)
    lib.llama_get_embeddings_seq.restype = ctypes.c_void_p
    lib.llama_get_embeddings_seq.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.llama_memory_clear.restype = None
    lib.llama_memory_clear.argtypes = [ctypes.c_void_p, ctypes.c_bool]
    # ctypes' own memmove, declared to keep the GIL too: for copying the pooled rows out.
    lib.memmove = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_size_t)(ctypes._memmove_addr)
    return lib


_HOLDING_GIL = _holding_gil()


class LlamaRunner:
    """A loaded model plus its llama.cpp contexts.

    llama.cpp allocates a context's KV cache and compute buffers for its full size up front, so
    one context sized for the longest input (8,192 tokens for Qwen3) holds about a gigabyte
    that packed batches never use. The resident context is sized for packed batches; an input
    longer than that runs in a context made for it, kept while long inputs keep coming and
    freed when the worker goes idle (``release``).
    """

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
        limit = options.max_tokens or min(info.default_max_tokens, DEFAULT_MAX_TOKENS)
        self.max_tokens = max(8, min(limit, info.context))
        # The resident context: n_ctx = n_batch = n_ubatch, since non-causal models need a whole
        # batch in one ubatch (llama.cpp aborts otherwise) and BERT aborts past its positions.
        self.batch_tokens = min(PACK_TOKENS, info.context)
        self._lm_head = not info.family.embedding_only
        if self._lm_head and info.vocab_size:
            cap = LOGITS_BUDGET_BYTES // (info.vocab_size * 4) // 32 * 32
            self.batch_tokens = min(self.batch_tokens, max(32, cap))
        # A reranker's score is one number read off a head, so it is computed in f32 throughout:
        # flash attention and the default f16 K/V cache moved Qwen3-Reranker's p(yes) by
        # ~1.5e-3 from an exact forward pass and made a cross-encoder's score depend on its
        # batch-mates by ~2e-3. The cost is attention's share of the compute (small for real
        # model widths).
        reranker = info.kind == Kind.RERANKER
        exact = reranker and options.exact_rerank
        self.flash_attn = options.flash_attn and not exact
        self.repack = bool(options.repack)  # None (undecided) is the safe choice: no repacking
        # The model is loaded through llama.cpp's own parameters rather than ``Llama``, which
        # cannot turn repacking off and makes a context of its own that would go unused.
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0x7FFFFFFF if self.gpu_layers == -1 else self.gpu_layers
        params.use_extra_bufts = self.repack
        set_verbose(False)
        # Mappings of this file made before this load (another model of the same file) keep
        # their pages: that model may use them from the mapping.
        others = frozenset(start for start, _length, _resident in mapped_ranges(info.path))
        try:
            with _weight_buffers() as buffers:
                # llama-cpp-python's suppress_stdout_stderr (verbose=False) points the whole
                # process's stdout and stderr at /dev/null during the load: from a background
                # thread that swallowed what other threads printed (serve's URL), so only the
                # main thread's loads are silenced that way.
                quiet = threading.current_thread() is threading.main_thread()
                self._model = LlamaModel(path_model=str(info.path), params=params,
                                         verbose=not quiet)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {info.path.name}: {exc}") from exc
        # Weights llama.cpp copied out of the mapped file (repacked into its CPU layouts, or
        # offloaded to a GPU): the mapped pages they were read from are given back
        # (engine.memory), or the model would hold those weights twice.
        self.copied_bytes = int(sum(mib for name, mib in buffers.items()
                                    if not name.endswith("_Mapped")) * MIB)
        self._other_mappings = others
        self.released_bytes = (release_mapped_pages(info.path, keep=others)
                               if self.copied_bytes else 0)
        model = self._model.model
        self.context_params = self._context_params(info, exact)
        # A reranker's pooled output is its classification head's: one float per label.
        self.dimensions = int(llama_cpp.llama_model_n_cls_out(model) if reranker
                              else llama_cpp.llama_model_n_embd_out(model))
        self.labels = [(llama_cpp.llama_model_cls_label(model, i) or b"").decode("utf-8", "replace")
                       for i in range(self.dimensions)] if reranker else []
        self._long: _Context | None = None
        self._long_lock = threading.Lock()  # one long input at a time: its context is big
        vocab = self._model.vocab
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self.workers = options.workers or (1 if self.backend else min(self.threads, MAX_WORKERS))
        # Tokens the workers aim to pack into one decode: see CPU_PLAN_TOKENS.
        self.plan_tokens = (self.batch_tokens if self.backend
                            else min(CPU_PLAN_TOKENS, self.batch_tokens))
        self._contexts: list[_Context] = []
        try:
            for _ in range(self.workers):
                self._contexts.append(_Context.create(
                    model, self.context_params, self.batch_tokens, self.batch_tokens,
                    self.dimensions, self.n_vocab, self._lm_head))
        except RuntimeError as exc:
            self.close()
            raise ModelLoadError(f"{info.path.name}: {exc}") from exc
        self.max_sequences = self._contexts[0].max_sequences
        # A model with a KV cache (causal attention) can take a long input in batch_tokens
        # steps; with last-token pooling the vector llama.cpp keeps is the final ubatch's,
        # which is the whole sequence's. Other poolings need the sequence in one ubatch.
        # (A causal reranker reads its last token too.)
        self._chunked = (bool(llama_cpp.llama_get_memory(self._contexts[0].ctx))
                         and info.pooling in (int(llama_cpp.LLAMA_POOLING_TYPE_LAST),
                                              int(llama_cpp.LLAMA_POOLING_TYPE_RANK)))
        self.eos = int(llama_cpp.llama_vocab_eos(vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(vocab))
        self.sep = int(llama_cpp.llama_vocab_sep(vocab))
        # Which special tokens the tokenizer adds around a text (the cross-encoder pair frame).
        self.adds = {"bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
                     "eos": bool(llama_cpp.llama_vocab_get_add_eos(vocab)),
                     "sep": bool(llama_cpp.llama_vocab_get_add_sep(vocab))}
        # Any WordPiece vocabulary, whatever the family (a cross-encoder's segment-B copies of
        # its tokens are never produced by tokenizing).
        self._wordpiece = _wordpiece(vocab, info.segment_b_offset, info.path)
        self._pieces: dict[tuple[int, bool], bytes] = {}  # token -> bytes, filled as read
        if self._wordpiece is not None:
            # llama.cpp adds [CLS] before and [SEP] after; keep that frame around our ids.
            frame = self._model.tokenize(b"", add_bos=True, special=False)
            self._frame_head = frame[:1] if llama_cpp.llama_vocab_get_add_bos(vocab) else []
            self._frame_tail = frame[len(self._frame_head):]

    def held_weight_bytes(self) -> int:
        """Weight memory this model holds now: what llama.cpp copied out of the file plus its
        own mapping's resident pages (0 for the latter where /proc cannot be read)."""
        mapped = sum(resident for start, _length, resident in mapped_ranges(self.info.path)
                     if start not in self._other_mappings)
        return self.copied_bytes + mapped

    def normalize(self, text: str) -> str:
        """``text`` as the vocabulary's own tokenizer sees it (its Unicode normalisation);
        callers that cut text normalise it first, so that cuts fall where tokens do."""
        form = UNICODE_NORMALIZATION.get(self.info.tokenizer_pre or "")
        return unicodedata.normalize(form, text) if form and not text.isascii() else text

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Token ids of ``text``, with the model's BOS/EOS/SEP when ``special``.

        Control-token spellings inside user text stay literal text (no injection of EOS).
        """
        text = self.normalize(text)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: valid in JSON strings, not in UTF-8
            data = (text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
                    .encode("utf-8"))
        if self._wordpiece is not None:
            body = self._wordpiece.encode(data.decode("utf-8"))
            return [*self._frame_head, *body, *self._frame_tail] if special else body
        return self._model.tokenize(data, add_bos=special, special=False)

    def tokenize_template(self, text: str) -> list[int]:
        """Token ids of a prompt template's own text: control-token spellings in it (such as
        ``<|im_start|>``) become those tokens, and nothing is added around it. Never for user
        text."""
        return self._model.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def piece(self, token: int, special: bool = False) -> bytes:
        """The bytes one token stands for (llama-cpp-python's own reader cuts pieces longer
        than 32 bytes, and Qwen's vocabulary has longer ones)."""
        key = (token, special)
        cached = self._pieces.get(key)
        if cached is not None:
            return cached
        self._pieces[key] = value = self._piece(token, special)
        return value

    def _piece(self, token: int, special: bool) -> bytes:
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(self._model.vocab, llama_cpp.llama_token(token),
                                               buffer, size, 0, special)
            if n >= 0:
                return buffer.raw[:n]
            size = -n

    def covered(self, text: str, tokens: list[int], count: int) -> int:
        """How many characters of ``text`` its first ``count`` tokens (``tokens`` is
        ``tokenize(text, special=False)``) stand for: where a cut keeping them falls.

        Byte-level BPE and SentencePiece pieces give the text back byte for byte; a character
        split between two tokens is left out. A tokenizer that does not (normalising ones) gets
        a proportional estimate, which callers correct by tokenizing again.
        """
        if count <= 0:
            return 0
        if count >= len(tokens):
            return len(text)
        if self._wordpiece is not None:
            return self._wordpiece.ends(text)[count - 1]
        data = text.encode("utf-8", "surrogatepass")
        prefix = b"".join(self.piece(t) for t in tokens[:count])
        if not data.startswith(prefix):
            return len(text) * count // len(tokens)
        return len(prefix.decode("utf-8", "ignore"))

    @property
    def prefix_stable(self) -> bool:
        """WordPiece is (greedy longest match from the left, words split apart first): a cut
        token list is the tokenization of the text it covers. Byte-level BPE is not."""
        return self._wordpiece is not None

    def is_special(self, token: int) -> bool:
        """A control or user-defined token: matched whole in a template, never merged."""
        attr = llama_cpp.llama_vocab_get_attr(self._model.vocab, token)
        return bool(attr & (llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
                            | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED))

    def detokenize(self, tokens: list[int], special: bool = False) -> str:
        return b"".join(self.piece(t, special) for t in tokens).decode("utf-8", "replace")

    def self_test(self) -> np.ndarray:
        """One short input through the model: the weights are paged in and the buffers touched
        now, and a model whose output is not finite (corrupt weights: NaN or garbage data) is
        refused here instead of serving ``null`` vectors."""
        out = self.decode([self.tokenize("hello", special=True)], threads=1)
        if not np.isfinite(out).all():
            raise ModelLoadError(
                f"{self.info.path.name} loads but computes non-finite values (NaN or infinity) "
                "for a plain input: its weights are corrupt or unusable. Download or convert "
                "it again")
        return out

    def decode(self, sequences: list[list[int]], worker: int = 0,
               threads: int | None = None) -> np.ndarray:
        """Pooled vectors of several token sequences, decoded as one llama.cpp batch in
        ``worker``'s context with ``threads`` CPU threads (default: all).

        Several sequences fit the resident context together; one longer sequence (up to
        ``max_tokens``) runs alone in the long-input context.
        """
        threads = threads or self.threads
        if len(sequences) == 1 and len(sequences[0]) > self.batch_tokens:
            with self._long_lock:
                context = self._long_context(len(sequences[0]))
                context.set_threads(threads)
                return context.decode(sequences)
        context = self._contexts[worker]
        context.set_threads(threads)
        return context.decode(sequences)

    def _long_context(self, tokens: int) -> _Context:
        if tokens > self.max_tokens:
            raise ValueError(f"a sequence of {tokens} tokens is longer than {self.max_tokens}")
        if self._long is None or self._long.capacity < tokens:
            self._release_long()
            size = min(_round_up(tokens, LONG_STEP), self.info.context)
            self._long = _Context.create(
                self._model.model, self.context_params, size,
                self.batch_tokens if self._chunked else size, self.dimensions, self.n_vocab,
                self._lm_head)
        return self._long

    @property
    def long_context_tokens(self) -> int:
        """Size of the long-input context currently held (0: none)."""
        return self._long.capacity if self._long is not None else 0

    def release(self) -> None:
        """Free the long-input context, if any (its KV cache and buffers go back)."""
        with self._long_lock:
            self._release_long()

    def _release_long(self) -> None:
        if self._long is not None:
            self._long.close()
            self._long = None

    def _context_params(self, info: GGUFInfo, exact: bool) -> llama_cpp.llama_context_params:
        """The settings every context of this model is made with (its size set per context)."""
        p = llama_cpp.llama_context_default_params()
        p.n_threads = p.n_threads_batch = self.threads
        p.embeddings = True
        p.pooling_type = info.pooling
        p.kv_unified = True
        p.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn
                             else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        if exact:  # f32 K/V for a reranker: see flash_attn above
            p.type_k = p.type_v = llama_cpp.GGML_TYPE_F32
        return p

    def close(self) -> None:
        self.release()
        for context in self._contexts:
            context.close()
        self._contexts = []
        if getattr(self, "_model", None) is not None:
            self._model.close()


_log_lock = threading.Lock()
_BUFFER_LINE = re.compile(rb"(\S+) model buffer size =\s*([\d.]+) MiB")
_buffers: dict[str, float] | None = None  # where a load in progress collects its buffers


def _log(level: int, text: bytes | None, user_data: ctypes.c_void_p) -> None:
    """llama.cpp's log, collected while a model loads, then on to llama-cpp-python's handler.
    One callback for the process's lifetime: llama.cpp's own threads may log at any moment,
    so a callback is never swapped out (and freed) under them."""
    if _buffers is not None:
        match = _BUFFER_LINE.search(text or b"")
        if match:
            _buffers[match.group(1).decode("utf-8", "replace")] = float(match.group(2))
    _default_log(level, text, user_data)


_LOG_CALLBACK = llama_cpp.llama_log_callback(_log)
llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


@contextmanager
def _weight_buffers() -> Iterator[dict[str, float]]:
    """The weight buffers llama.cpp reports while a model loads (name: MiB): "CPU_Mapped" for
    weights used from the mapped file, others ("CPU_REPACK", "AMX", "CUDA0", ...) for weights
    copied out of it."""
    global _buffers
    with _log_lock:  # one load's report at a time
        _buffers = found = {}
        try:
            yield found
        finally:
            _buffers = None


def _wordpiece(vocab: object, limit: int | None = None,
               model: Path | None = None) -> WordPiece | None:
    """A Hugging Face-exact tokenizer for a WordPiece vocabulary (its first ``limit`` tokens),
    kept in the home's cache for ``model``'s file; None for other vocabularies."""
    if llama_cpp.llama_vocab_type(vocab) != llama_cpp.LLAMA_VOCAB_TYPE_WPM:
        return None
    n = min(llama_cpp.llama_vocab_n_tokens(vocab), limit or 1 << 31)

    def vocabulary() -> tuple[list[str], list[bool], int]:
        tokens = [llama_cpp.llama_vocab_get_text(vocab, i).decode("utf-8", "replace")
                  for i in range(n)]
        control = [bool(llama_cpp.llama_vocab_is_control(vocab, i)) for i in range(n)]
        return tokens, control, tokens.index("[UNK]") if "[UNK]" in tokens else -1

    if model is None:
        return WordPiece(*vocabulary())
    return WordPiece.cached(model, vocabulary)
