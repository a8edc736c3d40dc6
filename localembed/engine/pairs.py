"""A reranker's (query, document) pairs: the prompt that frames them, and how long one may be.

Reranking shares the embedding request path (tokenized in the caller's thread, decoded by the
same workers, packed with any other work); only the way two texts become one sequence differs,
and that is decided here, once per request: which prompt frames the pair (the family's, the
GGUF's own, or the cross-encoder frame), whether the query leaves room for a document, and how
a long document is cut. ``Engine.prepare_pair`` and ``Engine.submit_rerank`` call ``Pairs``
and nothing else of this module.

Refusals here are ``PairError``, which the engine raises to its callers as its ``InputError``
(same message, param and code): this module needs nothing of the engine's core, so the core
can build on it without an import cycle, as it does on ``families`` and its ``TaskError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from localembed.engine.framing import Cut, PairTemplate, TooLong, precut
from localembed.engine.inspect import GGUFInfo
from localembed.engine.llama import LlamaRunner

# A pair is never cut at its start: that is where the query and the prompt are.
PAIR_TRUNCATE_MODES = ("end", "none")


@dataclass(frozen=True)
class RerankOptions:
    """How to score (query, document) pairs."""

    instruction: str | None = None  # Qwen3-Reranker's <Instruct> (default: its web-search one)
    truncate: str = "end"  # "end": cut the document's end (never the query or the frame); "none"
    max_tokens: int | None = None  # a tighter per-pair limit than the model's


class PairError(ValueError):
    """A pair the reranker cannot score as asked, with the request field at fault (``param``)
    and why (``code``) as data, so the engine passes them on without reading the message."""

    def __init__(self, message: str, param: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


def pair_template(runner: LlamaRunner, info: GGUFInfo, options: RerankOptions) -> PairTemplate:
    """The family's pair prompt (with the caller's instruction), else the GGUF's own, else the
    cross-encoder frame BOS query EOS SEP document EOS as llama.cpp's server builds it from the
    tokenizer's flags.

    A caller's instruction picks the family's prompt over the GGUF's, since only the family's
    is known to have a place for it; a model with nowhere to put one refuses it rather than
    scoring as if it had been heard.
    """
    family = info.family
    family_template = family.rerank_template
    template = info.rerank_template
    instruction = options.instruction or ""
    if family_template is not None and (options.instruction or template is None):
        template = family_template
        instruction = options.instruction or family.rerank_instruction or ""
    elif template is not None and options.instruction and "{instruction}" not in template:
        raise PairError("this reranker takes no instruction", "instruction")
    if template is None:
        if options.instruction:
            raise PairError("this reranker takes no instruction", "instruction")
        eos = runner.eos if runner.eos >= 0 else runner.sep
        return PairTemplate.frame(head=[runner.bos] if runner.adds["bos"] else [],
                                  middle=([eos] if runner.adds["eos"] else [])
                                  + ([runner.sep] if runner.adds["sep"] else []),
                                  tail=[eos] if runner.adds["eos"] else [],
                                  segment_b=info.segment_b_offset or 0)
    return PairTemplate.parse(runner, template, runner.normalize(instruction))


def pair_limit(options: RerankOptions, max_tokens: int) -> int:
    """The most tokens one pair may take: the model's ``max_tokens``, or the caller's tighter
    limit (Cohere's per-document limit arrives as one)."""
    if options.truncate not in PAIR_TRUNCATE_MODES:
        raise PairError("truncate must be 'end' or 'none' for reranking", "truncate")
    if options.max_tokens is None:
        return max_tokens
    if not 0 < options.max_tokens <= max_tokens:
        raise PairError(f"the token limit must be between 1 and {max_tokens} for this model",
                        "max_tokens")
    return options.max_tokens


@dataclass(frozen=True)
class Pairs:
    """One request's framing: every document is framed with the same prompt around the same
    query within the same limit, so those are settled (or refused) once, before any document
    is tokenized."""

    runner: LlamaRunner
    template: PairTemplate
    query: str  # normalised, as it goes into every pair
    limit: int
    truncate: str

    @classmethod
    def prepare(cls, runner: LlamaRunner, info: GGUFInfo, query: str,
                options: RerankOptions) -> Pairs:
        """The request's framing; refuses a query that leaves no room for a document, since
        the query is never cut (a cut query would score documents against another question)."""
        template = pair_template(runner, info, options)
        if not isinstance(query, str) or not query.strip():
            raise PairError("query must be a non-empty string", "query")
        limit = pair_limit(options, runner.max_tokens)
        try:
            query = runner.normalize(precut(runner, query, Cut(limit, "none")))
        except TooLong as exc:  # the query is never cut: no truncate setting helps
            raise PairError(f"the query is more than {exc.tokens} tokens long; it leaves no "
                            f"room for a document within {exc.limit} tokens. Shorten it",
                            "query", "context_length_exceeded") from exc
        tokens = template.tokens(runner, query, "")
        if len(tokens) >= limit:
            raise PairError(f"the query with the reranker's prompt is {len(tokens)} tokens "
                            f"long; it leaves no room for a document within {limit} tokens",
                            "query", "context_length_exceeded")
        return cls(runner, template, query, limit, options.truncate)

    def tokens(self, document: str, index: int = 0) -> list[int]:
        """The exact tokens of the pair with ``document`` (``index`` names it in a refusal)."""
        if not isinstance(document, str):
            raise PairError(f"document {index} is not a string", "documents")
        try:
            text = self.runner.normalize(precut(self.runner, document,
                                                Cut(self.limit, self.truncate)))
        except TooLong as exc:  # far too long: refused before tokenizing all of it
            raise PairError(f"document {index} is longer than this reranker takes "
                            f"({self.limit} tokens with the query). Shorten it or allow "
                            "truncation", "documents", "context_length_exceeded") from exc
        if self.truncate == "none":
            tokens = self.template.tokens(self.runner, self.query, text)
            if len(tokens) > self.limit:
                raise PairError(
                    f"document {index} with the query is {len(tokens)} tokens long; this "
                    f"reranker takes at most {self.limit}. Shorten it or allow truncation",
                    "documents", "context_length_exceeded")
            return tokens
        # The document's end goes; the query and the frame stay whole.
        return self.template.tokens(self.runner, self.query, text, self.limit)
