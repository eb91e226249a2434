"""multimodal_extractor v1: text and images as their own extractors, audio and video by segment.

Audio becomes one document per Whisper speech segment. Video is cut into `time_split_interval`
windows; each window's first frame goes through the image path (labels, OCR, vectors) and the
speech inside the window is its transcript. Each window's keyframe also becomes a small JPEG
thumbnail; an extractor cannot write blobs, so its bytes ride in the draft as a derived blob
and the batch job stores them. With `clip_model_path`, images and keyframes get a CLIP/SigLIP
image vector and texts and transcripts its text vector, under `CLIP_EMBEDDING_URI`; queries of
that feature go through the same weights.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from assay.documents.drafts import DerivedBlob, DocumentDraft, Vector
from assay.extractors import clip
from assay.extractors.base import (
    BatchedExtractor,
    BlobInput,
    Extracted,
    ExtractorError,
    ObjectInput,
    QueryInput,
    QueryRefused,
)
from assay.extractors.builtin import image as image_x
from assay.extractors.builtin import media
from assay.extractors.builtin import text as text_x
from assay.extractors.builtin.catalogue import MULTIMODAL, MultimodalParams
from assay.extractors.models import ModelLoadError, embed_texts
from assay.kit.limits import MediaLimits
from assay.kit.memory import trim_heap

if TYPE_CHECKING:
    from PIL import Image

    from assay.extractors.speech import Segment

TEXT_EMBEDDING_URI = MULTIMODAL.feature_uri("text_embedding")
VISUAL_EMBEDDING_URI = MULTIMODAL.feature_uri("visual_embedding")
CLIP_EMBEDDING_URI = MULTIMODAL.feature_uri("clip_embedding")
THUMBNAIL = "thumbnail"  # the content field of a video segment's keyframe reference
THUMBNAIL_MAX_SIDE = 320
THUMBNAIL_QUALITY = 80
# Keyframes classified per forward pass: few, since they arrive one per window anyway and the
# classifier's working set grows with the batch (measured: +286 MB for 16, +85 MB for 4).
KEYFRAME_BATCH = 4
TRIM_EVERY_KEYFRAMES = 16  # freed heap goes back to the OS this often (a trim takes ~20-50 ms)
# The single-modality extractors' URIs, renamed to this extractor's when their output is reused.
_RENAMED = {
    text_x.TEXT_EMBEDDING_URI: TEXT_EMBEDDING_URI,
    image_x.TEXT_EMBEDDING_URI: TEXT_EMBEDDING_URI,
    image_x.VISUAL_EMBEDDING_URI: VISUAL_EMBEDDING_URI,
}


class MultimodalExtractor(BatchedExtractor):
    spec = MULTIMODAL
    reads = frozenset({"text", "json", "image", "audio", "video"})

    def __init__(self, limits: MediaLimits | None = None) -> None:
        self.limits = limits or MediaLimits()
        self._texts = text_x.TextExtractor(self.limits)
        self._images = image_x.ImageExtractor(self.limits)

    def extract_many(
        self, objects: Sequence[ObjectInput], params: dict[str, Any]
    ) -> list[Extracted]:
        p = MultimodalParams.model_validate(params or {})
        if p.clip_model_path:
            clip.load(p.clip_model_path)  # a missing or broken model fails before any decoding
        # Texts and images of all the objects share their models' batches; audio and video
        # are long enough to batch within themselves, one blob at a time.
        texts = self._texts.extract_many(objects, params)
        images = self._images.extract_many(objects, params)
        return [
            self._one(obj, p, text, image)
            for obj, text, image in zip(objects, texts, images, strict=True)
        ]

    def _one(
        self, obj: ObjectInput, p: MultimodalParams, texts: Extracted, images: Extracted
    ) -> Extracted:
        if isinstance(texts, ExtractorError):
            return texts
        if isinstance(images, ExtractorError):
            return images
        drafts = [_renamed(d) for d in [*texts, *images]]
        try:
            for blob in obj.blobs:
                if blob.type == "audio" and blob.loaded:
                    drafts += audio_documents(obj, blob, self.limits)
                elif blob.type == "video" and blob.loaded:
                    drafts += video_documents(obj, blob, p, self.limits)
            if p.clip_model_path:
                add_clip_vectors(obj, drafts, p.clip_model_path, self.limits)
        except ExtractorError as exc:
            return exc
        return drafts

    def embed_query(
        self, feature_uri: str, query: QueryInput, params: dict[str, Any]
    ) -> np.ndarray:
        if feature_uri == TEXT_EMBEDDING_URI:
            return image_x.text_space_query(query, self.limits)
        if feature_uri == VISUAL_EMBEDDING_URI:
            return image_x.visual_query(feature_uri, query, self.limits)
        if feature_uri == CLIP_EMBEDDING_URI:
            return clip_query(query, params, self.limits)
        return super().embed_query(feature_uri, query, params)


def clip_query(query: QueryInput, params: dict[str, Any], limits: MediaLimits) -> np.ndarray:
    """A query's text or image vector from the collection's CLIP weights."""
    path = params.get("clip_model_path")
    if not path:
        raise QueryRefused("params", "this collection has no clip_model_path")
    try:
        if query.text is not None:
            return image_x.query_vector(clip.embed_clip_text(path, [query.text])[0])
        image = image_x.query_image(query, limits)
        return image_x.query_vector(clip.embed_clip_images(path, [image])[0])
    except ModelLoadError as exc:  # the collection's own param points at no usable model
        raise QueryRefused("feature", str(exc)) from exc


def add_clip_vectors(
    obj: ObjectInput,
    drafts: list[DocumentDraft],
    model_path: str,
    limits: MediaLimits | None = None,
) -> None:
    """CLIP image vectors for image documents, text vectors for the others that have text
    (video segments got theirs from the keyframe already)."""
    pending = [d for d in drafts if CLIP_EMBEDDING_URI not in d.features]
    image_blobs = {d.blob_id for d in pending if "labels" in d.content}
    blobs = [b for b in obj.blobs if b.type == "image" and b.blob_id in image_blobs and b.loaded]
    images = [image_x.open_image(b, limits) for b in blobs]
    vectors = clip.as_lists(clip.embed_clip_images(model_path, images)) if images else []
    by_blob = dict(zip([b.blob_id for b in blobs], vectors, strict=True))
    texts: list[tuple[DocumentDraft, str]] = []
    for d in pending:
        if d.blob_id in by_blob:
            d.features[CLIP_EMBEDDING_URI] = by_blob[d.blob_id]
        elif text := (d.content.get("transcript") or d.content.get("text") or "").strip():
            texts.append((d, text))
    text_vectors = clip.as_lists(clip.embed_clip_text(model_path, [t for _, t in texts]))
    for (d, _), v in zip(texts, text_vectors, strict=True):
        d.features[CLIP_EMBEDDING_URI] = v


def _renamed(draft: DocumentDraft) -> DocumentDraft:
    """A text or image extractor's document with its vectors under multimodal feature URIs."""
    return replace(draft, features={_RENAMED.get(k, k): v for k, v in draft.features.items()})


def _metadata(obj: ObjectInput, blob: BlobInput) -> dict[str, Any]:
    """A document's metadata: the object's, the blob's and the object's properties."""
    return {**obj.metadata, **blob.metadata, **obj.properties}


def transcript_segments(blob: BlobInput, limits: MediaLimits | None = None) -> list[Segment]:
    """Whisper segments of a blob's first audio track, transcribed piece by piece."""
    return _transcribed(blob, limits or MediaLimits())[0]


def _transcribed(blob: BlobInput, limits: MediaLimits) -> tuple[list[Segment], int]:
    """Whisper segments of a blob's first audio track, and how many samples it decoded to."""
    from assay.extractors import speech

    what = f"{blob.type} blob {blob.blob_id}"
    segments: list[Segment] = []
    decoded = 0
    for offset_s, samples in media.audio_chunks(blob.source, what, limits=limits):
        decoded += samples.size
        segments += speech.transcribe(samples, offset_ms=round(offset_s * 1000))
        trim_heap()
    return segments, decoded


def audio_documents(
    obj: ObjectInput, blob: BlobInput, limits: MediaLimits | None = None
) -> list[DocumentDraft]:
    """One document per speech segment; audio without any speech fails (it would be invisible
    to search), as EmptyMedia when it holds no sound at all and NoSpeech when it is silence."""
    what = f"audio blob {blob.blob_id}"
    info = media.probe(blob.source, what)
    if not info.has_audio:
        raise ExtractorError("CorruptMedia", f"{what} has no audio stream")
    segments, decoded = _transcribed(blob, limits or MediaLimits())
    if decoded == 0:
        raise ExtractorError("EmptyMedia", f"{what} holds no audio samples")
    if not segments:
        seconds = decoded / media.SAMPLE_RATE
        raise ExtractorError("NoSpeech", f"{what}: no speech found in {seconds:.1f} s of audio")
    vectors = embed_texts([s.text for s in segments])
    end = info.duration_ms or None
    return [
        DocumentDraft(
            blob_id=blob.blob_id,
            property=blob.property,
            content={"text": s.text, "transcript": s.text},
            metadata=_metadata(obj, blob),
            segment={"start_ms": _clamp(s.start_ms, end), "end_ms": _clamp(s.end_ms, end)},
            features={TEXT_EMBEDDING_URI: v},
        )
        for s, v in zip(segments, vectors, strict=True)
    ]


def _clamp(ms: int, end: int | None) -> int:
    """`ms` kept inside [0, end]."""
    return max(0, min(ms, end) if end is not None else ms)


def _blend(a: list[float], b: list[float]) -> list[float]:
    """The unit-length mean of two unit vectors."""
    v = np.asarray(a, dtype=np.float64) + np.asarray(b, dtype=np.float64)
    n = float(np.linalg.norm(v))
    return (v / n if n > 0 else v).round(6).tolist()


def video_documents(
    obj: ObjectInput, blob: BlobInput, p: MultimodalParams, limits: MediaLimits | None = None
) -> list[DocumentDraft]:
    """One document per `time_split_interval` window: keyframe description plus its speech."""
    limits = limits or MediaLimits()
    what = f"video blob {blob.blob_id}"
    data = blob.source
    info = media.probe(data, what)
    # Refused before the (slow) transcription, on what the headers state.
    media.admit(data, limits, what, p.time_split_interval)
    step_ms = p.time_split_interval * 1000
    # Windows past the stated end hold nothing of their own: their speech joins the last one.
    last = math.ceil(info.duration_ms / step_ms) - 1 if info.duration_ms > 0 else None
    spoken: dict[int, list[str]] = {}
    segments = transcript_segments(blob, limits) if info.has_audio else []
    for s in segments:
        index = max(((s.start_ms + s.end_ms) // 2) // step_ms, 0)
        spoken.setdefault(index if last is None else min(index, last), []).append(s.text)
    transcripts = {i: " ".join(texts) for i, texts in spoken.items()}
    t_vectors = dict(zip(transcripts, embed_texts(list(transcripts.values())), strict=True))

    described: dict[int, image_x.Described] = {}
    thumbnails: dict[int, DerivedBlob] = {}
    clip_vectors: dict[int, list[float]] = {}
    batch: list[tuple[int, Image.Image]] = []

    def flush() -> None:
        indexes, frames = [i for i, _ in batch], [f for _, f in batch]
        described.update(zip(indexes, image_x.describe(frames, p.top_k_labels, p.ocr), strict=True))
        if p.clip_model_path:
            vectors = clip.as_lists(clip.embed_clip_images(p.clip_model_path, frames))
            clip_vectors.update(zip(indexes, vectors, strict=True))
        batch.clear()
        if len(described) % TRIM_EVERY_KEYFRAMES == 0:
            trim_heap()

    decoded = media.Decoded()
    for index, frame in media.keyframes(data, p.time_split_interval, what, limits, decoded):
        if last is not None and index > last:
            continue  # a frame past the stated end (within the decoder's tolerance)
        thumbnails[index] = thumbnail(frame)
        batch.append((index, frame))
        if len(batch) >= KEYFRAME_BATCH:
            flush()
    if batch:
        flush()

    # A video that states no duration ends where its frames (or its speech) end.
    end_ms = info.duration_ms or max([round(decoded.end_ms), *(s.end_ms for s in segments)])
    drafts: list[DocumentDraft] = []
    for i in sorted(described.keys() | transcripts.keys()):
        start, end = media.window_bounds(i, p.time_split_interval, end_ms)
        d, transcript = described.get(i), transcripts.get(i, "")
        if d is None and not transcript:
            continue
        content: dict[str, Any] = {"transcript": transcript}
        features: dict[str, Vector] = {}
        derived: dict[str, DerivedBlob] = {}
        text_vector = t_vectors.get(i)
        if d is not None:
            label_text = ", ".join(lb["label"] for lb in d.labels)
            content.update(labels=d.labels, ocr_text=d.ocr_text)
            content["text"] = " ".join(t for t in (transcript, label_text, d.ocr_text) if t)
            features[VISUAL_EMBEDDING_URI] = d.visual
            text_vector = _blend(d.text_vector, text_vector) if text_vector else d.text_vector
            derived[THUMBNAIL] = thumbnails[i]
            if i in clip_vectors:
                features[CLIP_EMBEDDING_URI] = clip_vectors[i]
        else:
            content["text"] = transcript
        if text_vector is not None:  # always: a window has a keyframe or a transcript
            features[TEXT_EMBEDDING_URI] = text_vector
        drafts.append(
            DocumentDraft(
                blob_id=blob.blob_id,
                property=blob.property,
                content=content,
                metadata=_metadata(obj, blob),
                segment={"start_ms": start, "end_ms": end},
                features=features,
                derived_blobs=derived,
            )
        )
    return drafts


def thumbnail(frame: Image.Image) -> DerivedBlob:
    """A JPEG of `frame` no larger than THUMBNAIL_MAX_SIDE on its long side, with its size."""
    small = frame.convert("RGB")
    small.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return DerivedBlob(buf.getvalue(), "image/jpeg", small.width, small.height)
