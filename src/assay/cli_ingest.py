"""`assay ingest`: a folder of files into a bucket, extracted and searchable, in one command.

Files are hashed first so the ones already stored (same SHA-256 in `metadata.sha256`) are
skipped before any byte is sent; new ones are uploaded in parallel through direct uploads
(an upload becomes an object only when it is confirmed, so an interrupted run leaves no
half-registered object), then one batch of the new objects is created, submitted and
followed to its end.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from assay.cli_client import batch_exit_code, follow, print_batch
from assay.cli_common import (
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ApiKeyOpt,
    JsonOpt,
    NamespaceOpt,
    Output,
    ProfileOpt,
    UrlOpt,
    connect,
    human_bytes,
    reporting,
    to_jsonable,
)
from assay.client import AssayError, Batch, BatchFailure, Client
from assay.client.transport import sha256_file
from assay.client.upload import guess_content_type

LOOKUP_CHUNK = 1000  # hashes per `in` filter: the server's limit for one list of values
SHOWN = 20  # skipped or failed files listed by name in the summary (--json lists all)
ALREADY_STORED = "already stored"


class Cancelled(Exception):
    """Raised inside an upload's byte stream once Ctrl-C was pressed: nothing is confirmed."""


@dataclass
class FileJob:
    path: Path
    source_path: str  # relative to the folder given, as stored in object metadata
    size: int
    content_type: str
    key_prefix: str | None = None
    blob_property: str | None = None
    sha256: str = ""


@dataclass
class Outcome:
    job: FileJob
    object_id: str | None = None
    duplicate: bool = False
    error: AssayError | None = None


@dataclass
class Report:
    new: list[tuple[FileJob, str]] = field(default_factory=list)
    skipped: list[tuple[FileJob, str, str | None]] = field(default_factory=list)
    failed: list[tuple[FileJob, AssayError]] = field(default_factory=list)
    batch: Batch | None = None
    batch_error: AssayError | None = None
    batch_failures: list[BatchFailure] = field(default_factory=list)
    interrupted: bool = False
    not_uploaded: list[FileJob] = field(default_factory=list)  # stopped by Ctrl-C

    def exit_code(self) -> int:
        """130 when interrupted; 1 when an upload, the batch or one of its objects failed."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.failed or self.batch_error is not None:
            return EXIT_FAILED
        if self.batch is not None and self.batch.done:
            return batch_exit_code(self.batch)
        return EXIT_OK


def walk(paths: Sequence[Path]) -> Iterator[tuple[Path, str]]:
    """Each file under the paths (hidden files and folders skipped) and its relative path."""
    seen: set[Path] = set()
    for root in paths:
        if root.is_file():
            candidates: Iterator[tuple[Path, str]] = iter([(root, root.name)])
        else:
            candidates = _folder(root)
        for path, rel in candidates:
            real = path.resolve()
            if real not in seen:
                seen.add(real)
                yield path, rel


def _folder(root: Path) -> Iterator[tuple[Path, str]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.startswith(".") and path.is_file():
                yield path, path.relative_to(root).as_posix()


def kind_of(path: Path, content_type: str) -> str:
    """The blob type a file goes to, from its extension's MIME type."""
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        return "text"
    if suffix == ".json" or content_type == "application/json":
        return "json"
    major = content_type.split("/", 1)[0]
    if major in ("image", "video", "audio", "text"):
        return major
    return "pdf" if content_type == "application/pdf" else "binary"


@dataclass(frozen=True)
class PropertyPicker:
    """Which bucket property a file fills: `--map` by extension, else the one that fits."""

    properties: dict[str, str]  # file properties of the bucket: name → blob type
    preferred: str | None = None  # --property: wins when several fit
    by_extension: dict[str, str] = field(default_factory=dict)  # --map ext=property

    def pick(self, path: Path, content_type: str) -> tuple[str | None, str]:
        """(property, "") or (None, why the file is skipped)."""
        ext = path.suffix.lower().lstrip(".")
        if ext in self.by_extension:
            return self.by_extension[ext], ""
        kind = kind_of(path, content_type)
        fits = [n for n, t in self.properties.items() if t == kind]
        fits = fits or [n for n, t in self.properties.items() if t == "binary"]
        if self.preferred in fits:
            return self.preferred, ""
        if len(fits) == 1:
            return fits[0], ""
        if not fits:
            kinds = "binary" if kind == "binary" else f"{kind} or binary"
            return None, f"no {kinds} property in the bucket"
        which = ", ".join(fits)
        return None, f"several properties fit ({which}): choose with --property or --map"


def parse_map(items: Sequence[str], properties: dict[str, str]) -> dict[str, str]:
    """`--map md=notes` pairs, checked against the bucket's file properties."""
    out = {}
    for item in items:
        ext, sep, prop = item.partition("=")
        ext = ext.strip().lower().lstrip(".")
        if not sep or not ext or not prop.strip():
            raise typer.BadParameter(f"'{item}': expected EXT=PROPERTY", param_hint="--map")
        _check_property(prop.strip(), properties, "--map")
        out[ext] = prop.strip()
    return out


def _check_property(name: str, properties: dict[str, str], hint: str) -> None:
    if name not in properties:
        known = ", ".join(f"{k} ({v})" for k, v in properties.items()) or "none"
        msg = f"'{name}' is not a file property of the bucket (file properties: {known})"
        raise typer.BadParameter(msg, param_hint=hint)


def _key_prefix(prefix: str | None, source_path: str) -> str | None:
    parts = [p for p in (prefix or "").strip("/").split("/") if p]
    parts += source_path.split("/")[:-1]
    if not parts:
        return None
    return ("/" if (prefix or "").startswith("/") else "") + "/".join(parts)


class Ingest:
    """One run of `assay ingest`: plan, hash, skip what is stored, upload, batch, follow."""

    def __init__(self, client: Client, bucket: str, output: Output, key_prefix: str | None) -> None:
        self.client, self.bucket, self.output = client, bucket, output
        self.key_prefix = key_prefix
        self.report = Report()
        self.stop = threading.Event()
        self._recorded: set[int] = set()  # ids of the jobs whose outcome is in the report

    def plan(self, paths: Sequence[Path], picker: PropertyPicker) -> list[FileJob]:
        """The files to consider, each with its property; the others are skipped with a reason."""
        jobs = []
        for path, rel in walk(paths):
            content_type = guess_content_type(path)
            job = FileJob(path, rel, path.stat().st_size, content_type)
            job.key_prefix = _key_prefix(self.key_prefix, rel)
            job.blob_property, why = picker.pick(path, content_type)
            if job.blob_property is None:
                self.report.skipped.append((job, why, None))
            else:
                jobs.append(job)
        return jobs

    def hash(self, jobs: list[FileJob], pool: ThreadPoolExecutor) -> None:
        """SHA-256 of every file, in parallel (hashlib releases the GIL)."""
        try:
            digests = pool.map(sha256_file, [j.path for j in jobs])
            for job, digest in zip(jobs, digests, strict=True):
                job.sha256 = digest
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)  # nothing was sent yet
            raise

    def new_only(self, jobs: list[FileJob]) -> list[FileJob]:
        """Drop files whose bytes the bucket already holds, or that repeat another file here."""
        stored = self._stored({j.sha256 for j in jobs})
        todo: list[FileJob] = []
        first: dict[str, FileJob] = {}
        for job in jobs:
            if job.sha256 in stored:
                self.report.skipped.append((job, ALREADY_STORED, stored[job.sha256]))
            elif job.sha256 in first:
                same = first[job.sha256].source_path
                self.report.skipped.append((job, f"same bytes as {same}", None))
            else:
                first[job.sha256] = job
                todo.append(job)
        return todo

    def _stored(self, hashes: set[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        ordered = sorted(hashes)
        for start in range(0, len(ordered), LOOKUP_CHUNK):
            chunk = ordered[start : start + LOOKUP_CHUNK]
            cond = {"field": "metadata.sha256", "operator": "in", "value": chunk}
            for obj in self.client.objects.list(
                self.bucket, filters={"AND": [cond]}, page_size=LOOKUP_CHUNK
            ):
                found.setdefault(str(obj.metadata.get("sha256")), obj.object_id)
        return found

    def upload(self, jobs: list[FileJob], pool: ThreadPoolExecutor) -> None:
        """Upload in parallel with a progress bar; Ctrl-C stops between files, cleanly."""
        total = sum(j.size for j in jobs)
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.output.err,
            disable=self.output.json,
        )
        with progress:
            bar = progress.add_task(f"uploading 0/{len(jobs)} files", total=total)
            futures: dict[Future[Outcome], FileJob] = {
                pool.submit(self._upload_one, job, progress, bar): job for job in jobs
            }
            try:
                for count, future in enumerate(as_completed(futures), 1):
                    self._record(future.result())
                    progress.update(bar, description=f"uploading {count}/{len(jobs)} files")
            except KeyboardInterrupt:
                self.report.interrupted = True
                self.stop.set()
                for future in futures:
                    future.cancel()
                self._settle(futures)

    def _settle(self, futures: dict[Future[Outcome], FileJob]) -> None:
        """After Ctrl-C: let running uploads stop (or finish confirming) and keep every result,
        including one Ctrl-C cut off on its way into the report."""
        for future, job in futures.items():
            if id(job) in self._recorded:
                continue
            try:
                self._record(future.result())
            except (Cancelled, CancelledError):  # stopped before or while sending: not confirmed
                self.report.not_uploaded.append(job)

    def _upload_one(self, job: FileJob, progress: Progress, bar: Any) -> Outcome:
        if self.stop.is_set():
            raise Cancelled
        sent = 0

        def on_bytes(now: int, _total: int) -> None:
            nonlocal sent
            if self.stop.is_set():
                raise Cancelled
            progress.advance(bar, now - sent)
            sent = now

        metadata = {"sha256": job.sha256, "source_path": job.source_path}
        try:
            result = self.client.uploads.upload_file(
                self.bucket,
                job.path,
                blob_property=job.blob_property,
                content_type=job.content_type,
                key_prefix=job.key_prefix,
                metadata=metadata,
                file_hash=job.sha256,
                progress=on_bytes,
            )
        except AssayError as exc:
            return Outcome(job, error=exc)
        finally:
            progress.advance(bar, job.size - sent)  # a failed or empty file counts as done
        return Outcome(job, result.object_id, result.duplicate)

    def _record(self, outcome: Outcome) -> None:
        job = outcome.job
        if id(job) in self._recorded:
            return
        if outcome.error is not None:
            self.report.failed.append((job, outcome.error))
        elif outcome.duplicate:
            self.report.skipped.append((job, ALREADY_STORED, outcome.object_id))
        elif outcome.object_id is not None:
            self.report.new.append((job, outcome.object_id))
        # Marked after the report holds it: a Ctrl-C in between can repeat it, never lose it.
        self._recorded.add(id(job))

    def submit(self, wait: bool, poll_s: float) -> None:
        """One batch of the new objects, submitted, and followed unless told not to."""
        ids = list(dict.fromkeys(object_id for _, object_id in self.report.new))
        if not ids:
            return
        try:
            batch = self.client.batches.create(self.bucket, ids)
            self.client.batches.submit(self.bucket, batch.batch_id)
            self.report.batch = self.client.batches.get(self.bucket, batch.batch_id)
            if wait and not self.report.interrupted:
                try:
                    done = follow(self.client, self.bucket, batch.batch_id, self.output, poll_s)
                except KeyboardInterrupt:
                    self.report.interrupted = True
                    return
                self.report.batch = done
                if done.progress.failed:
                    failures = self.client.batches.failures(self.bucket, batch.batch_id)
                    self.report.batch_failures = failures
        except AssayError as exc:
            self.report.batch_error = exc

    def print_summary(self, submitted: bool) -> None:
        """What was uploaded, skipped and failed, and how the batch ended."""
        r, out = self.report, self.output.out
        stored = sum(1 for _, why, _ in r.skipped if why == ALREADY_STORED)
        line = (
            f"[bold]{len(r.new)} new[/], {len(r.skipped)} skipped ({stored} already stored), "
            f"{len(r.failed)} failed uploads"
        )
        if r.interrupted:
            line += f", {len(r.not_uploaded)} not uploaded"
        out.print(f"{line} ({human_bytes(sum(j.size for j, _ in r.new))} uploaded)")
        other = [(j, why) for j, why, _ in r.skipped if why != ALREADY_STORED]
        _listing(out, [f"  [dim]skipped[/] {escape(j.source_path)}: {escape(w)}" for j, w in other])
        _listing(
            out,
            [f"  [red]failed[/] {escape(j.source_path)}: {escape(str(e))}" for j, e in r.failed],
        )
        if r.batch_error is not None:
            out.print(f"[red]batch not created or submitted:[/] {escape(str(r.batch_error))}")
        elif r.batch is not None:
            paths = {object_id: job.source_path for job, object_id in r.new}
            failures = [
                f.model_copy(update={"object_id": f"{f.object_id} ({paths.get(f.object_id, '?')})"})
                for f in r.batch_failures
            ]
            if r.batch.done:
                print_batch(self.output, r.batch, failures)
            else:
                out.print(
                    f"batch {r.batch.batch_id}: {r.batch.status} "
                    f"(follow it: assay batches watch {r.batch.batch_id} --bucket {self.bucket})"
                )
        elif r.new and not submitted:
            out.print("no batch submitted (--no-submit)")
        if r.interrupted and r.not_uploaded:
            queued = " and submitted for extraction" if r.batch is not None else ""
            out.print(
                f"[yellow]interrupted:[/] {len(r.new)} files stored{queued}, nothing partial "
                "confirmed; run the same command again to upload the rest"
            )
        elif r.interrupted:
            out.print("[yellow]interrupted:[/] every file is stored; the batch runs on")

    def as_json(self) -> dict[str, Any]:
        """The same summary for --json."""
        r = self.report
        paths = {object_id: job.source_path for job, object_id in r.new}
        return {
            "bucket": self.bucket,
            "namespace": self.client.namespace,
            "new": [{"path": j.source_path, "object_id": o} for j, o in r.new],
            "skipped": [
                {"path": j.source_path, "reason": why, "object_id": o} for j, why, o in r.skipped
            ],
            "failed": [{"path": j.source_path, "error": _error_json(e)} for j, e in r.failed],
            "batch": to_jsonable(r.batch),
            "batch_error": _error_json(r.batch_error) if r.batch_error else None,
            "batch_failures": [
                {**f.model_dump(mode="json"), "path": paths.get(f.object_id)}
                for f in r.batch_failures
            ],
            "interrupted": r.interrupted,
            "not_uploaded": [j.source_path for j in r.not_uploaded],
            "exit_code": r.exit_code(),
        }


def _listing(out: Console, lines: list[str]) -> None:
    for line in lines[:SHOWN]:
        out.print(line)
    if len(lines) > SHOWN:
        out.print(f"  ... and {len(lines) - SHOWN} more (--json lists them all)")


def _error_json(exc: AssayError) -> dict[str, Any]:
    return {"status": exc.status, "type": exc.type, "message": exc.message}


def ingest(
    paths: Annotated[
        list[Path],
        typer.Argument(help="files and folders to ingest", exists=True, readable=True),
    ],
    bucket: Annotated[str, typer.Option("--bucket", "-b", help="bucket id or name")],
    workers: Annotated[int, typer.Option(help="uploads at once", min=1, max=64)] = 4,
    submit: Annotated[
        bool, typer.Option("--submit/--no-submit", help="create and submit a batch")
    ] = True,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="follow the batch to its end")
    ] = True,
    key_prefix: Annotated[
        str | None, typer.Option(help="key prefix of the objects (subfolders are appended)")
    ] = None,
    blob_property: Annotated[
        str | None,
        typer.Option("--property", help="the property to use when several fit a file"),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="EXT=PROPERTY: files with this extension go there"),
    ] = None,
    poll: Annotated[float, typer.Option(help="seconds between batch checks", min=0.05)] = 1.0,
    namespace: NamespaceOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    profile: ProfileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Upload files into a bucket, skipping those already stored, and extract them in a batch.

    Each file goes to the bucket property of its type (image/*, video/*, audio/*, text/* and
    .md, .json, else a binary property). Ctrl-C stops between files: nothing half-uploaded is
    confirmed, and files already stored are still submitted for extraction.
    """
    output = Output(json)
    with reporting(output), connect(url, api_key, profile, namespace) as client:
        target = client.buckets.get(bucket)
        props = target.file_properties
        if blob_property is not None:
            _check_property(blob_property, props, "--property")
        picker = PropertyPicker(props, blob_property, parse_map(mapping or [], props))
        run = Ingest(client, bucket, output, key_prefix)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest") as pool:
            jobs = run.plan(paths, picker)
            if not output.json:
                size = human_bytes(sum(j.size for j in jobs))
                output.note(f"{len(jobs)} files ({size}) for bucket {target.bucket_name}")
            run.hash(jobs, pool)
            run.upload(run.new_only(jobs), pool)
        if submit:
            run.submit(wait, poll)
        if json:
            output.emit(run.as_json())
        else:
            run.print_summary(submit)
    raise typer.Exit(run.report.exit_code())


def register(app: typer.Typer) -> None:
    """Add `assay ingest` to the `assay` command."""
    app.command(epilog=EXIT_CODES)(ingest)
