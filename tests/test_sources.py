"""What ``localembed index`` reads from the paths it is given: folders, files, record files.

Every case is built in a temporary folder: text formats, binary files, bad UTF-8, symlinks in
and out, hidden and junk folders, size limits, HTML, real PDFs (written by hand and by pypdf),
JSON Lines and CSV records with their ids, duplicates and bad lines.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
from pathlib import Path

import pytest

from localembed.collections import sources
from localembed.collections.sources import (
    Document,
    ReadOptions,
    Skipped,
    content_hash,
    read_sources,
)


def read(*paths: Path | str, **options: object) -> list[Document | Skipped]:
    return list(read_sources(list(paths), ReadOptions(**options)))  # type: ignore[arg-type]


def documents(*paths: Path | str, **options: object) -> list[Document]:
    return [item for item in read(*paths, **options) if isinstance(item, Document)]


def skipped(*paths: Path | str, **options: object) -> dict[str, str]:
    """Skipped paths, relative to the first path given when under it, -> reasons."""
    root = str(Path(paths[0]).resolve())
    return {os.path.relpath(item.path, root) if item.path.startswith(root) else item.path:
            item.reason for item in read(*paths, **options) if isinstance(item, Skipped)}


def ids(*paths: Path | str, **options: object) -> list[str]:
    return [document.id for document in documents(*paths, **options)]


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def pdf(pages: list[str]) -> bytes:
    """A minimal, valid PDF with one Helvetica text line per line of each page, written by
    hand (offsets and all): what a simple PDF producer writes."""
    kids = [4 + 2 * i for i in range(len(pages))]
    bodies = ["<< /Type /Catalog /Pages 2 0 R >>",
              f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] "
              f"/Count {len(pages)} >>",
              "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, page in enumerate(pages):
        shown = " ".join(f"({line}) Tj T*" for line in page.split("\n"))
        stream = f"BT /F1 12 Tf 72 720 Td 14 TL {shown} ET"
        bodies.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                      f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>")
        bodies.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(bodies, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(bodies) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (f"trailer\n<< /Size {len(bodies) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n"
            "%%EOF\n").encode()
    return out


def jsonl(*records: object) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


# -- folders -------------------------------------------------------------------------------------


def test_a_folder_is_read_recursively_in_sorted_order_with_posix_relative_ids(
        tmp_path: Path) -> None:
    for name in ["b.md", "a.txt", "sub/z.py", "sub/deeper/y.rst", "c.html"]:
        write(tmp_path / name, f"text of {name}\n")
    assert ids(tmp_path) == ["a.txt", "b.md", "c.html", "sub/deeper/y.rst", "sub/z.py"]


def test_reading_the_same_folder_twice_gives_the_same_documents(tmp_path: Path) -> None:
    for name in ["b.md", "a.txt", "sub/z.py"]:
        write(tmp_path / name, f"text of {name}\n")
    assert documents(tmp_path) == documents(tmp_path)


def test_hidden_files_and_folders_and_junk_folders_are_not_read(tmp_path: Path) -> None:
    write(tmp_path / "kept.md", "kept\n")
    for name in [".hidden.md", ".git/config.txt", ".venv/notes.txt", "__pycache__/x.py",
                 "node_modules/pkg/index.js", "sub/.secret/a.txt"]:
        write(tmp_path / name, "junk\n")
    assert read(tmp_path) == documents(tmp_path)
    assert ids(tmp_path) == ["kept.md"]


def test_files_of_unsupported_formats_in_a_folder_are_passed_over_silently(
        tmp_path: Path) -> None:
    write(tmp_path / "notes.md", "notes\n")
    write(tmp_path / "photo.jpg", b"\xff\xd8\xff\xe0 not text")
    write(tmp_path / "archive.tar.gz", b"\x1f\x8b")
    write(tmp_path / "data.bin", "looks like text\n")
    assert read(tmp_path) == documents(tmp_path)
    assert ids(tmp_path) == ["notes.md"]


def test_a_file_named_directly_of_an_unsupported_format_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "photo.jpg", b"\xff\xd8")
    assert read(path) == [Skipped(str(path), "not a supported format")]


def test_well_known_files_without_an_extension_are_text(tmp_path: Path) -> None:
    for name in ["README", "LICENSE", "Makefile", "copyright"]:
        write(tmp_path / name, f"the {name}\n")
    assert {d.id: d.metadata["type"] for d in documents(tmp_path)} == {
        "LICENSE": "text", "Makefile": "code", "README": "text", "copyright": "text"}


def test_a_file_document_has_its_text_name_path_and_type(tmp_path: Path) -> None:
    write(tmp_path / "docs/guide.md", "# Guide\n\nHello.\n")
    [document] = documents(tmp_path)
    assert document == Document(id="docs/guide.md", text="# Guide\n\nHello.\n",
                                source=str((tmp_path / "docs/guide.md").resolve()),
                                title="guide.md",
                                metadata={"path": "docs/guide.md", "type": "markdown"},
                                line_based=True)


@pytest.mark.parametrize("name,kind", [("a.txt", "text"), ("a.rst", "text"),
                                       ("a.org", "text"), ("a.markdown", "markdown"),
                                       ("a.py", "code"), ("a.tsx", "code"), ("a.go", "code"),
                                       ("a.yaml", "code"), ("a.json", "code"),
                                       ("a.tex", "code"), ("a.htm", "html")])
def test_the_type_follows_the_extension(tmp_path: Path, name: str, kind: str) -> None:
    [document] = documents(write(tmp_path / name, "content\n"))
    assert document.metadata == {"path": name, "type": kind}


def test_a_file_named_directly_has_its_name_as_id_and_title(tmp_path: Path) -> None:
    path = write(tmp_path / "deep/down/plan.txt", "the plan\n")
    [document] = documents(path)
    assert (document.id, document.title, document.source) == (
        "plan.txt", "plan.txt", str(path.resolve()))


def test_a_file_given_again_or_inside_a_folder_given_is_read_once(tmp_path: Path) -> None:
    path = write(tmp_path / "a.md", "a\n")
    assert ids(tmp_path, path, tmp_path / ".." / tmp_path.name) == ["a.md"]
    assert read(tmp_path, path) == documents(tmp_path)


def test_the_same_id_from_two_folders_is_read_once_and_the_second_reported(
        tmp_path: Path) -> None:
    first = write(tmp_path / "one/README.md", "first\n")
    second = write(tmp_path / "two/README.md", "second\n")
    items = read(first.parent, second.parent)
    assert [d.text for d in items if isinstance(d, Document)] == ["first\n"]
    assert [s for s in items if isinstance(s, Skipped)] == [
        Skipped(str(second.resolve()), "duplicate id 'README.md'")]


def test_the_glob_selects_files_by_relative_path_or_name(tmp_path: Path) -> None:
    for name in ["a.md", "a.py", "docs/b.md", "docs/c.txt", "src/d.py"]:
        write(tmp_path / name, "x\n")
    assert ids(tmp_path, glob="*.md") == ["a.md", "docs/b.md"]
    assert ids(tmp_path, glob="**/*.py") == ["a.py", "src/d.py"]
    assert ids(tmp_path, glob="docs/*") == ["docs/b.md", "docs/c.txt"]


def test_the_glob_does_not_apply_to_a_file_named_directly(tmp_path: Path) -> None:
    assert ids(write(tmp_path / "a.py", "x\n"), glob="*.md") == ["a.py"]


def test_a_glob_asking_for_an_unsupported_format_reports_it(tmp_path: Path) -> None:
    write(tmp_path / "server.log2", "log line\n")
    assert skipped(tmp_path, glob="*.log2") == {"server.log2": "not a supported format"}


def test_a_path_that_does_not_exist_is_skipped(tmp_path: Path) -> None:
    assert read(tmp_path / "missing") == [Skipped(str(tmp_path / "missing"), "does not exist")]


def test_read_sources_reads_each_file_only_when_its_document_is_asked_for(
        tmp_path: Path) -> None:
    write(tmp_path / "a.md", "first\n")
    second = write(tmp_path / "b.md", "second\n")
    items = read_sources([tmp_path])
    assert next(items).text == "first\n"  # type: ignore[union-attr]
    second.write_text("changed after the first was read\n")
    assert next(items).text == "changed after the first was read\n"  # type: ignore[union-attr]


# -- symlinks ------------------------------------------------------------------------------------


def test_a_symlink_leaving_the_folder_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "outside/secret.md", "not yours\n")
    write(tmp_path / "outside/dir/x.md", "not yours\n")
    root = tmp_path / "root"
    write(root / "mine.md", "mine\n")
    (root / "secret.md").symlink_to(tmp_path / "outside/secret.md")
    (root / "elsewhere").symlink_to(tmp_path / "outside/dir")
    assert ids(root) == ["mine.md"]
    assert skipped(root) == {"secret.md": "symlink leaving the folder",
                             "elsewhere": "symlink leaving the folder"}


def test_a_symlink_to_an_unsupported_file_outside_is_not_reported(tmp_path: Path) -> None:
    write(tmp_path / "outside/tool.bin", b"\0\0")
    root = tmp_path / "root"
    write(root / "mine.md", "mine\n")
    (root / "tool").symlink_to(tmp_path / "outside/tool.bin")
    assert read(root) == documents(root)


def test_a_symlink_inside_the_folder_is_read_once_under_the_real_path(tmp_path: Path) -> None:
    write(tmp_path / "notes/a.md", "a\n")
    (tmp_path / "alias.md").symlink_to(tmp_path / "notes/a.md")
    (tmp_path / "also").symlink_to(tmp_path / "notes")
    assert read(tmp_path) == documents(tmp_path)
    assert ids(tmp_path) == ["notes/a.md"]


def test_a_symlinked_folder_inside_is_followed_to_what_the_walk_would_not_see(
        tmp_path: Path) -> None:
    write(tmp_path / ".internal/docs/guide.md", "guide\n")
    (tmp_path / "docs").symlink_to(tmp_path / ".internal/docs")
    [document] = documents(tmp_path)
    assert document.id == "docs/guide.md"
    assert document.source == str((tmp_path / ".internal/docs/guide.md").resolve())


def test_a_symlink_loop_is_not_followed_forever(tmp_path: Path) -> None:
    write(tmp_path / "a/b.md", "b\n")
    (tmp_path / "a/loop").symlink_to(tmp_path / "a")
    (tmp_path / "a/up").symlink_to(tmp_path)
    assert ids(tmp_path) == ["a/b.md"]


def test_a_broken_symlink_is_reported(tmp_path: Path) -> None:
    (tmp_path / "gone.md").symlink_to(tmp_path / "nowhere.md")
    assert skipped(tmp_path) == {"gone.md": "broken symlink"}


def test_a_folder_given_through_a_symlink_is_read_at_its_real_path(tmp_path: Path) -> None:
    write(tmp_path / "real/a.md", "a\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    [document] = documents(tmp_path / "link")
    assert document.source == str((tmp_path / "real/a.md").resolve())


# -- file contents -------------------------------------------------------------------------------


def test_a_binary_file_with_a_text_extension_is_skipped_as_binary(tmp_path: Path) -> None:
    write(tmp_path / "data.txt", b"header\x00\x01\x02 binary")
    assert skipped(tmp_path) == {"data.txt": "binary"}


def test_a_nul_byte_after_the_first_8_kb_is_not_taken_for_binary(tmp_path: Path) -> None:
    write(tmp_path / "long.txt", b"a" * 9000 + b"\x00tail")
    assert ids(tmp_path) == ["long.txt"]


def test_a_file_that_is_not_utf8_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "latin1.txt", "café".encode("latin-1"))
    write(tmp_path / "utf16.txt", "hello".encode("utf-16"))
    assert skipped(tmp_path) == {"latin1.txt": "not valid UTF-8",
                                 "utf16.txt": "not valid UTF-8"}


def test_a_utf8_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    write(tmp_path / "bom.md", b"\xef\xbb\xbf# Title\n")
    assert documents(tmp_path)[0].text == "# Title\n"


def test_crlf_and_cr_newlines_become_lf(tmp_path: Path) -> None:
    write(tmp_path / "windows.txt", b"one\r\ntwo\r\n\r\nthree\rfour")
    assert documents(tmp_path)[0].text == "one\ntwo\n\nthree\nfour"


@pytest.mark.parametrize("content", [b"", b"   \n\t\n\r\n"])
def test_an_empty_or_whitespace_only_file_is_skipped_as_empty(tmp_path: Path,
                                                              content: bytes) -> None:
    write(tmp_path / "blank.md", content)
    assert skipped(tmp_path) == {"blank.md": "empty"}


def test_a_file_over_the_size_limit_is_skipped_with_its_size_and_the_limit(
        tmp_path: Path) -> None:
    write(tmp_path / "huge.txt", "x" * 32_716_000)
    write(tmp_path / "small.txt", "x" * 2_000)
    assert skipped(tmp_path) == {"huge.txt": "too large (31.2 MB; limit 20 MB)"}
    assert skipped(tmp_path, max_file_bytes=1024) == {
        "huge.txt": "too large (31.2 MB; limit 1 KB)",
        "small.txt": "too large (2 KB; limit 1 KB)"}


def test_an_unreadable_file_is_skipped_with_the_systems_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = write(tmp_path / "locked.md", "private\n")
    write(tmp_path / "open.md", "public\n")

    def guarded_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(file) == str(locked.resolve()):  # tests may run as root, which chmod won't stop
            raise PermissionError(13, "Permission denied", str(file))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(sources, "open", guarded_open, raising=False)
    assert ids(tmp_path) == ["open.md"]
    assert skipped(tmp_path) == {"locked.md": "unreadable (Permission denied)"}


def test_an_unreadable_folder_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "closed/a.md", "a\n")
    write(tmp_path / "open.md", "b\n")
    closed = str((tmp_path / "closed").resolve())
    real = os.scandir

    def guarded_scandir(path):  # type: ignore[no-untyped-def]
        if os.fspath(path) == closed:  # tests may run as root, which chmod won't stop
            raise PermissionError(13, "Permission denied", closed)
        return real(path)

    monkeypatch.setattr(os, "scandir", guarded_scandir)
    assert skipped(tmp_path) == {"closed": "unreadable (Permission denied)"}
    assert ids(tmp_path) == ["open.md"]


# -- HTML ----------------------------------------------------------------------------------------


PAGE = """<!doctype html>
<html><head><title>  The   Page &amp; More </title>
<style>body { color: red; }</style>
<script>var hidden = "<p>not text</p>";</script></head>
<body><h1>Heading</h1><p>First   paragraph,
with <b>bold</b> &lt;tags&gt; &eacute;t&#233; &#x2014; done.</p>
<div>A div</div><div>Another<br>line</div>
<ul><li>one</li><li>two</li></ul>
<pre>  keep
    this</pre>
<noscript>enable JS</noscript><p>Last</p></body></html>
"""


def test_html_text_drops_scripts_and_styles_and_breaks_at_blocks(tmp_path: Path) -> None:
    [document] = documents(write(tmp_path / "page.html", PAGE))
    assert document.text == ("Heading\n\nFirst paragraph, with bold <tags> été — done.\n\n"
                             "A div\nAnother\nline\n\none\ntwo\n\n  keep\n    this\n\nLast")


def test_an_html_pages_title_is_its_documents_title(tmp_path: Path) -> None:
    [document] = documents(write(tmp_path / "page.html", PAGE))
    assert document.title == "The Page & More"
    assert document.metadata == {"path": "page.html", "type": "html"}


def test_an_html_page_without_a_title_has_its_file_name_as_title(tmp_path: Path) -> None:
    [document] = documents(write(tmp_path / "bare.htm", "<p>Just text</p>"))
    assert (document.title, document.text) == ("bare.htm", "Just text")


def test_an_html_page_with_only_scripts_is_empty(tmp_path: Path) -> None:
    write(tmp_path / "app.html", "<html><script>render()</script></html>")
    assert skipped(tmp_path) == {"app.html": "empty"}


# -- PDF -----------------------------------------------------------------------------------------


def test_a_pdf_is_its_pages_text_joined_by_blank_lines(tmp_path: Path) -> None:
    write(tmp_path / "paper.pdf", pdf(["Graphene is carbon.\nIt conducts.", "Page two."]))
    [document] = documents(tmp_path)
    assert document.text == "Graphene is carbon.\nIt conducts.\n\nPage two."
    assert (document.id, document.title, document.line_based) == (
        "paper.pdf", "paper.pdf", False)
    assert document.metadata == {"path": "paper.pdf", "type": "pdf"}


def test_without_the_pdf_extra_a_pdf_is_skipped_naming_it(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)  # import pypdf: ImportError, as if absent
    write(tmp_path / "paper.pdf", pdf(["Graphene is carbon."]))
    assert "localembed[pdf]" in skipped(tmp_path)["paper.pdf"]


def test_a_pdf_written_by_pypdf_is_read(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    source = write(tmp_path / "source.pdf", pdf(["Written again by pypdf."]))
    writer = PdfWriter()
    writer.add_page(PdfReader(source).pages[0])
    writer.add_metadata({"/Title": "Ignored: the file's name is the title"})
    with open(tmp_path / "again.pdf", "wb") as file:
        writer.write(file)
    [document] = documents(tmp_path / "again.pdf")
    assert (document.text, document.title) == ("Written again by pypdf.", "again.pdf")


def test_a_pdf_without_text_is_skipped(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    with open(tmp_path / "scan.pdf", "wb") as file:
        writer.write(file)
    assert skipped(tmp_path) == {"scan.pdf": "no text in the PDF (scanned pages?)"}


def test_a_damaged_pdf_is_skipped_and_the_run_goes_on(tmp_path: Path) -> None:
    write(tmp_path / "broken.pdf", b"%PDF-1.4\nthis is not a PDF at all")
    write(tmp_path / "fine.md", "fine\n")
    assert ids(tmp_path) == ["fine.md"]
    assert skipped(tmp_path)["broken.pdf"].startswith("unreadable PDF (")


def test_a_pdf_locked_by_a_password_is_skipped(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.add_page(PdfReader(write(tmp_path / "open.pdf", pdf(["secret"]))).pages[0])
    writer.encrypt("password", algorithm="RC4-128")
    (tmp_path / "open.pdf").unlink()
    with open(tmp_path / "locked.pdf", "wb") as file:
        writer.write(file)
    assert skipped(tmp_path) == {"locked.pdf": "encrypted PDF"}


# -- records -------------------------------------------------------------------------------------


def test_json_lines_records_are_documents_with_their_ids_and_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.jsonl", jsonl(
        {"id": "n1", "text": "First note.", "title": "One", "tags": ["a"]},
        {"id": 2, "text": "Second\r\nnote.", "author": "me"}))
    assert documents(path) == [
        Document("n1", "First note.", str(path.resolve()), "One",
                 {"title": "One", "tags": ["a"]}, line_based=False),
        Document("2", "Second\nnote.", str(path.resolve()), None, {"author": "me"},
                 line_based=False)]


def test_records_without_an_id_field_are_named_by_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "sub/log.ndjson", "\n" + jsonl({"text": "a"}, {"text": "b"}))
    assert ids(tmp_path) == ["sub/log.ndjson:2", "sub/log.ndjson:3"]


def test_the_text_and_id_fields_can_be_named(tmp_path: Path) -> None:
    path = write(tmp_path / "faq.jsonl", jsonl({"uid": "q1", "body": "Why?", "id": "other"}))
    [document] = documents(path, text_field="body", id_field="uid")
    assert (document.id, document.text, document.metadata) == ("q1", "Why?", {"id": "other"})


def test_a_bad_json_line_is_skipped_and_the_rest_are_read(tmp_path: Path) -> None:
    path = write(tmp_path / "mixed.jsonl",
                 jsonl({"text": "ok"}) + "{broken\n" + "[1, 2]\n" + jsonl({"text": "also ok"}))
    assert [d.text for d in documents(path)] == ["ok", "also ok"]
    assert [s.reason for s in read(path) if isinstance(s, Skipped)] == [
        "line 2: not a JSON object", "line 3: not a JSON object"]


def test_a_json_lines_file_without_the_text_field_is_skipped_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path / "events.jsonl", jsonl({"event": "click"}, {"event": "view"}))
    assert read(path) == [Skipped(str(path.resolve()), "no 'text' field")]
    assert read(path, text_field="body") == [Skipped(str(path.resolve()), "no 'body' field")]


def test_a_record_missing_the_text_field_later_in_the_file_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", jsonl({"text": "a"}, {"other": 1}, {"text": "c"}))
    assert [d.text for d in documents(path)] == ["a", "c"]
    assert [s.reason for s in read(path) if isinstance(s, Skipped)] == [
        "line 2: no 'text' field"]


@pytest.mark.parametrize("value,kind", [(3, "a number"), (None, "null"), (["a"], "a list"),
                                        ({"a": 1}, "an object"), (True, "a boolean")])
def test_a_text_that_is_not_a_string_is_skipped(tmp_path: Path, value: object,
                                                kind: str) -> None:
    path = write(tmp_path / "r.jsonl", jsonl({"text": "fine"}, {"text": value}))
    assert [s.reason for s in read(path) if isinstance(s, Skipped)] == [
        f"line 2: 'text' is {kind}, not text"]


@pytest.mark.parametrize("value", [1.5, None, True, ["x"]])
def test_an_id_that_is_not_a_string_or_whole_number_is_skipped(tmp_path: Path,
                                                               value: object) -> None:
    path = write(tmp_path / "r.jsonl", jsonl({"id": value, "text": "x"}))
    [item] = read(path)
    assert isinstance(item, Skipped)
    assert item.reason.startswith("line 1: 'id' is ") and "not a string or a whole number" in (
        item.reason)


def test_an_empty_record_text_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", jsonl({"text": "  \n "}))
    assert [s.reason for s in read(path) if isinstance(s, Skipped)] == ["line 1: empty"]


def test_a_duplicate_record_id_is_skipped_within_a_file_and_across_files(
        tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", jsonl({"id": "x", "text": "first"}, {"id": "x", "text": "again"}))
    write(tmp_path / "b.csv", "id,text\nx,third\ny,fourth\n")
    assert [(d.id, d.text) for d in documents(tmp_path)] == [("x", "first"), ("y", "fourth")]
    assert skipped(tmp_path) == {"a.jsonl": "line 2: duplicate id 'x'",
                                 "b.csv": "row 1: duplicate id 'x'"}


def test_csv_rows_are_records_with_the_other_columns_as_metadata(tmp_path: Path) -> None:
    path = write(tmp_path / "faq.csv",
                 'id,title,text,lang\nq1,Hours,"Open 9-5,\nweekdays.",en\nq2,,Closed,fr\n')
    assert documents(path) == [
        Document("q1", "Open 9-5,\nweekdays.", str(path.resolve()), "Hours",
                 {"title": "Hours", "lang": "en"}, line_based=False),
        Document("q2", "Closed", str(path.resolve()), None, {"title": "", "lang": "fr"},
                 line_based=False)]


def test_tab_separated_rows_are_records(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", "text\tkind\nhello, world\tgreeting\n")
    [document] = documents(path)
    assert (document.id, document.text, document.metadata) == (
        "t.tsv:1", "hello, world", {"kind": "greeting"})


def test_a_csv_without_the_text_column_is_skipped_naming_it(tmp_path: Path) -> None:
    write(tmp_path / "prices.csv", "item,price\napple,1\n")
    assert skipped(tmp_path) == {"prices.csv": "no 'text' field"}
    assert skipped(tmp_path, text_field="body") == {"prices.csv": "no 'body' field"}


def test_a_csv_cell_longer_than_pythons_default_field_limit_is_read(tmp_path: Path) -> None:
    long = "word " * 60_000  # 300 KB, over csv's 128 KiB default
    write(tmp_path / "long.csv", f'id,text\nbig,"{long}"\n')
    [document] = documents(tmp_path)
    assert document.text == long


def test_a_record_file_that_is_binary_or_not_utf8_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", b'{"text": "x"}\n\x00\x00')
    write(tmp_path / "b.csv", "text\ncaf\xe9\n".encode("latin-1"))
    assert skipped(tmp_path) == {"a.jsonl": "binary", "b.csv": "not valid UTF-8"}


def test_an_empty_record_file_is_skipped_as_empty(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", "\n\n")
    write(tmp_path / "b.csv", "")
    write(tmp_path / "c.csv", "id,text\n")
    assert skipped(tmp_path) == {"a.jsonl": "empty", "b.csv": "empty", "c.csv": "empty"}


def test_record_files_are_read_in_folders_as_well(tmp_path: Path) -> None:
    write(tmp_path / "data/items.jsonl", jsonl({"id": "i1", "text": "item one"}))
    write(tmp_path / "readme.md", "read me\n")
    assert ids(tmp_path) == ["i1", "readme.md"]


# -- content hash --------------------------------------------------------------------------------


def doc(**changes: object) -> Document:
    fields: dict[str, object] = {"id": "a.md", "text": "Hello.\n", "source": "/x/a.md",
                                 "title": "a.md", "metadata": {"path": "a.md", "type": "markdown"},
                                 "line_based": True}
    fields.update(changes)
    return Document(**fields)  # type: ignore[arg-type]


def test_the_content_hash_is_stable_across_runs() -> None:
    # Pinned: stored hashes decide what is embedded again, so this value may never drift.
    assert content_hash(doc()) == (
        "83a5aaa00abdc0625d76773c6963db5a8b61eb3600868d80989e0e11f38f70a9")


def test_the_content_hash_ignores_metadata_order_id_and_source() -> None:
    reordered = doc(metadata={"type": "markdown", "path": "a.md"})
    assert content_hash(reordered) == content_hash(doc())
    assert content_hash(doc(id="b", source="/elsewhere")) == content_hash(doc())


@pytest.mark.parametrize("change", [{"text": "Hello!\n"}, {"title": None}, {"title": "b.md"},
                                    {"metadata": {"path": "a.md", "type": "text"}},
                                    {"metadata": {"path": "a.md", "type": "markdown", "x": 1}}])
def test_the_content_hash_changes_with_text_title_or_metadata(change: dict[str, object]) -> None:
    assert content_hash(doc(**change)) != content_hash(doc())


def test_the_content_hash_takes_text_that_is_not_valid_utf8() -> None:
    # JSON strings may hold lone surrogates; a record's text can be one.
    assert len(content_hash(doc(text="half a pair: \ud800"))) == 64
