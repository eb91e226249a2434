"""Registration's own cost: the ASGI apps called directly, in one process, no HTTP.

`bench/ingest.py` measures over real HTTP, where uvicorn, the kernel and the load generator
share the machine's two cores with the app and the figures swing by a third from run to run.
This calls each app as uvicorn would (scope, receive, send) from `--concurrency` concurrent
tasks on one uvloop loop and prints the CPU time per request: the minimal endpoint of
`bench/ingest.py` (in a child process of its own, as over HTTP: sharing Assay's heap would
slow its garbage collections down), then Assay's single-object and batch routes, alternating
for `--rounds` rounds, with each round's ratio. Assay's process is tuned as `assay serve`
tunes itself (`kit.memory.tune_for_serving`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvloop
from ingest import (
    ADMIN_KEY,
    BUCKET,
    NAMESPACE,
    Body,
    _minimal_app,
    batch_body,
    git_hash,
    single_body,
)
from rich.console import Console

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
console = Console(width=120)


async def _call(app: App, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """One POST through the app; its status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status = 0

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # never disconnects
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


async def cpu_per_request(
    app: App, path: str, headers: list[tuple[bytes, bytes]], body: Body, requests: int, tasks: int
) -> float:
    """CPU µs of this process per request, `tasks` requests in flight at a time."""

    async def worker(w: int) -> None:
        for seq in range(requests // tasks):
            status = await _call(app, path, headers, body(w, seq))
            if not 200 <= status < 300:
                raise RuntimeError(f"{path}: HTTP {status}")

    cpu = time.process_time()
    await asyncio.gather(*(worker(w) for w in range(tasks)))
    return (time.process_time() - cpu) / (requests // tasks * tasks) * 1e6


async def started(app: Any) -> Callable[[], Awaitable[None]]:
    """Run the app's lifespan start-up; returns its shutdown."""
    context = app.router.lifespan_context(app)
    await context.__aenter__()

    async def stop() -> None:
        await context.__aexit__(None, None, None)

    return stop


def minimal_in_child(requests: int, tasks: int) -> float:
    """The minimal endpoint's CPU µs per request, measured in a fresh process."""
    argv = [sys.executable, __file__, "--minimal-only", f"--requests={requests}"]
    done = subprocess.run([*argv, f"--concurrency={tasks}"], capture_output=True, check=True)
    return float(done.stdout.split()[-1])


async def minimal_only(args: argparse.Namespace) -> None:
    """`--minimal-only`: warm up, measure, print the figure (the parent reads it)."""
    path, json_type = f"/v1/buckets/{BUCKET}/objects", [(b"content-type", b"application/json")]
    app, n, tasks = _minimal_app(), args.requests, args.concurrency
    await cpu_per_request(app, path, json_type, single_body, n // 4, tasks)
    print(await cpu_per_request(app, path, json_type, single_body, n, tasks))


async def run(args: argparse.Namespace) -> None:
    from assay.config import Settings
    from assay.kit import memory
    from assay.main import create_app

    tune = getattr(memory, "tune_for_serving", None)  # absent from trees older than this
    if tune is not None:  # bench (compared through PYTHONPATH)
        tune()  # as `assay serve` does (it freezes the heap at start-up)
    path = f"/v1/buckets/{BUCKET}/objects"
    json_type = [(b"content-type", b"application/json")]
    with tempfile.TemporaryDirectory(prefix="assay-bench-") as tmp:
        app = create_app(Settings(data_dir=Path(tmp), admin_key=ADMIN_KEY))
        stop = await started(app)
        try:
            keyed = json_type + await _namespace_and_bucket(app)
            n, tasks = args.requests, args.concurrency
            await cpu_per_request(app, path, keyed, single_body, n // 4, tasks)  # warm-up
            rows = []
            for _ in range(args.rounds):
                mini = await asyncio.to_thread(minimal_in_child, n, tasks)
                single = await cpu_per_request(app, path, keyed, single_body, n, tasks)
                batch = await cpu_per_request(
                    app, f"{path}/batch", keyed, batch_body(100), args.batch_requests, tasks
                )
                rows.append((mini, single, batch / 100))
                console.print(
                    f"  minimal {mini:6.0f} µs  single {single:6.0f} µs "
                    f"(minimal / single {mini / single:.2f})  batch {batch / 100:6.1f} µs an object"
                )
        finally:
            await stop()
    ratios = [m / s for m, s, _ in rows]
    console.print(
        f"median: minimal / single {statistics.median(ratios):.2f}, "
        f"single {statistics.median(s for _, s, _ in rows):.0f} µs a request, "
        f"batch {statistics.median(b for _, _, b in rows):.1f} µs an object "
        f"(≈ {1e6 / statistics.median(b for _, _, b in rows):,.0f} objects/s of one core)"
    )


async def _namespace_and_bucket(app: Any) -> list[tuple[bytes, bytes]]:
    """Make them as `bench/ingest.py` does; the object routes' headers."""
    auth = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": NAMESPACE}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
        namespace = {"namespace_name": NAMESPACE, "feature_extractors": []}
        text = {"product_text": {"type": "text", "required": True}}
        bucket = {"bucket_name": BUCKET, "bucket_schema": {"properties": text}}
        for route, body in (("/v1/namespaces", namespace), ("/v1/buckets", bucket)):
            r = await c.post(route, headers=auth, json=body)
            if r.status_code >= 300:
                raise RuntimeError(f"{route}: HTTP {r.status_code} {r.text}")
    return [(k.lower().encode(), v.encode()) for k, v in auth.items()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=4000, help="single requests per round")
    p.add_argument("--batch-requests", type=int, default=200, help="batch requests per round")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at a time")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--minimal-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.minimal_only:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(minimal_only(args))
        return
    console.print(f"commit {git_hash()}  command: {' '.join([sys.executable, *sys.argv])}")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(args))


if __name__ == "__main__":
    main()
