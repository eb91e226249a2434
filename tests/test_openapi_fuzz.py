"""Schemathesis against /openapi.json over real HTTP: no 5xx, every answer matches the schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from assay.config import Settings
from assay.main import create_app
from tests.conftest import ADMIN_KEY, SEED_SCHEMA, LiveServer

DOCUMENTED = {"x-namespace", "range"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A live server with one namespace, bucket and object, so generated calls reach real rows."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    with LiveServer(Settings(data_dir=data_dir, admin_key=ADMIN_KEY)) as server:
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=server.url, headers=auth) as c:
            c.post(
                "/v1/namespaces", json={"namespace_name": "fuzz", "feature_extractors": []}
            ).raise_for_status()
            ns = {"X-Namespace": "fuzz"}
            c.post(
                "/v1/buckets", headers=ns, json={"bucket_name": "b", "bucket_schema": SEED_SCHEMA}
            ).raise_for_status()
            body = {"blobs": [{"property": "product_text", "type": "text", "content": "hello"}]}
            c.post("/v1/buckets/b/objects", headers=ns, json=body).raise_for_status()
        yield {"url": server.url, "headers": {**auth, **ns}}


# The same document the server serves at /openapi.json (checked to be equal below).
schema = schemathesis.openapi.from_dict(
    create_app(Settings(data_dir=Path("/nonexistent"))).openapi()
)


def test_served_schema_is_the_fuzzed_one(fuzz_server: dict[str, Any]) -> None:
    served = httpx.get(f"{fuzz_server['url']}/openapi.json").json()
    assert served["paths"].keys() == schema.raw_schema["paths"].keys()


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: Any, fuzz_server: dict[str, Any]) -> None:
    """Generated requests (valid and invalid) never get a 5xx or an answer off the schema."""
    case.call_and_validate(
        base_url=fuzz_server["url"], headers=fuzz_server["headers"], checks=CHECKS
    )
