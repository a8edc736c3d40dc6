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

from localembed.settings import ServerConfig
from tests.conftest import running

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def live(synthetic):
    with running(ServerConfig(), synthetic("gemma-embedding")) as (url, _):
        yield url


def test_api_conforms_to_its_openapi_document(live: str) -> None:
    schema = schemathesis.openapi.from_url(live + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"POST /v1/embeddings", "POST /api/embed", "GET /v1/models", "POST /tokenize",
            "POST /v1/similarity", "GET /metrics"} <= labels
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call_and_validate(base_url=live, checks=CHECKS)
            calls.append(response.status_code)

        try:
            check()
        except Exception as exc:
            raise AssertionError(f"{operation.label}: {exc}") from exc
    assert len(calls) >= 10 * len(operations)
    assert any(code == 200 for code in calls) and any(400 <= code < 500 for code in calls)
    print(f"schemathesis: {len(calls)} requests over {len(operations)} operations")
