"""The service is the one execute path: every face gets the same limits, the same choice of
model and the same description of it, because each only translates into a service request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from localembed.cli import cli
from localembed.config.paths import config_path
from localembed.config.settings import ServerConfig
from localembed.engine import InputError, Kind
from localembed.models.defaults import reranker_id
from localembed.server import create_app
from localembed.service.execute import Limits, RerankRequest, ScoreRequest, Service
from localembed.service.registry import Registry
from tests.fixtures.models import install_model

QUERY = "how do tides work"
DOCS = ["The moon pulls the ocean", "A recipe for bread", "Tides rise and fall"]


@pytest.fixture
def client_for():
    """A test client of the whole app serving an installed model by default."""
    registries: list[Registry] = []

    def make(model_id: str):  # type: ignore[no-untyped-def]
        registries.append(Registry(model_id))
        return create_app(ServerConfig(), registries[-1]).test_client()

    yield make
    for registry in registries:
        registry.close()


@pytest.fixture
def installed_pair(synthetic, app_home: Path) -> tuple[Path, Path]:
    """An embedding model and a reranker installed side by side."""
    return (install_model(app_home, "embedder", synthetic("qwen3")),
            install_model(app_home, "reranker", synthetic("qwen3", head="rerank")))


def test_the_cli_rerank_is_held_to_the_same_input_limit_as_every_route(installed_pair,
                                                                       monkeypatch) -> None:
    monkeypatch.setenv("LOCALEMBED_MAX_INPUTS", "2")
    result = CliRunner().invoke(cli, ["rerank", "-m", "reranker", QUERY, *DOCS])
    assert result.exit_code != 0
    assert "at most 2" in result.output and "'documents'" in result.output


def test_the_reranker_rule_prefers_the_default_then_the_loaded_then_the_installed(
        installed_pair, synthetic, app_home: Path) -> None:
    install_model(app_home, "other-reranker", synthetic("bert", head="rerank"))
    assert reranker_id(["embedder"]) == "other-reranker"  # installed ones, by id
    assert reranker_id(["embedder", "reranker"]) == "reranker"  # a loaded one first
    assert reranker_id(["reranker", "other-reranker"]) == "reranker"  # the default first


def test_with_no_reranker_anywhere_the_rule_says_so(synthetic, app_home: Path) -> None:
    install_model(app_home, "embedder", synthetic("qwen3"))
    assert reranker_id(["embedder"]) is None


def test_rerank_and_score_without_a_model_use_the_reranker_and_keep_the_default(
        installed_pair) -> None:
    registry = Registry("embedder")
    try:
        service = Service(registry, Limits())
        ranked = service.rerank(RerankRequest(QUERY, DOCS))
        assert ranked.model == "reranker" and len(ranked.scores) == len(DOCS)
        assert registry.default_id == "embedder"
        cosine = service.score(ScoreRequest([QUERY], DOCS, [(0, i) for i in range(3)]))
        assert cosine.model == "embedder"  # /score without a model: the default's cosine
    finally:
        registry.close()


def test_score_refuses_an_option_the_models_kind_does_not_take(installed_pair) -> None:
    registry = Registry("embedder")
    try:
        service = Service(registry, Limits())
        pairs = ([QUERY], DOCS, [(0, 0)])
        with pytest.raises(InputError) as refused:
            service.score(ScoreRequest(*pairs, instruction="judge relevance"))
        assert refused.value.param == "instruction"
        with pytest.raises(InputError) as refused:
            service.score(ScoreRequest(*pairs, model="reranker", dimensions=8))
        assert refused.value.param == "dimensions"
    finally:
        registry.close()


def test_switching_the_default_persists_only_after_the_model_loads(installed_pair,
                                                                   app_home: Path) -> None:
    registry = Registry("embedder")
    try:
        with pytest.raises(LookupError):
            registry.set_default("not-installed", persist=True)
        assert registry.default_id == "embedder" and not config_path().exists()
        registry.set_default("reranker", persist=True)
        assert registry.default_id == "reranker"
        assert json.loads(config_path().read_text())["model"] == "reranker"
    finally:
        registry.close()


def test_ls_and_the_models_route_describe_a_model_with_the_same_facts(installed_pair,
                                                                      client_for) -> None:
    rows = json.loads(CliRunner().invoke(cli, ["ls", "--json"]).output)
    listed = {r["id"]: r for r in rows}
    cards = {c["id"]: c for c in client_for("embedder").get("/v1/models").get_json()["data"]}
    for model_id in ("embedder", "reranker"):
        for fact in ("kind", "family", "dimensions", "context_length", "max_seq_length",
                     "size_bytes", "matryoshka_dimensions", "min_dimensions"):
            assert listed[model_id][fact] == cards[model_id][fact], (model_id, fact)
    assert listed["reranker"]["kind"] == Kind.RERANKER and listed["reranker"]["dimensions"] is None


def test_a_matryoshka_range_is_described_by_its_bounds_not_every_size(installed_pair,
                                                                     client_for) -> None:
    card = client_for("embedder").get("/v1/models/embedder").get_json()
    assert card["matryoshka_dimensions"] is None
    assert card["min_dimensions"] == 32 and card["dimensions"] > 32


def test_a_trained_list_of_matryoshka_sizes_is_listed_as_it_is(synthetic, app_home: Path,
                                                               client_for) -> None:
    install_model(app_home, "gemma", synthetic("gemma-embedding"))
    card = client_for("gemma").get("/v1/models/gemma").get_json()
    assert card["matryoshka_dimensions"] == [96, 64, 32, 16]
    assert card["min_dimensions"] is None
