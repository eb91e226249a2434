"""Declarations of the built-in extractors (their code loads models lazily, elsewhere)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from assay.extractors.base import ExtractorParams, ExtractorSpec, OutputSpec

TEXT_DIM = 384  # all-MiniLM-L6-v2, the shared text space
VISUAL_DIM = 1280  # EfficientNet-Lite0 pooled features


class TextParams(ExtractorParams):
    split_by: Literal["characters", "sentences", "paragraphs"] = "sentences"
    chunk_size: int = Field(default=1000, ge=16, le=100_000)
    chunk_overlap: int = Field(default=100, ge=0, le=10_000)


class ImageParams(ExtractorParams):
    ocr: bool = True
    top_k_labels: int = Field(default=5, ge=1, le=50)


class MultimodalParams(TextParams, ImageParams):
    time_split_interval: int = Field(default=10, ge=1, le=3600)
    clip_model_path: str | None = Field(
        default=None,
        max_length=4096,
        description=(
            "a local folder holding CLIP or SigLIP weights and their processor (saved with "
            "save_pretrained); adds the clip_embedding output. Nothing is downloaded."
        ),
    )


_TEXT_OUTPUTS = (
    OutputSpec("text_embedding", "vector", TEXT_DIM, "MiniLM sentence embedding of a chunk"),
    OutputSpec("text", "text", None, "the chunk text, indexed for full-text search"),
)
_IMAGE_OUTPUTS = (
    OutputSpec("visual_embedding", "vector", VISUAL_DIM, "EfficientNet-Lite0 pooled features"),
    OutputSpec("text_embedding", "vector", TEXT_DIM, "labels and OCR text in the text space"),
    OutputSpec("labels", "labels", None, "ImageNet labels with probabilities"),
    OutputSpec("ocr_text", "text", None, "text read from the image"),
)

BUILTIN_SPECS: tuple[ExtractorSpec, ...] = (
    TEXT := ExtractorSpec(
        name="text_extractor",
        version="v1",
        description="Chunks text and embeds each chunk with MiniLM (384-d).",
        input_types=("text",),
        outputs=_TEXT_OUTPUTS,
        params_model=TextParams,
    ),
    IMAGE := ExtractorSpec(
        name="image_extractor",
        version="v1",
        description="Labels, OCR text, a visual vector and a text-space vector per image.",
        input_types=("image",),
        outputs=_IMAGE_OUTPUTS,
        params_model=ImageParams,
    ),
    MULTIMODAL := ExtractorSpec(
        name="multimodal_extractor",
        version="v1",
        description="Text, images, audio (Whisper transcripts) and video segments into one space.",
        input_types=("text", "image", "audio", "video"),
        outputs=(
            *_IMAGE_OUTPUTS,
            OutputSpec("text", "text", None, "chunk text"),
            OutputSpec("transcript", "text", None, "speech transcript of a segment"),
            OutputSpec("thumbnail", "blob", None, "JPEG keyframe of a video segment"),
            OutputSpec(
                "clip_embedding",
                "vector",
                None,
                "only with clip_model_path: CLIP/SigLIP vector of an image or keyframe, or of a "
                "text or transcript, in one space; its dimensions are the model's",
            ),
        ),
        params_model=MultimodalParams,
    ),
    PASSTHROUGH := ExtractorSpec(
        name="passthrough_extractor",
        version="v1",
        description="Copies text and metadata into documents without a model.",
        input_types=("text", "json", "image", "audio", "video", "pdf", "binary"),
        outputs=(OutputSpec("text", "text", None, "the text or JSON content as is"),),
    ),
)
