"""Scratch space: a folder made only when something needs it (removed on exit), and each
process's own folder under the data dir's `tmp/`, swept once the process is gone."""

from __future__ import annotations

import atexit
import fcntl
import os
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path


class Scratch:
    """Extraction copies remote blobs here; most batches never need it, so it is made lazily."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def path(self) -> Path:
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix=self._prefix)
        return Path(self._folder.name)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *_: object) -> None:
        if self._folder is not None:
            self._folder.cleanup()


# -- a process's own folder under the data dir's tmp/ ------------------------------------------
#
# Fetched URLs, spilled blobs and S3 downloads wait in a file until they are stored. A process
# killed meanwhile (SIGKILL, OOM, power) leaves that file behind, and nothing else references
# it. So each process writes into its own folder, `proc-<token>/`, and holds an exclusive
# `flock` on `proc-<token>.lock` beside it for as long as it lives. The kernel drops the lock
# when the process dies however it dies, so a sweep that gets the lock knows the owner is gone
# and removes its folder: no grace period, no pid reuse to reason about.

_PREFIX = "proc-"


@dataclass(frozen=True)
class _Held:
    folder: Path
    lock_path: Path
    fd: int  # open for as long as the folder is this process's: that is the lock


_owned: dict[tuple[Path, int], _Held] = {}
_owned_lock = threading.Lock()


def process_folder(root: Path) -> Path:
    """This process's folder under `root`, made (and locked) on first use."""
    key = (root, os.getpid())  # a forked child is another owner, with a folder of its own
    held = _owned.get(key)
    if held is None:
        with _owned_lock:
            held = _owned.get(key) or _claim(root)
            _owned[key] = held
    return held.folder


def release_process_folder(root: Path) -> None:
    """Remove this process's folder under `root` at an orderly shutdown. (`atexit` also does,
    but a server stopped by SIGTERM ends by re-raising the signal, which skips `atexit`.)"""
    with _owned_lock:
        held = _owned.pop((root, os.getpid()), None)
    if held is not None:
        _release(held)


def _claim(root: Path) -> _Held:
    root.mkdir(parents=True, exist_ok=True)
    while True:
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        lock_path = root / f"{_PREFIX}{token}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A sweep may have taken and unlinked the file between our open and our lock: the lock
        # counts only if the name still points at the file we hold.
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    folder = root / f"{_PREFIX}{token}"
    folder.mkdir()
    return _Held(folder, lock_path, fd)


def _release(held: _Held) -> None:
    shutil.rmtree(held.folder, ignore_errors=True)
    held.lock_path.unlink(missing_ok=True)
    os.close(held.fd)


@atexit.register
def _release_all() -> None:
    with _owned_lock:
        mine = [k for k in _owned if k[1] == os.getpid()]
        held = [_owned.pop(k) for k in mine]
    for h in held:
        _release(h)


def sweep_dead_folders(root: Path) -> int:
    """Remove the folders of processes that are gone; returns how many."""
    if not root.is_dir():
        return 0
    removed = 0
    for lock_path in root.glob(f"{_PREFIX}*.lock"):
        removed += _remove_if_dead(lock_path)
    for folder in root.glob(f"{_PREFIX}*"):
        # A folder without its lock file: its sweep was cut short after the unlink below.
        if folder.is_dir() and not folder.with_name(folder.name + ".lock").exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _remove_if_dead(lock_path: Path) -> int:
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # its owner is alive
        shutil.rmtree(lock_path.with_suffix(""), ignore_errors=True)
        lock_path.unlink(missing_ok=True)
        return 1
    finally:
        os.close(fd)
