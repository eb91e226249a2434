"""The bytes-in-use promise between processes: two keepers on separate `Database` objects (as
two processes would have) share one database and one blob folder."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from assay.backends.blob.factory import make_blob_store
from assay.config import Settings
from assay.kit.db import Database, utcnow
from assay.migrations.runner import upgrade_to_head
from assay.models import BlobClaim
from assay.objects.storage import BlobKeeper, storage_key

NS = "ns_claims"
KEY = storage_key(NS, "ab" * 32)


@pytest.fixture
def keepers(settings: Settings, tmp_path: Path) -> list[BlobKeeper]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.database_url)
    store = f"file://{tmp_path / 'blobs'}"
    made = [BlobKeeper(make_blob_store(store), Database(settings.database_url)) for _ in range(2)]
    yield made
    for keeper in made:
        keeper.db.close()


def _claims(db: Database) -> list[tuple[str, str]]:
    return db.read_sync(lambda s: [(c.storage_key, c.kind) for c in s.scalars(select(BlobClaim))])


async def test_a_removal_elsewhere_leaves_bytes_a_registration_is_using(
    keepers: list[BlobKeeper],
) -> None:
    registering, deleting = keepers
    claims = registering.claims(NS)
    await claims.put_bytes(b"shared bytes", KEY)  # rows not committed yet
    assert _claims(deleting.db) == [(KEY, "use")]
    await deleting.remove_unreferenced(NS, [KEY])  # "another process" deletes an object
    assert registering.blobs.exists(KEY)
    await claims.release([KEY])  # committed: a row points at the key now
    assert registering.blobs.exists(KEY) and _claims(deleting.db) == []


async def test_a_failed_registration_removes_only_what_nobody_else_uses(
    keepers: list[BlobKeeper],
) -> None:
    first, second = keepers
    mine, theirs = first.claims(NS), second.claims(NS)
    await mine.put_bytes(b"same content", KEY)
    await theirs.put_bytes(b"same content", KEY)  # the other process uses the same bytes
    await mine.release([])  # this registration failed
    assert first.blobs.exists(KEY)  # still in use by the other one
    await theirs.release([])  # and that one failed too: nobody is left
    assert not first.blobs.exists(KEY)
    assert _claims(first.db) == []


async def test_a_use_waits_for_a_removal_under_way_and_ignores_expired_claims(
    keepers: list[BlobKeeper],
) -> None:
    registering, _ = keepers

    def removal(expires: dt.datetime) -> None:
        registering.db.write_sync(
            lambda s: s.execute(
                insert(BlobClaim),
                [{"claim_id": f"clm_{expires.timestamp()}", "storage_key": KEY,
                  "kind": "remove", "expires_at": expires}],
            )
        )  # fmt: skip

    removal(utcnow() - dt.timedelta(seconds=1))  # a remover died long ago
    claim = await asyncio.wait_for(registering.claim_use(KEY), 2)
    assert claim.startswith("clm_")

    removal(utcnow() + dt.timedelta(minutes=1))  # a removal under way
    waiting = asyncio.create_task(registering.claim_use(KEY))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    registering.db.write_sync(
        lambda s: s.query(BlobClaim).filter(BlobClaim.kind == "remove").delete()
    )
    assert (await asyncio.wait_for(waiting, 2)).startswith("clm_")
