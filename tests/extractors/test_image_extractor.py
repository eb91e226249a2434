"""image_extractor v1 on the real packaged models, with images drawn by Pillow."""

from __future__ import annotations

import io
import math
import time
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFont

from assay.documents.drafts import DocumentDraft
from assay.extractors.base import BlobInput, ExtractorError, ObjectInput
from assay.extractors.builtin.catalogue import TEXT_DIM, VISUAL_DIM
from assay.extractors.builtin.image import (
    TEXT_EMBEDDING_URI,
    VISUAL_EMBEDDING_URI,
    ImageExtractor,
    imagenet_labels,
)
from assay.extractors.models import embed_texts
from assay.kit.limits import MediaLimits


def png(image: Image.Image) -> bytes:
    """An image encoded as PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def word_image(word: str = "INVOICE", dx: int = 0) -> bytes:
    """A big black word on white, shifted right by `dx` pixels."""
    image = Image.new("RGB", (640, 240), "white")
    draw = ImageDraw.Draw(image)
    draw.text((60 + dx, 80), word, fill="black", font=ImageFont.load_default(size=64))
    draw.rectangle((20, 20, 620, 220), outline="navy", width=4)
    return png(image)


def noise_image() -> bytes:
    """Random coloured pixels: nothing like a page of text."""
    return png(Image.frombytes("RGB", (320, 240), bytes(range(256)) * 900))


def disc_image() -> bytes:
    """A red disc on green."""
    image = Image.new("RGB", (300, 300), (20, 160, 40))
    ImageDraw.Draw(image).ellipse((50, 50, 250, 250), fill=(220, 30, 30))
    return png(image)


def obj(*images: bytes, metadata: dict[str, Any] | None = None) -> ObjectInput:
    """An object whose blobs are the given images."""
    blobs = tuple(
        BlobInput(f"b{i}", "photo", "image", "image/png", {"n": i}, data)
        for i, data in enumerate(images)
    )
    return ObjectInput("obj-1", metadata or {"source": "test"}, {"title": "t"}, blobs)


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def vector(doc: DocumentDraft, uri: str) -> list[float]:
    """A document's vector for `uri`."""
    vec = doc.features[uri]
    assert isinstance(vec, list)
    return vec


@pytest.fixture(scope="module")
def word_doc() -> DocumentDraft:
    """The word image extracted with OCR on (the default)."""
    ImageExtractor().extract(obj(disc_image()), {"ocr": False})  # models load outside the timing
    start = time.perf_counter()
    (doc,) = ImageExtractor().extract(obj(word_image()), {})
    print(f"\nimage_extractor, ocr on, image with text: {time.perf_counter() - start:.2f} s")
    return doc


@pytest.fixture(scope="module")
def no_ocr_docs() -> list[DocumentDraft]:
    """Word, shifted word, noise and disc extracted in one object with OCR off; prints images/s."""
    images = [word_image(), word_image(dx=6), noise_image(), disc_image()]
    start = time.perf_counter()
    docs = ImageExtractor().extract(obj(*images), {"ocr": False})
    rate = len(images) / (time.perf_counter() - start)
    print(f"\nimage_extractor, ocr off: {rate:.1f} images/s")
    return docs


def test_labels_file_has_the_thousand_classes() -> None:
    names = imagenet_labels()
    assert len(names) == 1000
    assert (names[0], names[281], names[954]) == ("tench", "tabby", "banana")


def test_ocr_reads_the_drawn_word(word_doc: DocumentDraft) -> None:
    assert "invoice" in word_doc.content["ocr_text"].lower()
    assert "invoice" in word_doc.content["text"].lower()


def test_labels_are_top_five_probabilities(word_doc: DocumentDraft) -> None:
    labels = word_doc.content["labels"]
    assert len(labels) == 5
    scores = [lb["score"] for lb in labels]
    assert scores == sorted(scores, reverse=True)
    assert 0 < sum(scores) <= 1 + 1e-5
    assert all(isinstance(lb["label"], str) and lb["label"] for lb in labels)
    assert word_doc.content["text"].startswith(labels[0]["label"])


def test_vectors_have_their_dims_and_unit_norm(word_doc: DocumentDraft) -> None:
    assert set(word_doc.features) == {VISUAL_EMBEDDING_URI, TEXT_EMBEDDING_URI}
    for uri, dim in ((VISUAL_EMBEDDING_URI, VISUAL_DIM), (TEXT_EMBEDDING_URI, TEXT_DIM)):
        vec = vector(word_doc, uri)
        assert len(vec) == dim
        assert math.isclose(math.sqrt(sum(x * x for x in vec)), 1.0, abs_tol=1e-4)


def test_lineage_and_metadata(word_doc: DocumentDraft) -> None:
    assert (word_doc.blob_id, word_doc.property, word_doc.segment) == ("b0", "photo", None)
    assert word_doc.metadata == {"source": "test", "n": 0, "title": "t"}


def test_text_vector_is_near_the_word(word_doc: DocumentDraft) -> None:
    if "invoice" not in word_doc.content["ocr_text"].lower():
        pytest.skip("OCR did not read the word")
    invoice, banana = embed_texts(["invoice", "banana"])
    text_vec = vector(word_doc, TEXT_EMBEDDING_URI)
    assert cosine(text_vec, invoice) > cosine(text_vec, banana)


def test_similar_images_are_closer_than_different_ones(no_ocr_docs: list[DocumentDraft]) -> None:
    word, shifted, noise, disc = (vector(d, VISUAL_EMBEDDING_URI) for d in no_ocr_docs)
    near = cosine(word, shifted)
    assert near > cosine(word, noise)
    assert near > cosine(word, disc)
    assert near > 0.9


def test_ocr_off_leaves_no_text(no_ocr_docs: list[DocumentDraft]) -> None:
    assert [d.blob_id for d in no_ocr_docs] == ["b0", "b1", "b2", "b3"]
    for doc in no_ocr_docs:
        assert doc.content["ocr_text"] == ""
        assert len(vector(doc, TEXT_EMBEDDING_URI)) == TEXT_DIM
        assert doc.content["text"] == ", ".join(lb["label"] for lb in doc.content["labels"])


def test_top_k_labels_param() -> None:
    (doc,) = ImageExtractor().extract(obj(disc_image()), {"ocr": False, "top_k_labels": 2})
    assert len(doc.content["labels"]) == 2


def test_image_without_text_has_empty_ocr() -> None:
    blank = png(Image.new("RGB", (320, 240), (90, 140, 200)))
    (doc,) = ImageExtractor().extract(obj(blank), {})
    assert doc.content["ocr_text"] == ""


@pytest.mark.parametrize("data", [b"not an image at all", word_image()[:200]])
def test_corrupt_bytes_fail_with_corrupt_image(data: bytes) -> None:
    with pytest.raises(ExtractorError) as info:
        ImageExtractor().extract(obj(data), {})
    assert info.value.error_type == "CorruptImage"


def test_blobs_of_other_types_are_ignored() -> None:
    blob = BlobInput("t", "body", "text", "text/plain", {}, b"hello")
    assert ImageExtractor().extract(ObjectInput("o", {}, {}, (blob,)), {}) == []


def test_a_chunk_of_objects_shares_passes_and_a_corrupt_one_fails_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from assay.extractors import vision

    passes: list[int] = []
    classify = vision.classify

    def counting(images: list[Any]) -> Any:
        passes.append(len(images))
        return classify(images)

    monkeypatch.setattr(vision, "classify", counting)
    objects = [obj(disc_image()), obj(b"not an image"), obj(disc_image(), noise_image())]
    first, bad, both = ImageExtractor().extract_many(objects, {"ocr": False})
    assert passes == [3]  # one forward pass for the three good images of the chunk
    assert isinstance(bad, ExtractorError) and bad.error_type == "CorruptImage"
    assert isinstance(first, list) and isinstance(both, list)
    assert [d.blob_id for d in first] == ["b0"] and [d.blob_id for d in both] == ["b0", "b1"]
    (alone,) = ImageExtractor().extract(objects[0], {"ocr": False})
    for uri in (VISUAL_EMBEDDING_URI, TEXT_EMBEDDING_URI):
        assert cosine(vector(first[0], uri), vector(alone, uri)) > 0.9999
    labels = [[lb["label"] for lb in d.content["labels"]] for d in (first[0], alone)]
    assert labels[0] == labels[1]


def test_an_image_over_the_pixel_limit_fails_alone_as_image_too_large() -> None:
    limits = MediaLimits(max_image_pixels=300 * 300)  # the disc fits, the 640x240 word does not
    ok, big = ImageExtractor(limits).extract_many([obj(disc_image()), obj(word_image())], {})
    assert isinstance(ok, list) and len(ok) == 1
    assert isinstance(big, ExtractorError) and big.error_type == "ImageTooLarge"
    assert "640x240 (153,600 pixels)" in big.message and "ASSAY_MAX_IMAGE_PIXELS" in big.message


def test_a_large_image_is_read_at_its_working_size_and_its_text_still_found() -> None:
    with Image.open(io.BytesIO(word_image())) as small:
        large = small.resize((small.width * 6, small.height * 6))  # 3840x1440
    (doc,) = ImageExtractor().extract(obj(png(large)), {})
    assert "invoice" in doc.content["ocr_text"].lower()
