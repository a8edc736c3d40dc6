"""Per-family behaviour: task prompts, required special tokens, Matryoshka dimensions.

Each model family was trained with its own prompt format; sending the wrong one (or none)
silently degrades retrieval quality, so the formats live in one table here rather than at the
call sites. Everything the API, CLI and web UI say about tasks comes from this module.

A family is pure data (a ``Family`` entry in ``FAMILIES``): its architectures, pooling, prompt
templates, special-token rule, Matryoshka sizes and required tensors. The methods only read
that data, so adding a family is one new entry and no code change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType

from localembed.engine.tasks import TASKS
from localembed.gguf.header import gguf

# Canonical task names (TASKS), with the names other APIs use for them.
# What a person reads for each task (the web UI's choices); a task without one is its name.
TASK_LABELS = MappingProxyType({**{task: task for task in TASKS}, "qa": "question answering",
                                "fact_check": "fact checking"})
TASK_ALIASES = {
    "search_query": "query",
    "retrieval.query": "query",
    "search_document": "document",
    "retrieval.passage": "document",
    "passage": "document",
    "sts": "similarity",
    "sentence_similarity": "similarity",
    "code_retrieval": "code",
    "question_answering": "qa",
    "fact_checking": "fact_check",
}


# Qwen3's documented default instruction, for its embedding queries and its reranker alike.
WEB_SEARCH_INSTRUCTION = (
    "Given a web search query, retrieve relevant passages that answer the query")


class TaskError(ValueError):
    """An unknown task name or an option the family does not support; ``param`` names the
    request field at fault ("task", "dimensions"), so callers need not read the message."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def canonical_task(task: str | None) -> str | None:
    """Map a task name or alias to its canonical name; None stays None (raw text)."""
    if task is None:
        return None
    key = task.strip().lower().replace("-", "_")
    key = TASK_ALIASES.get(key, key)
    if key not in TASKS:
        raise TaskError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}", "task")
    return key


@dataclass(frozen=True)
class Family:
    """How one model family is prompted, pooled and truncated: data only.

    Prompts: a task's prefix is ``query_template`` with ``{task}`` replaced by the task's phrase
    in ``task_phrases``; a task without a phrase (and no task at all) gets no prefix. A caller's
    own instruction fills ``instruction_template`` (``{instruction}``) instead. Documents get
    ``document_template`` (``{title}``, or ``untitled`` when there is no title) when the family
    has one, whatever the instruction; otherwise documents are treated like any other task.
    A family with no templates takes raw text only.

    Matryoshka: ``matryoshka_fractions`` lists the trained sizes as fractions of the model's
    width (largest first); ``matryoshka_min`` instead allows any size from it up to the width.
    With neither, only the full width is served.
    """

    name: str
    architectures: tuple[str, ...] = ()  # llama.cpp architectures this family serves
    pooling: gguf.PoolingType | None = None  # used when the GGUF declares no pooling type
    eos_last: bool = False  # the final token must be EOS (last-token pooling reads it)
    # That final token by its spelling, when the model was trained with one that a GGUF may
    # not call its EOS (a converter takes EOS from the tokenizer config, which for a Qwen3
    # chat tokenizer is <|im_end|>); None: the GGUF's EOS.
    final_token: str | None = None
    # The architectures exist only as embedding models, so a file needs no pooling type or
    # "embed" in its name to be recognised as one.
    embedding_only: bool = False
    # Prompt data.
    query_template: str | None = None  # "{task}" is replaced by the task's phrase
    task_phrases: Mapping[str, str] = field(default_factory=dict, hash=False)
    instruction_template: str | None = None  # "{instruction}" is the caller's own text
    document_template: str | None = None  # "{title}"; None: documents get no own prefix
    untitled: str = "none"  # the title used when a document has none
    # Matryoshka rule.
    matryoshka_fractions: tuple[Fraction | float, ...] | None = None
    matryoshka_min: int | None = None
    # Tensors a correct file of this family must hold, and what it means when they are
    # missing ("{name}" is the file's name).
    required_tensors: tuple[str, ...] = ()
    missing_tensors_message: str = "{name} lacks tensors this model needs: {missing}"
    # Rerankers of this family: the (query, document) prompt, with "{instruction}", "{query}"
    # and "{document}", and the instruction used when the caller gives none. None: the GGUF's
    # own rerank template if it has one, else the cross-encoder pair frame
    # (BOS query EOS SEP document EOS, as llama.cpp's server builds it).
    rerank_template: str | None = None
    rerank_instruction: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.task_phrases) - set(TASKS)
        if unknown:
            raise ValueError(f"family {self.name!r} has phrases for unknown tasks: "
                             f"{', '.join(sorted(unknown))}")
        if self.task_phrases and self.query_template is None:
            raise ValueError(f"family {self.name!r} has task phrases but no query_template")
        if self.matryoshka_fractions is not None and self.matryoshka_min is not None:
            raise ValueError(f"family {self.name!r}: give matryoshka_fractions or "
                             "matryoshka_min, not both")
        object.__setattr__(self, "task_phrases", MappingProxyType(dict(self.task_phrases)))
        if self.pooling is not None:
            object.__setattr__(self, "pooling", gguf.PoolingType(self.pooling))

    @property
    def has_prompts(self) -> bool:
        """Whether the family takes task prompts at all (else raw text only)."""
        return any(t is not None for t in (
            self.query_template, self.instruction_template, self.document_template))

    @property
    def default_pooling(self) -> int | None:
        """llama.cpp's pooling type (an int) when the GGUF declares none; None: no default."""
        return None if self.pooling is None else int(self.pooling)

    def prompt(self, task: str | None, instruction: str | None = None,
               title: str | None = None) -> str:
        """The text placed before the input for this task ('' for none)."""
        task = canonical_task(task)
        if task == "document" and self.document_template is not None:
            return self.document_template.format(
                title=title.strip() if title else self.untitled)
        if instruction and self.instruction_template is not None:
            return self.instruction_template.format(instruction=instruction)
        phrase = self.task_phrases.get(task) if task is not None else None
        if phrase is None or self.query_template is None:
            return ""
        return self.query_template.format(task=phrase)

    def dimensions(self, full: int) -> list[int] | None:
        """Matryoshka sizes the model was trained for, largest first; None if only ``full``."""
        if self.matryoshka_fractions is not None:
            # Exact integer arithmetic: a float 2/3 would make 768 * 2/3 land on 511.
            sizes = (Fraction(f).limit_denominator(1000) for f in self.matryoshka_fractions)
            return [full * f.numerator // f.denominator for f in sizes]
        if self.matryoshka_min is not None:
            return list(range(full, self.matryoshka_min - 1, -1))
        return None

    def trained_dimensions(self, full: int) -> list[int] | None:
        """The sizes to list for a client: the trained ones. A range (``matryoshka_min`` up to
        ``full``) is None here and described by its bounds: listing its every size (993 for
        Qwen3-Embedding-0.6B) would say nothing more."""
        return self.dimensions(full) if self.matryoshka_min is None else None

    def check_dimensions(self, requested: int | None, full: int) -> int:
        """The output size for ``requested``, or a TaskError saying what is allowed."""
        if requested is None or requested == full:
            return full
        allowed = self.dimensions(full)
        if allowed is None:
            raise TaskError(
                f"this model was not trained for Matryoshka truncation; "
                f"dimensions must be {full}", "dimensions"
            )
        if requested not in allowed:
            if self.matryoshka_min is not None:
                raise TaskError(f"dimensions must be between {self.matryoshka_min} and {full}",
                                "dimensions")
            choices = ", ".join(str(d) for d in allowed)
            raise TaskError(f"dimensions must be one of {choices}", "dimensions")
        return requested

    def missing_tensors(self, tensor_names: set[str] | frozenset[str]) -> tuple[str, ...]:
        """The required tensors absent from ``tensor_names``, in declared order."""
        return tuple(t for t in self.required_tensors if t not in tensor_names)

    def tensor_problem(self, file_name: str, tensor_names: set[str] | frozenset[str]) -> str | None:
        """Why a file holding ``tensor_names`` cannot be served, or None if it has them all."""
        missing = self.missing_tensors(tensor_names)
        if not missing:
            return None
        return self.missing_tensors_message.format(name=file_name, missing=", ".join(missing))


# One entry per family. The fallback, "generic", serves every architecture no entry claims.
_ENTRIES = (
    Family(
        "gemma-embedding",
        architectures=("gemma-embedding",),
        pooling=gguf.PoolingType.MEAN,
        embedding_only=True,
        query_template="task: {task} | query: ",
        task_phrases={
            "query": "search result",
            "similarity": "sentence similarity",
            "classification": "classification",
            "clustering": "clustering",
            "code": "code retrieval",
            "qa": "question answering",
            "fact_check": "fact checking",
            "summarization": "summarization",
        },
        instruction_template="task: {instruction} | query: ",
        document_template="title: {title} | text: ",
        # EmbeddingGemma's published levels 768/512/256/128, scaled to the model's width.
        matryoshka_fractions=(Fraction(1), Fraction(2, 3), Fraction(1, 3), Fraction(1, 6)),
        required_tensors=("dense_2.weight", "dense_3.weight"),
        missing_tensors_message=(
            "{name} lacks EmbeddingGemma's dense projection layers (dense_2, dense_3) and would "
            "give wrong vectors; this is an early, broken upload: download the model again "
            "(e.g. `localembed pull embeddinggemma-300m`)"
        ),
    ),
    Family(
        "qwen3",
        architectures=("qwen3",),
        pooling=gguf.PoolingType.LAST,
        eos_last=True,
        final_token="<|endoftext|>",
        query_template="Instruct: {task}\nQuery:",
        task_phrases={
            "query": WEB_SEARCH_INSTRUCTION,
            "similarity": "Retrieve semantically similar text",
            "classification": "Classify the topic of the given text",
            "clustering": "Identify the topic or theme of the given text",
            "code": "Given a code search query, retrieve relevant code snippets that answer the "
                    "query",
            "qa": "Given a question, retrieve passages that answer the question",
            "fact_check": "Given a claim, retrieve documents that support or refute the claim",
            "summarization": "Given a text, retrieve summaries of the same content",
        },
        instruction_template="Instruct: {instruction}\nQuery:",
        matryoshka_min=32,
        # Qwen3-Reranker's documented format: the score is p("yes") at the last token.
        rerank_template=(
            "<|im_start|>system\nJudge whether the Document meets the requirements based on "
            "the Query and the Instruct provided. Note that the answer can only be \"yes\" or "
            "\"no\".<|im_end|>\n<|im_start|>user\n<Instruct>: {instruction}\n"
            "<Query>: {query}\n<Document>: {document}<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n"
        ),
        rerank_instruction=WEB_SEARCH_INSTRUCTION,
    ),
    Family(
        "bert",
        architectures=("bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3",
                       "modern-bert", "neo-bert", "eurobert"),
        pooling=gguf.PoolingType.MEAN,
        embedding_only=True,
    ),
    Family("generic"),
)

FAMILIES = {family.name: family for family in _ENTRIES}
FALLBACK = "generic"

BERT_LIKE = set(FAMILIES["bert"].architectures)


def family_for(arch: str) -> Family:
    """The family that serves a llama.cpp architecture."""
    for family in FAMILIES.values():
        if arch in family.architectures:
            return family
    return FAMILIES[FALLBACK]
