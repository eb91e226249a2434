"""The seed's curl commands, verbatim but for the host, against a live server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from assay.config import Settings
from tests.conftest import ADMIN_KEY, LiveServer, png_bytes

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")

# From the product's quick-start ("Set Up a Namespace", "Create a Bucket", "Register Objects").
SEED = r"""
curl -X POST "https://api.mixpeek.com/v1/namespaces" \
  -H "Authorization: Bearer $MIXPEEK_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{
    "namespace_name": "production",
    "feature_extractors": [
      { "feature_extractor_name": "multimodal_extractor", "version": "v1" }
    ]
  }'
---
curl -X POST "https://api.mixpeek.com/v1/buckets" \
  -H "Authorization: Bearer $MIXPEEK_API_KEY" \
  -H "X-Namespace: $NAMESPACE_ID" \
  -H "Content-Type: application/json" \
  -d '{
    "bucket_name": "product-catalog",
    "bucket_schema": {
      "properties": {
        "product_text": { "type": "text", "required": true },
        "hero_image": { "type": "image" }
      }
    }
  }'
---
curl -X POST "https://api.mixpeek.com/v1/buckets/$BUCKET_ID/objects" \
  -H "Authorization: Bearer $MIXPEEK_API_KEY" \
  -H "X-Namespace: $NAMESPACE_ID" \
  -H "Content-Type: application/json" \
  -d '{
    "key_prefix": "/products",
    "blobs": [
      { "property": "hero_image", "type": "image", "url": "https://example.com/photo.jpg" },
      { "property": "product_text", "type": "text", "content": "Wireless headphones" }
    ]
  }'
---
curl -X POST "https://api.mixpeek.com/v1/buckets/$BUCKET_ID/uploads" \
  -H "Authorization: Bearer $MIXPEEK_API_KEY" \
  -H "X-Namespace: $NAMESPACE_ID" \
  -H "Content-Type: application/json" \
  -d '{ "filename": "photo.jpg", "content_type": "image/jpeg" }'
"""

PHOTO = png_bytes("PHOTO", (64, 64))


class _Photo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PHOTO)))
        self.end_headers()
        self.wfile.write(PHOTO)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def photo_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Photo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _curl(command: str, env: dict[str, str]) -> tuple[int, dict]:
    out = subprocess.run(
        ["bash", "-c", command.strip() + " -s -w '\\n%{http_code}'"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body)


def test_seed_commands_work_with_only_the_host_changed(tmp_path: Path, photo_host: str) -> None:
    # The photo lives on a loopback server here, so this deployment allows private URLs.
    settings = Settings(data_dir=tmp_path / "d", admin_key=ADMIN_KEY, allow_private_urls=True)
    with LiveServer(settings) as server:
        commands = [c.replace("https://api.mixpeek.com", server.url) for c in SEED.split("---")]
        commands[2] = commands[2].replace("https://example.com", photo_host)
        env = {"MIXPEEK_API_KEY": ADMIN_KEY}

        status, ns = _curl(commands[0], env)
        assert status == 200, ns
        assert ns["namespace_name"] == "production" and ns["namespace_id"].startswith("ns_")
        env["NAMESPACE_ID"] = ns["namespace_id"]

        status, bucket = _curl(commands[1], env)
        assert status == 200, bucket
        assert bucket["bucket_schema"]["properties"]["product_text"]["required"] is True
        env["BUCKET_ID"] = bucket["bucket_id"]

        status, obj = _curl(commands[2], env)
        assert status == 200, obj
        assert obj["bucket_id"] == bucket["bucket_id"] and obj["key_prefix"] == "/products"
        blobs = {b["property"]: b for b in obj["blobs"]}
        assert blobs["hero_image"]["content_type"] == "image/png"
        assert blobs["hero_image"]["size_bytes"] == len(PHOTO)
        assert blobs["product_text"]["size_bytes"] == len("Wireless headphones")
        assert obj["status"] == "DRAFT"

        # "Then PUT the file to the returned presigned_url and confirm with POST .../confirm."
        status, upload = _curl(commands[3], env)
        assert status == 200 and upload["status"] == "PENDING", upload
        jpeg = tmp_path / "photo.jpg"
        Image.new("RGB", (40, 30), "blue").save(jpeg)
        put = f"curl -X PUT --data-binary @{jpeg} '{upload['presigned_url']}'"
        status, _ = _curl(put, env)
        assert status == 200
        path = f"/v1/buckets/$BUCKET_ID/uploads/{upload['upload_id']}/confirm"
        confirm = (
            f'curl -X POST "{server.url}{path}"'
            ' -H "Authorization: Bearer $MIXPEEK_API_KEY" -H "X-Namespace: $NAMESPACE_ID"'
        )
        status, confirmed = _curl(confirm, env)
        assert status == 200 and confirmed["status"] == "COMPLETED" and confirmed["object_id"]
