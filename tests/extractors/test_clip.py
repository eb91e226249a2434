"""Local CLIP weights (`clip_model_path`): a tiny random CLIP saved by the test, loaded offline."""

from __future__ import annotations

import io
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from assay.extractors import clip
from assay.extractors.base import BlobInput, ObjectInput
from assay.extractors.builtin.multimodal import (
    CLIP_EMBEDDING_URI,
    TEXT_EMBEDDING_URI,
    MultimodalExtractor,
)
from assay.extractors.models import ModelLoadError
from tests.conftest import TINY_CLIP_DIM


def _png(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, format="PNG")
    return buf.getvalue()


def test_image_and_text_vectors_are_unit_length_in_one_space(tiny_clip: Path) -> None:
    images = clip.embed_clip_images(
        str(tiny_clip), [Image.new("RGB", (90, 40), "red"), Image.new("L", (20, 20), 128)]
    )
    texts = clip.embed_clip_text(str(tiny_clip), ["a red square", "grey " * 200])
    assert images.shape == texts.shape == (2, TINY_CLIP_DIM)
    assert images.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    assert not np.allclose(images[0], images[1]) and not np.allclose(texts[0], texts[1])
    # The same input gives the same vector: queries and documents meet.
    again = clip.embed_clip_text(str(tiny_clip), ["a red square"])
    np.testing.assert_allclose(again[0], texts[0], atol=1e-6)
    assert clip.embed_clip_text(str(tiny_clip), []).shape == (0, TINY_CLIP_DIM)
    assert clip.dimensions(tiny_clip) == TINY_CLIP_DIM


def test_model_is_loaded_once_per_folder(tiny_clip: Path) -> None:
    assert clip.load(tiny_clip) is clip.load(str(tiny_clip) + "/")


def test_folders_without_a_model_fail_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="not a folder"):
        clip.load(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        clip.load(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "clip"}')
    with pytest.raises(ModelLoadError, match="cannot load"):
        clip.embed_clip_text(tmp_path, ["hello"])
    assert time.perf_counter() - start < 10


def test_multimodal_documents_carry_clip_vectors(tiny_clip: Path) -> None:
    obj = ObjectInput(
        "o1",
        {},
        {},
        (
            BlobInput("t", "body", "text", "text/plain", {}, b"A sentence about foxes."),
            BlobInput("i", "pic", "image", "image/png", {}, _png("blue")),
        ),
    )
    text_doc, image_doc = MultimodalExtractor().extract(
        obj, {"ocr": False, "clip_model_path": str(tiny_clip)}
    )
    text_vec = text_doc.features[CLIP_EMBEDDING_URI]
    image_vec = image_doc.features[CLIP_EMBEDDING_URI]
    assert TEXT_EMBEDDING_URI in text_doc.features
    assert len(text_vec) == len(image_vec) == TINY_CLIP_DIM
    np.testing.assert_allclose(
        image_vec,
        clip.embed_clip_images(tiny_clip, [Image.open(io.BytesIO(_png("blue")))])[0],
        atol=1e-5,
    )
    np.testing.assert_allclose(
        text_vec, clip.embed_clip_text(tiny_clip, ["A sentence about foxes."])[0], atol=1e-5
    )


def _silent_video(seconds: int = 4, fps: int = 5) -> bytes:
    """A video without sound: red for half its length, then green."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        v = out.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
        for i in range(seconds * fps):
            color = "red" if i < seconds * fps // 2 else "green"
            frame = av.VideoFrame.from_image(Image.new("RGB", (160, 120), color))
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return buf.getvalue()


def test_video_segments_carry_their_keyframes_clip_vector(tiny_clip: Path) -> None:
    blob = BlobInput("v", "clip", "video", "video/x-matroska", {}, _silent_video())
    docs = MultimodalExtractor().extract(
        ObjectInput("o1", {}, {}, (blob,)),
        {"ocr": False, "time_split_interval": 2, "clip_model_path": str(tiny_clip)},
    )
    assert [(d.segment or {}).get("start_ms") for d in docs] == [0, 2000]
    red, green = (np.asarray(d.features[CLIP_EMBEDDING_URI]) for d in docs)
    assert red.shape == green.shape == (TINY_CLIP_DIM,)
    assert not np.allclose(red, green)
    expected = clip.embed_clip_images(tiny_clip, [Image.new("RGB", (160, 120), "red")])[0]
    assert float(red @ expected) > 0.99  # the keyframe, up to video compression


def test_a_missing_clip_folder_fails_the_object_with_model_load_error(tmp_path: Path) -> None:
    obj = ObjectInput("o1", {}, {}, (BlobInput("t", "body", "text", "text/plain", {}, b"hi"),))
    with pytest.raises(ModelLoadError, match="not a folder"):
        MultimodalExtractor().extract(obj, {"clip_model_path": str(tmp_path / "nowhere")})
