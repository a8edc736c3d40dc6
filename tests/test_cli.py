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
    texts.write_text("first line\n\nsecond line\n", encoding="utf-8")
    from_file = run("embed", "-m", model, "-f", str(texts))
    from_stdin = run("embed", "-m", model, input="first line\nsecond line\n")
    assert from_file.exit_code == 0 and from_stdin.exit_code == 0
    assert len(from_file.output.splitlines()) == 2
    assert from_file.output == from_stdin.output


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
