"""The CLI verbs through click's runner and, once, as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from localembed.cli import cli
from localembed.engine import Engine


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_embed_prints_json_lines_matching_the_engine(synthetic) -> None:
    model = str(synthetic("gemma-embedding"))
    result = run("embed", "-m", model, "--task", "query", "-d", "32", "hello world", "the sea")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["index"] for r in rows] == [0, 1]
    with Engine(model) as engine:
        expected = engine.embed(["hello world", "the sea"], task="query", dimensions=32)
    for row, vector, tokens in zip(rows, expected.vectors, expected.tokens, strict=True):
        assert row["tokens"] == tokens
        assert np.allclose(row["embedding"], vector, atol=1e-6)


def test_embed_reads_a_file_and_stdin(synthetic, tmp_path: Path) -> None:
    model = str(synthetic("bert"))
    texts = tmp_path / "texts.txt"
    texts.write_text("first line\nsecond line\n", encoding="utf-8")
    from_file = run("embed", "-m", model, "-f", str(texts))
    from_stdin = run("embed", "-m", model, input="first line\nsecond line\n")
    assert from_file.exit_code == 0 and from_stdin.exit_code == 0
    assert len(from_file.output.splitlines()) == 2
    assert from_file.output == from_stdin.output


def test_embed_keeps_a_blank_line_as_an_empty_text_so_indexes_follow_line_numbers(
        synthetic, tmp_path: Path) -> None:
    model = str(synthetic("bert"))
    texts = tmp_path / "texts.txt"
    texts.write_text("first line\n\nthird line\n", encoding="utf-8")
    from_file = run("embed", "-m", model, "-f", str(texts))
    rows = [json.loads(line) for line in from_file.output.splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2]  # the final newline adds no input
    with Engine(model) as engine:
        expected = engine.embed(["first line", "", "third line"])
    assert [r["tokens"] for r in rows] == list(expected.tokens)
    assert np.allclose([r["embedding"] for r in rows], expected.vectors, atol=1e-6)
    from_stdin = run("embed", "-m", model, input=texts.read_text(encoding="utf-8"))
    assert from_stdin.output == from_file.output


def test_max_tokens_help_names_the_limit_that_applies_by_default() -> None:
    for command in ("embed", "similarity", "rerank"):
        text = " ".join(run(command, "--help").output.split())
        assert "default: the model's own limit" in text
        assert "max_seq_length where the GGUF records it" in text and "at most 8192" in text
        assert "model context" not in text


def test_the_starter_is_listed_in_the_catalog_as_built_in() -> None:
    rows = json.loads(run("ls", "--catalog", "--json").output)
    starter = next(r for r in rows if r["id"] == "all-minilm-l6-v2")
    assert starter["builtin"] and starter["installed"] and starter["kind"] == "embedding"
    table = run("ls", "--catalog").output.splitlines()
    line = next(row for row in table if row.startswith("all-minilm-l6-v2 "))
    assert line.rstrip().endswith("built in") and " 384 " in line


def test_the_cli_and_web_catalogs_are_the_same_list(client) -> None:
    cli_rows = json.loads(run("ls", "--catalog", "--json").output)
    web_rows = client.get("/v1/catalog").get_json()["data"]
    assert cli_rows == web_rows


def test_pulling_the_starter_says_it_is_built_in_and_downloads_nothing(app_home: Path) -> None:
    result = run("pull", "all-minilm-l6-v2")
    assert result.exit_code == 0, result.output
    assert "all-minilm-l6-v2 is built in" in result.output
    assert "nothing to download" in result.output
    models = app_home / "models"
    assert not models.exists() or list(models.iterdir()) == []


def test_pulling_the_starter_over_http_is_done_at_once(client) -> None:
    import time

    started = client.post("/v1/pull", json={"model": "all-minilm-l6-v2"})
    assert started.status_code in (200, 202)
    for _ in range(100):
        progress = client.get("/v1/pull/all-minilm-l6-v2").get_json()
        if progress["status"] != "queued":
            break
        time.sleep(0.05)
    assert progress["status"] == "done" and "built in" in progress["notice"]


def test_similarity_ranks_and_prints_a_matrix(starter_gguf) -> None:
    model = str(starter_gguf("f16"))
    ranked = run("similarity", "-m", model, "--json", "how do I cook pasta",
                 "The stock market fell", "Boil the spaghetti in salted water")
    assert ranked.exit_code == 0, ranked.output
    data = json.loads(ranked.output)
    assert data[0]["text"] == "Boil the spaghetti in salted water"
    assert data[0]["score"] > data[1]["score"]

    matrix = run("similarity", "-m", model, "--matrix", "--json", "a cat", "a dog", "stocks")
    m = np.array(json.loads(matrix.output)["matrix"])
    assert m.shape == (3, 3)
    assert np.allclose(np.diag(m), 1.0, atol=1e-5) and np.allclose(m, m.T, atol=1e-6)
    table = run("similarity", "-m", model, "--matrix", "a cat", "a dog")
    assert table.exit_code == 0 and "1.000" in table.output


def test_errors_are_messages_not_tracebacks(synthetic) -> None:
    model = str(synthetic("bert"))
    bad_dims = run("embed", "-m", model, "-d", "12", "hello")
    assert bad_dims.exit_code == 1
    assert "Error: " in bad_dims.output and "Traceback" not in bad_dims.output
    missing = run("embed", "-m", "no-such-model", "hello")
    assert missing.exit_code == 1 and "not installed" in missing.output
    escape = run("embed", "-m", "../../etc/passwd", "hello")
    assert escape.exit_code == 1 and "Traceback" not in escape.output
    too_long = run("embed", "-m", model, "--truncate", "none", "word " * 600)
    assert too_long.exit_code == 1 and "at most 512" in too_long.output


def test_info_reports_backend_and_model(synthetic) -> None:
    result = run("info", "-m", str(synthetic("qwen3")), "--json")
    data = json.loads(result.output)
    assert data["model"]["family"] == "qwen3" and data["model"]["backend"] == "cpu"
    assert data["model"]["dimensions"] == 64 and data["model"]["rss_bytes"] > 0


def test_convert_command(starter_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.gguf"
    result = subprocess.run([sys.executable, "-m", "localembed", "convert", str(starter_folder),
                             str(out), "--dtype", "q8_0"], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    with Engine(out) as engine:
        assert engine.info.file_type == "Q8_0" and engine.dimensions == 384
