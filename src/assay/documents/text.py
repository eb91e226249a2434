"""What full-text search reads of a document: its text, OCR text, transcript and labels, and
how it reaches SQLite's FTS5 index."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

_TEXT_FIELDS = ("text", "ocr_text", "transcript")


def search_text(content: dict[str, Any]) -> str:
    """One string for BM25: each distinct text field once, then the label names."""
    parts: list[str] = []
    for name in _TEXT_FIELDS:
        value = content.get(name)
        if isinstance(value, str) and value.strip() and value.strip() not in parts:
            parts.append(value.strip())
    labels = content.get("labels")
    if isinstance(labels, list):
        names = [lb.get("label") for lb in labels if isinstance(lb, dict)]
        label_text = ", ".join(n for n in names if isinstance(n, str))
        if label_text and not any(label_text in p for p in parts):
            parts.append(label_text)
    return "\n".join(parts)


def index_texts(session: Session, documents: Iterable[dict[str, Any]]) -> None:
    """Add new documents' `search_text` to SQLite's FTS5 index (PostgreSQL derives its
    tsvector column by itself). Every document is indexed, an empty text too: the removal
    trigger un-indexes every row it removes. In `doc_key` order, in one statement: FTS5 then
    keeps the rows in memory until the commit and writes them as one segment; out of order,
    or row by row from a trigger, it writes a segment every few rows."""
    if session.get_bind().dialect.name != "sqlite":
        return
    rows = sorted((d["doc_key"], d["search_text"]) for d in documents)
    if rows:
        session.connection().exec_driver_sql(
            "INSERT INTO document_text (rowid, search_text) VALUES (?, ?)", rows
        )
