"""What runs on the Ray cluster: blob reading and decoding tasks, and the extractors' actors.

Both reach blob bytes through the blob store (a folder every node mounts at the same path, or
S3), never through the Assay process that drives them: what it sends is the objects with their
keys, plus the few small blobs that live in the database. Everything sent back and forth here is
plain data: extractor errors travel as `Failed` (an exception with its own constructor
arguments does not survive pickling), a model that cannot load as `ModelFailed`.

Imported only with `engine = "ray"` (by `ray_engine.py`, and by Ray's worker processes).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import ray

from assay.backends.blob.base import BlobNotFound, BlobStore
from assay.backends.blob.factory import make_blob_store
from assay.config import Settings
from assay.documents.drafts import DocumentDraft
from assay.extractors.base import (
    BlobInput,
    Extracted,
    ExtractorError,
    ObjectInput,
    RetriableExtractorError,
)
from assay.extractors.builtin.image import open_image
from assay.extractors.model_cache import MODELS
from assay.extractors.models import ModelLoadError
from assay.extractors.registry import ExtractorRegistry
from assay.kit.limits import MediaLimits
from assay.kit.scratch import Scratch

# Blob types decoded inside the actor, as a stream: their decoders hand pieces to the models as
# they go (30-s audio windows to Whisper, one keyframe per window to the classifier), and a
# whole decoded hour would not fit in memory.
STREAMED = frozenset({"audio", "video"})


@dataclass(frozen=True)
class ClusterConfig:
    """What the cluster's processes need from the settings: the blob store and the decoding
    limits (the same as the Assay processes', so both engines judge a blob alike)."""

    blob_store: str
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = field(default=None, repr=False)
    limits: MediaLimits = field(default_factory=MediaLimits)

    @classmethod
    def from_settings(cls, settings: Settings) -> ClusterConfig:
        return cls(
            blob_store=settings.blob_store,
            s3_endpoint_url=settings.s3_endpoint_url,
            s3_region=settings.s3_region,
            s3_access_key_id=settings.s3_access_key_id,
            s3_secret_access_key=settings.s3_secret_access_key,
            limits=settings.media_limits,
        )


@lru_cache(maxsize=8)
def blob_store(config: ClusterConfig) -> BlobStore:
    """The blob store of `config`, made once per process (an S3 client takes ~50 ms)."""
    return make_blob_store(
        config.blob_store,
        endpoint_url=config.s3_endpoint_url,
        region=config.s3_region,
        access_key_id=config.s3_access_key_id,
        secret_access_key=config.s3_secret_access_key,
    )


@dataclass(frozen=True)
class Failed:
    """One object that failed on the cluster: its extractor error, as plain data."""

    error_type: str
    message: str
    retriable: bool = False

    @classmethod
    def of(cls, exc: ExtractorError) -> Failed:
        return cls(exc.error_type, exc.message, isinstance(exc, RetriableExtractorError))

    def error(self) -> ExtractorError:
        kind = RetriableExtractorError if self.retriable else ExtractorError
        return kind(self.error_type, self.message)


@dataclass(frozen=True)
class ModelFailed:
    """The extractor's model could not load: every object of the call fails at once."""

    message: str


@dataclass(frozen=True)
class ActorInfo:
    """What an extractor actor is doing, answered while it works."""

    pid: int
    node_id: str
    calls: int
    busy: bool
    models: list[str]


Slot = ObjectInput | Failed
Result = list[DocumentDraft] | Failed


def _gone(exc: BlobNotFound) -> Failed:
    return Failed("BlobNotFound", f"blob bytes are gone: {exc}")  # as the local engine says


def decodes(obj: ObjectInput) -> bool:
    """Whether `obj` has work for a decoding task: an image to decode, or stored bytes to read
    (audio and video are left to the actor)."""
    return any(
        b.type not in STREAMED and (b.storage_key is not None or (b.type == "image" and b.loaded))
        for b in obj.blobs
    )


def decode(config: ClusterConfig, objects: list[ObjectInput]) -> list[Slot]:
    """A Ray task (one CPU): `objects` with their stored text and JSON read and their images
    decoded, in order; an object whose bytes are gone becomes a `Failed`.

    An image becomes RGB at the extractor's working size, carried as PPM (a header and the raw
    pixels, which the extractor opens again with one copy): the actor gets the pixels, and the
    extractor's own path (limits, draft-mode JPEG scaling, shrinking) runs unchanged, once, here.
    An image that does not decode is passed on as it is, so the extractor reports it exactly as
    the local engine does.
    """
    store = blob_store(config)
    out: list[Slot] = []
    for obj in objects:
        try:
            blobs = tuple(_decoded(store, config.limits, b) for b in obj.blobs)
        except BlobNotFound as exc:
            out.append(_gone(exc))
            continue
        out.append(replace(obj, blobs=blobs))
    return out


def _decoded(store: BlobStore, limits: MediaLimits, blob: BlobInput) -> BlobInput:
    if blob.type in STREAMED:
        return blob
    if blob.storage_key is not None:
        blob = located(store, blob)
    if blob.type != "image" or not blob.loaded:
        return blob
    try:
        image = open_image(blob, limits)
    except ExtractorError:
        return blob
    buf = io.BytesIO()
    image.save(buf, format="PPM")
    return replace(blob, data=buf.getvalue(), path=None)


def located(
    store: BlobStore, blob: BlobInput, folder: Callable[[], Path] | None = None
) -> BlobInput:
    """`blob` with its stored bytes at hand: the store's own file where it keeps one (a folder
    every node mounts), else the bytes in memory, or, given `folder`, a copy streamed into it.
    BlobNotFound when they are gone."""
    key = blob.storage_key
    if key is None:
        return blob
    path = store.local_path(key)
    if path is not None:
        return replace(blob, path=path, storage_key=None)
    if folder is None:
        return replace(blob, data=b"".join(store.read_range(key, 0, None)), storage_key=None)
    copy = folder() / hashlib.sha256(key.encode()).hexdigest()
    with copy.open("wb") as out:
        for piece in store.read_range(key, 0, None):
            out.write(piece)
    return replace(blob, path=copy, storage_key=None)


class ExtractorActor:
    """One extractor kind's models, loaded on first use and kept for the actor's life.

    `extract` calls run one at a time, each over a whole share of a job's objects, so the models
    run full batches; `info` answers beside them (its own concurrency group). With a GPU share,
    Ray makes the GPU visible and the models load onto it (`extractors.models.device`).
    """

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        self._registries: dict[MediaLimits, ExtractorRegistry] = {}
        self._calls = 0
        self._busy = False

    def extract(
        self, config: ClusterConfig, params: dict[str, Any], *groups: list[Slot]
    ) -> list[Result] | ModelFailed:
        """The documents of every object of `groups` (decoded by tasks, or sent as they are),
        in order: one `extract_many` over all of them."""
        self._busy = True
        try:
            return self._extract(config, params, [s for g in groups for s in g])
        finally:
            self._busy = False
            self._calls += 1

    @ray.method(concurrency_group="info")
    def info(self) -> ActorInfo:
        node = ray.get_runtime_context().get_node_id()
        return ActorInfo(os.getpid(), node, self._calls, self._busy, MODELS.loaded())

    def _extract(
        self, config: ClusterConfig, params: dict[str, Any], slots: list[Slot]
    ) -> list[Result] | ModelFailed:
        registry = self._registries.get(config.limits)
        if registry is None:
            registry = self._registries[config.limits] = ExtractorRegistry(limits=config.limits)
        impl = registry.implementation(self.name, self.version)
        store = blob_store(config)
        out: list[Result | None] = [None] * len(slots)
        live: list[tuple[int, ObjectInput]] = []
        with Scratch("assay-ray-") as folder:
            for i, slot in enumerate(slots):
                if isinstance(slot, Failed):
                    out[i] = slot
                    continue
                try:
                    blobs = tuple(located(store, b, folder.path) for b in slot.blobs)
                except BlobNotFound as exc:
                    out[i] = _gone(exc)
                    continue
                live.append((i, replace(slot, blobs=blobs)))
            try:
                found: list[Extracted] = impl.extract_many([o for _, o in live], params)
            except ModelLoadError as exc:
                return ModelFailed(str(exc))
        for (i, _), result in zip(live, found, strict=True):
            out[i] = Failed.of(result) if isinstance(result, ExtractorError) else result
        return [r for r in out if r is not None]


# The remote forms. Actors hold no CPU while they live (Ray's default for actors: one CPU to be
# placed, none held), so the pools of every kind fit beside the decoding tasks; their models use
# the node's cores themselves (`extractors.models` sizes their thread pools to the machine).
RemoteExtractor = ray.remote(concurrency_groups={"info": 1})(ExtractorActor)  # type: ignore[call-overload]
decode_task = ray.remote(num_cpus=1, max_retries=3)(decode)
