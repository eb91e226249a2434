"""Keeping a deployment's data safe and its disk from filling: garbage collection, retention
and backups.

- `gc.py`: one function per kind of table row that outlives its use (expired uploads, old
  events and deliveries, idempotency records, dead processes' blob claims), each a set-based
  statement in its own short transaction, batched.
- `vectorlog.py`: `vector_log` rows every index has passed.
- `orphans.py`: bytes in the blob store that nothing references (a walk of the store).
- `sweeper.py`: runs them all (`assay gc`, and a background loop every `gc_interval_s`).
- `holds.py`, `backup.py`, `restore.py`, `postgres.py`: `assay backup` and `assay restore`.

Every removal is safe with several processes doing the same at once: rows are picked with
`FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite has one writer) and deletes are idempotent; blob
bytes go only through the blob claims of `objects/claims.py`, the same protocol object deletes
use, so bytes a registration or a backup is using are never removed.
"""
