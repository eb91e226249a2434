"""`vector_log` rows every index has passed.

Who reads the log: a file index (`retrievers/indexes.py`) replays the rows of its collection
feature past the watermark `seq` it applied last, which it saves with its file; an index that
has no file yet is rebuilt from `document_vectors`, needing no log at all. pgvector reads
nothing from the log.

So a row may go once (a) every index that could still replay it has passed it and (b) it is
older than `vector_log_retention_h`. The log has no timestamps; each sweep records
`(now, max(seq))` in `<data dir>/maintenance/vector_log_marks.json`, and a row is older than
the retention when its seq is at most the highest seq recorded at least that long ago.

- pgvector: nothing replays the log, so (b) alone decides.
- file indexes: per collection feature, rows at or below both the watermark in its index
  file's header under `<data dir>/indexes` and the retention bound. A process's open index
  never stands below its own file (it saves what it applied, and it loaded what it saved), so
  the process that searches the data dir's indexes (`assay serve`; workers never search) is
  always ahead of what is pruned. A feature with no index file keeps its rows: a process may
  hold it open and unsaved. Rows of deleted collections go after the retention. A second
  process searching the same data dir could stand below a file the first one wrote; the
  retention then guards it (its index would have to go unsearched that long), which is why it
  is a day by default and why several API processes should share pgvector instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from assay.kit.db import Database
from assay.maintenance.gc import drain, never_stop
from assay.maintenance.queries import existing_collections
from assay.models import VectorLogEntry

MARKS_FILE = "vector_log_marks.json"
_LOG = VectorLogEntry


@dataclass(frozen=True)
class Watermarks:
    """What the index files under a data dir have applied, per (collection id, feature URI)."""

    saved: dict[tuple[str, str], int]
    unreadable: set[str]  # collections with a header we could not read: left alone


def saved_watermarks(index_root: Path) -> Watermarks:
    """The `seq` in every index header under `index_root` (headers only: cheap)."""
    saved: dict[tuple[str, str], int] = {}
    unreadable: set[str] = set()
    if not index_root.is_dir():
        return Watermarks(saved, unreadable)
    # `<collection id>/<digest>.index.meta.json`, as FeatureIndexes.path and meta_path name them
    for header in index_root.glob("*/*.index.meta.json"):
        collection_id = header.parent.name
        try:
            meta = json.loads(header.read_text(encoding="utf-8"))["meta"]
            key = (collection_id, str(meta["feature_uri"]))
            saved[key] = min(int(meta["seq"]), saved.get(key, int(meta["seq"])))
        except (OSError, ValueError, KeyError, TypeError):
            unreadable.add(collection_id)
    return Watermarks(saved, unreadable)


class Marks:
    """`(unix time, max seq)` pairs, kept in a small JSON file (replaced atomically; losing
    one to a race between two sweepers only delays pruning)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> list[tuple[float, int]]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return sorted((float(t), int(s)) for t, s in raw)
        except (OSError, ValueError, TypeError):
            return []

    def record_and_bound(self, now: dt.datetime, max_seq: int, retention_s: float) -> int:
        """Record `max_seq` as seen at `now`; the highest seq recorded `retention_s` ago."""
        marks = self._load()
        if not marks or max_seq > marks[-1][1]:
            marks.append((now.timestamp(), max_seq))
        horizon = now.timestamp() - retention_s
        old = [m for m in marks if m[0] <= horizon]
        bound = max((s for _, s in old), default=0)
        keep = [m for m in marks if m[0] > horizon] + old[-1:]  # the newest old one decides
        self._save(sorted(keep))
        return bound

    def _save(self, marks: list[tuple[float, int]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".marks-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(marks, fh)
        os.replace(tmp, self.path)


def max_seq(session: Session) -> int:
    return int(session.scalar(select(func.max(_LOG.seq))) or 0)


def features_in_log(session: Session) -> list[tuple[str, str, int]]:
    """(collection id, feature URI, lowest seq) of every feature with rows in the log."""
    stmt = select(_LOG.collection_id, _LOG.feature_uri, func.min(_LOG.seq)).group_by(
        _LOG.collection_id, _LOG.feature_uri
    )
    return [(c, f, int(s)) for c, f, s in session.execute(stmt)]


def prune_below(
    session: Session, bound: int, limit: int, feature: tuple[str, str] | None = None
) -> int:
    """Delete up to `limit` rows with `seq <= bound` (of one collection feature, if given)."""
    picked = select(_LOG.seq).where(_LOG.seq <= bound)
    if feature is not None:
        picked = picked.where(_LOG.collection_id == feature[0], _LOG.feature_uri == feature[1])
    picked = picked.order_by(_LOG.seq).limit(limit).with_for_update(skip_locked=True)
    seqs = list(session.scalars(picked))
    if seqs:
        session.execute(delete(_LOG).where(_LOG.seq.in_(seqs)))
    return len(seqs)


def bounds(
    features: list[tuple[str, str, int]], live: set[str], marks: Watermarks, retention_bound: int
) -> dict[tuple[str, str], int]:
    """How far each feature's rows may go (features with nothing to prune left out)."""
    out: dict[tuple[str, str], int] = {}
    for collection_id, feature_uri, lowest in features:
        key = (collection_id, feature_uri)
        if collection_id in marks.unreadable:
            continue
        if collection_id not in live:
            bound = retention_bound
        elif key in marks.saved:
            bound = min(marks.saved[key], retention_bound)
        else:
            continue  # no index file: a process may hold it open, unsaved
        if lowest <= bound:
            out[key] = bound
    return out


def sweep_vector_log(
    db: Database,
    data_dir: Path,
    *,
    file_indexes: bool,
    retention_s: float,
    limit: int,
    now: dt.datetime,
    checkpoint: Callable[[], None] = never_stop,
) -> int:
    """Prune what no index will replay again; returns the rows removed."""
    top = db.read_sync(max_seq)
    retention_bound = Marks(data_dir / "maintenance" / MARKS_FILE).record_and_bound(
        now, top, retention_s
    )
    if retention_bound <= 0:
        return 0
    if not file_indexes:
        return drain(db, lambda s: prune_below(s, retention_bound, limit), limit, checkpoint)
    marks = saved_watermarks(data_dir / "indexes")
    features = db.read_sync(features_in_log)
    live = db.read_sync(lambda s: existing_collections(s, {c for c, _, _ in features}))
    todo = bounds(features, live, marks, retention_bound)
    return sum(
        _prune_feature(db, feature, bound, limit, checkpoint) for feature, bound in todo.items()
    )


def _prune_feature(
    db: Database, feature: tuple[str, str], bound: int, limit: int, checkpoint: Callable[[], None]
) -> int:
    return drain(db, lambda s: prune_below(s, bound, limit, feature), limit, checkpoint)
