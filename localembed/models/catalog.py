"""Built-in models: where each GGUF lives on the hub and what it should hash to.

Entries with a pinned revision and sha256 are verified against those; the others (marked
``pinned=False``) track the repository's main branch and are verified against the sha256 the hub
reports for the file (its LFS ETag), so a download is always checked against something.

Each entry has a ``kind`` (``engine.Kind``: vectors, or a relevance score per (query, document)
pair), so lists can say which models answer which requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from localembed.engine.inspect import Kind
from localembed.models.starter import STARTER_ID


@dataclass(frozen=True)
class Source:
    """One published copy of a model's GGUF on the hub."""

    repo: str
    filename: str
    revision: str = "main"
    sha256: str | None = None
    size: int | None = None

    @property
    def pinned(self) -> bool:
        return self.revision != "main" and self.sha256 is not None


class ModelFacts(msgspec.Struct, kw_only=True, frozen=True):
    """What the catalog knows of a model before it is pulled, shared by its entries and by
    the listing every face shows."""

    id: str
    family: str
    dimensions: int | None  # None for rerankers: they make no vectors
    context: int
    license: str
    description: str
    quantization: str
    kind: Kind = Kind.EMBEDDING
    aliases: tuple[str, ...] = ()
    recommended: bool = False


class CatalogEntry(ModelFacts, kw_only=True, frozen=True):
    """A model that can be pulled: its first source, then fallbacks tried in order."""

    repo: str
    filename: str
    revision: str = "main"
    sha256: str | None = None
    size: int | None = None
    # Other published copies, tried when the first is missing or would be refused at load.
    fallbacks: tuple[Source, ...] = ()

    @property
    def pinned(self) -> bool:
        return self.sources[0].pinned

    @property
    def sources(self) -> tuple[Source, ...]:
        return (Source(self.repo, self.filename, self.revision, self.sha256, self.size),
                *self.fallbacks)


_QWEN_DESC = ("Qwen3-Embedding {size}: multilingual, 32k context, instruction-aware queries, "
              "Matryoshka down to 32 dims.")


_QWEN_RERANK_DESC = ("Qwen3-Reranker {size}: multilingual, 32k context, instruction-aware; "
                     "scores are the probability of \"yes\" (relevant).")


def _qwen(params: str, quant: str, dims: int, approx: str, **kw: object) -> CatalogEntry:
    return CatalogEntry(
        id=f"qwen3-embedding-{params.lower()}-{quant.lower()}",
        repo=f"Qwen/Qwen3-Embedding-{params}-GGUF",
        filename=f"Qwen3-Embedding-{params}-{quant}.gguf",
        family="qwen3", dimensions=dims, context=32768, license="apache-2.0",
        description=_QWEN_DESC.format(size=params) + f" {quant}, about {approx}.",
        quantization=quant, **kw)  # type: ignore[arg-type]


def _qwen_reranker(params: str, quant: str, approx: str, repo: str, filename: str,
                   aliases: tuple[str, ...] = (), **kw: object) -> CatalogEntry:
    return CatalogEntry(
        id=f"qwen3-reranker-{params.lower()}-{quant.lower()}", repo=repo, filename=filename,
        family="qwen3", dimensions=None, context=32768, license="apache-2.0",
        description=_QWEN_RERANK_DESC.format(size=params) + f" {quant}, about {approx}.",
        quantization=quant, kind=Kind.RERANKER,
        aliases=(*aliases, f"qwen3-reranker-{params.lower()}"), **kw)  # type: ignore[arg-type]


CATALOG: tuple[CatalogEntry, ...] = (
    # EmbeddingGemma without its Dense projection (dense_2, dense_3) gives wrong vectors, and
    # ggml-org's first uploads lacked it (llama.cpp issue #18677, January 2026). Evidence that
    # the pinned Q8_0 file carries it:
    # - The author recorded the fix in danbev/learning-ai, notes/llama.cpp/
    #   embedding-gemma-dense.md (2026-04-29): the old file dumps 314 tensors; the new one,
    #   converted with --sentence-transformers-dense-modules, 316 (dense_2.weight 768x3072 and
    #   dense_3.weight 3072x768, Q8_0), uploaded as embeddinggemma-300M-Q8_0.gguf with the
    #   message "Updated model to include dense layers".
    # - The size: 333,590,944 bytes is 5,013,888 more than the dense-less Q8_0 conversions
    #   (unsloth/embeddinggemma-300m-GGUF and ggml-org's QAT file, 328,577,056 bytes); two
    #   768x3072 Q8_0 matrices are 5,013,504 bytes, the rest their tensor entries and the
    #   dense_*_feat_in/out keys. Projects that pin this revision date it May-June 2026.
    # Either way the pull inspects the file and refuses one without the layers, then tries
    # the fallback: sabafallah's conversion, made by the author of llama.cpp's Dense-module
    # support (PR #16367) and described as carrying all Dense modules; it follows main and is
    # checked against the sha256 the hub reports.
    CatalogEntry(
        id="embeddinggemma-300m",
        repo="ggml-org/embeddinggemma-300M-GGUF",
        filename="embeddinggemma-300M-Q8_0.gguf",
        revision="0f741b5a6585bd53aeb15cd1372c56f2a0f65e12",
        sha256="b5ce9d77a3fc4b3b39ccb5643c36777911cc4eb46a66962eadfa3f5f60490d63",
        size=333_590_944,
        family="gemma-embedding", dimensions=768, context=2048, license="gemma",
        description="Google EmbeddingGemma 300M: strong, small, 100+ languages, task prompts, "
                    "Matryoshka 768/512/256/128. Q8_0, 334 MB. Recommended.",
        quantization="Q8_0",
        aliases=("embeddinggemma", "embeddinggemma-300m-q8_0", "gemma-embedding"),
        recommended=True,
        fallbacks=(Source("sabafallah/embeddinggemma-300m-sentence-transformers-gguf",
                          "embeddinggemma-300m-sentence-transformers-q8_0.gguf"),),
    ),
    _qwen("0.6B", "Q8_0", 1024, "639 MB",
          revision="370f27d7550e0def9b39c1f16d3fbaa13aa67728",
          sha256="06507c7b42688469c4e7298b0a1e16deff06caf291cf0a5b278c308249c3e439",
          size=639_150_592, aliases=("qwen3-embedding", "qwen3-embedding-0.6b")),
    _qwen("0.6B", "f16", 1024, "1.2 GB"),
    _qwen("4B", "Q4_K_M", 2560, "2.5 GB", aliases=("qwen3-embedding-4b",)),
    _qwen("4B", "Q5_K_M", 2560, "2.9 GB"),
    _qwen("4B", "Q8_0", 2560, "4.3 GB"),
    _qwen("4B", "f16", 2560, "8.1 GB"),
    _qwen("8B", "Q4_K_M", 4096, "4.7 GB", aliases=("qwen3-embedding-8b",)),
    _qwen("8B", "Q5_K_M", 4096, "5.4 GB"),
    _qwen("8B", "Q8_0", 4096, "8.1 GB"),
    _qwen("8B", "f16", 4096, "15 GB"),
    # Rerankers. A Qwen3-Reranker GGUF scores only when its conversion kept the yes/no head
    # (`cls.output.weight` of 2 rows, `qwen3.classifier.output_labels`, rank pooling); many
    # published ones are plain causal-LM conversions without it and score every document about
    # 0 (llama.cpp issues #25447 and #16407). None of the files below could be fetched or hashed
    # from here, so none is pinned: each follows main and is checked against the sha256 the hub
    # reports, and the pull inspects it and refuses a head-less file (the engine's
    # rerank_head_problem), moving on to the next source. Where the evidence came from
    # (public projects and guides, found by search, unverified here):
    # - ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF, qwen3-reranker-0.6b-q8_0.gguf (about 640 MB):
    #   qmd's default rerank model (run through node-llama-cpp's ranking context, which needs
    #   the head), and a Metal engine's README describes this file as "llama.cpp rank
    #   conversion ... a yes/no cls.output classification head".
    # - Voodisss/Qwen3-Reranker-{0.6B,4B,8B}-GGUF-llama_cpp: guides and projects that report
    #   community conversions broken (DevQuasar, mradermacher) name these as converted with
    #   llama.cpp's convert_hf_to_gguf.py with the head; file names as they cite them
    #   (Qwen3-Reranker-0.6B.Q8_0.gguf, Qwen3-Reranker-{4B,8B}-Q4_K_M.gguf). One study checked
    #   six 8B repositories and found only Voodisss's carried cls.output.weight.
    # - giladgd/Qwen3-Reranker-4B-GGUF, Qwen3-Reranker-4B.Q4_K_M.gguf: node-llama-cpp's
    #   author's conversion, reported carrying `cls.output.weight [2560, 2]`, rank pooling and
    #   the rerank template; two projects pin revision 618ca919a196583806708d695f64dc002bd229a3,
    #   sha256 941f7d1d1524251c026a797b803ac9575545c5d7aa19b26e0e49661d7720af49,
    #   2,496,717,472 bytes (a candidate pin once checked against the hub).
    # - gpustack/bge-reranker-v2-m3-GGUF, bge-reranker-v2-m3-Q8_0.gguf: the copy most projects
    #   serve with llama-server --reranking (XLM-RoBERTa: bert arch, one token type, `cls` and
    #   `cls.output`); one pins revision 3093af03b1a635e67b084b1d8c03c5f5e020fd05, sha256
    #   a43c7c9b11a4c1517e5bf95151960e1621d1b72f7a493364b01e386cf1aaa1d3, 635,676,416 bytes
    #   (also a candidate pin). Fallback: klnstpr/bge-reranker-v2-m3-Q8_0-GGUF, a GGUF-my-repo
    #   conversion (bge-reranker-v2-m3-q8_0.gguf).
    _qwen_reranker("0.6B", "Q8_0", "640 MB", "ggml-org/Qwen3-Reranker-0.6B-Q8_0-GGUF",
                   "qwen3-reranker-0.6b-q8_0.gguf", aliases=("qwen3-reranker",),
                   fallbacks=(Source("Voodisss/Qwen3-Reranker-0.6B-GGUF-llama_cpp",
                                     "Qwen3-Reranker-0.6B.Q8_0.gguf"),)),
    _qwen_reranker("4B", "Q4_K_M", "2.5 GB", "giladgd/Qwen3-Reranker-4B-GGUF",
                   "Qwen3-Reranker-4B.Q4_K_M.gguf",
                   fallbacks=(Source("Voodisss/Qwen3-Reranker-4B-GGUF-llama_cpp",
                                     "Qwen3-Reranker-4B-Q4_K_M.gguf"),)),
    _qwen_reranker("8B", "Q4_K_M", "4.7 GB", "Voodisss/Qwen3-Reranker-8B-GGUF-llama_cpp",
                   "Qwen3-Reranker-8B-Q4_K_M.gguf"),
    CatalogEntry(
        id="bge-reranker-v2-m3-q8_0",
        repo="gpustack/bge-reranker-v2-m3-GGUF",
        filename="bge-reranker-v2-m3-Q8_0.gguf",
        family="bert", dimensions=None, context=8192, license="apache-2.0",
        description="BAAI bge-reranker-v2-m3: a multilingual XLM-RoBERTa cross-encoder, fast, "
                    "8k context; scores are the sigmoid of its logit. Q8_0, about 636 MB.",
        quantization="Q8_0", kind=Kind.RERANKER, aliases=("bge-reranker-v2-m3", "bge-reranker"),
        fallbacks=(Source("klnstpr/bge-reranker-v2-m3-Q8_0-GGUF",
                          "bge-reranker-v2-m3-q8_0.gguf"),),
    ),
)

STARTER = {
    "id": STARTER_ID, "family": "bert", "dimensions": 384, "context": 512,
    "license": "apache-2.0", "quantization": "F16",
    "description": "all-MiniLM-L6-v2: the bundled starter model, English, fast, 384 dims. "
                   "Always available offline.",
}


def lookup(name: str) -> CatalogEntry | None:
    """The catalog entry for an id or alias (case-insensitive), if any."""
    key = name.strip().lower()
    for entry in CATALOG:
        if key == entry.id or key in entry.aliases:
            return entry
    return None


def is_builtin(name: str) -> bool:
    """Whether ``name`` is the starter model, which ships inside the package: listed with the
    catalog and "pulled" at once, with nothing to download."""
    return name.strip().lower() == STARTER_ID


class Listed(ModelFacts, kw_only=True, frozen=True):
    """A catalog model as the CLI's `ls --catalog` and GET /v1/catalog both show it (one
    struct, served and documented as it is, so they cannot disagree)."""

    installed: bool
    repo: str | None = None
    filename: str | None = None
    size_bytes: int | None = None
    pinned: bool = False
    builtin: bool = False


def listing(installed: set[str]) -> list[Listed]:
    """Every model the catalog offers, the built-in starter first."""
    from localembed.models.starter import starter_path

    starter = starter_path()
    rows = [Listed(**STARTER, size_bytes=starter.stat().st_size if starter.is_file() else None,
                   builtin=True, installed=True)]
    for e in CATALOG:
        facts = {name: getattr(e, name) for name in ModelFacts.__struct_fields__}
        rows.append(Listed(**facts, repo=e.repo, filename=e.filename, size_bytes=e.size,
                           pinned=e.pinned, installed=e.id in installed))
    return rows
