"""Settings: ASSAY_* environment variables, then `assay.toml` in the data dir, then defaults."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from assay.kit.limits import MediaLimits


def default_data_dir() -> Path:
    """Where Assay keeps its data unless told (`--data-dir`, `ASSAY_DATA_DIR`): the per-user
    data folder, `$XDG_DATA_HOME/assay`, i.e. `~/.local/share/assay`. One place, whatever
    folder a command runs in, so `assay keys list` finds what `assay serve` made."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "assay"


class Settings(BaseSettings):
    """Everything an operator can set. Paths left empty are derived from `data_dir`."""

    model_config = SettingsConfigDict(env_prefix="ASSAY_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: default_data_dir())
    database_url: str = ""
    blob_store: str = ""
    # For an `s3://` blob store; None leaves boto3's defaults (AWS endpoint, env or role creds).
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    admin_key: str | None = None
    # Signs upload URLs. Every API process of one deployment needs the same one: set it (32+
    # characters) when they do not share a data dir; else it is made once in the data dir.
    signing_key: str | None = Field(default=None, min_length=32)
    allow_private_urls: bool = False

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=0, le=64)  # in-server job workers (0: none)
    job_lease_s: float = 30.0
    webhook_timeout_s: float = 10.0
    webhook_retry_horizon_s: float = 24 * 3600

    max_request_bytes: int = 64 * 1024 * 1024
    # FastAPI's native OpenTelemetry (a span and metrics a request, through the process's
    # global providers). Off, its per-request check of those providers is skipped (~5 µs).
    opentelemetry: bool = False
    # Requests a second per API key, per API process, and the burst allowed (0: no limit).
    rate_limit_per_s: float = Field(default=0.0, ge=0)
    rate_limit_burst: int = Field(default=50, ge=1)
    # Per-namespace quotas over all its buckets (0: none): objects, and bytes of their blobs.
    namespace_max_objects: int = Field(default=0, ge=0)
    namespace_max_bytes: int = Field(default=0, ge=0)
    # Blobs up to this size live in the metadata database, larger ones in the blob store.
    small_blob_max_bytes: int = 64 * 1024
    max_upload_bytes: int = 64 * 1024**3
    # Base of signed upload URLs; empty: the address the client used to reach the API.
    public_url: str = ""
    fetch_max_bytes: int = 512 * 1024 * 1024
    fetch_timeout_s: float = 30.0
    idempotency_ttl_s: int = 24 * 3600
    key_cache_ttl_s: float = 5.0
    lookup_cache_ttl_s: float = 5.0
    write_batch_max: int = Field(default=256, ge=1)
    # File vector indexes search exactly (numpy) up to this many vectors, then switch to HNSW.
    exact_search_below: int = Field(default=20_000, ge=0)
    # Where vectors are searched: "file" (usearch/exact caches under the data dir), "pgvector"
    # (inside PostgreSQL), or "auto": pgvector on PostgreSQL, files on SQLite.
    vector_index: Literal["auto", "file", "pgvector"] = "auto"
    # What one blob may cost to decode (see assay.kit.limits.MediaLimits for the reasons).
    max_image_pixels: int = Field(default=MediaLimits.max_image_pixels, ge=1)
    max_media_duration_s: float = Field(default=MediaLimits.max_media_duration_s, gt=0)
    min_media_bitrate_bps: float = Field(default=MediaLimits.min_media_bitrate_bps, ge=0)
    max_video_frames: int = Field(default=MediaLimits.max_video_frames, ge=1)
    max_video_windows: int = Field(default=MediaLimits.max_video_windows, ge=1)

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'assay.db'}"
        if not self.blob_store:
            self.blob_store = f"file://{self.data_dir / 'blobs'}"
        return self

    @property
    def media_limits(self) -> MediaLimits:
        return MediaLimits(
            max_image_pixels=self.max_image_pixels,
            max_media_duration_s=self.max_media_duration_s,
            min_media_bitrate_bps=self.min_media_bitrate_bps,
            max_video_frames=self.max_video_frames,
            max_video_windows=self.max_video_windows,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls, init_settings))

    # Maintenance (garbage collection, retention, backups)
    gc_interval_s: float = Field(default=300, ge=0)  # background sweeps (0: none)
    gc_scan_interval_s: float = Field(default=24 * 3600, ge=0)  # walks of the blob store
    gc_batch_size: int = Field(default=500, ge=1)  # rows per delete transaction
    blob_grace_s: float = Field(default=3600, ge=0)  # unreferenced bytes kept at least this long
    upload_retention_h: float = Field(default=24, ge=0)  # unconfirmed uploads, past their expiry
    event_retention_days: float = Field(default=7, ge=0)  # dispatched events
    delivery_retention_days: float = Field(default=30, ge=0)  # delivered or failed deliveries
    vector_log_retention_h: float = Field(default=24, ge=0)  # passed `vector_log` rows

    # Ray engine
    engine: Literal["local", "ray"] = "local"  # where a job's extraction runs
    ray_address: str | None = None  # host:port of a running cluster; None: a local Ray in-process
    ray_actors_per_extractor: int = Field(default=1, ge=1, le=1024)  # model actors per kind
    ray_fallback_local: bool = False  # cluster unreachable: extract locally instead of waiting


class _TomlSource(PydanticBaseSettingsSource):
    """Reads `assay.toml` from the data dir chosen by arguments or the environment."""

    def __init__(self, settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._init = init

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data_dir = (
            self._init().get("data_dir") or os.environ.get("ASSAY_DATA_DIR") or default_data_dir()
        )
        path = Path(data_dir) / "assay.toml"
        if not path.is_file():
            return {}
        with path.open("rb") as fh:
            return tomllib.load(fh)
