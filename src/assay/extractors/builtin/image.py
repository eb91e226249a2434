"""image_extractor v1: ImageNet labels, OCR text, a visual vector and a text-space vector.

Its search queries go through the same models: text into the MiniLM space, an image through
the labels-and-OCR path into it, or an image into the visual space.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from assay.documents.drafts import DocumentDraft
from assay.extractors.base import (
    BatchedExtractor,
    BlobInput,
    Extracted,
    ExtractorError,
    ObjectInput,
    QueryInput,
    QueryRefused,
)
from assay.extractors.builtin.catalogue import IMAGE, ImageParams
from assay.extractors.models import embed_query, embed_texts
from assay.kit.limits import MediaLimits, OverLimit
from assay.kit.limits import open_image as open_header

if TYPE_CHECKING:
    from PIL import Image

VISUAL_EMBEDDING_URI = IMAGE.feature_uri("visual_embedding")
TEXT_EMBEDDING_URI = IMAGE.feature_uri("text_embedding")
LABEL_PROMPT = "a photo of a {label}"
OCR_WEIGHT = 0.5  # share of the OCR text in the text-space vector when the image has text
_LABELS_FILE = Path(__file__).with_name("imagenet_labels.txt")
_DECIMALS = 6
# Images decoded and classified together: a full forward pass, while a job's decoded images
# (up to 50 objects of any size) never sit in memory at once.
CLASSIFY_BATCH = 16
# Long side every image is shrunk to as soon as it is decoded, so a batch holds 16 of these and
# not 16 full-size pictures (Pillow keeps RGB in 4 bytes a pixel: 400 MB for 100 MP). Enough for
# OCR to read a page's print; the classifier looks at 224x224 anyway.
WORKING_SIDE = 2048
_prompt_vectors: dict[str, Any] = {}  # label prompt → its MiniLM vector (≤ 1000 of them)


@dataclass(frozen=True)
class Described:
    """What the image path finds in one picture."""

    labels: list[dict[str, Any]]
    ocr_text: str
    visual: list[float]
    text_vector: list[float]


class ImageExtractor(BatchedExtractor):
    spec = IMAGE
    reads = frozenset({"image"})

    def __init__(self, limits: MediaLimits | None = None) -> None:
        self.limits = limits or MediaLimits()

    def extract_many(
        self, objects: Sequence[ObjectInput], params: dict[str, Any]
    ) -> list[Extracted]:
        p = image_params(params)
        drafts: list[list[DocumentDraft]] = [[] for _ in objects]
        failed: dict[int, ExtractorError] = {}
        work = [(i, b) for i, obj in enumerate(objects) for b in obj.blobs if self._reads(b)]
        for start in range(0, len(work), CLASSIFY_BATCH):
            opened: list[tuple[int, BlobInput, Image.Image]] = []
            for i, blob in work[start : start + CLASSIFY_BATCH]:
                if i in failed:
                    continue
                try:
                    opened.append((i, blob, open_image(blob, self.limits)))
                except ExtractorError as exc:
                    failed[i] = exc
            found = describe([image for *_, image in opened], p.top_k_labels, p.ocr)
            for (i, blob, _), d in zip(opened, found, strict=True):
                drafts[i].append(_draft(objects[i], blob, d))
        return [failed.get(i, d) for i, d in enumerate(drafts)]

    def _reads(self, blob: BlobInput) -> bool:
        return blob.type in self.reads and blob.loaded

    def embed_query(
        self, feature_uri: str, query: QueryInput, params: dict[str, Any]
    ) -> np.ndarray:
        if feature_uri == VISUAL_EMBEDDING_URI:
            return visual_query(feature_uri, query, self.limits)
        if feature_uri == TEXT_EMBEDDING_URI:
            return text_space_query(query, self.limits)
        return super().embed_query(feature_uri, query, params)


def _draft(obj: ObjectInput, blob: BlobInput, d: Described) -> DocumentDraft:
    label_text = ", ".join(lb["label"] for lb in d.labels)
    return DocumentDraft(
        blob_id=blob.blob_id,
        property=blob.property,
        content={
            "labels": d.labels,
            "ocr_text": d.ocr_text,
            "text": f"{label_text} {d.ocr_text}".strip(),
        },
        metadata={**obj.metadata, **blob.metadata, **obj.properties},
        features={VISUAL_EMBEDDING_URI: d.visual, TEXT_EMBEDDING_URI: d.text_vector},
    )


def text_space_query(query: QueryInput, limits: MediaLimits) -> np.ndarray:
    """A query in the MiniLM text space: its text (remembered per text), else its image
    described as stored images are with this extractor's default params."""
    if query.text is not None:
        return query_vector(embed_query(query.text))
    (described,) = describe([query_image(query, limits)], top_k=5, ocr=True)
    return query_vector(described.text_vector)


def visual_query(feature_uri: str, query: QueryInput, limits: MediaLimits) -> np.ndarray:
    """A query image's pooled EfficientNet features; a text query is refused."""
    from assay.extractors import vision

    if query.image is None:
        raise QueryRefused(
            "inputs", f"{feature_uri} is searched with an image: give query_url or query_image"
        )
    return query_vector(vision.classify([query_image(query, limits)])[0].embedding)


def query_image(query: QueryInput, limits: MediaLimits) -> Image.Image:
    """The query image decoded as stored images are (bounded by the same limits); refused
    when it is no image or is over them."""
    try:
        return decode_image(query.image or b"", limits, "the query image")
    except ExtractorError as exc:
        corrupt = exc.error_type == "CorruptImage"
        msg = "the query image cannot be decoded" if corrupt else exc.message
        raise QueryRefused("image", msg) from exc


def query_vector(values: Any) -> np.ndarray:
    """`values` as a float32 vector of unit length (zero stays zero)."""
    v = np.asarray(values, dtype=np.float32)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def describe(images: list[Image.Image], top_k: int, ocr: bool) -> list[Described]:
    """Labels, OCR text, visual and text-space vectors of RGB images: one classifier pass and
    one text encode for all of them."""
    from assay.extractors import vision

    if not images:
        return []
    names = imagenet_labels()
    seen = []
    for image, c in zip(images, vision.classify(images), strict=True):
        labels = top_labels(c.probabilities, names, top_k)
        ocr_text = "\n".join(vision.read_text(rgb_array(image))) if ocr else ""
        seen.append((labels, ocr_text, c.embedding))
    text_vectors = text_space_vectors([(labels, text) for labels, text, _ in seen])
    return [
        Described(labels, text, visual, vector)
        for (labels, text, visual), vector in zip(seen, text_vectors, strict=True)
    ]


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


def open_image(blob: BlobInput, limits: MediaLimits | None = None) -> Image.Image:
    """A blob's image as RGB no larger than WORKING_SIDE; ImageTooLarge past the pixel limit,
    CorruptImage when it does not decode."""
    return decode_image(blob.source, limits or MediaLimits(), f"blob {blob.blob_id}")


def decode_image(
    source: bytes | Path, limits: MediaLimits, what: str, side: int = WORKING_SIDE
) -> Image.Image:
    """Image bytes (or a file) decoded as RGB no larger than `side` on its long side.

    The stated size is judged before any pixel is decoded; a JPEG decodes straight at a reduced
    scale, anything else at full size once and is shrunk before the next is opened.
    """
    try:
        with _binary(source) as fp, open_header(fp) as im:
            limits.check_pixels(*im.size, what)
            if im.format == "JPEG":
                im.draft("RGB", _scaled(im.size, side))  # libjpeg's DCT scaling: 1/2 to 1/8
            im.load()
            return _shrunk(im, side)
    except OverLimit as exc:
        raise ExtractorError(exc.kind, exc.message) from exc
    except MemoryError:
        raise
    except Exception as exc:  # Pillow's plugins raise many types on hostile bytes
        raise ExtractorError("CorruptImage", f"{what} is not an image: {exc!r}") from exc


@contextmanager
def _binary(source: bytes | Path) -> Iterator[IO[bytes]]:
    """A readable binary file over bytes or a path (a large blob is never read into memory)."""
    if isinstance(source, Path):
        with source.open("rb") as fh:
            yield fh
    else:
        yield io.BytesIO(source)


def _scaled(size: tuple[int, int], side: int) -> tuple[int, int]:
    """`size` scaled down so its long side is `side` (unchanged when already smaller)."""
    scale = min(1.0, side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _shrunk(im: Image.Image, side: int) -> Image.Image:
    """A decoded image as RGB no larger than `side` on its long side."""
    from PIL import Image

    if im.mode in ("1", "P") and max(im.size) > 2 * side:
        # Palette and bilevel pictures resample by nearest neighbour only; halve them that way
        # down to twice the size first, so their RGB copy stays small, then smooth the rest.
        im.thumbnail((2 * side, 2 * side), Image.Resampling.NEAREST)
    if im.mode in ("1", "P"):
        im = im.convert("RGB")
    if max(im.size) > side:
        # In place: a box reduction by the whole factor that lands nearest above `side`, then a
        # resample; the default gap of 2 would first make a copy 4x larger (144 MB for 12000^2).
        im.thumbnail((side, side), reducing_gap=1.0)
    return im.convert("RGB")


def rgb_array(image: Image.Image) -> Any:
    """An RGB image as an HxWx3 uint8 array."""
    return np.asarray(image, dtype=np.uint8)


def top_labels(probabilities: list[float], names: tuple[str, ...], k: int) -> list[dict[str, Any]]:
    """The `k` most probable labels, best first, as `{"label", "score"}`."""
    best = sorted(range(len(probabilities)), key=probabilities.__getitem__, reverse=True)[:k]
    return [{"label": names[i], "score": probabilities[i]} for i in best]


def text_space_vectors(found: list[tuple[list[dict[str, Any]], str]]) -> list[list[float]]:
    """Unit 384-d vectors, one per (labels, OCR text): the probability-weighted label prompts,
    blended with the OCR text. Prompt vectors are remembered (there are 1000 labels), and the
    OCR texts are encoded in one call."""
    prompts = {LABEL_PROMPT.format(label=lb["label"]) for labels, _ in found for lb in labels}
    _remember_prompts(sorted(prompts))
    texts = [text.strip() for _, text in found]
    written = [t for t in texts if t]
    ocr_vectors = dict(zip(written, embed_texts(written), strict=True))
    out = []
    for (labels, _), text in zip(found, texts, strict=True):
        vectors = np.asarray(
            [_prompt_vectors[LABEL_PROMPT.format(label=lb["label"])] for lb in labels],
            dtype=np.float64,
        )
        weights = np.asarray([lb["score"] for lb in labels], dtype=np.float64)
        if weights.sum() <= 0:
            weights = np.ones_like(weights)
        mixed = _unit(weights @ vectors)
        if text:
            mixed = _unit((1 - OCR_WEIGHT) * mixed + OCR_WEIGHT * np.asarray(ocr_vectors[text]))
        out.append(mixed.round(_DECIMALS).tolist())
    return out


def _remember_prompts(prompts: list[str]) -> None:
    """Encode, in one call, the label prompts not encoded before."""
    missing = [t for t in prompts if t not in _prompt_vectors]
    _prompt_vectors.update(zip(missing, embed_texts(missing), strict=True))


def _unit(v: Any) -> Any:
    """`v` scaled to unit length (zero stays zero)."""
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v
