"""Blob store on a local folder: one file per key, written via rename (readers never see halves)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from assay.backends.blob.base import BlobNotFound

CHUNK = 256 * 1024


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self._prefix = str(self.root) + os.sep
        self._made_dirs: set[Path] = set()

    def _path(self, key: str) -> Path:
        # String normalisation, not resolve(): no syscalls, and keys cannot climb out.
        path = os.path.normpath(os.path.join(self._prefix, key))
        if not path.startswith(self._prefix):
            raise BlobNotFound(key)
        return Path(path)

    def put_file(self, src: Path, key: str) -> bool:
        dest = self._path(key)
        if dest.exists():
            src.unlink(missing_ok=True)
            return False
        self._in_dir(dest.parent, lambda: os.replace(src, dest))
        return True

    def put_bytes(self, data: bytes, key: str) -> bool:
        dest = self._path(key)
        if dest.exists():
            return False

        def write() -> None:
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, dest)
            except BaseException:  # a full disk: no half-written file left behind
                os.unlink(tmp)
                raise

        self._in_dir(dest.parent, write)
        return True

    def _in_dir(self, folder: Path, action: Callable[[], None]) -> None:
        """Run a file operation in `folder`, creating it first (again, if someone removed it)."""
        if folder not in self._made_dirs:
            folder.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(folder)
        try:
            action()
        except FileNotFoundError:
            folder.mkdir(parents=True, exist_ok=True)
            action()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(key)
        return path

    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        try:
            fh = self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc
        return _stream(fh, start, end)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        folder = self._path(prefix.rstrip("/"))
        if folder != self.root and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        self._made_dirs = {d for d in self._made_dirs if not d.is_relative_to(folder)}

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"blob folder {self.root} is not writable")


def _stream(fh: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
    with fh:
        fh.seek(start)
        remaining = None if end is None else end - start + 1
        while remaining is None or remaining > 0:
            chunk = fh.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
