"""Client commands on a running server: namespaces, buckets, collections, batches, search."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from assay.cli_common import (
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_OK,
    ApiKeyOpt,
    BucketOpt,
    JsonOpt,
    NamespaceOpt,
    Output,
    ProfileOpt,
    UrlOpt,
    connect,
    human_bytes,
    reporting,
)
from assay.client import AssayError, Batch, BatchFailure, Client, NotFound, SearchResult

namespaces_app = typer.Typer(help="Namespaces on the server.", no_args_is_help=True)
buckets_app = typer.Typer(help="Buckets of a namespace.", no_args_is_help=True)
collections_app = typer.Typer(help="Collections of a namespace.", no_args_is_help=True)
batches_app = typer.Typer(help="Extraction batches of a bucket.", no_args_is_help=True)

SNIPPET = 90  # characters of matching text shown per search result


def register(app: typer.Typer) -> None:
    """Add the client commands to the `assay` command."""
    app.add_typer(namespaces_app, name="namespaces")
    app.add_typer(buckets_app, name="buckets")
    app.add_typer(collections_app, name="collections")
    app.add_typer(batches_app, name="batches")
    app.command(epilog=EXIT_CODES)(search)


@namespaces_app.command("list", epilog=EXIT_CODES)
def namespaces_list(
    url: UrlOpt = None, api_key: ApiKeyOpt = None, profile: ProfileOpt = None, json: JsonOpt = False
) -> None:
    """List the namespaces this key may see."""
    output = Output(json)
    with reporting(output), connect(url, api_key, profile, None, need_namespace=False) as c:
        rows = list(c.namespaces.list())
        if json:
            output.emit(rows)
            return
        table = Table("namespace_id", "name", "extractors", "buckets", "objects", "documents")
        for ns in rows:
            extractors = ", ".join(
                f"{e.feature_extractor_name}@{e.version}" for e in ns.feature_extractors
            )
            table.add_row(
                ns.namespace_id,
                escape(ns.namespace_name),
                escape(extractors),
                str(ns.bucket_count),
                str(ns.object_count),
                str(ns.document_count),
            )
        output.out.print(table)


@buckets_app.command("list", epilog=EXIT_CODES)
def buckets_list(
    namespace: NamespaceOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    profile: ProfileOpt = None,
    json: JsonOpt = False,
) -> None:
    """List the buckets of a namespace with their schemas."""
    output = Output(json)
    with reporting(output), connect(url, api_key, profile, namespace) as c:
        rows = list(c.buckets.list())
        if json:
            output.emit(rows)
            return
        table = Table("bucket_id", "name", "properties", "objects", "size")
        for b in rows:
            props = ", ".join(f"{k}:{v}" for k, v in b.property_types.items())
            table.add_row(
                b.bucket_id,
                escape(b.bucket_name),
                escape(props),
                str(b.object_count),
                human_bytes(b.total_size_bytes),
            )
        output.out.print(table)


@collections_app.command("list", epilog=EXIT_CODES)
def collections_list(
    namespace: NamespaceOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    profile: ProfileOpt = None,
    json: JsonOpt = False,
) -> None:
    """List the collections of a namespace and what they search."""
    output = Output(json)
    with reporting(output), connect(url, api_key, profile, namespace) as c:
        rows = list(c.collections.list())
        if json:
            output.emit(rows)
            return
        table = Table("collection_id", "name", "extractor", "documents", "feature URIs")
        for col in rows:
            ref = col.feature_extractor
            extractor = f"{ref.get('feature_extractor_name', '?')}@{ref.get('version', '?')}"
            table.add_row(
                col.collection_id,
                escape(col.collection_name),
                escape(extractor),
                str(col.document_count),
                escape("\n".join(col.feature_uris)),
            )
        output.out.print(table)


@batches_app.command("list", epilog=EXIT_CODES)
def batches_list(
    bucket: BucketOpt,
    namespace: NamespaceOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    profile: ProfileOpt = None,
    json: JsonOpt = False,
) -> None:
    """List the batches of a bucket, newest first."""
    output = Output(json)
    with reporting(output), connect(url, api_key, profile, namespace) as c:
        rows = list(c.batches.list(bucket))
        if json:
            output.emit(rows)
            return
        table = Table("batch_id", "status", "created", "completed")
        for b in rows:
            table.add_row(b.batch_id, b.status, _when(b.created_at), _when(b.completed_at))
        output.out.print(table)


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def batch_exit_code(batch: Batch) -> int:
    """0 for a batch that completed with no failed object, 1 otherwise."""
    ok = batch.status == "COMPLETED" and batch.progress.failed == 0
    return EXIT_OK if ok else EXIT_FAILED


def follow(client: Client, bucket: str, batch_id: str, output: Output, poll_s: float) -> Batch:
    """Wait for a batch to end, with a progress bar (none with --json)."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=output.err,
        disable=output.json,
        transient=False,
    )
    with progress:
        task = progress.add_task(f"batch {batch_id}", total=None, detail="")

        def show(batch: Batch) -> None:
            p = batch.progress
            detail = f"{batch.status}  ok {p.succeeded}  failed {p.failed}"
            progress.update(
                task, total=p.total or None, completed=p.succeeded + p.failed, detail=detail
            )

        return client.batches.wait(bucket, batch_id, progress=show, poll_s=poll_s)


def print_batch(output: Output, batch: Batch, failures: list[BatchFailure]) -> None:
    """The batch's outcome, and each failed object with its error."""
    p = batch.progress
    colour = "green" if batch_exit_code(batch) == EXIT_OK else "red"
    output.out.print(
        f"batch {batch.batch_id}: [{colour}]{batch.status}[/] "
        f"({p.succeeded} succeeded, {p.failed} failed of {p.total})"
    )
    for f in failures:
        output.out.print(
            f"  [red]failed[/] {f.object_id}: {escape(f.error_type or 'Error')}: "
            f"{escape(f.message or '')}"
        )


@batches_app.command("watch", epilog=EXIT_CODES)
def batches_watch(
    batch_id: Annotated[str, typer.Argument(help="the batch to follow")],
    bucket: BucketOpt,
    poll: Annotated[float, typer.Option(help="seconds between checks", min=0.05)] = 1.0,
    namespace: NamespaceOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    profile: ProfileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Follow a batch with a progress bar until it ends; list its failures."""
    output = Output(json)
    with reporting(output), connect(url, api_key, profile, namespace) as c:
        batch = follow(c, bucket, batch_id, output, poll)
        failures = c.batches.failures(bucket, batch_id) if batch.progress.failed else []
        if json:
            output.emit({"batch": batch, "failures": failures})
        else:
            print_batch(output, batch, failures)
    raise typer.Exit(batch_exit_code(batch))


@batches_app.command("retry", epilog=EXIT_CODES)
def batches_retry(
    batch_id: Annotated[str, typer.Argument(help="the batch whose failed objects to redo")],
    bucket: BucketOpt,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="follow it to the end")] = False,
    poll: Annotated[float, typer.Option(help="seconds between checks", min=0.05)] = 1.0,
    namespace: NamespaceOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    profile: ProfileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Reprocess only the failed objects of a batch."""
    output = Output(json)
    with reporting(output), connect(url, api_key, profile, namespace) as c:
        task = c.batches.retry(bucket, batch_id)
        if not wait:
            if json:
                output.emit(task)
            else:
                output.out.print(f"batch {batch_id} queued again (task {task.task_id})")
            return
        batch = follow(c, bucket, batch_id, output, poll)
        failures = c.batches.failures(bucket, batch_id) if batch.progress.failed else []
        if json:
            output.emit({"task": task, "batch": batch, "failures": failures})
        else:
            print_batch(output, batch, failures)
    raise typer.Exit(batch_exit_code(batch))


def search(
    query: Annotated[str, typer.Argument(help="what to look for")],
    collection: Annotated[
        list[str] | None,
        typer.Option("--collection", "-c", help="collection id or name (repeatable; default all)"),
    ] = None,
    limit: Annotated[int, typer.Option(help="results to show", min=1, max=1000)] = 10,
    retriever: Annotated[
        str | None, typer.Option(help="run this saved retriever instead of a text search")
    ] = None,
    namespace: NamespaceOpt = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    profile: ProfileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Search a namespace: by meaning where collections have text embeddings, else by words."""
    output = Output(json)
    with reporting(output), connect(url, api_key, profile, namespace) as c:
        if retriever is not None:
            answer = c.retrievers.execute(retriever, query=query, limit=limit)
        else:
            answer = c.retrievers.search(query, collections=collection or (), limit=limit)
        hits = answer.results[:limit]
        located = _Locator(c).locate(hits)
        if json:
            data = answer.model_dump(mode="json")
            data["results"] = [
                {**h.model_dump(mode="json"), "key": located[h.document_id][0],
                 "blob_type": located[h.document_id][1]}
                for h in hits
            ]  # fmt: skip
            output.emit(data)
            return
        if not hits:
            output.out.print("no results")
            return
        table = Table("#", "score", "object", "modality", "segment", "text")
        for rank, hit in enumerate(hits, 1):
            key, blob_type = located[hit.document_id]
            prop = hit.source.property or ""
            modality = f"{blob_type}/{prop}" if blob_type else prop
            table.add_row(
                str(rank),
                f"{hit.score:.3f}",
                escape(key),
                escape(modality),
                segment_label(hit),
                escape(_snippet(hit)),
            )
        output.out.print(table)


class _Locator:
    """Object keys and blob types for search hits (hits name only object and blob ids)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._buckets: dict[str, list[str]] = {}  # collection id → buckets to look in
        self._all_buckets: list[str] | None = None

    def locate(self, hits: list[SearchResult]) -> dict[str, tuple[str, str]]:
        """document id → (object key, blob type), best effort."""
        out: dict[str, tuple[str, str | None]] = {}
        seen: dict[str, tuple[str, dict[str, str]]] = {}
        for hit in hits:
            oid = hit.source.object_id
            if oid not in seen:
                seen[oid] = self._object(hit)
            key, types = seen[oid]
            path = hit.metadata.get("source_path")
            out[hit.document_id] = (str(path) if path else key, types.get(hit.source.blob_id or ""))
        return {k: (key, kind or "") for k, (key, kind) in out.items()}

    def _object(self, hit: SearchResult) -> tuple[str, dict[str, str]]:
        oid = hit.source.object_id
        for bucket in self._candidates(hit.collection_id or ""):
            try:
                obj = self.client.objects.get(bucket, oid)
            except NotFound:
                continue
            except AssayError:
                break
            return obj.key, {b.blob_id: b.type for b in obj.blobs}
        return oid, {}

    def _candidates(self, collection_id: str) -> list[str]:
        if collection_id not in self._buckets:
            try:
                ids = self.client.collections.get(collection_id).bucket_ids
            except AssayError:
                ids = []
            if not ids:  # a default collection draws on every bucket of the namespace
                if self._all_buckets is None:
                    self._all_buckets = [b.bucket_id for b in self.client.buckets.list()]
                ids = self._all_buckets
            self._buckets[collection_id] = ids
        return self._buckets[collection_id]


def _clock(ms: Any) -> str:
    seconds = int(ms or 0) // 1000
    return f"{seconds // 60}:{seconds % 60:02d}"


def segment_label(hit: SearchResult) -> str:
    """Where in its media a hit is: `m:ss-m:ss` for audio and video, `p. N` for pages."""
    seg = hit.source.segment or {}
    if "start_ms" in seg:
        return f"{_clock(seg.get('start_ms'))}-{_clock(seg.get('end_ms'))}"
    if "page" in seg:
        return f"p. {seg['page']}"
    return ""


def _snippet(hit: SearchResult) -> str:
    text = hit.text
    if not text:
        labels = hit.content.get("labels") or []
        names = [str(x.get("label", x) if isinstance(x, dict) else x) for x in labels[:3]]
        text = ", ".join(names)
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"
