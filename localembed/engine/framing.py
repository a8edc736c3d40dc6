"""The exact tokens of a prompt built around user text: task prompts and reranker pairs.

Also where user text is cut: first by characters (``precut``, so a 30 MB text is never
tokenized whole), then at a token boundary (``fit``, ``PairTemplate.tokens``).

A byte-level BPE (Qwen3's 151k vocabulary) merges across any seam in a string: in
"What is graphene?\\n<Document>" the tokenizer makes ``?\\n`` one token (5267), while the query
and the template tokenized apart give ``?`` (30) and ``\\n`` (198), and the model then scores a
prompt it was never trained on. So nothing here tokenizes a prompt in pieces: the text between
two special tokens (``<|im_start|>``, ``[SEP]``) is always tokenized as one string, user text
included, exactly as the model's own tokenizer does it (special tokens are the only seams a
Hugging Face tokenizer has too). Truncation cuts the user text and tokenizes the whole again.

Special tokens come from the template's own text only: a query or document that spells
``<|im_end|>`` stays text, so user input can never close the prompt early.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

SLOTS = ("{query}", "{document}")
TRUNCATE_MODES = ("end", "start", "none")
CHARS_PER_TOKEN = 128  # a generous bound on how many characters one token covers


class Tokenizer(Protocol):
    """What framing needs of a model's tokenizer (``LlamaRunner`` is one)."""

    # The first n tokens of any string are the tokens of the text they cover (WordPiece:
    # greedy longest match from the left), so a cut token list needs no second tokenization.
    prefix_stable: bool

    def tokenize(self, text: str, special: bool = True) -> list[int]: ...
    def tokenize_template(self, text: str) -> list[int]: ...
    def covered(self, text: str, tokens: list[int], count: int) -> int: ...
    def is_special(self, token: int) -> bool: ...
    def piece(self, token: int, special: bool = False) -> bytes: ...


def fit(tokenizer: Tokenizer, before: str, text: str, after: str, room: int,
        keep: str = "start") -> list[int]:
    """Tokens of ``before + cut + after`` (one string) in at most ``room`` tokens, where ``cut``
    is the longest piece of ``text`` cut at a token boundary: its end goes ("start" is kept)
    or its start goes (``keep="end"``). ``before`` and ``after`` are never cut; if they alone
    exceed ``room`` the result does too, and the caller decides."""
    tokens = tokenizer.tokenize(before + text + after, special=False)
    if len(tokens) <= room:
        return tokens
    if keep == "start" and not after and tokenizer.prefix_stable:
        return tokens[:max(room, 0)]
    own = tokens if not before and not after else tokenizer.tokenize(text, special=False)
    want = room - (len(tokens) - len(own))  # the text's share, seams give or take a token
    while True:
        if want <= 0:
            cut = ""
        elif keep == "start":
            cut = text[:tokenizer.covered(text, own, want)]
        else:
            cut = text[tokenizer.covered(text, own, len(own) - want):]
        tokens = tokenizer.tokenize(before + cut + after, special=False)
        if len(tokens) <= room or not cut:
            return tokens
        want -= len(tokens) - room  # a merge at the cut or the seam: give back the excess


@dataclass(frozen=True)
class Cut:
    """How one text may be truncated, whatever it is (an input to embed, a rerank query or
    document): a text and the request it came in are separate things, so a cut is not
    described by borrowing some request's options."""

    limit: int  # tokens the text may take, at most
    truncate: str = "end"  # one of TRUNCATE_MODES: which end goes past the limit, or none


class TooLong(ValueError):
    """A text refused before it is tokenized whole; each caller words it for its field."""

    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(f"the input is more than {tokens} tokens long; this request takes at "
                         f"most {limit}. Shorten it or set truncate to 'end' or 'start'")
        self.tokens = tokens
        self.limit = limit


def precut(tokenizer: Tokenizer, text: str, cut: Cut) -> str:
    """``text`` without the characters that no token within ``cut.limit`` can come from.

    No token spans more than CHARS_PER_TOKEN characters (whitespace runs and unknown words
    included, in practice), so with truncation on, a 30 MB text costs what its first (or last)
    ``limit * CHARS_PER_TOKEN`` characters cost. With truncation off, a text whose first
    characters are already too many tokens is refused (TooLong) just as cheaply.
    """
    keep = cut.limit * CHARS_PER_TOKEN
    if len(text) <= keep:
        return text
    if cut.truncate == "none":
        # Refuse fast: if a prefix is already too long, so is the whole text.
        probe = tokenizer.tokenize(text[:keep], special=False)
        if len(probe) > cut.limit + 1:
            raise TooLong(len(probe) - 1, cut.limit)
        return text
    return text[:keep] if cut.truncate == "end" else text[-keep:]


@dataclass(frozen=True)
class Part:
    """A run of special tokens (``ids``), or text between them (``text``, with slots)."""

    ids: tuple[int, ...] = ()
    text: str | None = None


_SLOT = re.compile(r"(\{query\}|\{document\}|\{instruction\})")


@dataclass(frozen=True)
class PairTemplate:
    """A reranker's (query, document) prompt as special tokens and the text between them."""

    parts: tuple[Part, ...]
    instruction: str = ""
    # Added to the ids of the document and all that follows it: a localembed-converted BERT
    # cross-encoder's second segment (see convert.py); 0 for every other model.
    segment_b: int = 0

    @classmethod
    def parse(cls, tokenizer: Tokenizer, template: str, instruction: str = "") -> PairTemplate:
        """Split ``template`` (with ``{query}``, ``{document}`` and ``{instruction}``) at the
        special tokens its own text spells."""
        spellings = {tokenizer.piece(t, special=True).decode("utf-8", "replace"): t
                     for t in tokenizer.tokenize_template(template) if tokenizer.is_special(t)}
        spellings.pop("", None)
        parts: list[Part] = []
        if spellings:
            pattern = "|".join(re.escape(s) for s in sorted(spellings, key=len, reverse=True))
            pieces = re.split(f"({pattern})", template)
        else:
            pieces = [template]
        for piece in pieces:
            if piece in spellings:
                ids = parts.pop().ids if parts and parts[-1].text is None else ()
                parts.append(Part(ids=(*ids, spellings[piece])))
            elif piece:
                parts.append(Part(text=piece))
        return cls(tuple(parts), instruction)

    @classmethod
    def frame(cls, head: list[int], middle: list[int], tail: list[int],
              segment_b: int = 0) -> PairTemplate:
        """The cross-encoder pair: ``head query middle document tail`` (e.g. [CLS] q [SEP]
        [SEP] d [SEP]); query and document are segments of their own, as in a tokenizer's
        pair encoding."""
        return cls(tuple(p for p in (Part(ids=tuple(head)), Part(text="{query}"),
                                     Part(ids=tuple(middle)), Part(text="{document}"),
                                     Part(ids=tuple(tail))) if p.ids or p.text),
                   segment_b=segment_b)

    def _fill(self, text: str, query: str) -> tuple[str, str | None]:
        """(the text with its slots filled, before the document slot; what follows the
        document slot, or None without one): one pass, so a query spelling "{document}"
        stays text."""
        values = {"{query}": query, "{instruction}": self.instruction}
        before: list[str] = []
        after: list[str] | None = None
        for piece in _SLOT.split(text):
            if piece == "{document}" and after is None:
                after = []
                continue
            (before if after is None else after).append(values.get(piece, piece))
        return "".join(before), None if after is None else "".join(after)

    def tokens(self, tokenizer: Tokenizer, query: str, document: str,
               limit: int | None = None) -> list[int]:
        """The pair's tokens, the document cut to keep them within ``limit`` if need be.

        Only the document's end is ever cut; the query and the frame stay whole, so when they
        alone reach ``limit`` the tokens are longer than it (the caller refuses the query).
        """
        chunks: list[list[int]] = []
        document_at, around = -1, ("", "")
        for part in self.parts:
            if part.text is None:
                chunks.append(list(part.ids))
                continue
            before, after = self._fill(part.text, query)
            if after is not None:
                document_at, around = len(chunks), (before, after)
                text = before + document + after
            else:
                text = before
            chunks.append(tokenizer.tokenize(text, special=False) if text else [])
        total = sum(len(c) for c in chunks)
        if limit is not None and total > limit and document_at >= 0:
            room = limit - (total - len(chunks[document_at]))
            chunks[document_at] = fit(tokenizer, around[0], document, around[1], room)
        if self.segment_b and document_at >= 0:
            chunks[document_at:] = [[t + self.segment_b for t in c] for c in chunks[document_at:]]
        return [t for c in chunks for t in c]
