"""The long-lived things a request or job needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assay.auth.service import KeyCache
from assay.backends.blob.base import BlobStore
from assay.backends.blob.factory import make_blob_store
from assay.config import Settings
from assay.engine.extraction import ExtractionEngine, LocalEngine, make_engine
from assay.extractors.registry import ExtractorRegistry
from assay.kit.db import Database
from assay.kit.fetch import FetchPolicy
from assay.kit.ratelimit import RateLimiter
from assay.kit.scratch import release_process_folder, sweep_dead_folders
from assay.kit.signing import load_or_create_key
from assay.kit.ttlcache import TTLCache
from assay.objects.materialize import Materializer
from assay.objects.registration import Registrar
from assay.objects.service import Quota
from assay.objects.storage import BlobKeeper
from assay.retrievers.indexes import make_feature_index
from assay.retrievers.queries import QueryEmbedder
from assay.retrievers.service import Searcher


@dataclass
class AppContext:
    settings: Settings
    db: Database
    blobs: BlobStore
    registry: ExtractorRegistry
    keys: KeyCache
    fetch_policy: FetchPolicy
    keeper: BlobKeeper
    signing_key: bytes
    # Names and ids of namespaces and buckets, for a few seconds; cleared on every change.
    lookups: TTLCache[tuple[str, ...], Any]
    searcher: Searcher
    rate_limiter: RateLimiter
    registrar: Registrar  # registration on this process's backends, built once
    # Where batch jobs' extraction runs (this process, or a Ray cluster joined on first use).
    engine: ExtractionEngine = field(default_factory=LocalEngine)

    @classmethod
    def build(cls, settings: Settings) -> AppContext:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        sweep_dead_folders(settings.tmp_dir)  # files a killed process left mid-registration
        db = Database(settings.database_url, group_max=settings.write_batch_max)
        blobs = make_blob_store(
            settings.blob_store,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )
        registry = ExtractorRegistry(limits=settings.media_limits)
        keeper = BlobKeeper(blobs, db)
        lookups: TTLCache[tuple[str, ...], Any] = TTLCache(settings.lookup_cache_ttl_s)
        fetch_policy = FetchPolicy(
            allow_private=settings.allow_private_urls,
            max_bytes=settings.fetch_max_bytes,
            timeout_s=settings.fetch_timeout_s,
        )
        return cls(
            settings=settings,
            db=db,
            blobs=blobs,
            keeper=keeper,
            signing_key=(
                settings.signing_key.encode()
                if settings.signing_key
                else load_or_create_key(settings.data_dir / "signing.key")
            ),
            lookups=lookups,
            registry=registry,
            searcher=Searcher(
                registry,
                make_feature_index(
                    settings.vector_index,
                    settings.database_url,
                    db.engine,
                    settings.data_dir / "indexes",
                    settings.exact_search_below,
                ),
                QueryEmbedder(settings.media_limits, registry),
            ),
            keys=KeyCache(settings.key_cache_ttl_s),
            rate_limiter=RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
            registrar=_registrar(settings, db, blobs, keeper, lookups, fetch_policy),
            engine=make_engine(settings),
            fetch_policy=fetch_policy,
        )

    def close(self) -> None:
        self.searcher.indexes.save_all()
        self.engine.close()
        self.db.close()
        release_process_folder(self.settings.tmp_dir)


def _registrar(
    settings: Settings,
    db: Database,
    blobs: BlobStore,
    keeper: BlobKeeper,
    lookups: TTLCache[tuple[str, ...], Any],
    fetch_policy: FetchPolicy,
) -> Registrar:
    materializer = Materializer(
        fetch_policy,
        settings.tmp_dir,
        settings.small_blob_max_bytes,
        s3_download=getattr(blobs, "download", None),  # only the S3 store has one
        limits=settings.media_limits,
    )
    quota = Quota(settings.namespace_max_objects, settings.namespace_max_bytes)
    return Registrar(db, keeper, materializer, lookups, quota)
