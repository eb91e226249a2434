"""Moved to `assay.documents.vectors`; kept for importers outside the documents layer."""

from assay.documents.vectors import pack_vector, unpack_vector

__all__ = ["pack_vector", "unpack_vector"]
