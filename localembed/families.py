"""Per-family behaviour: task prompts, required special tokens, Matryoshka dimensions.

Each model family was trained with its own prompt format; sending the wrong one (or none)
silently degrades retrieval quality, so the formats live in one table here rather than at the
call sites. Everything the API, CLI and web UI say about tasks comes from this module.
"""

from __future__ import annotations

from dataclasses import dataclass

# Canonical task names, with the names other APIs use for them.
TASKS = (
    "query", "document", "similarity", "classification", "clustering", "code", "qa",
    "fact_check", "summarization",
)
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


class TaskError(ValueError):
    """An unknown task name or an option the family does not support."""


def canonical_task(task: str | None) -> str | None:
    """Map a task name or alias to its canonical name; None stays None (raw text)."""
    if task is None:
        return None
    key = task.strip().lower().replace("-", "_")
    key = TASK_ALIASES.get(key, key)
    if key not in TASKS:
        raise TaskError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    return key


_GEMMA_TASKS = {
    "query": "search result",
    "similarity": "sentence similarity",
    "classification": "classification",
    "clustering": "clustering",
    "code": "code retrieval",
    "qa": "question answering",
    "fact_check": "fact checking",
    "summarization": "summarization",
}

_QWEN3_INSTRUCTIONS = {
    "query": "Given a web search query, retrieve relevant passages that answer the query",
    "similarity": "Retrieve semantically similar text",
    "classification": "Classify the topic of the given text",
    "clustering": "Identify the topic or theme of the given text",
    "code": "Given a code search query, retrieve relevant code snippets that answer the query",
    "qa": "Given a question, retrieve passages that answer the question",
    "fact_check": "Given a claim, retrieve documents that support or refute the claim",
    "summarization": "Given a text, retrieve summaries of the same content",
}


@dataclass(frozen=True)
class Family:
    """How one model family is prompted, pooled and truncated."""

    name: str
    default_pooling: int | None  # llama.cpp pooling type when the GGUF declares none
    has_prompts: bool
    eos_last: bool  # the final token must be EOS (last-token pooling reads it)

    def prompt(self, task: str | None, instruction: str | None = None,
               title: str | None = None) -> str:
        """The text placed before the input for this task ('' for none)."""
        task = canonical_task(task)
        if self.name == "gemma-embedding":
            if task == "document":
                return f"title: {title.strip() if title else 'none'} | text: "
            if instruction:
                return f"task: {instruction} | query: "
            if task is None:
                return ""
            return f"task: {_GEMMA_TASKS[task]} | query: "
        if self.name == "qwen3":
            if instruction:
                return f"Instruct: {instruction}\nQuery:"
            if task is None or task == "document":
                return ""
            return f"Instruct: {_QWEN3_INSTRUCTIONS[task]}\nQuery:"
        return ""

    def dimensions(self, full: int) -> list[int] | None:
        """Matryoshka sizes the model was trained for, largest first; None if only ``full``."""
        if self.name == "gemma-embedding":
            # EmbeddingGemma's published levels 768/512/256/128, scaled to the model's width.
            return [full, full * 2 // 3, full // 3, full // 6]
        if self.name == "qwen3":
            return list(range(full, 31, -1))
        return None

    def check_dimensions(self, requested: int | None, full: int) -> int:
        """The output size for ``requested``, or a TaskError saying what is allowed."""
        if requested is None or requested == full:
            return full
        allowed = self.dimensions(full)
        if allowed is None:
            raise TaskError(
                f"this model was not trained for Matryoshka truncation; "
                f"dimensions must be {full}"
            )
        if requested not in allowed:
            if self.name == "qwen3":
                raise TaskError(f"dimensions must be between 32 and {full}")
            choices = ", ".join(str(d) for d in allowed)
            raise TaskError(f"dimensions must be one of {choices}")
        return requested


BERT_LIKE = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3",
             "modern-bert", "neo-bert", "eurobert"}

FAMILIES = {
    "gemma-embedding": Family("gemma-embedding", default_pooling=1, has_prompts=True,
                              eos_last=False),
    "qwen3": Family("qwen3", default_pooling=3, has_prompts=True, eos_last=True),
    "bert": Family("bert", default_pooling=1, has_prompts=False, eos_last=False),
    "generic": Family("generic", default_pooling=None, has_prompts=False, eos_last=False),
}


def family_for(arch: str) -> Family:
    """The family that serves a llama.cpp architecture."""
    if arch in FAMILIES:
        return FAMILIES[arch]
    if arch in BERT_LIKE:
        return FAMILIES["bert"]
    return FAMILIES["generic"]
