"""Operating Assay: request logs and ids, /metrics, rate limits, quotas, a full disk, and the
data dir commands agree on."""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from assay.cli import app as cli
from assay.config import Settings, default_data_dir
from assay.kit import logs
from tests.conftest import ADMIN_KEY, open_client

NS = {"X-Namespace": "ops"}
SCHEMA = {"properties": {"body": {"type": "text"}, "file": {"type": "binary"}}}


async def _setup(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/namespaces",
        json={
            "namespace_name": "ops",
            "feature_extractors": [
                {"feature_extractor_name": "passthrough_extractor", "version": "v1"}
            ],
        },
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/buckets", headers=NS, json={"bucket_name": "b", "bucket_schema": SCHEMA}
    )
    assert r.status_code == 200, r.text


def _text_object(i: int) -> dict[str, Any]:
    return {"blobs": [{"property": "body", "type": "text", "content": f"text {i}"}]}


def _request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        dict(getattr(r, "fields", {}))
        for r in caplog.records
        if r.name == "assay.http" and r.getMessage() == "request"
    ]


async def test_one_log_line_per_request_with_its_id_route_and_namespace(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="assay")
    await _setup(client)
    r = await client.get("/v1/buckets/nope", headers={**NS, "X-Request-Id": "trace-42"})
    assert r.status_code == 404
    assert r.headers["x-request-id"] == "trace-42"
    assert r.json()["request_id"] == "trace-42"  # the envelope carries it too
    assert r.json()["error"]["type"] == "NotFoundError"

    ok = await client.get("/v1/buckets/b", headers=NS)
    generated = ok.headers["x-request-id"]
    assert generated.startswith("req_") and "request_id" not in ok.json()

    bad = await client.get("/v1/buckets/b", headers={**NS, "X-Request-Id": "a b\tc"})
    assert bad.headers["x-request-id"].startswith("req_")  # not a token: replaced

    lines = _request_lines(caplog)
    mine = next(f for f in lines if f["request_id"] == "trace-42")
    assert mine == {
        "method": "GET", "route": "/v1/buckets/{bucket_identifier}", "status": 404,
        "ms": mine["ms"], "request_id": "trace-42", "namespace": "ops",
    }  # fmt: skip
    assert any(f["request_id"] == generated and f["status"] == 200 for f in lines)
    text = "\n".join(logs.TextFormatter().format(r) for r in caplog.records)
    assert ADMIN_KEY not in text and "Bearer" not in text  # never the key


async def test_batch_events_are_logged_once_committed(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="assay")
    await _setup(client)
    r = await client.post("/v1/buckets/b/objects", headers=NS, json=_text_object(0))
    r = await client.post(
        "/v1/buckets/b/batches", headers=NS, json={"object_ids": [r.json()["object_id"]]}
    )
    batch_id = r.json()["batch_id"]
    await client.post(f"/v1/buckets/b/batches/{batch_id}/submit", headers=NS)
    for _ in range(200):
        status = (await client.get(f"/v1/buckets/b/batches/{batch_id}", headers=NS)).json()
        if status["status"] == "COMPLETED":
            break
        await asyncio.sleep(0.05)
    names = [
        r.getMessage()
        for r in caplog.records
        if getattr(r, "fields", {}).get("batch_id") == batch_id
    ]
    assert names[:3] == ["batch.queued", "batch.processing", "batch.completed"]
    for _ in range(100):  # the job commits its end just after the batch's
        jobs = [r.getMessage() for r in caplog.records if r.name == "assay.engine"]
        if "job.finished" in jobs:
            break
        await asyncio.sleep(0.02)
    assert jobs[:2] == ["job.started", "job.finished"]


def test_json_log_lines_are_one_object_each() -> None:
    record = logging.makeLogRecord(
        {"name": "assay.http", "msg": "request", "levelno": 20, "levelname": "INFO",
         "fields": {"route": "/v1/x", "status": 200, "note": 'a "b" c'}}
    )  # fmt: skip
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["event"] == "request" and line["level"] == "info"
    assert line["route"] == "/v1/x" and line["status"] == 200 and line["ts"].endswith("Z")
    text = logs.TextFormatter().format(record)
    assert 'route=/v1/x status=200 note="a \\"b\\" c"' in text


async def test_metrics_are_scraped_in_prometheus_text(client: httpx.AsyncClient) -> None:
    await _setup(client)
    await client.post("/v1/buckets/b/objects", headers=NS, json=_text_object(1))
    r = await client.get("/metrics", headers={"Authorization": ""})  # no key needed
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = _samples(r.text)
    created = (
        "assay_http_requests_total",
        (
            ("method", "POST"),
            ("route", "/v1/buckets/{bucket_identifier}/objects"),
            ("status", "200"),
        ),
    )
    assert samples[created] >= 1
    assert samples[("assay_jobs", (("status", "queued"),))] == 0
    assert ("assay_events_undispatched", ()) in samples
    assert any(name == "assay_http_request_duration_seconds_bucket" for name, _ in samples)
    assert "process_cpu_seconds_total" in r.text  # the process collector too


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


async def test_a_key_over_its_rate_gets_429_with_retry_after(settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_limit_per_s": 0.5, "rate_limit_burst": 3})
    async with open_client(limited) as client:
        answers = [await client.get("/v1/namespaces") for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    refused = answers[3]
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "TooManyRequestsError"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["request_id"] == refused.headers["x-request-id"]


async def test_namespace_quotas_refuse_what_would_exceed_them(settings: Settings) -> None:
    quota = settings.model_copy(update={"namespace_max_objects": 3, "namespace_max_bytes": 10_000})
    async with open_client(quota) as client:
        await _setup(client)
        over = {"objects": [_text_object(i) for i in range(5)]}
        r = await client.post("/v1/buckets/b/objects/batch", headers=NS, json=over)
        assert r.status_code == 403, r.text  # the whole request: nothing half-applied
        assert r.json()["error"]["type"] == "QuotaExceededError"
        assert "3 objects" in r.json()["error"]["message"]
        fits = {"objects": [_text_object(i) for i in range(3)]}
        r = await client.post("/v1/buckets/b/objects/batch", headers=NS, json=fits)
        assert r.status_code == 200 and r.json()["succeeded_count"] == 3, r.text
        one = await client.post("/v1/buckets/b/objects", headers=NS, json=_text_object(9))
        assert one.status_code == 403 and one.json()["error"]["type"] == "QuotaExceededError"
        bucket = (await client.get("/v1/buckets/b", headers=NS)).json()
        assert bucket["object_count"] == 3  # nothing over the quota was kept

    async with open_client(quota.model_copy(update={"namespace_max_objects": 0})) as client:
        big = {"blobs": [{"property": "body", "type": "text", "content": "x" * 12_000}]}
        r = await client.post("/v1/buckets/b/objects", headers=NS, json=big)
        assert r.status_code == 403 and "bytes" in r.json()["error"]["message"]


class _FullDisk:
    """A file whose writes land half, then fail as a full disk does."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.name = getattr(fh, "name", "")

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()

    def write(self, data: bytes) -> int:
        self.fh.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["upload", "staging"])
async def test_a_full_disk_answers_507_and_leaves_nothing_half_written(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """An upload's PUT streams to the staging folder; an inline blob is spilled there before
    it is stored. A full disk at either: 507, no row, no partial file."""
    from assay.objects import materialize

    async with open_client(settings) as client:
        await _setup(client)
        if where == "upload":
            real_open = Path.open

            def open_full(self: Path, mode: str = "r", *a: Any, **k: Any) -> Any:
                fh = real_open(self, mode, *a, **k)
                return _FullDisk(fh) if self.name.endswith(".incoming") else fh

            monkeypatch.setattr(Path, "open", open_full)
            up = await client.post(
                "/v1/buckets/b/uploads", headers=NS,
                json={"filename": "a.bin", "content_type": "application/octet-stream",
                      "blob_property": "file"},
            )  # fmt: skip
            assert up.status_code == 200, up.text
            put = await client.put(up.json()["presigned_url"], content=os.urandom(300_000))
            assert put.status_code == 507, put.text
            assert put.json()["error"]["type"] == "InsufficientStorageError"
            body = None
        else:
            real_tmp = materialize.tempfile.NamedTemporaryFile
            monkeypatch.setattr(
                materialize.tempfile, "NamedTemporaryFile",
                lambda *a, **k: _FullDisk(real_tmp(*a, **k)),
            )  # fmt: skip
            payload = base64.b64encode(b"\x00\x01" * 100_000).decode()
            body = {"blobs": [{"property": "file", "type": "binary", "content": payload}]}
        if body is not None:
            r = await client.post("/v1/buckets/b/objects", headers=NS, json=body)
            assert r.status_code == 507, r.text
            assert r.json()["error"]["type"] == "InsufficientStorageError"
        monkeypatch.undo()
        listed = await client.post("/v1/buckets/b/objects/list", headers=NS, json={})
        assert listed.json()["results"] == []
    for folder in (settings.data_dir / "blobs", settings.tmp_dir):
        # (this test process's own scratch lock is alive: only its owner's death frees it)
        left = [p for p in folder.rglob("*") if p.is_file() and p.suffix != ".lock"]
        assert left == [], folder


def test_commands_share_one_default_data_dir_and_refuse_an_empty_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_backend: str,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    """On PostgreSQL the database is the URL's, so "empty" is a database without tables."""
    if database_backend == "pg":
        server = request.getfixturevalue("postgres")
        name = f"t_empty_{uuid.uuid4().hex[:12]}"
        server.sql(f"CREATE DATABASE {name}")
        request.addfinalizer(lambda: server.drop(name))
        monkeypatch.setenv("ASSAY_DATABASE_URL", server.url(name))
    monkeypatch.delenv("ASSAY_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert default_data_dir() == tmp_path / "xdg" / "assay"
    assert Settings().data_dir == tmp_path / "xdg" / "assay"

    runner = CliRunner()
    result = runner.invoke(cli, ["keys", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "no Assay database" in result.output
    assert not (tmp_path / "xdg").exists() and not (tmp_path / ".assay").exists()

    empty = tmp_path / "elsewhere"
    result = runner.invoke(cli, ["worker", "--data-dir", str(empty)])
    assert result.exit_code == 1 and not empty.exists()

    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    result = runner.invoke(cli, ["keys", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output  # the same folder, from any working dir
