"""A document cut into chunks that each fit the embedding model, at the most natural breaks.

Token counts come from the model's own tokenizer (``count``), and with real vocabularies the
tokens of a concatenation are not the sum of its parts' (byte-level BPE merges across seams,
WordPiece does not), so sums are only used to plan: every chunk is counted whole before it is
kept, and cut shorter when the plan was wrong.

The plan is cheap: the text is split top-down (paragraphs, then lines, then sentences, then
words, then characters) only where a part does not fit, so each character is tokenized a few
times in small pieces, never as ever-growing prefixes; the pieces are then packed greedily and
each chunk ends at the strongest break within its reach.

Chunks are verbatim slices of the text (edges trimmed of whitespace), so their line ranges are
exact and the text shown for a search hit is the document's own.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

# Break strengths, strongest first: a chunk ends at the strongest break it can reach.
PARAGRAPH, LINE, SENTENCE, WORD, CHARACTER = range(5)

_PARAGRAPH_BREAK = re.compile(r"\n(?:[^\S\n]*\n)+")  # a newline and the blank lines after it
_LINE_BREAK = re.compile(r"\n")
# A sentence ends at . ! ? (and closing quotes or brackets) before a space, or at a CJK full
# stop, which needs no space after it.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019\u00bb)\]]*[^\S\n]+"
                           r"|[\u3002\uff01\uff1f]+[\u300d\u300f\u201d\u2019)\uff09]*[^\S\n]*")
_SPACES = re.compile(r"\s+")
_SEPARATORS = {PARAGRAPH: _PARAGRAPH_BREAK, LINE: _LINE_BREAK, SENTENCE: _SENTENCE_END,
               WORD: _SPACES}
_WORD_START = re.compile(r"(?<=\s)\S")

# No tokenizer averages this many characters a token on real text, so a longer part is split
# without being counted first: counting a whole 1 MB text only to learn that it does not fit
# 512 tokens would be the single most expensive call of the run.
_MAX_CHARS_PER_TOKEN = 64
# A break leaving a chunk with less than this share of the budget is passed over for a weaker
# one further on: a heading is not worth a chunk of its own.
_MIN_FILL = 1 / 8
# The planned size is scaled by this much more than the miscount when a chunk turns out too
# long, so that one retry nearly always suffices.
_SHRINK_MARGIN = 0.9


@dataclass(frozen=True)
class Chunk:
    """One piece of a document, small enough for the model."""

    number: int  # 0-based within the document
    text: str
    start_line: int | None  # 1-based, inclusive, for line-based documents
    end_line: int | None
    tokens: int  # count(text)


@dataclass
class _Piece:
    """A planned slice ``[start, end)`` of the text that fits on its own."""

    start: int
    end: int
    tokens: int
    strength: int  # of the break before it


def chunk_text(text: str, count: Callable[[str], int], max_tokens: int, overlap: int = 0,
               line_based: bool = True) -> list[Chunk]:
    """``text`` cut into chunks of at most ``max_tokens`` tokens by ``count``.

    Each chunk after the first starts with about ``overlap`` tokens (at most half the budget)
    from the end of the one before, so that a passage cut in two is still found whole in one
    of them. Lines are counted by ``\\n`` (sources normalise newlines before this). A text of
    nothing but whitespace has no chunks.

    Raises ValueError for a budget below one token, a negative overlap, or a single character
    that alone is more than ``max_tokens`` tokens (nothing could hold it).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, not {max_tokens}")
    if overlap < 0:
        raise ValueError(f"overlap must not be negative, not {overlap}")
    if not text or text.isspace():
        return []
    return _Chunker(text, count, max_tokens, min(overlap, max_tokens // 2), line_based).run()


class _Chunker:
    """The state of cutting one text: its planned pieces and the chunks made so far."""

    def __init__(self, text: str, count: Callable[[str], int], max_tokens: int, overlap: int,
                 line_based: bool) -> None:
        self.text = text
        self.count = count
        self.max = max_tokens
        self.overlap = overlap
        self.newlines = [m.start() for m in _LINE_BREAK.finditer(text)] if line_based else None

    # -- planning: pieces that each fit ----------------------------------------------------

    def _fits(self, start: int, end: int) -> int | None:
        """The tokens of ``text[start:end]`` when it fits the budget, else None (also for a
        part too long to be worth counting)."""
        if end - start > self.max * _MAX_CHARS_PER_TOKEN:
            return None
        tokens = self.count(self.text[start:end])
        return tokens if tokens <= self.max else None

    def _plan(self, start: int, end: int, level: int, strength: int, out: list[_Piece]) -> None:
        """Pieces covering ``[start, end)``, split at ``level``'s breaks and finer ones only
        where a part does not fit as it is."""
        tokens = self._fits(start, end)
        if tokens is not None:
            out.append(_Piece(start, end, tokens, strength))
            return
        while level in _SEPARATORS:
            cuts = [m.end() for m in _SEPARATORS[level].finditer(self.text, start, end)
                    if start < m.end() < end]
            if cuts:
                bounds = [start, *cuts, end]
                for i in range(len(bounds) - 1):
                    self._plan(bounds[i], bounds[i + 1], level + 1,
                               strength if i == 0 else level, out)
                return
            level += 1
        self._plan_characters(start, end, strength, out)

    def _plan_characters(self, start: int, end: int, strength: int, out: list[_Piece]) -> None:
        """A part with no break at all (a 50k-character line, CJK without punctuation) cut at
        the longest prefixes that fit, found by binary search on ``count``.

        Each piece leaves room for the overlap, which could not be taken from the piece before
        otherwise: these pieces are the only ones that fill a chunk on their own.
        """
        budget = self.max - self.overlap
        guess = budget * 4  # characters; corrected by each piece found
        while start < end:
            cut, tokens = self._longest_prefix(start, end, guess, budget)
            if cut == start:  # a character bigger than that: it gets the whole budget
                cut, tokens = self._longest_prefix(start, end, guess, self.max)
            if cut == start:
                raise ValueError(f"the character {self.text[start]!r} alone is more than "
                                 f"{self.max} tokens")
            out.append(_Piece(start, cut, tokens, strength))
            guess = max(1, cut - start)
            start, strength = cut, CHARACTER

    def _longest_prefix(self, start: int, end: int, guess: int, budget: int) -> tuple[int, int]:
        """The end of the longest slice from ``start`` (not past ``end``) of at most ``budget``
        tokens, cut where no character would be parted from its accents, and its tokens
        (``start`` itself when not one character fits).

        Galloping from ``guess`` then bisecting: each count is on at most twice the answer's
        length, however long the part. Positions are code points, so no UTF-8 sequence is
        ever cut, and a cut moved back off combining marks and joiners keeps whole letters.
        """
        fit, fit_tokens, over = start, 0, None
        probe = min(end, start + max(1, guess))
        while over is None:
            tokens = self.count(self.text[start:probe])
            if tokens <= budget:
                fit, fit_tokens = probe, tokens
                if probe == end:
                    return end, tokens
                probe = min(end, start + 2 * (probe - start))
            else:
                over = probe
        while over - fit > 1:
            middle = (fit + over) // 2
            tokens = self.count(self.text[start:middle])
            if tokens <= budget:
                fit, fit_tokens = middle, tokens
            else:
                over = middle
        if fit == start:
            return start, 0
        safe = _grapheme_cut(self.text, fit, start)
        if safe != fit:
            fit, fit_tokens = safe, self.count(self.text[start:safe])
        return fit, fit_tokens

    def _longest_suffix(self, start: int, end: int, budget: int) -> int:
        """The start of the longest slice ending at ``end`` (not before ``start``) of at most
        ``budget`` tokens, at a character boundary: an overlap taken from inside a word."""
        fit, over = end, None
        probe = max(start, end - 4 * max(1, budget))
        while over is None:
            if self.count(self.text[probe:end]) <= budget:
                fit = probe
                if probe == start:
                    break
                probe = max(start, end - 2 * (end - probe))
            else:
                over = probe
        while over is not None and fit - over > 1:
            middle = (fit + over + 1) // 2
            if self.count(self.text[middle:end]) <= budget:
                fit = middle
            else:
                over = middle
        while fit < end and _joins_previous(self.text, fit):
            fit += 1
        return fit

    # -- packing: pieces into chunks -------------------------------------------------------

    def run(self) -> list[Chunk]:
        pieces: list[_Piece] = []
        self._plan(0, len(self.text), PARAGRAPH, PARAGRAPH, pieces)
        chunks: list[Chunk] = []
        lead: tuple[int, int] | None = None  # the overlap: its start and tokens
        i = 0
        while i < len(pieces):
            if lead and lead[1] + pieces[i].tokens > self.max:  # no room beside the overlap
                lead = self._lead(pieces[i].start, lead[0], self.max - pieces[i].tokens)
                continue
            end, lead, found = self._chunk(pieces, i, lead)
            if found is not None:  # else only whitespace: passed over, the overlap kept
                first, last, tokens = found
                chunks.append(Chunk(len(chunks), self.text[first:last], *self._lines(first, last),
                                    tokens))
                lead = (self._lead(pieces[end].start, first, self.overlap)
                        if self.overlap and end < len(pieces) else None)
            i = end
        return chunks

    def _chunk(self, pieces: list[_Piece], i: int, lead: tuple[int, int] | None
               ) -> tuple[int, tuple[int, int] | None, tuple[int, int, int] | None]:
        """The chunk starting with piece ``i`` (after the overlap ``lead``): the end of its
        pieces, the overlap it kept, and its text's bounds and tokens (None when it would hold
        only whitespace).

        Planned by the pieces' own counts, kept only once the chunk's whole text is counted;
        when that is over the budget, cut shorter (or the overlap made shorter, or the piece
        planned again, finer) and counted again.
        """
        base = lead[1] if lead else 0
        reach, total = i, base
        while reach < len(pieces) and total + pieces[reach].tokens <= self.max:
            total += pieces[reach].tokens
            reach += 1
        while True:
            end = self._cut(pieces, i, reach)
            if self.text[pieces[i].start:pieces[end - 1].end].isspace():
                return end, lead, None
            first, last = self._trim(lead[0] if lead else pieces[i].start, pieces[end - 1].end)
            tokens = self.count(self.text[first:last])
            if tokens <= self.max:
                return end, lead, (first, last, tokens)
            if end - i > 1:
                planned = base + sum(piece.tokens for piece in pieces[i:end])
                reach = self._shrunk(pieces, i, end, base, planned * self.max / tokens)
            elif lead:  # one piece and the overlap: the overlap gives way
                lead = self._lead(pieces[i].start, lead[0],
                                  min(lead[1] - 1, lead[1] - (tokens - self.max)))
                base = lead[1] if lead else 0
            else:  # one piece that fitted until trimmed: planned again, finer
                finer: list[_Piece] = []
                self._plan_characters(pieces[i].start, pieces[i].end, pieces[i].strength, finer)
                pieces[i:i + 1] = finer if len(finer) > 1 else self._halves(pieces[i])
                reach = i + 1

    def _cut(self, pieces: list[_Piece], i: int, reach: int) -> int:
        """Where the chunk of pieces ``i..`` ends (exclusive), given that those before
        ``reach`` fit: at the strongest break among them, the latest of equals, passing over
        breaks that would leave the chunk nearly empty."""
        if reach == len(pieces):
            return reach
        best, best_strength = reach, pieces[reach].strength
        fill, floor, written = 0, self.max * _MIN_FILL, False
        for k in range(i + 1, reach + 1):
            fill += pieces[k - 1].tokens
            # Blank pieces (the blank lines of a paragraph split into lines) are no chunk.
            written = written or not self.text[pieces[k - 1].start:pieces[k - 1].end].isspace()
            if written and fill >= floor and pieces[k].strength < best_strength:
                best, best_strength = k, pieces[k].strength
        # The latest break of the winning strength: scan back from reach.
        for k in range(reach, best - 1, -1):
            if pieces[k].strength == best_strength:
                return k
        return best  # pragma: no cover - best itself has that strength

    def _shrunk(self, pieces: list[_Piece], i: int, end: int, base: int, target: float) -> int:
        """A shorter reach after a chunk counted more than planned: its planned size scaled by
        the miscount, and at least one piece shorter."""
        target *= _SHRINK_MARGIN
        reach, total = i + 1, base + pieces[i].tokens
        while reach < end - 1 and total + pieces[reach].tokens <= target:
            total += pieces[reach].tokens
            reach += 1
        return reach

    def _halves(self, piece: _Piece) -> list[_Piece]:
        """A piece that fits but does not once trimmed (a tokenizer counting its edges
        oddly), cut in two at a character boundary."""
        middle = _grapheme_cut(self.text, (piece.start + piece.end) // 2, piece.start)
        if middle <= piece.start:
            middle = (piece.start + piece.end) // 2
        if middle <= piece.start:
            raise ValueError(f"{self.text[piece.start:piece.end]!r} is more than {self.max} "
                             "tokens and cannot be cut")
        return [_Piece(piece.start, middle, self.count(self.text[piece.start:middle]),
                       piece.strength),
                _Piece(middle, piece.end, self.count(self.text[middle:piece.end]), CHARACTER)]

    def _lead(self, end: int, floor: int, budget: int) -> tuple[int, int] | None:
        """The overlap before ``end``, after ``floor`` (the previous chunk's start, which it
        never reaches: that chunk would be wasted inside the next), and its tokens: the most
        whole words of at most ``budget`` tokens, from the start of a line when that keeps at
        least half of them; characters only when not one word fits.

        Words are not counted one by one and summed (a byte-level BPE counts "to " as two
        tokens and " to" as one): suffixes are counted whole, galloping back from ``end``.
        """
        if budget <= 0 or end <= floor + 1:
            return None
        starts = [m.start() for m in _WORD_START.finditer(self.text, floor + 1, end)]
        found = self._longest_fitting_suffix(starts, end, budget)
        if found is None:  # the last word alone is too long: its tail
            start = self._longest_suffix(starts[-1] if starts else floor + 1, end, budget)
            if start >= end or self.text[start:end].isspace():
                return None
            return start, self.count(self.text[start:end])
        start, tokens = found
        line = self._line_start(start, end)
        if line is not None and line != start:
            line_tokens = self.count(self.text[line:end])
            if budget <= 2 * line_tokens and line_tokens <= budget:
                start, tokens = line, line_tokens
        return (start, tokens) if not self.text[start:end].isspace() else None

    def _longest_fitting_suffix(self, starts: list[int], end: int, budget: int
                                ) -> tuple[int, int] | None:
        """The earliest of ``starts`` from which the text to ``end`` has at most ``budget``
        tokens, and those tokens; None when not even the last one does."""
        fit: tuple[int, int] | None = None  # (index into starts, tokens)
        over = -1  # an index known not to fit (-1: none yet)
        step = 1
        while step <= len(starts):
            index = len(starts) - step
            tokens = self.count(self.text[starts[index]:end])
            if tokens > budget:
                over = index
                break
            fit = (index, tokens)
            if index == 0:
                break
            step = min(2 * step, len(starts))
        if fit is None:
            return None
        while fit[0] - over > 1:
            middle = (fit[0] + over) // 2
            tokens = self.count(self.text[starts[middle]:end])
            if tokens <= budget:
                fit = (middle, tokens)
            else:
                over = middle
        return starts[fit[0]], fit[1]

    def _line_start(self, start: int, end: int) -> int | None:
        """The start (indentation included) of the first line in ``[start, end)`` that has
        more than whitespace on it, or None."""
        text = self.text
        if start == 0 or text[start - 1] == "\n":
            line = start
        else:
            newline = text.find("\n", start, end)
            if newline < 0:
                return None
            line = newline + 1
        while line < end:
            first = line
            while first < end and text[first] in " \t\r\f\v":
                first += 1
            if first < end and text[first] != "\n":
                return line
            newline = text.find("\n", first, end)
            if newline < 0:
                return None
            line = newline + 1
        return None

    # -- chunk text and lines --------------------------------------------------------------

    def _trim(self, start: int, end: int) -> tuple[int, int]:
        """``[start, end)`` without trailing whitespace or leading blank lines (a first line's
        indentation stays: it is part of code)."""
        text = self.text
        while end > start and text[end - 1].isspace():
            end -= 1
        first = start
        while first < end and text[first].isspace():
            first += 1
        if first == end:
            return start, start
        newline = text.rfind("\n", start, first)
        if newline >= 0:
            return newline + 1, end
        at_line_start = start == 0 or text[start - 1] == "\n"
        return (start if at_line_start else first), end

    def _lines(self, first: int, last: int) -> tuple[int | None, int | None]:
        """The 1-based lines of the chunk's first and last characters."""
        if self.newlines is None:
            return None, None
        return (bisect.bisect_left(self.newlines, first) + 1,
                bisect.bisect_left(self.newlines, last - 1) + 1)


def _joins_previous(text: str, position: int) -> bool:
    """Whether the character at ``position`` belongs with the one before it: a combining mark,
    a joiner or variation selector, or the LF of a CRLF."""
    if position <= 0 or position >= len(text):
        return False
    char, before = text[position], text[position - 1]
    return (unicodedata.combining(char) != 0 or char in "\u200d\ufe0e\ufe0f" or before == "\u200d"
            or unicodedata.category(char) == "Mn" or (before == "\r" and char == "\n")
            or 0x1F3FB <= ord(char) <= 0x1F3FF)  # skin tone modifiers


def _grapheme_cut(text: str, position: int, floor: int) -> int:
    """``position`` moved back to where no character is parted from its marks; ``position``
    itself when the whole stretch back to ``floor`` is one cluster."""
    cut = position
    while cut > floor and _joins_previous(text, cut):
        cut -= 1
    return cut if cut > floor else position
