"""Schemathesis against /openapi.json on a live server: no 5xx, no response off the spec.

Driven through schemathesis' Python API and hypothesis directly rather than its pytest plugin,
whose fixture integration breaks on newer pytest releases.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from localembed.config.settings import ServerConfig
from tests.fixtures.server import running

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def live(synthetic):
    with running(ServerConfig(), synthetic("gemma-embedding")) as (url, _):
        yield url


def fuzz(url: str, operations: list) -> list[int]:  # type: ignore[type-arg]
    """Generated requests for each operation against the server at ``url``, each response
    checked against the document; their status codes."""
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call_and_validate(base_url=url, checks=CHECKS)
            calls.append(response.status_code)

        try:
            check()
        except Exception as exc:
            raise AssertionError(f"{operation.label}: {exc}") from exc
    return calls


# Indexing reads the paths it is given on this machine: a generated one may be "/", so it is
# left to the collections' own tests.
NOT_FUZZED = {"POST /v1/collections/{name}/index"}


def test_api_conforms_to_its_openapi_document(live: str) -> None:
    schema = schemathesis.openapi.from_url(live + "/openapi.json")
    operations = [op for op in (result.ok() for result in schema.get_all_operations())
                  if op.label not in NOT_FUZZED]
    labels = {op.label for op in operations}
    assert {"POST /v1/embeddings", "POST /api/embed", "GET /v1/models", "POST /tokenize",
            "POST /v1/similarity", "GET /metrics"} <= labels
    calls = fuzz(live, operations)
    assert len(calls) >= 10 * len(operations)
    assert any(code == 200 for code in calls) and any(400 <= code < 500 for code in calls)
    print(f"schemathesis: {len(calls)} requests over {len(operations)} operations")


def test_rerank_routes_conform_to_the_openapi_document_with_a_reranker(synthetic) -> None:
    """The rerank and score operations against a reranker: 200s and 400s alike match the
    document (both of /rerank's shapes), and none is a 5xx."""
    with running(ServerConfig(), synthetic("bert", head="rerank")) as (url, _):
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        wanted = {"POST /v1/rerank", "POST /v2/rerank", "POST /rerank", "POST /score"}
        operations = [r.ok() for r in schema.get_all_operations() if r.ok().label in wanted]
        assert {op.label for op in operations} == wanted
        statuses = fuzz(url, operations)
    assert 200 in statuses and 400 in statuses
