"""Upload benchmark: a large file through presigned PUT + confirm, against a plain disk copy.

Prints, for `assay serve` on the local blob store: MB/s of PUT + confirm of a 200 MB file beside
MB/s of copying the same bytes on the same disk in the same run (target ratio ≥ 0.5); the
server's peak RSS while a 1 GB file is uploaded (target: under 100 MB above its idle RSS); and,
with --sync, the keys/s of a one-time sync of 2,000 small keys from a moto S3 server.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

ADMIN_KEY = "sk_live_bench_admin_key_0123456789"
CLI = "from assay.cli import app; app()"
MB = 1024 * 1024
console = Console(width=120)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """`assay serve` in its own process, with its RSS sampled in the background."""

    def __init__(self, data_dir: Path, workers: int = 0) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Private URLs allowed: the sync source (moto) listens on loopback.
        env = {**os.environ, "ASSAY_ADMIN_KEY": ADMIN_KEY, "ASSAY_ALLOW_PRIVATE_URLS": "1"}
        args = ["serve", "--port", str(self.port), "--data-dir", str(data_dir)]
        args += ["--workers", str(workers)]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CLI, *args], env=env, stdout=subprocess.DEVNULL
        )
        self.peak_kb = 0
        self._sampling = False

    def __enter__(self) -> Serve:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def __exit__(self, *_: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def sample_peak(self) -> threading.Thread:
        self.peak_kb, self._sampling = self.rss_kb(), True

        def run() -> None:
            while self._sampling:
                self.peak_kb = max(self.peak_kb, self.rss_kb())
                time.sleep(0.02)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def stop_sampling(self, thread: threading.Thread) -> None:
        self._sampling = False
        thread.join()


def _make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(MB)
    with path.open("wb") as fh:
        for _ in range(size // MB):
            fh.write(block)
            digest.update(block)
    return digest.hexdigest()


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(MB):
            yield chunk


def upload(c: httpx.Client, path: Path, sha: str) -> float:
    """Seconds for create + PUT + confirm of one file."""
    size = path.stat().st_size
    t0 = time.perf_counter()
    body = {"filename": path.name, "content_type": "application/octet-stream"}
    body |= {"file_size_bytes": size, "file_hash": sha}
    up = c.post("/v1/buckets/files/uploads", json=body).json()
    r = httpx.put(up["presigned_url"], content=_chunks(path), timeout=600)
    r.raise_for_status()
    confirmed = c.post(f"/v1/buckets/files/uploads/{up['upload_id']}/confirm", timeout=600)
    confirmed.raise_for_status()
    return time.perf_counter() - t0


def sync_keys_per_s(root: Path, keys: int) -> tuple[float, int]:
    """A one-time sync of `keys` small text keys from a moto S3 server: keys/s, created."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        creds = {"access_key_id": "testing", "secret_access_key": "testing"}
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="source")
        for i in range(keys):
            s3.put_object(Bucket="source", Key=f"docs/{i:05}.txt", Body=f"document {i}".encode())
        with Serve(root / "sync-data", workers=1) as server:
            headers = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": "bench"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as c:
                c.post("/v1/namespaces", json={"namespace_name": "bench"}).raise_for_status()
                schema = {"properties": {"body": {"type": "text"}}}
                c.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": schema})
                source = {"provider": "s3", "bucket": "source", "prefix": "docs/"}
                source |= {"endpoint_url": endpoint, "region": "us-east-1", "credentials": creds}
                t0 = time.perf_counter()
                sync = c.post("/v1/buckets/docs/syncs", json={"source": source}).json()
                while (state := c.get(f"/v1/buckets/docs/syncs/{sync['sync_id']}").json())[
                    "last_run_at"
                ] is None:
                    time.sleep(0.1)
                elapsed = time.perf_counter() - t0
        return keys / elapsed, int(state["objects_created"])
    finally:
        moto.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--sync-keys", type=int, default=2000)
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    console.print(f"commit {commit}  command: {' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        root = Path(tmp)
        src = root / "file.bin"
        sha = _make_file(src, args.mb * MB)
        t0 = time.perf_counter()
        shutil.copyfile(src, root / "copy.bin")
        os.sync()
        copy_s = time.perf_counter() - t0
        (root / "copy.bin").unlink()
        with Serve(root / "data") as server:
            headers = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": "bench"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as c:
                c.post("/v1/namespaces", json={"namespace_name": "bench"}).raise_for_status()
                schema = {"properties": {"raw": {"type": "binary"}}}
                c.post("/v1/buckets", json={"bucket_name": "files", "bucket_schema": schema})
                upload_s = upload(c, src, sha)
                src.unlink()
                big = root / "big.bin"
                big_sha = _make_file(big, args.big_mb * MB)
                idle_kb = server.rss_kb()
                sampler = server.sample_peak()
                big_s = upload(c, big, big_sha)
                server.stop_sampling(sampler)
        table = Table("measure", "value")
        ratio = (args.mb / upload_s) / (args.mb / copy_s)
        table.add_row(f"{args.mb} MB disk copy", f"{args.mb / copy_s:,.0f} MB/s")
        table.add_row(f"{args.mb} MB PUT + confirm", f"{args.mb / upload_s:,.0f} MB/s")
        table.add_row("ratio (target ≥ 0.5)", f"{ratio:.2f} {'PASS' if ratio >= 0.5 else 'MISS'}")
        extra_mb = (server.peak_kb - idle_kb) / 1024
        table.add_row(f"{args.big_mb} MB upload", f"{args.big_mb / big_s:,.0f} MB/s")
        table.add_row(
            "server RSS idle → peak", f"{idle_kb / 1024:.0f} → {server.peak_kb / 1024:.0f} MB"
        )
        verdict = "PASS" if extra_mb < 100 else "MISS"
        table.add_row("extra RSS (target < 100 MB)", f"{extra_mb:.0f} MB {verdict}")
        rate, created = sync_keys_per_s(root, args.sync_keys)
        table.add_row(f"sync of {args.sync_keys} small keys (moto)", f"{rate:,.0f} keys/s")
        table.add_row("objects created by the sync", f"{created:,}")
        console.print(table)


if __name__ == "__main__":
    main()
