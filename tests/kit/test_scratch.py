"""Per-process scratch folders: a live owner's files stay, a killed owner's are swept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from assay.kit.scratch import process_folder, release_process_folder, sweep_dead_folders

_OWNER = """
import sys, time
from pathlib import Path
from assay.kit.scratch import process_folder
folder = process_folder(Path(sys.argv[1]))
(folder / "half-written").write_bytes(b"x" * 1000)
print(folder, flush=True)
time.sleep(60)
"""


def _start_owner(root: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_a_live_owners_folder_stays_and_a_killed_ones_goes(tmp_path: Path) -> None:
    live, live_folder = _start_owner(tmp_path)
    dead, dead_folder = _start_owner(tmp_path)
    try:
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait()
        assert (dead_folder / "half-written").exists()

        assert sweep_dead_folders(tmp_path) == 1

        assert not dead_folder.exists()
        assert not dead_folder.with_name(dead_folder.name + ".lock").exists()
        assert (live_folder / "half-written").exists()
    finally:
        live.kill()
        live.wait()
    assert sweep_dead_folders(tmp_path) == 1
    assert sorted(tmp_path.iterdir()) == []


def test_this_process_keeps_one_folder_and_never_sweeps_it(tmp_path: Path) -> None:
    folder = process_folder(tmp_path)
    assert process_folder(tmp_path) == folder
    (folder / "in-use").write_bytes(b"x")

    assert sweep_dead_folders(tmp_path) == 0
    assert (folder / "in-use").exists()


def test_a_folder_whose_lock_is_gone_is_swept(tmp_path: Path) -> None:
    # A sweep cut short between removing the lock file and the folder leaves this behind.
    (tmp_path / "proc-1-deadbeef").mkdir()
    (tmp_path / "proc-1-deadbeef" / "f").write_bytes(b"x")
    assert sweep_dead_folders(tmp_path) == 1
    assert not (tmp_path / "proc-1-deadbeef").exists()


def test_a_missing_root_is_nothing_to_sweep(tmp_path: Path) -> None:
    assert sweep_dead_folders(tmp_path / "absent") == 0


def test_an_orderly_shutdown_removes_the_folder_and_a_later_use_makes_a_new_one(
    tmp_path: Path,
) -> None:
    first = process_folder(tmp_path)
    (first / "f").write_bytes(b"x")
    release_process_folder(tmp_path)
    assert sorted(tmp_path.iterdir()) == []
    second = process_folder(tmp_path)
    assert second != first and second.is_dir()
    release_process_folder(tmp_path)


def test_a_server_stopped_by_sigterm_leaves_no_folder(tmp_path: Path) -> None:
    # uvicorn re-raises SIGTERM after its shutdown, which skips atexit: the app's shutdown
    # (AppContext.close) is what removes the folder.
    from tests.conftest import ADMIN_KEY, b64, free_port

    port = free_port()
    env = {**os.environ, "ASSAY_ADMIN_KEY": ADMIN_KEY}
    cli = "from assay.cli import app; app()"
    args = ["serve", "--port", str(port), "--data-dir", str(tmp_path / "d"), "--workers", "0"]
    server = subprocess.Popen([sys.executable, "-c", cli, *args], env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(f"{url}/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
            c.post("/v1/namespaces", json={"namespace_name": "n"}).raise_for_status()
            schema = {"properties": {"f": {"type": "binary"}}}
            ns = {"X-Namespace": "n"}
            body = {"bucket_name": "b", "bucket_schema": schema}
            c.post("/v1/buckets", json=body, headers=ns).raise_for_status()
            # past the small-blob size, the bytes wait in a file of the process's folder
            blob = {"property": "f", "type": "binary", "content": b64(os.urandom(100_000))}
            c.post("/v1/buckets/b/objects", json={"blobs": [blob]}, headers=ns).raise_for_status()
        assert list((tmp_path / "d" / "tmp").glob("proc-*"))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert list((tmp_path / "d" / "tmp").iterdir()) == []
