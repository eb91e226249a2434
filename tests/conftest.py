"""Shared fixtures: a fresh data dir per test, the app over ASGI, and a live uvicorn server."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image, ImageDraw

from assay.config import Settings
from assay.kit import serving
from assay.main import create_app
from tests.databases import another_database, database_backend, parametrize_backends, postgres

__all__ = [
    "another_database",
    "database_backend",
    "postgres",
]  # fixtures, shared with every test module


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_backends(metafunc)


ADMIN_KEY = "sk_live_test_admin_key_0123456789"
SEED_SCHEMA = {
    "properties": {
        "product_text": {"type": "text", "required": True},
        "hero_image": {"type": "image"},
    }
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY)


@asynccontextmanager
async def open_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI with these settings; a crash reads as a 500 answer, not an exception."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://assay.test",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as c:
            yield c


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI (real routing, middleware and database), authenticated as admin."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://assay.test",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as c:
            yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving Assay's app for `settings` (or another app) on loopback in a
    background thread."""

    def __init__(self, settings: Settings | FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = settings if isinstance(settings, FastAPI) else create_app(settings)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            http=serving.http_protocol(),  # as `assay serve` runs it
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as server:
        yield server


S3_BUCKET = "assay-contract"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (one per test run) with a test bucket created."""
    from moto.server import ThreadedMotoServer  # heavy: only for the S3 tests

    with pytest.MonkeyPatch.context() as mp:
        # Nothing below may pick up a developer's real AWS identity.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            mp.setenv(name, "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            raw_s3_client(endpoint).create_bucket(Bucket=S3_BUCKET)
            yield endpoint
        finally:
            server.stop()


def raw_s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def png_bytes(text: str = "HELLO", size: tuple[int, int] = (96, 48)) -> bytes:
    """A small PNG with a word drawn on it."""
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).text((8, 16), text, fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def make_namespace(client: httpx.AsyncClient, name: str = "production") -> dict[str, Any]:
    r = await client.post(
        "/v1/namespaces",
        json={
            "namespace_name": name,
            "feature_extractors": [
                {"feature_extractor_name": "multimodal_extractor", "version": "v1"}
            ],
        },
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def make_bucket(
    client: httpx.AsyncClient,
    namespace: str,
    name: str = "product-catalog",
    schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    r = await client.post(
        "/v1/buckets",
        headers={"X-Namespace": namespace},
        json={"bucket_name": name, "bucket_schema": schema or SEED_SCHEMA},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


class Origin:
    """A real HTTP server on loopback with fixed routes; records every path it is asked for."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: list[str] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                origin.hits.append(self.path)
                default = (404, {"Content-Type": "text/plain"}, b"no such thing")
                status, headers, body = origin.routes.get(self.path, default)
                headers = dict(headers)
                self.send_response(status)
                if headers.pop("X-No-Length", None):
                    self.close_connection = True  # body delimited by closing the connection
                    headers = {**headers, "Connection": "close"}
                else:
                    headers = {**headers, "Content-Length": str(len(body))}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def serve(
        self, path: str, body: bytes, content_type: str, status: int = 200, **extra: str
    ) -> str:
        self.routes[path] = (status, {"Content-Type": content_type, **extra}, body)
        return self.base + path

    def redirect(self, path: str, location: str) -> str:
        self.routes[path] = (302, {"Location": location}, b"")
        return self.base + path


@pytest.fixture
def origin() -> Iterator[Origin]:
    o = Origin()
    o.thread.start()
    try:
        yield o
    finally:
        o.server.shutdown()
        o.server.server_close()


def save_tiny_clip(folder: Path) -> Path:
    """A randomly initialised CLIP (16-d, 32 px images) with its processor, saved offline.

    The tokenizer is byte-level BPE over single bytes (no merges), so every text tokenizes
    without a downloaded vocabulary.
    """
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for char in bytes_to_unicode().values():
            vocab[char + suffix] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=32)
    images = CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    layers = {"num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "max_position_embeddings": 32,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
            **layers,
        },
        vision_config={"hidden_size": 32, "image_size": 32, "patch_size": 8, **layers},
        projection_dim=16,
    )
    import torch

    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


TINY_CLIP_DIM = 16


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a tiny random CLIP model, for `clip_model_path`."""
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))
