"""Search benchmark: Assay's retrievers over HTTP vs raw usearch and LanceDB on the same vectors.

For each size N: N clustered synthetic unit vectors (384-d, deterministic) and a few hundred
query vectors drawn from the same clusters; exact top-10 by numpy brute force is the truth.

- raw usearch: `Index(ndim, "cos", "bf16", connectivity=16, expansion_add=128,
  expansion_search=256)`, one `add` of all vectors (threads=0), then a one-thread query loop.
- Assay: a fresh data dir; `assay serve --workers 0` creates the namespace (text_extractor),
  bucket and one object over HTTP and stops; the N documents and vector rows go straight into
  its SQLite database (SQLAlchemy Core executemany, the triggers fill `vector_log`); the index
  is built in this process by `FeatureIndexes` (what the server does on first use: read the
  table, build, save); the server is started again and loads the saved file on its first
  search. Saved retrievers are then executed over HTTP with a precomputed vector
  (`inputs.embedding`) and with text (`inputs.query`, embedded by MiniLM inside the request).
- LanceDB: the same vectors in a table with an IVF_HNSW_SQ index (cosine); `ef` is swept and
  the cheapest setting reaching Assay's recall (or the best one) is measured.

`--share-graph` skips the separate raw build: the raw baseline then loads the usearch file
Assay's build saved (same graph, so the overhead ratio is purely the API's), and its build time
is the time spent inside usearch's `Index.add` during Assay's build.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from rich.console import Console
from rich.table import Table
from usearch.index import Index

ADMIN_KEY = "sk_live_bench_admin_key_0123456789"
HOST = "127.0.0.1"
NAMESPACE = "bench"
BUCKET = "b"
EXTRACTOR = {"feature_extractor_name": "text_extractor", "version": "v1"}
URI = "assay://text_extractor@v1/text_embedding"
K = 10
RECALL_TARGET = 0.95
P50_TARGET_MS = 15.0
P50_TARGET_AT = 1_000_000
USEARCH = {"connectivity": 16, "expansion_add": 128, "expansion_search": 256}
CLI = "from assay.cli import app; app()"
ROOT = Path(__file__).resolve().parent.parent
console = Console(width=140)


# -- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """How the synthetic corpus is drawn: Gaussian clusters around random unit centres."""

    dim: int = 384
    clusters: int = 1_000
    # Norm of a vector's noise relative to its (unit) centre: 1.0 puts a vector at cosine
    # ~0.7 from its centre and ~0.5 from its cluster mates, so neighbours are not trivial.
    spread: float = 1.0
    seed: int = 7
    chunk: int = 50_000


def _centres(spec: DataSpec) -> np.ndarray:
    rng = np.random.default_rng([spec.seed, 0])
    c = rng.standard_normal((spec.clusters, spec.dim), dtype=np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def _draw(spec: DataSpec, centres: np.ndarray, m: int, stream: Sequence[int]) -> np.ndarray:
    rng = np.random.default_rng([spec.seed, *stream])
    labels = rng.integers(0, spec.clusters, m)
    noise = rng.standard_normal((m, spec.dim), dtype=np.float32)
    v = centres[labels] + noise * np.float32(spec.spread / np.sqrt(spec.dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_vectors(n: int, spec: DataSpec) -> np.ndarray:
    """N unit float32 vectors, generated chunk by chunk (the same chunk always comes out the
    same, whatever N)."""
    centres = _centres(spec)
    out = np.empty((n, spec.dim), dtype=np.float32)
    for start in range(0, n, spec.chunk):
        m = min(spec.chunk, n - start)
        out[start : start + m] = _draw(spec, centres, m, (1, start // spec.chunk))
    return out


def make_queries(q: int, spec: DataSpec) -> np.ndarray:
    """Fresh samples from the same clusters (not corpus members)."""
    return _draw(spec, _centres(spec), q, (2,))


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """Indices of the k most cosine-similar vectors per query, by brute force in float32."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.empty((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), 200_000):
        sims = queries @ vectors[start : start + 200_000].T
        part = np.argpartition(-sims, min(k, sims.shape[1]) - 1, axis=1)[:, :k]
        best_s = np.hstack([best_s, np.take_along_axis(sims, part, 1)])
        best_i = np.hstack([best_i, part + start])
        keep = np.argsort(-best_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i


def recall_at_k(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    """Share of the true top-k present in each answer's first k, over all queries."""
    k = truth.shape[1]
    hits = sum(len(set(list(f)[:k]) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


_WORDS = (
    ("cheap", "quiet", "red", "waterproof", "vintage", "small", "fast", "organic", "heavy"),
    ("running shoes", "laptop", "coffee grinder", "tent", "guitar", "bicycle", "jacket", "lamp"),
    ("for a long trip", "for beginners", "under 100 dollars", "that lasts", "for kids", "at home"),
)


def make_sentences(q: int, seed: int = 7) -> list[str]:
    """Short search-box sentences, deterministic and mostly distinct."""
    rng = np.random.default_rng([seed, 3])
    out = []
    for i in range(q):
        a, b, c = (words[int(rng.integers(len(words)))] for words in _WORDS)
        out.append(f"{a} {b} {c} {i}")
    return out


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Row:
    """One system measured one way."""

    system: str
    mode: str
    build_s: float | None = None
    recall: float | None = None
    latencies: list[float] = field(default_factory=list)
    qps: float = 0.0
    errors: int = 0
    note: str = ""

    def pct(self, q: float) -> float:
        """The q-quantile latency in ms."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


SearchFn = Callable[[np.ndarray], list[int]]


def loop(fn: SearchFn, queries: np.ndarray, warmup: int = 5) -> tuple[list[float], list[list[int]]]:
    """One query at a time: per-query seconds and the keys found."""
    for q in queries[:warmup]:
        fn(q)
    latencies, found = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(fn(q))
        latencies.append(time.perf_counter() - t)
    return latencies, found


def threaded(fn: SearchFn, queries: np.ndarray, threads: int, rounds: int) -> Row:
    """`threads` threads sharing `rounds` passes over the queries: latencies and QPS."""
    work = [q for _ in range(rounds) for q in queries]
    latencies: list[float] = []

    def run(part: list[np.ndarray]) -> None:
        for q in part:
            t = time.perf_counter()
            fn(q)
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, [work[i::threads] for i in range(threads)]))
    wall = time.perf_counter() - t0
    return Row("", f"{threads} threads", latencies=latencies, qps=len(work) / wall)


# -- raw usearch ------------------------------------------------------------------------------


def raw_index(dim: int) -> Index:
    """An empty usearch index with Assay's HNSW settings."""
    return Index(ndim=dim, metric="cos", dtype="bf16", **USEARCH)


def raw_build(vectors: np.ndarray) -> tuple[Index, float]:
    """All vectors in one `add` (every core); the index and the seconds it took."""
    index = raw_index(vectors.shape[1])
    t = time.perf_counter()
    index.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=0)
    return index, time.perf_counter() - t


def raw_load(path: Path, dim: int) -> Index:
    """The usearch file Assay saved, loaded into a plain usearch index."""
    index = raw_index(dim)
    index.load(os.fspath(path))
    index.expansion_search = USEARCH["expansion_search"]
    return index


def bench_raw(
    index: Index,
    queries: np.ndarray,
    truth: np.ndarray,
    build_s: float,
    rows_of: dict[int, int] | None = None,
) -> list[Row]:
    """One-thread query loop (latency, recall) and one batched call over all cores (QPS).
    `rows_of` maps the index's keys to row numbers when they are not the row numbers."""

    def rows(keys: np.ndarray) -> list[int]:
        found = keys.tolist()
        return found if rows_of is None else [rows_of.get(k, -1) for k in found]

    def search(q: np.ndarray) -> list[int]:
        return index.search(q, K).keys.tolist()

    latencies, found = loop(search, queries)
    found = [rows(np.asarray(f, dtype=np.uint64)) for f in found]
    single = Row("raw usearch", "1 thread", build_s, recall_at_k(found, truth), latencies)
    single.qps = len(latencies) / sum(latencies)
    t = time.perf_counter()
    batch = index.search(queries, K, threads=0)
    wall = time.perf_counter() - t
    found_b = [rows(batch.keys[i]) for i in range(len(queries))]
    batched = Row("raw usearch", "batch, all cores", None, recall_at_k(found_b, truth))
    batched.qps = len(queries) / wall
    return [single, batched]


# -- LanceDB ----------------------------------------------------------------------------------


@dataclass
class Lance:
    table: Any
    write_s: float
    index_s: float
    sweep: list[tuple[int, float, float]] = field(default_factory=list)  # ef, recall, p50 ms
    ef: int = 0


def lance_build(
    vectors: np.ndarray,
    folder: Path,
    *,
    partitions: int | None = None,
    m: int = 20,
    ef_construction: int = 300,
) -> Lance:
    """A LanceDB table of the vectors (ids = row numbers) with an IVF_HNSW_SQ cosine index."""
    import lancedb
    import pyarrow as pa
    from lancedb.index import HnswSq

    db = lancedb.connect(os.fspath(folder))
    dim = vectors.shape[1]
    schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), dim))])

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, len(vectors), 100_000):
            part = vectors[start : start + 100_000]
            flat = pa.array(part.reshape(-1), type=pa.float32())
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(np.arange(start, start + len(part), dtype=np.int64)),
                    pa.FixedSizeListArray.from_arrays(flat, dim),
                ],
                schema=schema,
            )

    t = time.perf_counter()
    table = db.create_table("vectors", data=pa.RecordBatchReader.from_batches(schema, batches()))
    write_s = time.perf_counter() - t
    config = HnswSq(
        distance_type="cosine", num_partitions=partitions, m=m, ef_construction=ef_construction
    )
    t = time.perf_counter()
    table.create_index("vector", config=config)
    return Lance(table, write_s, time.perf_counter() - t)


def lance_search_fn(table: Any, ef: int, nprobes: int) -> SearchFn:
    """One LanceDB query: ids of the K nearest under cosine."""

    def search(q: np.ndarray) -> list[int]:
        builder = (
            table.search(q, vector_column_name="vector")
            .distance_type("cosine")
            .limit(K)
            .nprobes(nprobes)
            .ef(ef)
            .select(["id", "_distance"])
        )
        return builder.to_arrow().column("id").to_pylist()

    return search


def lance_tune(
    lance: Lance, queries: np.ndarray, truth: np.ndarray, want: float, nprobes: int
) -> None:
    """Sweep `ef` upwards; keep the cheapest one reaching `want` recall, else the cheapest
    within 0.005 of the best recall seen (quantisation caps it; more ef only costs time)."""
    for ef in (16, 32, 64, 128, 256, 512, 1024):
        latencies, found = loop(lance_search_fn(lance.table, ef, nprobes), queries, warmup=3)
        r = recall_at_k(found, truth)
        lance.sweep.append((ef, r, 1000 * statistics.median(latencies)))
        if r >= want:
            lance.ef = ef
            return
    best = max(r for _, r, _ in lance.sweep)
    lance.ef = next(ef for ef, r, _ in lance.sweep if r >= best - 0.005)


def bench_lance(
    lance: Lance,
    queries: np.ndarray,
    truth: np.ndarray,
    concurrency: int,
    rounds: int,
    nprobes: int,
) -> list[Row]:
    """One-thread loop (latency, recall) and `concurrency` threads (QPS) at the tuned ef."""
    fn = lance_search_fn(lance.table, lance.ef, nprobes)
    latencies, found = loop(fn, queries)
    name = f"LanceDB IVF_HNSW_SQ (ef {lance.ef})"
    single = Row(name, "1 thread", lance.index_s, recall_at_k(found, truth), latencies)
    single.qps = len(latencies) / sum(latencies)
    single.note = f"table write {lance.write_s:.1f} s"
    many = threaded(fn, queries, concurrency, rounds)
    many.system = name
    return [single, many]


# -- Assay ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class AssayServer:
    """`assay serve --workers 0` on a data dir, in its own process."""

    def __init__(self, data_dir: Path, exact_below: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.env = {**os.environ, "ASSAY_ADMIN_KEY": ADMIN_KEY}
        if exact_below is not None:
            self.env["ASSAY_EXACT_SEARCH_BELOW"] = str(exact_below)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    def __enter__(self) -> AssayServer:
        args = ["serve", "--port", str(self.port), "--workers", "0"]
        cmd = [sys.executable, "-c", CLI, *args, "--data-dir", os.fspath(self.data_dir)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.__exit__()
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise RuntimeError(f"assay serve did not start:\n{tail}")

    def __exit__(self, *_: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": NAMESPACE}


def _ok(r: httpx.Response) -> dict[str, Any]:
    if r.status_code >= 300:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
    return dict(r.json())


@dataclass(frozen=True)
class Setup:
    namespace_id: str
    collection_id: str
    object_id: str


def assay_setup(url: str) -> Setup:
    """Namespace (text_extractor), bucket and the one object every document points at."""
    with httpx.Client(base_url=url, headers=_headers(), timeout=60) as c:
        body = {"namespace_name": NAMESPACE, "feature_extractors": [EXTRACTOR]}
        ns = _ok(c.post("/v1/namespaces", json=body))
        schema = {"properties": {"body": {"type": "text"}}}
        _ok(c.post("/v1/buckets", json={"bucket_name": BUCKET, "bucket_schema": schema}))
        blob = {"property": "body", "type": "text", "content": "synthetic corpus"}
        obj = _ok(c.post(f"/v1/buckets/{BUCKET}/objects", json={"blobs": [blob]}))
        col = _ok(c.get(f"/v1/collections/{EXTRACTOR['feature_extractor_name']}"))
    return Setup(ns["namespace_id"], col["collection_id"], obj["object_id"])


def document_id(i: int) -> str:
    """The id of vector i's document (an id of the `doc_` shape; the index is recoverable)."""
    return f"doc_{i:020d}"


def load_documents(data_dir: Path, setup: Setup, vectors: np.ndarray, chunk: int = 20_000) -> float:
    """N documents and their vector rows, in transactions of `chunk`; seconds taken."""
    from sqlalchemy import insert

    from assay.collections.vectors import pack_vector
    from assay.kit.db import make_engine
    from assay.kit.ids import int_key
    from assay.models import Document, DocumentVector

    engine = make_engine(f"sqlite:///{data_dir / 'assay.db'}", writer=True)
    now = dt.datetime.now(dt.UTC)
    t = time.perf_counter()
    try:
        for start in range(0, len(vectors), chunk):
            docs, rows = [], []
            for i in range(start, min(len(vectors), start + chunk)):
                doc_id = document_id(i)
                key = int_key(doc_id)
                docs.append(
                    {
                        "document_id": doc_id,
                        "doc_key": key,
                        "namespace_id": setup.namespace_id,
                        "collection_id": setup.collection_id,
                        "object_id": setup.object_id,
                        "blob_id": f"blb_{i:020d}",  # distinct: the lineage key is unique
                        "property": "body",
                        "segment_key": "",
                        "segment": None,
                        "extractor": EXTRACTOR["feature_extractor_name"],
                        "extractor_version": EXTRACTOR["version"],
                        "content": {"text": f"synthetic vector {i}"},
                        "search_text": "",
                        "metadata": {"i": i},
                        "created_at": now,
                    }
                )
                rows.append(
                    {
                        "document_id": doc_id,
                        "feature_uri": URI,
                        "doc_key": key,
                        "namespace_id": setup.namespace_id,
                        "collection_id": setup.collection_id,
                        "vector": pack_vector(vectors[i]),
                    }
                )
            with engine.begin() as conn:
                conn.execute(insert(Document.__table__), docs)
                conn.execute(insert(DocumentVector.__table__), rows)
    finally:
        engine.dispose()
    return time.perf_counter() - t


@dataclass
class Build:
    seconds: float
    usearch_add_s: float
    kind: str
    path: Path


def assay_build(data_dir: Path, setup: Setup, exact_below: int | None) -> Build:
    """Assay's index built in this process exactly as the server would on first use: read the
    vector rows, build, save under the data dir (the server then loads that file)."""
    from sqlalchemy.orm import Session

    from assay.config import Settings
    from assay.kit.db import make_engine
    from assay.retrievers.indexes import FeatureIndexes

    limit = Settings(data_dir=data_dir).exact_search_below if exact_below is None else exact_below
    indexes = FeatureIndexes(data_dir / "indexes", exact_limit=limit)
    engine = make_engine(f"sqlite:///{data_dir / 'assay.db'}")
    spent = [0.0]
    original = Index.add

    def timed_add(self: Index, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t

    Index.add = timed_add  # type: ignore[method-assign]
    try:
        with Session(engine) as session:
            t = time.perf_counter()
            size = indexes.size(session, setup.collection_id, URI)
            seconds = time.perf_counter() - t
    finally:
        Index.add = original  # type: ignore[method-assign]
        engine.dispose()
    if size == 0:
        raise RuntimeError("Assay's index is empty: the rows did not load")
    path = indexes.path(setup.collection_id, URI)
    kind = "hnsw" if size > limit else "exact"
    return Build(seconds, spent[0], kind, path)


def create_retrievers(url: str) -> dict[str, str]:
    """Two saved retrievers, top 10: by precomputed vector and by text."""
    ids = {}
    with httpx.Client(base_url=url, headers=_headers(), timeout=60) as c:
        for name, template in (("vector", "{{INPUT.embedding}}"), ("text", "{{INPUT.query}}")):
            search = {"feature_uri": URI, "query": template, "top_k": K}
            stage = {
                "stage_name": "knn",
                "config": {
                    "stage_id": "feature_search",
                    "parameters": {"searches": [search], "final_top_k": K},
                },
            }
            body = {
                "retriever_name": f"bench-{name}",
                "collection_identifiers": [EXTRACTOR["feature_extractor_name"]],
                "stages": [stage],
            }
            ids[name] = _ok(c.post("/v1/retrievers", json=body))["retriever_id"]
    return ids


class RawConn:
    """A lean HTTP/1.1 keep-alive client over asyncio streams (Content-Length bodies only);
    httpx would spend more CPU than the server on this 2-core machine."""

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
        head = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (
            path.encode(),
            self.head,
            len(body),
        )
        self.writer.write(head + body)
        try:
            answer = await self.reader.readuntil(b"\r\n\r\n")
            status, length = int(answer[9:12]), -1
            for line in answer.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length < 0:
                raise RuntimeError("response without Content-Length")
            return status, await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection; the next request reopens it."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass
class HttpRun:
    latencies: list[float]
    answers: list[dict[str, Any] | None]  # by body index (first round only)
    wall: float
    errors: int
    samples: list[str]


def http_run(port: int, path: str, bodies: list[bytes], clients: int, rounds: int) -> HttpRun:
    """`clients` keep-alive connections sharing `rounds` passes over the bodies."""
    work = [(i, b) for _ in range(rounds) for i, b in enumerate(bodies)]
    run = HttpRun([], [None] * len(bodies), 0.0, 0, [])

    async def client(part: list[tuple[int, bytes]]) -> None:
        conn = RawConn(port, _headers())
        try:
            for i, body in part:
                t = time.perf_counter()
                try:
                    status, data = await conn.post(path, body)
                except Exception as exc:  # counted, never ignored
                    status, data = -1, repr(exc).encode()
                elapsed = time.perf_counter() - t
                if status != 200:
                    run.errors += 1
                    if len(run.samples) < 3:
                        run.samples.append(f"HTTP {status}: {data[:300].decode(errors='replace')}")
                    continue
                run.latencies.append(elapsed)
                if run.answers[i] is None:
                    run.answers[i] = orjson.loads(data)
        finally:
            conn.close()

    async def main() -> None:
        await asyncio.gather(*(client(work[c::clients]) for c in range(clients)))

    t0 = time.perf_counter()
    asyncio.run(main())
    run.wall = time.perf_counter() - t0
    return run


def _doc_indices(answer: dict[str, Any] | None) -> list[int]:
    if answer is None:
        return []
    return [int(r["document_id"][4:]) for r in answer["results"]]


def _stage_ms(runs: list[HttpRun]) -> float:
    """Median of the server's own `duration_ms` (the stages: embedding + index + fusion)."""
    values = [a["duration_ms"] for r in runs for a in r.answers if a is not None]
    return statistics.median(values) if values else float("nan")


@dataclass
class AssayFigures:
    rows: list[Row]
    load_s: float
    build: Build
    first_search_s: float
    first_text_s: float
    vector_stage_ms: float
    text_stage_ms: float


def vector_body(q: np.ndarray) -> bytes:
    """An execute body with a precomputed query vector (6 decimals, as the extractors emit)."""
    return orjson.dumps({"inputs": {"embedding": np.round(q.astype(np.float64), 6).tolist()}})


def bench_assay_http(
    port: int,
    rids: dict[str, str],
    queries: np.ndarray,
    truth: np.ndarray,
    cfg: Config,
) -> tuple[list[Row], float, float, float, float]:
    """Warm-up (index load, model load), then vector and text queries at 1 and N clients."""
    vec_path = f"/v1/retrievers/{rids['vector']}/execute"
    txt_path = f"/v1/retrievers/{rids['text']}/execute"
    vec_bodies = [vector_body(q) for q in queries]
    # Every text query is asked once: the server remembers query embeddings per text, and a
    # repeated text would measure that cache instead of MiniLM.
    sentences = make_sentences(len(queries) * (1 + cfg.rounds))
    txt_bodies = [orjson.dumps({"inputs": {"query": s}}) for s in sentences]
    first = http_run(port, vec_path, vec_bodies[:1], 1, 1)
    first_text = (
        http_run(port, txt_path, [orjson.dumps({"inputs": {"query": "warm up"}})], 1, 1)
        if not cfg.skip_text
        else None
    )
    for r in (first, first_text):
        if r is not None and r.errors:
            raise RuntimeError(f"first search failed: {r.samples}")
    http_run(port, vec_path, vec_bodies[:5], 1, 1)  # warm connections and caches
    rows: list[Row] = []
    runs: dict[str, list[HttpRun]] = {"vector": [], "text": []}
    q, vec, txt = len(queries), "Assay vector query (HTTP)", "Assay text query (HTTP, MiniLM)"
    passes = [
        ("vector", vec, vec_path, vec_bodies, 1, 1),
        ("vector", vec, vec_path, vec_bodies, cfg.concurrency, cfg.rounds),
    ]
    if not cfg.skip_text:
        passes += [
            ("text", txt, txt_path, txt_bodies[:q], 1, 1),
            ("text", txt, txt_path, txt_bodies[q:], cfg.concurrency, 1),
        ]
    for kind, name, path, bodies, clients, rounds in passes:
        run = http_run(port, path, bodies, clients, rounds)
        runs[kind].append(run)
        row = Row(name, f"{clients} client{'s' if clients > 1 else ''}")
        row.latencies, row.errors = run.latencies, run.errors
        row.qps = len(run.latencies) / run.wall
        if kind == "vector":
            row.recall = recall_at_k([_doc_indices(a) for a in run.answers], truth)
        if run.samples:
            row.note = run.samples[0][:80]
        rows.append(row)
    return (
        rows,
        first.latencies[0] if first.latencies else float("nan"),
        first_text.latencies[0] if first_text and first_text.latencies else float("nan"),
        _stage_ms(runs["vector"]),
        _stage_ms(runs["text"]),
    )


def bench_assay(
    vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, cfg: Config, work: Path
) -> AssayFigures:
    """Load, build, serve and query Assay on a fresh data dir under `work`."""
    data_dir = work / "assay-data"
    with AssayServer(data_dir, cfg.exact_below) as srv:
        setup = assay_setup(srv.url)
    console.print(f"  assay: namespace ready; loading {len(vectors):,} documents")
    load_s = load_documents(data_dir, setup, vectors)
    console.print(f"  assay: rows loaded in {load_s:.1f} s; building the index")
    build = assay_build(data_dir, setup, cfg.exact_below)
    console.print(f"  assay: {build.kind} index built in {build.seconds:.1f} s")
    with AssayServer(data_dir, cfg.exact_below) as srv:
        rids = create_retrievers(srv.url)
        rows, first_s, first_text_s, vec_ms, txt_ms = bench_assay_http(
            srv.port, rids, queries, truth, cfg
        )
    rows[0].build_s = build.seconds
    rows[0].note = f"rows {load_s:.1f} s, server's first search {first_s:.2f} s"
    return AssayFigures(rows, load_s, build, first_s, first_text_s, vec_ms, txt_ms)


# -- the whole run ----------------------------------------------------------------------------


@dataclass
class Config:
    queries: int = 200
    concurrency: int = 4
    rounds: int = 3
    data: DataSpec = field(default_factory=DataSpec)
    skip_lancedb: bool = False
    skip_text: bool = False
    share_graph: bool = False
    exact_below: int | None = None  # Assay's exact-search limit (None: the server default)
    lance_partitions: int | None = None
    lance_m: int = 20
    lance_ef_construction: int = 300
    lance_nprobes: int = 1
    workdir: Path | None = None


@dataclass
class SizeResult:
    n: int
    rows: list[Row]
    assay: AssayFigures
    lance: Lance | None
    checks: list[tuple[str, str, bool | None]]


def run_size(n: int, cfg: Config) -> SizeResult:
    """Every system on N vectors; prints progress, returns the figures."""
    t = time.perf_counter()
    vectors = make_vectors(n, cfg.data)
    queries = make_queries(cfg.queries, cfg.data)
    truth = exact_top_k(vectors, queries)
    console.print(f"[bold]N = {n:,}[/]: data + exact truth in {time.perf_counter() - t:.1f} s")
    base = cfg.workdir or ROOT / ".bench-cache"
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"search-{n}-", dir=base) as tmp:
        work = Path(tmp)
        raw_rows: list[Row] = []
        if not cfg.share_graph:
            index, build_s = raw_build(vectors)
            console.print(f"  raw usearch: built in {build_s:.1f} s")
            raw_rows = bench_raw(index, queries, truth, build_s)
            del index
        assay = bench_assay(vectors, queries, truth, cfg, work)
        if cfg.share_graph:
            if assay.build.kind != "hnsw":
                raise RuntimeError("--share-graph needs an HNSW index (N above the exact limit)")
            from assay.kit.ids import int_key

            # Assay's graph is keyed by doc_key: map those back to row numbers.
            rows_of = {int_key(document_id(i)): i for i in range(len(vectors))}
            raw_rows = bench_raw(
                raw_load(assay.build.path, vectors.shape[1]),
                queries,
                truth,
                assay.build.usearch_add_s,
                rows_of,
            )
            raw_rows[0].note = "Assay's saved graph; build = usearch add inside Assay's build"
        lance = None
        lance_rows: list[Row] = []
        if not cfg.skip_lancedb:
            console.print("  lancedb: writing the table and building IVF_HNSW_SQ")
            lance = lance_build(
                vectors,
                work / "lance",
                partitions=cfg.lance_partitions,
                m=cfg.lance_m,
                ef_construction=cfg.lance_ef_construction,
            )
            console.print(f"  lancedb: index built in {lance.index_s:.1f} s")
            # "At the same recall": within 0.01 of Assay's, and never under the target.
            want = max(RECALL_TARGET, (assay.rows[0].recall or 0.0) - 0.01)
            lance_tune(lance, queries, truth, want, cfg.lance_nprobes)
            lance_rows = bench_lance(
                lance, queries, truth, cfg.concurrency, cfg.rounds, cfg.lance_nprobes
            )
            lance.table = None
    rows = raw_rows + assay.rows + lance_rows
    return SizeResult(n, rows, assay, lance, _checks(n, raw_rows, assay, lance_rows))


def _find(rows: list[Row], system: str, mode: str) -> Row | None:
    return next((r for r in rows if r.system.startswith(system) and r.mode == mode), None)


def _checks(
    n: int, raw: list[Row], assay: AssayFigures, lance: list[Row]
) -> list[tuple[str, str, bool | None]]:
    """(target, measured, verdict); None: not measured at this size."""
    vec1 = _find(assay.rows, "Assay vector", "1 client")
    vecn = next(
        (r for r in assay.rows if r.system.startswith("Assay vector") and r is not vec1), None
    )
    txt1 = _find(assay.rows, "Assay text", "1 client")
    out: list[tuple[str, str, bool | None]] = []
    rec = vec1.recall if vec1 else None
    out.append(
        (f"Assay recall@10 >= {RECALL_TARGET}", f"{rec:.3f}" if rec is not None else "—",
         None if rec is None else rec >= RECALL_TARGET)
    )  # fmt: skip
    if txt1 is not None:
        p50 = txt1.pct(0.5)
        applies = n >= P50_TARGET_AT
        out.append(
            (f"text-query p50 <= {P50_TARGET_MS:g} ms at 1M (incl. embedding)",
             f"{p50:.2f} ms" + ("" if applies else " (target applies at 1M)"),
             (p50 <= P50_TARGET_MS) if applies else None)
        )  # fmt: skip
    if lance and vecn is not None:
        l1, ln = lance[0], lance[1]
        out.append(
            (f"Assay QPS > LanceDB QPS ({vecn.mode} vs {ln.mode})",
             f"{vecn.qps:,.0f} vs {ln.qps:,.0f} (recall {rec:.3f} vs {l1.recall:.3f})",
             vecn.qps > ln.qps)
        )  # fmt: skip
        if vec1 is not None:
            out.append(
                ("Assay QPS > LanceDB QPS (1 client vs 1 thread)",
                 f"{vec1.qps:,.0f} vs {l1.qps:,.0f}", vec1.qps > l1.qps)
            )  # fmt: skip
    raw1 = _find(raw, "raw usearch", "1 thread")
    if raw1 is not None and vec1 is not None:
        out.append(
            ("overhead ratio: Assay vector p50 / raw usearch p50",
             f"{vec1.pct(0.5):.2f} / {raw1.pct(0.5):.2f} ms = {vec1.pct(0.5) / raw1.pct(0.5):.1f}x",
             None)
        )  # fmt: skip
    return out


def report(result: SizeResult) -> None:
    """The figures table, the extra facts and the PASS/MISS lines of one size."""
    table = Table(title=f"Search at N = {result.n:,} (384-d, top {K})")
    for col in ("system", "mode", "build s", "recall@10", "p50 ms", "p99 ms", "QPS", "notes"):
        table.add_column(col, justify="left" if col in ("system", "mode", "notes") else "right")
    for r in result.rows:
        table.add_row(
            r.system,
            r.mode,
            "" if r.build_s is None else f"{r.build_s:.1f}",
            "" if r.recall is None else f"{r.recall:.3f}",
            f"{r.pct(0.5):.2f}" if r.latencies else "",
            f"{r.pct(0.99):.2f}" if r.latencies else "",
            f"{r.qps:,.0f}",
            (f"{r.errors} errors; " if r.errors else "") + r.note,
        )
    console.print(table)
    a = result.assay
    console.print(
        f"Assay: rows loaded in {a.load_s:.1f} s; {a.build.kind} index built in "
        f"{a.build.seconds:.1f} s (usearch add {a.build.usearch_add_s:.1f} s); server's first "
        f"search (loads the file) {a.first_search_s:.2f} s; first text query (loads MiniLM) "
        f"{a.first_text_s:.2f} s; server stage time median: vector {a.vector_stage_ms:.2f} ms, "
        f"text {a.text_stage_ms:.2f} ms"
    )
    if result.lance is not None:
        sweep = ", ".join(f"ef {ef}: {r:.3f} @ {ms:.2f} ms" for ef, r, ms in result.lance.sweep)
        console.print(
            f"LanceDB: table write {result.lance.write_s:.1f} s, index {result.lance.index_s:.1f}"
            f" s; ef sweep (recall @ p50): {sweep}"
        )
    for target, measured, ok in result.checks:
        verdict = "—" if ok is None else ("[green]PASS[/]" if ok else "[red]MISS[/]")
        console.print(f"  {target}: {measured} {verdict}")


def git_hash() -> str:
    """The short commit hash, with `+dirty` when tracked files have changes."""

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], capture_output=True, text=True, cwd=ROOT).stdout.strip()

    return (git("rev-parse", "--short", "HEAD") or "unknown") + (
        "+dirty" if git("status", "--porcelain", "--untracked-files=no") else ""
    )


def main() -> None:
    """Parse arguments, run every size and report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100000,1000000", help="comma-separated corpus sizes")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=4, help="HTTP clients / threads for QPS")
    p.add_argument("--rounds", type=int, default=3, help="passes over the queries for QPS")
    p.add_argument("--clusters", type=int, default=1_000)
    p.add_argument("--spread", type=float, default=1.0, help="noise norm / centre norm")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--skip-lancedb", action="store_true")
    p.add_argument("--skip-text", action="store_true", help="no MiniLM text queries")
    p.add_argument(
        "--share-graph",
        action="store_true",
        help="no separate raw build: raw usearch searches the graph Assay built",
    )
    p.add_argument("--exact-below", type=int, default=None, help="Assay's exact-search limit")
    p.add_argument("--lance-partitions", type=int, default=None)
    p.add_argument("--lance-m", type=int, default=20)
    p.add_argument("--lance-ef-construction", type=int, default=300)
    p.add_argument("--lance-nprobes", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=None, help="default: .bench-cache/")
    args = p.parse_args()
    # A terminated run still stops its server and removes its work folder.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cfg = Config(
        queries=args.queries,
        concurrency=args.concurrency,
        rounds=args.rounds,
        data=DataSpec(clusters=args.clusters, spread=args.spread, seed=args.seed),
        skip_lancedb=args.skip_lancedb,
        skip_text=args.skip_text,
        share_graph=args.share_graph,
        exact_below=args.exact_below,
        lance_partitions=args.lance_partitions,
        lance_m=args.lance_m,
        lance_ef_construction=args.lance_ef_construction,
        lance_nprobes=args.lance_nprobes,
        workdir=args.workdir,
    )
    console.print(f"commit {git_hash()}  command: {shlex.join([sys.executable, *sys.argv])}")
    console.print(
        f"{os.cpu_count()} cores; {cfg.data.clusters} clusters, spread {cfg.data.spread}, "
        f"seed {cfg.data.seed}; {cfg.queries} queries; {cfg.concurrency} clients x "
        f"{cfg.rounds} rounds for QPS"
    )
    for n in (int(s) for s in args.sizes.split(",") if s.strip()):
        report(run_size(n, cfg))


if __name__ == "__main__":
    main()
