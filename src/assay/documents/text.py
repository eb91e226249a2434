"""What full-text search reads of a document: its text, OCR text, transcript and labels."""

from __future__ import annotations

from typing import Any

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
