"""What ``localembed index NAME PATH...`` reads: folders, files and record files, as documents.

Reading never stops at a bad file: everything that cannot be used becomes a ``Skipped`` with a
short reason, so one run reports every problem at once. Folders are read as a person would
expect a search tool to: recursively, in sorted order (the same documents in the same order on
every run), without hidden files, caches or dependencies, and without leaving the folder
through a symlink, so indexing ``~/notes`` never wanders into the rest of the disk. Files are
read one at a time and record files are streamed, so memory stays bounded by the largest file
(``max_file_bytes``), whatever the corpus.

Formats are chosen by extension, not by sniffing contents: in a folder a file of an unknown
extension is passed over without a word (a repository's images and archives are not problems
to report), while one named on the command line is reported.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TextIO

# Extension -> the document's metadata type. Anything else is not read.
FORMATS: dict[str, str] = {
    **dict.fromkeys((".txt", ".text", ".rst", ".adoc", ".asciidoc", ".org", ".log"), "text"),
    **dict.fromkeys((".md", ".markdown", ".mdown", ".mkd", ".mdx"), "markdown"),
    **dict.fromkeys((".html", ".htm", ".xhtml"), "html"),
    ".pdf": "pdf",
    **dict.fromkeys((
        ".py", ".pyi", ".pyx", ".ipynb", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".vue",
        ".svelte", ".java", ".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".hxx", ".m",
        ".mm", ".go", ".rs", ".rb", ".php", ".pl", ".pm", ".lua", ".r", ".jl", ".cs", ".fs",
        ".swift", ".kt", ".kts", ".scala", ".clj", ".ex", ".exs", ".erl", ".hs", ".ml", ".dart",
        ".zig", ".nim", ".sh", ".bash", ".zsh", ".fish", ".ps1", ".bat", ".sql", ".graphql",
        ".proto", ".css", ".scss", ".sass", ".less", ".toml", ".yaml", ".yml", ".ini", ".cfg",
        ".conf", ".json", ".xml", ".tex", ".bib", ".cmake", ".gradle", ".mk", ".el",
        ".vim", ".diff", ".patch",
    ), "code"),
}
# Files without an extension that are text all the same, by name (case-insensitive).
NAMED_FORMATS: dict[str, str] = {
    **dict.fromkeys(("readme", "license", "licence", "copying", "copyright", "authors",
                     "contributors", "changelog", "changes", "news", "notice", "install",
                     "todo", "history"), "text"),
    **dict.fromkeys(("makefile", "dockerfile", "containerfile", "vagrantfile", "gemfile",
                     "rakefile", "procfile", "justfile", "cmakelists.txt"), "code"),
}
# Record files: extension -> CSV delimiter (None: JSON Lines; PARQUET: Parquet, read with
# pyarrow, which comes with the ray extra).
PARQUET = "parquet"
RECORDS: dict[str, str | None] = {".jsonl": None, ".ndjson": None, ".csv": ",", ".tsv": "\t",
                                  ".parquet": PARQUET}
PARQUET_BATCH_ROWS = 1024  # records read at a time from a Parquet file
# Never worth indexing when met in a folder: caches, dependencies, OS droppings.
JUNK = frozenset({"__pycache__", "node_modules", "__pypackages__", "bower_components",
                  "Thumbs.db", "desktop.ini", "package-lock.json"})

BINARY_SNIFF = 8192  # bytes looked at for a NUL
DEFAULT_TEXT_FIELD = "text"
DEFAULT_ID_FIELD = "id"


@dataclass(frozen=True)
class Document:
    """One thing to embed and find again: a file's text, or one record."""

    # A record's id, or the file's path relative to what was indexed (POSIX '/'); a file given
    # directly: its name.
    id: str
    text: str
    source: str  # the file's absolute path, symlinks resolved (records: that file's path)
    # The file's name (EmbeddingGemma's document title), an HTML page's <title>; records: a
    # 'title' field if present, else None.
    title: str | None
    # Files: {"path": <id>, "type": "text"|"markdown"|"code"|"html"|"pdf"}; records: every field
    # but the text and id fields.
    metadata: dict[str, object]
    line_based: bool  # True for files (chunks carry line ranges); False for records and PDFs


@dataclass(frozen=True)
class Skipped:
    """Something that was asked for but not read, and why, for the run's report."""

    path: str  # absolute
    reason: str  # short and human: "binary", "too large (31.2 MB; limit 20 MB)", ...


@dataclass(frozen=True)
class ReadOptions:
    """How to read what the user gave."""

    # Only files whose path relative to a folder, or whose name, matches (fnmatch): "*.md",
    # "**/*.py", "docs/*". Files named directly are always read.
    glob: str | None = None
    text_field: str | None = None  # records: the field holding the text (default "text")
    # Records: the field holding the id (default "id" when a record has one, else
    # "<file's id>:<record number>").
    id_field: str | None = None
    max_file_bytes: int = 20 * 1024 * 1024


def read_sources(paths: Sequence[str | os.PathLike[str]],
                 options: ReadOptions = ReadOptions()) -> Iterator[Document | Skipped]:
    """Every document in ``paths`` (folders, files, record files), and every skip, in order.

    Lazy: a file is read when its document is asked for. Ids are unique within the run (a
    second document with an id already given is Skipped), and no file is read twice, however
    many paths or symlinks lead to it.
    """
    return _Reader(options).read(paths)


def content_hash(document: Document) -> str:
    """The sha256 (hex) of what a document's vectors depend on: its text, title and metadata.

    Canonical JSON (sorted keys, ASCII escapes), so equal documents hash equal in any run, on
    any machine, whatever order their metadata was built in.
    """
    payload = json.dumps({"text": document.text, "title": document.title,
                          "metadata": document.metadata},
                         sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def format_of(name: str) -> str | None:
    """The metadata type of a file called ``name``, "records" for record files, or None."""
    lower = name.lower()
    extension = os.path.splitext(lower)[1]
    if extension in RECORDS:
        return "records"
    return FORMATS.get(extension) or NAMED_FORMATS.get(lower)


_Listing = tuple[Iterator[os.DirEntry[str]], str, bool]


class _Reader:
    """One run of read_sources: what has been read, so nothing is read or named twice."""

    def __init__(self, options: ReadOptions) -> None:
        self.options = options
        self.ids: set[str] = set()
        self.files: set[str] = set()  # real paths read
        self.folders: set[str] = set()  # real paths walked

    def read(self, paths: Sequence[str | os.PathLike[str]]) -> Iterator[Document | Skipped]:
        for given in paths:
            if "://" in os.fspath(given):  # a Parquet dataset on a filesystem pyarrow reads
                yield from self._parquet(os.fspath(given), os.fspath(given))
                continue
            path = os.path.abspath(os.path.expanduser(os.fspath(given)))
            if not os.path.exists(path):
                reason = "broken symlink" if os.path.islink(path) else "does not exist"
                yield Skipped(path, reason)
            elif os.path.isdir(path):
                yield from self._walk(path)
            elif os.path.isfile(path):
                name = os.path.basename(path)
                kind = format_of(name)
                if kind is None:
                    yield Skipped(path, "not a supported format")
                else:
                    yield from self._file(path, os.path.realpath(path), name, kind)
            else:
                yield Skipped(path, "not a regular file")

    # -- folders -------------------------------------------------------------------------------

    def _walk(self, root: str) -> Iterator[Document | Skipped]:
        """Files under ``root``, depth first in sorted order, never leaving ``root``.

        Symlinks that stay inside are followed last, once everything else is read: what they
        point to is then usually read already, under its own path, which is the id it keeps.
        """
        top = os.path.realpath(root)
        if top in self.folders:
            return
        self.folders.add(top)
        listing = self._list(top)
        if isinstance(listing, Skipped):
            yield listing
            return
        # Folders being listed: their entries, their relative path, and whether a symlink led
        # there (else every path below is already real: no realpath() per file).
        stack: list[_Listing] = [(iter(listing), "", False)]
        links: list[tuple[str, str]] = []  # (path, relative) of symlinks inside, for later
        while stack or links:
            if not stack:
                path, relative = links.pop(0)
                yield from self._entry(top, path, relative, True, stack)
                continue
            entries, prefix, linked = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
            elif not (entry.name.startswith(".") or entry.name in JUNK):
                if entry.is_symlink():
                    links.append((entry.path, prefix + entry.name))
                else:
                    yield from self._entry(top, entry.path, prefix + entry.name, linked, stack)

    def _entry(self, top: str, path: str, relative: str, linked: bool, stack: list[_Listing]
               ) -> Iterator[Document | Skipped]:
        """One thing met in folder ``top``: a file read, a folder put on ``stack``, or a
        symlink checked first."""
        name = os.path.basename(path)
        real = os.path.realpath(path) if linked else path
        if os.path.islink(path):
            is_folder = os.path.isdir(real)
            wanted = is_folder or self._wanted(relative, name)
            if not os.path.exists(real):
                if wanted:
                    yield Skipped(path, "broken symlink")
                return
            if not _inside(real, top):
                if wanted:
                    yield Skipped(path, "symlink leaving the folder")
                return
        if os.path.isdir(real):
            if real not in self.folders:
                self.folders.add(real)
                listing = self._list(path)
                if isinstance(listing, Skipped):
                    yield listing
                else:
                    stack.append((iter(listing), relative + "/", linked))
        elif os.path.isfile(real) and self._wanted(relative, name):
            kind = format_of(name)
            if kind is None:
                # Asked for by pattern, so worth a word; a folder's other files are not.
                if self.options.glob is not None:
                    yield Skipped(path, "not a supported format")
                return
            yield from self._file(path, real, relative, kind)

    def _list(self, folder: str) -> list[os.DirEntry[str]] | Skipped:
        try:
            with os.scandir(folder) as entries:
                return sorted(entries, key=lambda entry: entry.name)
        except OSError as exc:
            return Skipped(folder, _unreadable(exc))

    def _wanted(self, relative: str, name: str) -> bool:
        """Whether the glob (if any) lets a file through, and its format is one we read (a
        pattern can ask for an unsupported one, which is then reported)."""
        pattern = self.options.glob
        if pattern is None:
            return format_of(name) is not None
        return (fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(name, pattern)
                or (pattern.startswith("**/") and fnmatch.fnmatch(relative, pattern[3:])))

    # -- files ---------------------------------------------------------------------------------

    def _file(self, path: str, real: str, doc_id: str, kind: str
              ) -> Iterator[Document | Skipped]:
        """The document(s) of one file, named ``doc_id``, or why there are none."""
        if real in self.files:
            return
        self.files.add(real)
        source = real
        if kind == "records":
            delimiter = RECORDS[os.path.splitext(path)[1].lower()]
            if delimiter == PARQUET:
                yield from self._parquet(source, doc_id)
            else:
                yield from self._records(source, delimiter, doc_id)
            return
        limit = self.options.max_file_bytes
        try:
            size = os.stat(source).st_size
            if size > limit:
                yield Skipped(source, f"too large ({_size(size)}; limit {_size(limit)})")
                return
            if kind == "pdf":
                text, reason = _pdf_text(source)
                title = os.path.basename(path)
            else:
                with open(source, "rb") as file:
                    data = file.read(limit + 1)
                if len(data) > limit:  # grew since stat
                    yield Skipped(source, f"too large (over {_size(limit)}; limit "
                                          f"{_size(limit)})")
                    return
                text, reason = _decode(data)
                title = os.path.basename(path)
                if text is not None and kind == "html":
                    text, page_title = html_text(text)
                    title = page_title or title
        except OSError as exc:
            yield Skipped(source, _unreadable(exc))
            return
        if text is None:
            yield Skipped(source, reason or "unreadable")
            return
        if not text.strip():
            yield Skipped(source, "empty")
            return
        if doc_id in self.ids:
            yield Skipped(source, f"duplicate id {doc_id!r}")
            return
        self.ids.add(doc_id)
        yield Document(doc_id, text, source, title, {"path": doc_id, "type": kind},
                       line_based=kind != "pdf")

    # -- records -------------------------------------------------------------------------------

    def _records(self, source: str, delimiter: str | None, file_id: str
                 ) -> Iterator[Document | Skipped]:
        """One document per record of a JSON Lines (``delimiter`` None) or CSV file,
        streamed."""
        try:
            with open(source, "rb") as raw:
                head = raw.read(BINARY_SNIFF)
                if b"\0" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
                    yield Skipped(source, "binary")
                    return
                raw.seek(0)
                # newline="" lets csv see quoted newlines; JSON Lines splits on \n itself.
                with open(raw.fileno(), encoding="utf-8-sig", newline="", closefd=False) as text:
                    if delimiter is None:
                        yield from self._json_lines(source, file_id, text)
                    else:
                        yield from self._csv_rows(source, file_id, text, delimiter)
        except UnicodeDecodeError:
            yield Skipped(source, "not valid UTF-8")
        except OSError as exc:
            yield Skipped(source, _unreadable(exc))

    def _parquet(self, source: str, file_id: str) -> Iterator[Document | Skipped]:
        """One document per row of a Parquet file or dataset (a local path, or a URI such as
        s3://bucket/prefix/ that pyarrow's filesystems read), streamed in batches."""
        try:
            import pyarrow.dataset as pads
        except ImportError:
            yield Skipped(source, 'Parquet needs pyarrow: pip install "localembed[ray]"')
            return
        try:
            dataset = pads.dataset(source, format="parquet")
            if b"localembed" in (dataset.schema.metadata or {}):
                yield Skipped(source, "a dataset written by embed-corpus: load it with "
                                      "`localembed index NAME FOLDER`")
                return
            missing = self._missing_text(dict.fromkeys(dataset.schema.names))
            if missing:
                yield Skipped(source, missing)
                return
            number = 0
            for batch in dataset.to_batches(batch_size=PARQUET_BATCH_ROWS):
                for record in batch.to_pylist():
                    number += 1
                    yield self._record(_json_ready(record), source, file_id, number,
                                       f"row {number}")
            if number == 0:
                yield Skipped(source, "empty")
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            yield Skipped(source, f"unreadable Parquet ({str(exc).splitlines()[0][:200]})")

    def _json_lines(self, source: str, file_id: str, text: TextIO
                    ) -> Iterator[Document | Skipped]:
        decided = False
        for number, line in enumerate(text, 1):
            if not line.strip():
                continue
            if len(line) > self.options.max_file_bytes:
                yield Skipped(source, f"line {number}: too large")
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                yield Skipped(source, f"line {number}: not a JSON object")
                continue
            if not decided:  # the first record tells whether the file holds texts at all
                missing = self._missing_text(record)
                if missing:
                    yield Skipped(source, missing)
                    return
                decided = True
            yield self._record(record, source, file_id, number, f"line {number}")
        if not decided:
            yield Skipped(source, "empty")

    def _csv_rows(self, source: str, file_id: str, text: TextIO, delimiter: str
                  ) -> Iterator[Document | Skipped]:
        # Python's default field limit (128 KiB) would refuse a long document in one cell.
        if csv.field_size_limit() < self.options.max_file_bytes:
            csv.field_size_limit(self.options.max_file_bytes)
        reader = csv.DictReader(text, delimiter=delimiter)
        number = 0
        try:
            if not reader.fieldnames:
                yield Skipped(source, "empty")
                return
            missing = self._missing_text(dict.fromkeys(reader.fieldnames))
            if missing:
                yield Skipped(source, missing)
                return
            for number, row in enumerate(reader, 1):
                row.pop(None, None)  # type: ignore[call-overload]  # cells beyond the header
                yield self._record(row, source, file_id, number, f"row {number}")
        except csv.Error as exc:  # the reader cannot resume after a malformed row
            yield Skipped(source, f"row {number + 1}: {exc}")
        if number == 0 and reader.fieldnames:
            yield Skipped(source, "empty")

    def _missing_text(self, record: dict[str, object]) -> str | None:
        """Why a record file is no corpus (the reason naming the field), or None."""
        text_field = self.options.text_field or DEFAULT_TEXT_FIELD
        return None if text_field in record else f"no {text_field!r} field"

    def _record(self, record: dict[str, object], source: str, file_id: str, number: int,
                where: str) -> Document | Skipped:
        """One record as a document, or why not (``where`` names it in the reason)."""
        text_field = self.options.text_field or DEFAULT_TEXT_FIELD
        if text_field not in record:
            return Skipped(source, f"{where}: no {text_field!r} field")
        text = record[text_field]
        if not isinstance(text, str):
            return Skipped(source, f"{where}: {text_field!r} is {_json_type(text)}, not text")
        if not text.strip():
            return Skipped(source, f"{where}: empty")
        id_field = self.options.id_field or (DEFAULT_ID_FIELD if DEFAULT_ID_FIELD in record
                                             else None)
        if id_field is None:
            doc_id = f"{file_id}:{number}"
        elif id_field not in record:
            return Skipped(source, f"{where}: no {id_field!r} field")
        else:
            value = record[id_field]
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                return Skipped(source, f"{where}: {id_field!r} is {_json_type(value)}, not a "
                                       "string or a whole number")
            doc_id = str(value)
            if not doc_id.strip():
                return Skipped(source, f"{where}: empty {id_field!r}")
        if doc_id in self.ids:
            return Skipped(source, f"{where}: duplicate id {doc_id!r}")
        self.ids.add(doc_id)
        title = record.get("title")
        metadata = {key: value for key, value in record.items()
                    if key != text_field and key != id_field}
        return Document(doc_id, _newlines(text), source,
                        None if title is None or title == "" else str(title), metadata,
                        line_based=False)


def _json_ready(record: dict[str, object]) -> dict[str, object]:
    """A Parquet row's values as JSON has them (a date, a decimal or bytes as text), since a
    record's other fields become its metadata."""
    def plain(value: object) -> object:
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return str(value)

    return {key: plain(value) for key, value in record.items()}


# -- text formats ------------------------------------------------------------------------------


def _decode(data: bytes) -> tuple[str | None, str | None]:
    """A file's text (UTF-8, BOM dropped, newlines as \\n), or None and why not."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16: text, but not ours to guess
        return None, "not valid UTF-8"
    if b"\0" in data[:BINARY_SNIFF]:
        return None, "binary"
    try:
        return _newlines(data.decode("utf-8-sig")), None
    except UnicodeDecodeError:
        return None, "not valid UTF-8"


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


# Elements whose content is not text a reader sees.
_DROPPED = frozenset({"script", "style", "noscript", "template", "svg", "math", "object",
                      "iframe", "canvas"})
# Block elements that end a paragraph (a blank line, the chunker's strongest break) ...
_PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "table",
                         "ul", "ol", "dl", "section", "article", "header", "footer", "figure",
                         "hr", "address", "details", "main", "aside", "nav", "form",
                         "fieldset"})
# ... and those that end a line.
_LINES = frozenset({"br", "li", "div", "tr", "dt", "dd", "caption", "summary", "figcaption",
                    "legend", "option", "body", "html", "head", "title"})
_CELLS = frozenset({"td", "th"})
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed",
                   "source", "track", "wbr", "param"})


class _HTMLText(HTMLParser):
    """An HTML page's readable text, with its block structure as line and paragraph breaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities decoded in handle_data
        self.parts: list[str] = []
        self.title: list[str] = []
        self._dropped: list[str] = []  # open elements whose text is dropped
        self._in_title = False
        self._pre = 0
        self._line_start = True
        self._newlines = 0  # how many the text written so far ends with

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            if tag not in _VOID:
                self._dropped.append(tag)
            return
        if tag == "title":
            self._in_title = True
        self._break(tag)
        if tag == "pre":
            self._pre += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _DROPPED:  # <script/> opens nothing
            self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._dropped:
            if tag == self._dropped[-1]:
                self._dropped.pop()
            return
        if tag == "title":
            self._in_title = False
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag not in _VOID:
            self._break(tag)

    def handle_data(self, data: str) -> None:
        if self._dropped:
            return
        if self._in_title:
            self.title.append(data)
            return
        if self._pre:
            if data:
                self.parts.append(data)
                self._newlines = len(data) - len(data.rstrip("\n"))
                self._line_start = self._newlines > 0
            return
        data = re.sub(r"\s+", " ", data)
        if self._line_start:
            data = data.lstrip(" ")
        if data:
            self.parts.append(data)
            self._line_start = False
            self._newlines = 0

    def _break(self, tag: str) -> None:
        if tag in _PARAGRAPHS:
            self._newline(2)
        elif tag in _LINES:
            self._newline(1)
        elif tag in _CELLS and not self._line_start:
            self.parts.append(" ")

    def _newline(self, wanted: int) -> None:
        """End the line (1) or paragraph (2): nested and adjacent blocks (</li><li>,
        </div><div>) make one break, not one each."""
        if not self.parts:
            return
        if not self._pre:
            self.parts[-1] = self.parts[-1].rstrip(" ")
        if wanted > self._newlines:
            self.parts.append("\n" * (wanted - self._newlines))
            self._newlines = wanted
        self._line_start = True


def html_text(markup: str) -> tuple[str, str | None]:
    """The readable text of an HTML page and its <title> (None without one): scripts and
    styles dropped, block elements as line breaks, entities decoded, runs of spaces as one."""
    parser = _HTMLText()
    parser.feed(markup)
    parser.close()
    text = re.sub(r"[ \t]+\n", "\n", "".join(parser.parts))
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    title = " ".join("".join(parser.title).split())
    return text, title or None


def _pdf_text(path: str) -> tuple[str | None, str | None]:
    """A PDF's text, pages joined by blank lines, or None and why not."""
    try:
        from pypdf import PdfReader  # imported on the first PDF: most corpora have none
    except ImportError:
        return None, "PDF text needs the pdf extra (pip install 'localembed[pdf]')"
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not _decrypted(reader):
            return None, "encrypted PDF"
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    # pypdf raises all sorts (its own errors, ValueError, KeyError, ...) on a damaged file;
    # whichever it is, this file is skipped and the run goes on.
    except Exception as exc:
        return None, f"unreadable PDF ({_first_line(exc)})"
    text = _newlines("\n\n".join(page for page in pages if page).replace("\0", ""))
    if not text.strip():
        return None, "no text in the PDF (scanned pages?)"
    return text, None


def _decrypted(reader: object) -> bool:
    """Whether an encrypted PDF opens with the empty password (many "protected" PDFs do)."""
    try:
        return bool(reader.decrypt(""))  # type: ignore[attr-defined]
    except Exception:  # a missing AES backend is the same: cannot read it
        return False


# -- helpers -----------------------------------------------------------------------------------


def _inside(path: str, folder: str) -> bool:
    """Whether real path ``path`` is ``folder`` or under it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _unreadable(exc: OSError) -> str:
    return f"unreadable ({exc.strerror or _first_line(exc)})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _size(size: int) -> str:
    """A byte count as people read them: "31.2 MB", "20 MB", "900 KB", "12 bytes"."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"

