"""Batch benchmark: N inline-text objects through a passthrough batch, submit → COMPLETED.

Runs `assay serve` (1 in-server worker), then the same plus one `assay worker` process
(2 workers), each on a fresh data dir. Prints objects/s end to end, the engine's overhead per
object (end-to-end time minus the raw passthrough extraction of the same inputs, measured in
this process), and the delay from the batch's COMPLETED to its `batch.completed` webhook.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from assay.extractors.base import BlobInput, ObjectInput
from assay.extractors.builtin.passthrough import PassthroughExtractor

ADMIN_KEY = "sk_live_bench_admin_key_0123456789"
TARGET = 500.0
console = Console(width=120)
CLI = "from assay.cli import app; app()"


class _Hook(BaseHTTPRequestHandler):
    arrivals: dict[str, float] = {}

    def do_POST(self) -> None:
        event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if event["event_type"] == "batch.completed":
            _Hook.arrivals[event["subject"]["id"]] = time.time()
            _Hook.occurred[event["subject"]["id"]] = event["occurred_at"]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


_Hook.occurred = {}  # type: ignore[attr-defined]


def _spawn(args: list[str], data_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ASSAY_ADMIN_KEY": ADMIN_KEY, "ASSAY_ALLOW_PRIVATE_URLS": "1"}
    cmd = [sys.executable, "-c", CLI, *args, "--data-dir", str(data_dir)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(n: int, extra_workers: int, hook_url: str) -> dict[str, Any]:
    """One configuration on a fresh data dir; returns its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, port = Path(tmp), _free_port()
        url = f"http://127.0.0.1:{port}"
        procs = [_spawn(["serve", "--port", str(port), "--workers", "1"], data_dir)]
        try:
            _wait_healthy(url)
            procs += [_spawn(["worker"], data_dir) for _ in range(extra_workers)]
            return _measure(url, n, hook_url)
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=15)


def _measure(url: str, n: int, hook_url: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": "bench"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        extractor = [{"feature_extractor_name": "passthrough_extractor", "version": "v1"}]
        c.post("/v1/namespaces", json={"namespace_name": "bench", "feature_extractors": extractor})
        schema = {"properties": {"body": {"type": "text", "required": True}}}
        c.post("/v1/buckets", json={"bucket_name": "b", "bucket_schema": schema})
        c.post("/v1/webhooks", json={"url": hook_url, "event_types": ["batch.completed"]})
        ids: list[str] = []
        for start in range(0, n, 100):
            objects = [
                {"blobs": [{"property": "body", "type": "text", "content": f"document {i}"}]}
                for i in range(start, min(n, start + 100))
            ]
            ids += [
                o["object_id"]
                for o in c.post("/v1/buckets/b/objects/batch", json={"objects": objects}).json()[
                    "succeeded"
                ]
            ]
        batch_id = c.post("/v1/buckets/b/batches", json={"object_ids": ids}).json()["batch_id"]
        t0 = time.perf_counter()
        task_id = c.post(f"/v1/buckets/b/batches/{batch_id}/submit").json()["task_id"]
        # Poll the task (status and counts), as a client would; the batch itself lists ids.
        while c.get(f"/v1/tasks/{task_id}").json()["status"] not in ("COMPLETED", "FAILED"):
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        batch = c.get(f"/v1/buckets/b/batches/{batch_id}").json()
        deadline = time.monotonic() + 30
        while batch_id not in _Hook.arrivals and time.monotonic() < deadline:
            time.sleep(0.01)
    completed = dt.datetime.fromisoformat(batch["completed_at"]).timestamp()
    arrival = _Hook.arrivals.get(batch_id)
    return {
        "status": batch["status"],
        "succeeded": batch["progress"]["succeeded"],
        "seconds": elapsed,
        "objects_per_s": n / elapsed,
        "webhook_ms": None if arrival is None else (arrival - completed) * 1000,
    }


def raw_extraction_s(n: int) -> float:
    """The extractor alone on the same kind of inputs: the work the engine wraps."""
    extractor = PassthroughExtractor()
    inputs = [
        ObjectInput(
            f"obj_{i}",
            {},
            {},
            (BlobInput(f"blob_{i}", "body", "text", "text/plain", {}, f"document {i}".encode()),),
        )
        for i in range(n)
    ]
    t0 = time.perf_counter()
    for item in inputs:
        extractor.extract(item, {})
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    console.print(f"commit {commit}  command: {' '.join(sys.argv)}  objects: {args.objects}")
    raw = raw_extraction_s(args.objects)
    table = Table(
        "workers",
        "status",
        "seconds",
        "objects/s",
        "engine overhead ms/object",
        "COMPLETED → webhook ms",
    )
    for extra, label in ((0, "1 (in serve)"), (1, "2 (serve + 1 assay worker)")):
        r = run(args.objects, extra, hook_url)
        overhead_ms = (r["seconds"] - raw) / args.objects * 1000
        webhook = "—" if r["webhook_ms"] is None else f"{r['webhook_ms']:.0f}"
        table.add_row(
            label,
            r["status"],
            f"{r['seconds']:.2f}",
            f"{r['objects_per_s']:,.0f}",
            f"{overhead_ms:.3f}",
            webhook,
        )
        verdict = "PASS" if r["objects_per_s"] >= TARGET else "MISS"
        console.print(
            f"  {label}: {r['objects_per_s']:,.0f} objects/s (target >= {TARGET:,.0f}) {verdict}"
        )
    console.print(table)
    console.print(f"raw passthrough extraction: {raw / args.objects * 1e6:.1f} µs/object")
    server.shutdown()


if __name__ == "__main__":
    main()
