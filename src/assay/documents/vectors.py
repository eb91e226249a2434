"""Vectors as stored in `document_vectors`: little-endian float32 bytes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pack_vector(values: Sequence[float] | np.ndarray) -> bytes:
    """float32 little-endian bytes of a vector."""
    return np.asarray(values, dtype="<f4").tobytes()


def unpack_vector(data: bytes) -> np.ndarray:
    """The float32 vector stored as `data`."""
    return np.frombuffer(data, dtype="<f4")
