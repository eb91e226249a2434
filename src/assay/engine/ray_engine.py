"""The Ray engine (`engine = "ray"`): the extraction inside a job runs on a Ray cluster.

The jobs table stays the durable record: a worker claims a job under its lease and heartbeats
it as always, and only the extractor calls inside the job go to the cluster. For each extractor
of the job:

1. Objects with bytes to read or images to decode are cut into parts, one CPU task each
   (`ray_actors.decode`), which read the blob store themselves and decode in parallel.
2. The parts go to the extractor's actor pool (one pool per extractor kind,
   `ray_actors_per_extractor` actors spread over the nodes, each with a share of a GPU when the
   cluster has GPUs), split over its actors; each actor runs its share in one batched call.
   Decoded parts travel from the tasks to the actors through Ray's object store, not through
   this process; audio and video stay keys, streamed from the blob store inside the actor.
3. The documents come back here, and the job writes them through the documents layer as it
   does with the local engine: same rows, same lineage keys.

Faults. An actor (or its node) that dies mid-call fails the job's attempt: the job is retried
under the jobs table's attempts, the dead actor is replaced, and documents are replaced by
lineage, so every object ends with one document set. A task whose worker dies is retried by
Ray. A cluster that does not answer (probed over TCP before every job and while waiting on
one) raises `EngineUnavailable`: the job goes back to the queue, its attempt uncounted, and
`/readyz` says why; with `ray_fallback_local` the job runs in this process instead.

Pools are named actors in the `assay` namespace, shared by every Assay process on the cluster
(whichever needs one first creates it; it lives as long as that process).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayError

from assay.config import Settings
from assay.engine.extraction import EngineUnavailable, ExtractionExecutor, LocalExecutor
from assay.engine.ray_actors import (
    ClusterConfig,
    Failed,
    ModelFailed,
    RemoteExtractor,
    Result,
    decode_task,
    decodes,
)
from assay.extractors.base import Extracted, Extractor, ObjectInput
from assay.extractors.models import ModelLoadError
from assay.kit.logs import event

log = logging.getLogger("assay.engine")

NAMESPACE = "assay"
# Extractor kinds with models (text, image, multimodal): their actors share one GPU, since
# their models take well under a GB each; a whole GPU per actor would leave a second kind's
# pool waiting for a GPU forever on a one-GPU node.
GPU_SHARE = 1 / 3
PROBE_S = 2.0  # a job waiting on the cluster checks it is still there this often
PROBE_TIMEOUT_S = 1.0
MAX_DECODE_PARTS = 64
# Ray's driver exits its whole process when the cluster's head (GCS) is gone for 60 s; the
# process also serves the API or other jobs, so it waits (the jobs are postponed meanwhile).
_RECONNECT_ENV = "RAY_gcs_rpc_server_reconnect_timeout_s"
_RECONNECT_S = 30 * 24 * 3600


class ExtractionInterrupted(RuntimeError):
    """The cluster lost the work in flight (an actor or its node died): the job is retried."""


def actor_name(name: str, version: str, index: int) -> str:
    """The name of an extractor actor of the pool (in the `assay` Ray namespace)."""
    return f"{name}@{version}/{index}"


def probe(address: str) -> str | None:
    """None if something accepts TCP connections at `address` (`host:port`, or `ray://...`),
    else why not. Ray itself retries an unreachable address for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return None  # not an address to probe ("auto"): ray.init finds out
    try:
        with socket.create_connection((host.strip("[]"), int(port)), PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


class RayEngine:
    """Connects to Ray on the first job that needs it and hands out its executor.

    Every `ray.init` and `ray.shutdown` runs on one thread that lives as long as the engine: a
    local Ray instance's processes are tied to the thread that started them and stop when it
    ends.
    """

    def __init__(self, settings: Settings) -> None:
        self.address = settings.ray_address
        self.pool_size = settings.ray_actors_per_extractor
        self.fallback_local = settings.ray_fallback_local
        self.config = ClusterConfig.from_settings(settings)
        self._owner = ThreadPoolExecutor(1, thread_name_prefix="assay-ray")
        self._current: RayExecutor | None = None
        self._lost: str | None = None  # why the current connection is no longer good
        self._error: str | None = None  # why the last connection attempt failed
        self._started = False  # this engine called ray.init (so it calls ray.shutdown)
        self._seen_at = 0.0  # when the cluster last answered a probe (monotonic)
        self._local = LocalExecutor()

    async def executor(self) -> ExtractionExecutor:
        try:
            return await asyncio.wrap_future(self._owner.submit(self._connect))
        except EngineUnavailable as exc:
            if not self.fallback_local:
                raise
            event(log, "ray.fallback_local", level=logging.WARNING, reason=str(exc))
            return self._local

    def status(self) -> str:
        current = self._current
        target = current.gcs_address if current is not None else self.address
        if target is None:
            return "ok"  # a local Ray instance starts with the first job
        problem = probe(target)
        if problem is not None:
            return f"error: cannot reach the Ray cluster at {target}: {problem}"
        if current is None and self._error is not None:
            return f"error: {self._error}"
        return "ok"

    def close(self) -> None:
        try:
            self._owner.submit(self._disconnect).result(timeout=60)
        except TimeoutError:  # a connection attempt still hangs: the process ends anyway
            log.warning("ray: the engine did not close within 60 s")
        finally:
            self._owner.shutdown(wait=False)

    def check_alive(self, gcs_address: str) -> None:
        """Raise EngineUnavailable when the cluster's head no longer answers."""
        problem = probe(gcs_address)
        if problem is not None:
            self._lost = f"lost the Ray cluster at {gcs_address}: {problem}"
            raise EngineUnavailable(self._lost)

    def _connect(self) -> RayExecutor:
        current = self._current
        if current is not None:
            if self._lost is None and self._answers(current.gcs_address):
                return current
            self._disconnect()
        if self.address is not None and (problem := probe(self.address)) is not None:
            self._error = f"cannot reach the Ray cluster at {self.address}: {problem}"
            raise EngineUnavailable(self._error)
        if not ray.is_initialized():  # else this process started Ray itself (a test): use it
            self._init()
        resources = ray.cluster_resources()
        self._current = RayExecutor(
            self,
            ray.get_runtime_context().gcs_address,
            decode_parts=max(1, min(MAX_DECODE_PARTS, int(resources.get("CPU", 1)))),
            gpu_share=GPU_SHARE if resources.get("GPU", 0) > 0 else 0.0,
        )
        self._lost = self._error = None
        cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
        event(log, "ray.connected", address=self._current.gcs_address, cpus=cpus, gpus=gpus)
        return self._current

    def _answers(self, gcs_address: str) -> bool:
        """Whether the cluster answers: probed at most every PROBE_S (a job waiting on it probes
        as often), not once per job."""
        now = time.monotonic()
        if now - self._seen_at < PROBE_S:
            return True
        if probe(gcs_address) is not None:
            return False
        self._seen_at = now
        return True

    def _init(self) -> None:
        where = self.address or "a local Ray instance"
        os.environ.setdefault(_RECONNECT_ENV, str(_RECONNECT_S))
        try:
            if self.address is not None:
                ray.init(address=self.address, namespace=NAMESPACE, logging_level=logging.WARNING)
            else:
                ray.init(
                    address="local",
                    namespace=NAMESPACE,
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                )
        except Exception as exc:
            self._error = f"cannot join {where}: {type(exc).__name__}: {exc}"[:1000]
            if ray.is_initialized():
                ray.shutdown()
            raise EngineUnavailable(self._error) from exc
        self._started = True

    def _disconnect(self) -> None:
        self._current = None
        if self._started:
            self._started = False
            ray.shutdown()


@dataclass
class _Call:
    """One actor's share of a job: the indexes of the parts it runs, in order."""

    actor: Any
    parts: list[int]
    ref: Any
    answer: list[Result] | None = None


class RayExecutor:
    """A job's extractor calls on the cluster (see the module docstring)."""

    local_files = False

    def __init__(
        self, engine: RayEngine, gcs_address: str, decode_parts: int, gpu_share: float
    ) -> None:
        self.engine = engine
        self.gcs_address = gcs_address
        self.decode_parts = decode_parts
        self.gpu_share = gpu_share
        self._pools: dict[tuple[str, str], _Pool] = {}
        self._pools_lock = threading.Lock()
        self._turn = itertools.count()  # spreads jobs over a pool's actors

    def extract_many(
        self, impl: Extractor, objects: Sequence[ObjectInput], params: dict[str, Any]
    ) -> list[Extracted]:
        if not objects:
            return []
        pool = self._pool(impl.spec.name, impl.spec.version)
        actors = pool.actors()
        parts = _split(list(objects), self._part_count(objects, len(actors)))
        config = self.engine.config
        sent = [decode_task.remote(config, p) if any(map(decodes, p)) else p for p in parts]
        first = next(self._turn)
        calls = []
        for a in range(min(len(actors), len(parts))):
            actor = actors[(first + a) % len(actors)]
            mine = list(range(a, len(parts), len(actors)))
            ref = actor.extract.remote(config, params, *[sent[i] for i in mine])
            calls.append(_Call(actor, mine, ref))
        self._gather(calls, pool, impl.spec.name)
        results: list[list[Result]] = [[] for _ in parts]
        for call in calls:
            answer = call.answer or []
            for i in call.parts:
                results[i], answer = answer[: len(parts[i])], answer[len(parts[i]) :]
        return [_extracted(r) for part in results for r in part]

    def _part_count(self, objects: Sequence[ObjectInput], actors: int) -> int:
        work = sum(1 for o in objects if decodes(o))
        wanted = max(actors, min(self.decode_parts, work)) if work else actors
        return max(1, min(wanted, len(objects)))

    def _pool(self, name: str, version: str) -> _Pool:
        with self._pools_lock:
            key = (name, version)
            if key not in self._pools:
                self._pools[key] = _Pool(name, version, self.engine.pool_size, self.gpu_share)
            return self._pools[key]

    def _gather(self, calls: list[_Call], pool: _Pool, name: str) -> None:
        """Every call's answer, waited for as long as the calls take while the cluster answers;
        a dead actor is dropped from its pool and interrupts the job."""
        pending = {call.ref: call for call in calls}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=PROBE_S)
            if not ready:
                self.engine.check_alive(self.gcs_address)
                continue
            call = pending.pop(ready[0])
            try:
                answer: list[Result] | ModelFailed = ray.get(call.ref)
            except ActorDiedError as exc:
                pool.forget(call.actor)
                raise ExtractionInterrupted(f"a {name} actor died mid-job: {exc}") from exc
            except RayError as exc:  # a decoding task lost, an actor out of reach, a bug
                self.engine.check_alive(self.gcs_address)
                raise ExtractionInterrupted(f"{name} on Ray: {exc}") from exc
            if isinstance(answer, ModelFailed):
                raise ModelLoadError(answer.message)
            call.answer = answer


class _Pool:
    """The actors of one extractor kind; a dead one is made again on next use."""

    def __init__(self, name: str, version: str, size: int, gpu_share: float) -> None:
        self.name = name
        self.version = version
        self.gpu_share = gpu_share
        self._actors: list[Any] = [None] * size
        self._lock = threading.Lock()

    def actors(self) -> list[Any]:
        with self._lock:
            for i, actor in enumerate(self._actors):
                if actor is None:
                    self._actors[i] = RemoteExtractor.options(
                        name=actor_name(self.name, self.version, i),
                        namespace=NAMESPACE,
                        get_if_exists=True,
                        max_concurrency=1,
                        num_gpus=self.gpu_share,
                        scheduling_strategy="SPREAD",
                    ).remote(self.name, self.version)
            return list(self._actors)

    def forget(self, actor: Any) -> None:
        """Drop a dead actor. Ray keeps the name of a named actor whose process crashed
        bound to it (every `get_if_exists` would answer the dead one) until it is killed."""
        with self._lock:
            self._actors = [None if a is actor else a for a in self._actors]
        with contextlib.suppress(RayError, ValueError):
            ray.kill(actor, no_restart=True)


def _split(objects: list[ObjectInput], n: int) -> list[list[ObjectInput]]:
    """`objects` in `n` contiguous parts of near-equal size (the service orders a job's
    objects by size, so the parts weigh alike)."""
    size, extra = divmod(len(objects), n)
    parts, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        parts.append(objects[start:end])
        start = end
    return parts


def _extracted(result: Result) -> Extracted:
    return result.error() if isinstance(result, Failed) else result
