"""image_extractor v1: ImageNet labels, OCR text, a visual vector and a text-space vector."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assay.extractors.base import (
    BlobInput,
    DocumentDraft,
    Extractor,
    ExtractorError,
    ObjectInput,
)
from assay.extractors.builtin.catalogue import IMAGE, ImageParams
from assay.extractors.models import embed_texts

if TYPE_CHECKING:
    from PIL import Image

VISUAL_EMBEDDING_URI = IMAGE.feature_uri("visual_embedding")
TEXT_EMBEDDING_URI = IMAGE.feature_uri("text_embedding")
FEATURES_KEY = "_features"
LABEL_PROMPT = "a photo of a {label}"
OCR_WEIGHT = 0.5  # share of the OCR text in the text-space vector when the image has text
_LABELS_FILE = Path(__file__).with_name("imagenet_labels.txt")
_DECIMALS = 6


class ImageExtractor(Extractor):
    spec = IMAGE
    reads = frozenset({"image"})

    def extract(self, obj: ObjectInput, params: dict[str, Any]) -> list[DocumentDraft]:
        from assay.extractors import vision

        p = image_params(params)
        blobs = [b for b in obj.blobs if b.type in self.reads and b.data is not None]
        if not blobs:
            return []
        images = [open_image(b) for b in blobs]
        # One forward pass for every image of the object.
        classified = vision.classify(images)
        names = imagenet_labels()
        drafts: list[DocumentDraft] = []
        for blob, image, c in zip(blobs, images, classified, strict=True):
            labels = top_labels(c.probabilities, names, p.top_k_labels)
            ocr_text = "\n".join(vision.read_text(rgb_array(image))) if p.ocr else ""
            label_text = ", ".join(lb["label"] for lb in labels)
            drafts.append(
                DocumentDraft(
                    blob_id=blob.blob_id,
                    property=blob.property,
                    content={
                        "labels": labels,
                        "ocr_text": ocr_text,
                        "text": f"{label_text} {ocr_text}".strip(),
                        FEATURES_KEY: {
                            VISUAL_EMBEDDING_URI: c.embedding,
                            TEXT_EMBEDDING_URI: text_space_vector(labels, ocr_text),
                        },
                    },
                    metadata={**obj.metadata, **blob.metadata, **obj.properties},
                )
            )
        return drafts


def image_params(params: dict[str, Any] | None) -> ImageParams:
    """The image fields of `params`; other extractors' fields (multimodal's) are ignored."""
    fields = ImageParams.model_fields
    return ImageParams.model_validate({k: v for k, v in (params or {}).items() if k in fields})


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in the classifier's index order."""
    names = tuple(_LABELS_FILE.read_text(encoding="utf-8").splitlines())
    if len(names) != 1000:
        raise RuntimeError(f"{_LABELS_FILE} holds {len(names)} labels, not 1000")
    return names


def open_image(blob: BlobInput) -> Image.Image:
    """A blob's bytes as a fully decoded RGB image, or CorruptImage."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(blob.data or b"")) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ExtractorError("CorruptImage", f"blob {blob.blob_id} is not an image: {exc}") from exc


def rgb_array(image: Image.Image) -> Any:
    """An RGB image as an HxWx3 uint8 array."""
    import numpy as np

    return np.asarray(image, dtype=np.uint8)


def top_labels(probabilities: list[float], names: tuple[str, ...], k: int) -> list[dict[str, Any]]:
    """The `k` most probable labels, best first, as `{"label", "score"}`."""
    best = sorted(range(len(probabilities)), key=probabilities.__getitem__, reverse=True)[:k]
    return [{"label": names[i], "score": probabilities[i]} for i in best]


def text_space_vector(labels: list[dict[str, Any]], ocr_text: str) -> list[float]:
    """Unit 384-d vector: probability-weighted label prompts, blended with the OCR text."""
    import numpy as np

    prompts = [LABEL_PROMPT.format(label=lb["label"]) for lb in labels]
    text = ocr_text.strip()
    vectors = np.asarray(embed_texts([*prompts, text] if text else prompts), dtype=np.float64)
    weights = np.asarray([lb["score"] for lb in labels], dtype=np.float64)
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    mixed = _unit(weights @ vectors[: len(prompts)])
    if text:
        mixed = _unit((1 - OCR_WEIGHT) * mixed + OCR_WEIGHT * vectors[-1])
    return mixed.round(_DECIMALS).tolist()


def _unit(v: Any) -> Any:
    """`v` scaled to unit length (zero stays zero)."""
    import numpy as np

    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v
