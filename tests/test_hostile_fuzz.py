"""Fuzzing that keeps hostile input closed as a class: every route with a JSON body gets
bodies generated from /openapi.json with one hostile value planted somewhere (a lone surrogate,
NaN, Infinity, an integer past 64 bits, a control character, a wrong-typed filter value). No
answer may be a 5xx, and an answer of 4xx must leave every table as it was."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay.config import Settings
from assay.main import create_app
from tests.conftest import ADMIN_KEY, SEED_SCHEMA, LiveServer

HOSTILE_VALUES: list[Any] = [
    "\ud800",
    "tail \udfff",
    "\udc00\ud800",
    float("nan"),
    float("inf"),
    float("-inf"),
    2**63,
    -(2**63) - 1,
    2**64 + 1,
    10**30,
    "nul \x00 inside",
    "line\r\nX-Injected: 1",
    "\x1b[31m\x07\x7f",
    "\u202e\ufeff\u200b",
    "",
    {"nested": [{"deeper": "\ud800"}]},
    [[[[["\x00"]]]]],
]
# Filter conditions whose values do not fit what they compare with.
HOSTILE_CONDITIONS: list[Any] = [
    {"field": "created_at", "operator": "gt", "value": "yesterday"},
    {"field": "created_at", "operator": "lte", "value": 12},
    {"field": "updated_at", "operator": "in", "value": [{"a": 1}]},
    {"field": "metadata.x", "operator": "in", "value": [{"a": 1}, [2]]},
    {"field": "metadata.x", "operator": "eq", "value": {"a": 1}},
    {"field": "metadata.x", "operator": "gt", "value": 2**63},
    {"field": "metadata.x", "operator": "nin", "value": []},
    {"field": "metadata.a.b.c", "operator": "starts_with", "value": 5},
    {"field": 'metadata.a"b', "operator": "eq", "value": "x"},
    {"field": "metadata.[0]", "operator": "eq", "value": 1},
    {"field": "metadata..", "operator": "exists", "value": "maybe"},
    {"field": "object_id", "operator": "eq", "value": 7},
    {"field": "status", "operator": "in", "value": [True, "x"]},
]
# Tables whose rows a refused request must not change.
TABLES = (
    "namespaces",
    "buckets",
    "objects",
    "blobs",
    "batches",
    "documents",
    "uploads",
    "collections",
    "retrievers",
    "webhooks",
    "syncs",
    "api_keys",
    "batch_items",
    "blob_bytes",
    "events",
    "tasks",
    "jobs",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A live server with no background workers (so rows change only by requests) and one of
    each thing the routes name."""
    data_dir: Path = tmp_path_factory.mktemp("hostile-fuzz")
    # Private URLs allowed: the webhook points at a closed loopback port, not at a DNS name.
    settings_ = Settings(data_dir=data_dir, admin_key=ADMIN_KEY, workers=0, allow_private_urls=True)
    with LiveServer(settings_) as live:
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        ns = {"X-Namespace": "fuzz"}
        with httpx.Client(base_url=live.url, headers={**auth, **ns}) as c:
            extractors = [{"feature_extractor_name": "text_extractor", "version": "v1"}]
            c.post(
                "/v1/namespaces", json={"namespace_name": "fuzz", "feature_extractors": extractors}
            ).raise_for_status()
            c.post(
                "/v1/buckets", json={"bucket_name": "b", "bucket_schema": SEED_SCHEMA}
            ).raise_for_status()
            blob = {"property": "product_text", "type": "text", "content": "hello"}
            obj = c.post("/v1/buckets/b/objects", json={"blobs": [blob]}).json()
            batch = c.post("/v1/buckets/b/batches", json={"object_ids": [obj["object_id"]]}).json()
            upload = c.post(
                "/v1/buckets/b/uploads", json={"filename": "a.txt", "content_type": "text/plain"}
            ).json()
            params = {"query": "{{INPUT.query}}"}
            stage = {"stage_name": "w", "config": {"stage_id": "text_search", "parameters": params}}
            c.post(
                "/v1/retrievers",
                json={
                    "retriever_name": "r",
                    "collection_identifiers": ["text_extractor"],
                    "stages": [stage],
                },
            ).raise_for_status()
            hook = c.post(
                "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}
            ).json()
        yield {
            "url": live.url,
            "headers": {**auth, **ns},
            "db": data_dir / "assay.db",
            "paths": {
                "bucket_identifier": "b",
                "namespace_identifier": "fuzz",
                "object_id": obj["object_id"],
                "batch_id": batch["batch_id"],
                "upload_id": upload["upload_id"],
                "retriever_identifier": "r",
                "collection_identifier": "text_extractor",
                "webhook_id": hook["webhook_id"],
            },
        }


def row_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


schema = schemathesis.openapi.from_dict(
    create_app(Settings(data_dir=Path("/nonexistent"))).openapi()
)
BODY_ROUTES = [
    (path, method.upper())
    for path, operations in schema.raw_schema["paths"].items()
    for method, operation in operations.items()
    if "requestBody" in operation
]


def _slots(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place a value sits in a JSON document (the root included)."""
    slots = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            slots += _slots(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            slots += _slots(v, (*path, i))
    return slots


def _planted(body: Any, slot: tuple[Any, ...], value: Any, as_key: bool) -> Any:
    """`body` with `value` at `slot` (or, for a dict there, added under a hostile key)."""
    if not slot:
        if as_key and isinstance(body, dict):
            return {**body, "\ud800key": value}
        return value
    head, rest = slot[0], slot[1:]
    copy: Any = dict(body) if isinstance(body, dict) else list(body)
    copy[head] = _planted(body[head], rest, value, as_key)
    return copy


def _send(srv: dict[str, Any], method: str, path: str, body: Any) -> httpx.Response:
    url = srv["url"] + re.sub(r"{(\w+)}", lambda m: srv["paths"].get(m[1], "nope"), path)
    raw = json.dumps(body, allow_nan=True)  # writes NaN, Infinity and \udXXX escapes
    headers = {**srv["headers"], "Content-Type": "application/json"}
    return httpx.request(method, url, content=raw.encode(), headers=headers, timeout=30)


def _check(srv: dict[str, Any], method: str, path: str, body: Any) -> None:
    before = row_counts(srv["db"])
    r = _send(srv, method, path, body)
    assert r.status_code < 500, (method, path, body, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    error = r.json().get("error") if r.status_code >= 400 else None
    if r.status_code >= 400:
        assert error and error["type"] and error["message"], r.text
        assert row_counts(srv["db"]) == before, (method, path, body, r.text)


@pytest.mark.parametrize(("path", "method"), BODY_ROUTES)
def test_a_hostile_value_anywhere_in_any_body_is_refused_cleanly(
    server: dict[str, Any], path: str, method: str
) -> None:
    operation = schema[path][method]

    @given(case=operation.as_strategy(), data=st.data())
    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case: Any, data: st.DataObject) -> None:
        body = case.body if isinstance(case.body, dict | list) else {}
        slot = data.draw(st.sampled_from(_slots(body)), label="slot")
        value = data.draw(st.sampled_from(HOSTILE_VALUES), label="value")
        as_key = data.draw(st.booleans(), label="as_key")
        _check(server, method, path, _planted(body, slot, value, as_key))

    run()


@pytest.mark.parametrize("condition", HOSTILE_CONDITIONS)
def test_filter_values_that_do_not_fit_their_field_are_4xx(
    server: dict[str, Any], condition: dict[str, Any]
) -> None:
    for group in ({"AND": [condition]}, {"OR": [{"AND": [condition]}]}):
        _check(server, "POST", "/v1/buckets/{bucket_identifier}/objects/list", {"filters": group})
        execute = {"inputs": {"query": "hello", "filters": group}}
        _check(server, "POST", "/v1/retrievers/{retriever_identifier}/execute", execute)
