"""Per-process scratch folders: a live owner's files stay, a killed owner's are swept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from assay.kit.scratch import process_folder, sweep_dead_folders

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
