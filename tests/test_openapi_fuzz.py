"""Schemathesis against /openapi.json on a live server: no 5xx, no response off the spec."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from localembed.settings import ServerConfig
from tests.test_server import running


@pytest.fixture(scope="module")
def api_schema(synthetic):
    with running(ServerConfig(), synthetic("gemma-embedding")) as (url, _):
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        schema.config.base_url = url  # type: ignore[attr-defined]
        yield schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance,
                                   content_type_conformance, response_schema_conformance])
