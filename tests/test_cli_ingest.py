"""`assay ingest`, `assay search` and the other client commands against a live server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from assay import cli_ingest
from assay.cli import app as cli
from assay.cli_client import segment_label
from assay.client import Client, SearchResult
from assay.config import Settings
from assay.extractors.base import ExtractorError, ObjectInput
from assay.extractors.builtin.passthrough import PassthroughExtractor
from tests.conftest import ADMIN_KEY, LiveServer, png_bytes

WIDE = "250"  # rich tables wrap at the terminal width; keep rows on one line


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("cli") / "data"
    with LiveServer(Settings(data_dir=data, admin_key=ADMIN_KEY)) as live:
        yield live


@pytest.fixture
def world(server: LiveServer, tmp_path: Path) -> dict[str, Any]:
    """A passthrough namespace with a bucket of `text` and `image`, and a folder to ingest."""
    ns = f"t{uuid.uuid4().hex[:12]}"
    with Client(server.url, ADMIN_KEY) as admin:
        admin.namespaces.create(ns, ["passthrough_extractor"])
        admin.with_namespace(ns).buckets.create(
            "media", properties={"text": "text", "image": "image"}
        )
    folder = tmp_path / "photos and notes"
    (folder / "sub").mkdir(parents=True)
    (folder / ".cache").mkdir()
    (folder / "a.txt").write_text("the volcano erupted at dawn")
    (folder / "b.md").write_text("# Notes\nbread needs flour, water and salt")
    (folder / "sub" / "c.txt").write_text("the river floods every spring")
    (folder / "sub" / "logo.png").write_bytes(png_bytes("LOGO"))
    (folder / "archive.zip").write_bytes(b"PK\x03\x04 not a property of this bucket")
    (folder / ".secret.txt").write_text("hidden")
    (folder / ".cache" / "x.txt").write_text("hidden too")
    env = {
        "ASSAY_URL": server.url,
        "ASSAY_API_KEY": ADMIN_KEY,
        "ASSAY_NAMESPACE": ns,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),  # never the developer's own profiles
        "COLUMNS": WIDE,
    }
    return {"ns": ns, "folder": folder, "env": env, "url": server.url}


def run(world: dict[str, Any], *args: str, **env: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={**world["env"], **env})


def client_of(world: dict[str, Any]) -> Client:
    return Client(world["url"], ADMIN_KEY, world["ns"])


def test_ingest_uploads_batches_and_a_second_run_skips_everything(world: dict[str, Any]) -> None:
    first = run(world, "ingest", str(world["folder"]), "--bucket", "media", "--poll", "0.05")
    assert first.exit_code == 0, first.output
    out = first.stdout
    assert "4 new, 1 skipped (0 already stored), 0 failed uploads" in out
    assert "archive.zip: no binary property in the bucket" in out
    assert "COMPLETED (4 succeeded, 0 failed of 4)" in out
    assert "secret" not in first.output and "x.txt" not in first.output

    with client_of(world) as c:
        objects = {o.metadata["source_path"]: o for o in c.objects.list("media")}
        assert sorted(objects) == ["a.txt", "b.md", "sub/c.txt", "sub/logo.png"]
        logo = objects["sub/logo.png"]
        assert logo.blobs[0].property == "image" and logo.key == "sub/logo.png"
        assert objects["b.md"].blobs[0].property == "text"
        docs = list(c.collections.documents("passthrough_extractor"))
        assert len(docs) == 4

    second = run(world, "ingest", str(world["folder"]), "--bucket", "media", "--json")
    assert second.exit_code == 0, second.output
    report = json.loads(second.stdout)
    assert report["new"] == [] and report["batch"] is None and report["exit_code"] == 0
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert reasons == {
        "archive.zip": "no binary property in the bucket",
        "a.txt": "already stored",
        "b.md": "already stored",
        "sub/c.txt": "already stored",
        "sub/logo.png": "already stored",
    }
    assert {s["object_id"] for s in report["skipped"] if s["object_id"]} == {
        o.object_id for o in objects.values()
    }


def test_property_choice_usage_errors_and_exit_codes(world: dict[str, Any], tmp_path: Path) -> None:
    with client_of(world) as c:
        c.buckets.create("notes", properties={"title": "text", "body": "text"})
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "one.txt").write_text("first")
    (notes / "two.md").write_text("second")

    ambiguous = run(world, "ingest", str(notes), "-b", "notes", "--no-submit", "--json")
    assert ambiguous.exit_code == 0, ambiguous.output
    skipped = json.loads(ambiguous.stdout)["skipped"]
    assert all("several properties fit (title, body)" in s["reason"] for s in skipped)

    chosen = run(
        world, "ingest", str(notes), "-b", "notes", "--property", "body", "--map", "md=title",
        "--key-prefix", "/imports", "--no-submit", "--json",
    )  # fmt: skip
    assert chosen.exit_code == 0, chosen.output
    assert len(json.loads(chosen.stdout)["new"]) == 2
    with client_of(world) as c:
        stored = {o.metadata["source_path"]: o for o in c.objects.list("notes")}
    assert {k: o.blobs[0].property for k, o in stored.items()} == {
        "one.txt": "body",
        "two.md": "title",
    }
    assert stored["one.txt"].key == "/imports/one.txt"
    assert list(client_of(world).batches.list("notes")) == []  # --no-submit

    missing = run(world, "ingest", str(notes), "--bucket", "nope")
    assert missing.exit_code == 3 and "bucket 'nope' not found" in missing.output
    assert "Traceback" not in missing.output
    as_json = run(world, "ingest", str(notes), "--bucket", "nope", "--json")
    assert as_json.exit_code == 3 and json.loads(as_json.stdout)["error"]["type"] == "NotFoundError"
    assert run(world, "ingest", str(notes)).exit_code == 2  # no --bucket
    assert run(world, "ingest", str(tmp_path / "absent"), "-b", "notes").exit_code == 2
    assert run(world, "ingest", str(notes), "-b", "notes", "--property", "zz").exit_code == 2
    assert run(world, "ingest", str(notes), "-b", "notes", "--map", "md").exit_code == 2
    no_ns = run(world, "buckets", "list", ASSAY_NAMESPACE="")
    assert no_ns.exit_code == 2 and "namespace" in no_ns.output
    denied = run(world, "namespaces", "list", ASSAY_API_KEY="sk_live_wrong")
    assert denied.exit_code == 3 and "Traceback" not in denied.output


def test_interrupted_ingest_confirms_nothing_partial_and_exits_130(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C right after the first file: running uploads stop, nothing partial is confirmed,
    what was stored is still submitted, and running again finishes the rest."""
    record = cli_ingest.Ingest._record
    calls = {"n": 0}

    def interrupt_after_first(self: cli_ingest.Ingest, outcome: cli_ingest.Outcome) -> None:
        record(self, outcome)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_ingest.Ingest, "_record", interrupt_after_first)
    args = ("ingest", str(world["folder"]), "-b", "media", "-n", world["ns"], "--workers", "1")
    args += ("--poll", "0.05", "--json")
    stopped = run(world, *args)
    assert stopped.exit_code == 130, stopped.output
    report = json.loads(stopped.stdout)
    assert report["interrupted"] is True and report["exit_code"] == 130
    done = {n["object_id"] for n in report["new"]}
    assert 1 <= len(done) < 4 and len(done) + len(report["not_uploaded"]) == 4
    with client_of(world) as c:
        assert {o.object_id for o in c.objects.list("media")} == done  # all confirmed, no more
        assert set(report["batch"]["object_ids"]) == done

    monkeypatch.setattr(cli_ingest.Ingest, "_record", record)
    rest = run(world, *args)
    assert rest.exit_code == 0, rest.output
    again = json.loads(rest.stdout)
    assert len(again["new"]) == 4 - len(done) and again["batch"]["status"] == "COMPLETED"


def test_batch_failures_set_the_exit_code_and_retry(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = PassthroughExtractor.extract

    def extract(self: PassthroughExtractor, obj: ObjectInput, params: dict[str, Any]) -> Any:
        if obj.metadata.get("source_path") == "sub/c.txt":
            raise ExtractorError("CorruptMedia", "unreadable")
        return real(self, obj, params)

    monkeypatch.setattr(PassthroughExtractor, "extract", extract)
    result = run(world, "ingest", str(world["folder"]), "-b", "media", "--poll", "0.05")
    assert result.exit_code == 1, result.output
    assert "COMPLETED (3 succeeded, 1 failed of 4)" in result.stdout
    assert "(sub/c.txt): CorruptMedia: unreadable" in result.stdout
    batch_id = next(w for w in result.stdout.split() if w.startswith("btch_")).rstrip(":")

    listed = run(world, "batches", "list", "--bucket", "media", "--json")
    assert [b["batch_id"] for b in json.loads(listed.stdout)] == [batch_id]
    watched = run(world, "batches", "watch", batch_id, "--bucket", "media")
    assert watched.exit_code == 1 and "1 failed" in watched.stdout

    monkeypatch.setattr(PassthroughExtractor, "extract", real)
    retried = run(world, "batches", "retry", batch_id, "-b", "media", "--wait", "--poll", "0.05")
    assert retried.exit_code == 0, retried.output
    assert "COMPLETED (4 succeeded, 0 failed of 4)" in retried.stdout
    again = run(world, "batches", "retry", batch_id, "-b", "media")
    assert again.exit_code == 1 and "no failed objects" in again.output
    assert run(world, "batches", "watch", "btch_nope", "-b", "media").exit_code == 3


def test_search_prints_a_table(server: LiveServer, tmp_path: Path) -> None:
    """A real MiniLM (text_extractor) namespace: the meaning, not the words, finds the file."""
    ns = f"t{uuid.uuid4().hex[:12]}"
    with Client(server.url, ADMIN_KEY) as admin:
        admin.namespaces.create(ns, ["text_extractor"])
        admin.with_namespace(ns).buckets.create("docs", properties={"text": "text"})
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "volcano.txt").write_text("Molten lava poured down the mountain after the eruption.")
    (folder / "bread.txt").write_text("Knead the dough, let it rise, then bake the loaf.")
    (folder / "football.txt").write_text("The striker scored twice in the second half.")
    world = {
        "url": server.url,
        "ns": ns,
        "env": {
            "ASSAY_URL": server.url, "ASSAY_API_KEY": ADMIN_KEY, "ASSAY_NAMESPACE": ns,
            "XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": WIDE,
        },
    }  # fmt: skip
    ingested = run(world, "ingest", str(folder), "-b", "docs", "--poll", "0.1")
    assert ingested.exit_code == 0, ingested.output

    table = run(world, "search", "volcanic eruption", "--limit", "2")
    assert table.exit_code == 0, table.output
    rows = [line for line in table.stdout.splitlines() if "│" in line]
    assert len(rows) == 2 and "volcano.txt" in rows[0] and "text/text" in rows[0]
    assert "Molten lava poured" in rows[0]

    found = json.loads(run(world, "search", "baking a loaf", "--json").stdout)
    assert found["results"][0]["key"] == "bread.txt"
    assert found["results"][0]["blob_type"] == "text"
    assert found["stage_stats"][0]["stage_id"] == "feature_search"
    missing = run(world, "search", "x", "--collection", "nope")
    assert missing.exit_code == 3


def test_profiles_from_the_config_folder(world: dict[str, Any], tmp_path: Path) -> None:
    config = Path(world["env"]["XDG_CONFIG_HOME"]) / "assay"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(
        f'[profiles.default]\nurl = "{world["url"]}"\napi_key = "sk_live_wrong"\n\n'
        f'[profiles.lab]\nurl = "{world["url"]}"\napi_key = "{ADMIN_KEY}"\n'
        f'namespace = "{world["ns"]}"\n'
    )
    bare = {"ASSAY_URL": "", "ASSAY_API_KEY": "", "ASSAY_NAMESPACE": ""}
    listed = run(world, "buckets", "list", "--profile", "lab", "--json", **bare)
    assert listed.exit_code == 0, listed.output
    assert [b["bucket_name"] for b in json.loads(listed.stdout)] == ["media"]
    unknown = run(world, "buckets", "list", "--profile", "nope", **bare)
    assert unknown.exit_code == 2 and "lab" in unknown.output
    default = run(world, "namespaces", "list", **bare)  # the default profile: a wrong key
    assert default.exit_code == 3 and "Traceback" not in default.output


def test_segments_read_as_minutes_and_seconds() -> None:
    def hit(segment: dict[str, Any] | None) -> SearchResult:
        source = {"object_id": "obj_1", "segment": segment}
        return SearchResult.model_validate({"document_id": "d", "score": 1, "source": source})

    assert segment_label(hit({"start_ms": 65_000, "end_ms": 130_500})) == "1:05-2:10"
    assert segment_label(hit({"page": 3})) == "p. 3" and segment_label(hit(None)) == ""
