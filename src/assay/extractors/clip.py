"""CLIP or SigLIP weights from a local folder (`clip_model_path`): images and text in one space.

Nothing is downloaded: the folder must hold a model saved with `save_pretrained` plus its
processor (tokenizer and image processor). Models are cached per folder, per process; the
retrieval side embeds its queries through the same functions, so both ends share one model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assay.extractors.model_cache import MODELS
from assay.extractors.models import ModelLoadError, _prepare_torch, device

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

BATCH_SIZE = 32  # images or texts per forward pass
_DECIMALS = 6


@dataclass
class _Clip:
    """One loaded model with its processor; `lock` serialises its forward passes."""

    model: Any
    processor: Any
    max_text_tokens: int | None
    pad_to_max: bool  # SigLIP was trained on texts padded to the full length
    dimensions: int
    lock: threading.Lock


def _key(model_path: str | Path) -> str:
    return str(Path(model_path).expanduser().resolve())


def load(model_path: str | Path) -> _Clip:
    """The model in `model_path`, loaded on first use; ModelLoadError when it cannot be."""
    key = _key(model_path)
    return MODELS.get(f"clip:{key}", lambda: _load(Path(key)))


def _load(folder: Path) -> _Clip:
    if not folder.is_dir():
        raise ModelLoadError(f"clip_model_path {folder} is not a folder")
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"clip_model_path {folder} holds no model (no config.json)")
    _prepare_torch()
    try:
        from transformers import AutoModel, AutoProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot load a CLIP/SigLIP model from {folder}: {exc}") from exc
    missing = [
        name
        for name in ("get_image_features", "get_text_features")
        if not callable(getattr(model, name, None))
    ]
    if missing or not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
        raise ModelLoadError(
            f"{folder} holds a {type(model).__name__} with {type(processor).__name__}, not an "
            "image-text model (CLIP or SigLIP) with its tokenizer and image processor"
        )
    config = model.config
    text_config = getattr(config, "text_config", None)
    max_tokens = getattr(text_config, "max_position_embeddings", None)
    projection_dim: Any = getattr(config, "projection_dim", None)
    dims = projection_dim or getattr(text_config, "hidden_size", 0)
    model = model.eval().to(device())
    return _Clip(
        model=model,
        processor=processor,
        max_text_tokens=int(max_tokens) if max_tokens else None,
        pad_to_max=str(getattr(config, "model_type", "")).startswith("siglip"),
        dimensions=int(dims),
        lock=threading.Lock(),
    )


def dimensions(model_path: str | Path) -> int:
    """The length of the model's vectors."""
    return load(model_path).dimensions


def _pooled(out: Any) -> Any:
    """Feature tensors from `get_*_features`: a tensor before transformers 5, an output after."""
    import torch

    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _unit_rows(chunks: list[Any]) -> np.ndarray:
    import numpy as np
    import torch

    joined = torch.nn.functional.normalize(torch.cat(chunks).float(), dim=1)
    return joined.cpu().numpy().astype(np.float32)


def embed_clip_images(model_path: str | Path, images: list[Image.Image]) -> np.ndarray:
    """Unit-length image vectors, one row per image (n x dimensions, float32)."""
    import torch

    clip = load(model_path)
    chunks = []
    for i in range(0, len(images), BATCH_SIZE):
        rgb = [im.convert("RGB") for im in images[i : i + BATCH_SIZE]]
        inputs = clip.processor(images=rgb, return_tensors="pt").to(device())
        with clip.lock, torch.no_grad():
            chunks.append(_pooled(clip.model.get_image_features(**inputs)))
    return _unit_rows(chunks) if chunks else _empty(clip)


def embed_clip_text(model_path: str | Path, texts: list[str]) -> np.ndarray:
    """Unit-length text vectors in the images' space, one row per text (truncated to the
    model's context)."""
    import torch

    clip = load(model_path)
    chunks = []
    for i in range(0, len(texts), BATCH_SIZE):
        inputs = clip.processor(
            text=texts[i : i + BATCH_SIZE],
            padding="max_length" if clip.pad_to_max else True,
            truncation=True,
            max_length=clip.max_text_tokens,
            return_tensors="pt",
        ).to(device())
        with clip.lock, torch.no_grad():
            chunks.append(_pooled(clip.model.get_text_features(**inputs)))
    return _unit_rows(chunks) if chunks else _empty(clip)


def _empty(clip: _Clip) -> np.ndarray:
    import numpy as np

    return np.zeros((0, clip.dimensions), dtype=np.float32)


def as_lists(vectors: np.ndarray) -> list[list[float]]:
    """Rows as rounded Python floats, the form documents carry."""
    rows: list[list[float]] = vectors.astype("float64").round(_DECIMALS).tolist()
    return rows
