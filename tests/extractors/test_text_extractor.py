"""text_extractor v1 on the real packaged MiniLM: chunks, lineage, vectors and bad input."""

from __future__ import annotations

import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from assay.extractors import minilm_onnx
from assay.extractors.base import BlobInput, ExtractorError, ObjectInput
from assay.extractors.builtin import text as text_module
from assay.extractors.builtin.catalogue import TEXT_DIM
from assay.extractors.builtin.text import (
    TEXT_EMBEDDING_URI,
    TextExtractor,
    text_params,
)
from assay.extractors.model_cache import MODELS
from assay.extractors.models import (
    ModelLoadError,
    embed_query,
    embed_texts,
    load_sentence_transformer,
    text_encoder,
)

P1 = "The cat sat on the mat. It purred softly in the sun."
P2 = "Quarterly revenue grew five percent. Costs fell slightly."
P3 = "Rain is due. Bring a coat."
THREE = f"{P1}\n\n{P2}\n\n{P3}"


@pytest.fixture(scope="module", autouse=True)
def encoder() -> Any:
    """Loads MiniLM once for the module; every test after the first reuses it."""
    return text_encoder()


def blob(data: bytes, blob_type: str = "text", blob_id: str = "blob_1") -> BlobInput:
    return BlobInput(blob_id, "body", blob_type, "text/plain", {"lang": "en"}, data)


def obj(*blobs: BlobInput) -> ObjectInput:
    return ObjectInput("obj_1", {"source": "test"}, {"sku": "A1"}, blobs)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("split_by", "size", "overlap", "expected"),
    [
        ("characters", 60, 10, [THREE[0:60], THREE[50:110].strip(), THREE[100:].strip()]),
        (
            "sentences",
            40,
            0,
            [
                "The cat sat on the mat.",
                "It purred softly in the sun.",
                "Quarterly revenue grew five percent.",
                "Costs fell slightly.\n\nRain is due.",
                "Bring a coat.",
            ],
        ),
        ("paragraphs", 60, 0, [P1, P2, P3]),
    ],
)
def test_three_paragraphs_chunk_per_mode(
    split_by: str, size: int, overlap: int, expected: list[str]
) -> None:
    params = {"split_by": split_by, "chunk_size": size, "chunk_overlap": overlap}
    drafts = TextExtractor().extract(obj(blob(THREE.encode())), params)
    assert [d.content["text"] for d in drafts] == expected
    for d in drafts:
        seg = d.segment
        assert seg is not None
        assert THREE[seg["start_char"] : seg["end_char"]] == d.content["text"]
        assert (d.blob_id, d.property) == ("blob_1", "body")
        assert d.metadata == {"source": "test", "lang": "en", "sku": "A1"}
    assert len({d.segment_key for d in drafts}) == len(drafts)


def test_vectors_are_384_d_and_unit_norm() -> None:
    drafts = TextExtractor().extract(obj(blob(THREE.encode())), {"split_by": "paragraphs"})
    assert len(drafts) == 1  # the default chunk_size of 1000 holds all three paragraphs
    vector = drafts[0].features[TEXT_EMBEDDING_URI]
    assert TEXT_EMBEDDING_URI == "assay://text_extractor@v1/text_embedding"
    assert len(vector) == TEXT_DIM
    assert all(type(x) is float for x in vector)
    assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, abs_tol=1e-4)


def test_similar_sentences_are_closer_than_unrelated_ones() -> None:
    cat, kitten, revenue = embed_texts(
        ["The cat sat on the mat", "A kitten rests on a rug", "Quarterly revenue grew 5%"]
    )
    assert cosine(cat, kitten) > cosine(cat, revenue) + 0.3
    assert cosine(kitten, revenue) < 0.3
    query = embed_query("where is the kitten sleeping?")
    assert cosine(query, kitten) > cosine(query, revenue)


def test_json_blob_is_chunked_in_canonical_form() -> None:
    data = json.dumps({"title": "Café menu", "items": ["tea", "cake"]}).encode()
    drafts = TextExtractor().extract(obj(blob(data, "json")), {})
    assert [d.content["text"] for d in drafts] == [
        '{"items": ["tea", "cake"], "title": "Café menu"}'
    ]


def test_all_chunks_of_an_object_are_embedded_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counting(texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        return embed_texts(texts)

    monkeypatch.setattr(text_module, "embed_texts", counting)
    image = BlobInput("blob_img", "hero", "image", "image/png", {}, None)
    two = obj(blob(THREE.encode()), image, blob(b'{"a": 1}', "json", "blob_2"))
    drafts = TextExtractor().extract(two, {"split_by": "paragraphs", "chunk_size": 60})
    assert calls == [4]
    assert [d.blob_id for d in drafts] == ["blob_1"] * 3 + ["blob_2"]


def test_a_chunk_of_objects_is_embedded_in_one_call_and_a_bad_one_fails_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[int] = []

    def counting(texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        return embed_texts(texts)

    monkeypatch.setattr(text_module, "embed_texts", counting)
    on_disk = tmp_path / "big.txt"
    on_disk.write_text(P2, encoding="utf-8")  # a large blob reaches extractors as a file
    file_blob = BlobInput("blob_f", "body", "text", "text/plain", {}, path=on_disk)
    objects = [
        ObjectInput("o1", {}, {}, (blob(P1.encode()),)),
        ObjectInput("o2", {}, {}, (blob(b"\xff\xfe broken", blob_id="bad"),)),
        ObjectInput("o3", {}, {}, (file_blob,)),
        ObjectInput("o4", {}, {}, (blob(P3.encode(), blob_id="b4"),)),
    ]
    results = TextExtractor().extract_many(objects, {"split_by": "paragraphs"})
    assert calls == [3]
    first, bad, from_file, last = results
    assert isinstance(bad, ExtractorError) and bad.error_type == "InvalidContent"
    assert isinstance(first, list) and isinstance(from_file, list) and isinstance(last, list)
    assert [d.content["text"] for d in [*first, *from_file, *last]] == [P1, P2, P3]
    # The same vectors as one object at a time.
    for drafts, alone in ((first, objects[0]), (from_file, objects[2])):
        (single,) = TextExtractor().extract(alone, {"split_by": "paragraphs"})
        got, want = drafts[0].features, single.features
        assert cosine(got[TEXT_EMBEDDING_URI], want[TEXT_EMBEDDING_URI]) > 0.9999


@pytest.mark.parametrize("data", [b"", b"  \n\n\t "])
def test_empty_text_gives_no_documents(data: bytes) -> None:
    assert TextExtractor().extract(obj(blob(data)), {}) == []


@pytest.mark.parametrize(
    ("data", "blob_type"), [(b"caf\xe9 \xff", "text"), (b'{"a": ', "json"), (b"\xff{}", "json")]
)
def test_invalid_content_fails_the_object(data: bytes, blob_type: str) -> None:
    with pytest.raises(ExtractorError) as info:
        TextExtractor().extract(obj(blob(data, blob_type)), {})
    assert info.value.error_type == "InvalidContent"
    assert "blob_1" in info.value.message


def test_params_of_other_extractors_are_ignored() -> None:
    p = text_params({"split_by": "characters", "chunk_size": 64, "ocr": True, "top_k_labels": 3})
    assert (p.split_by, p.chunk_size, p.chunk_overlap) == ("characters", 64, 100)


def test_missing_or_broken_model_raises_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=re.escape(str(tmp_path))):
        load_sentence_transformer(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_sentence_transformer(tmp_path)


def test_encoder_is_shared_and_safe_across_threads() -> None:
    texts = [f"thread-safe sentence {i}" for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        encoders = list(pool.map(lambda _: text_encoder(), range(8)))
        results = list(pool.map(lambda _: embed_texts(texts), range(8)))
    assert all(e is encoders[0] for e in encoders)
    assert all(r == results[0] for r in results)


def test_measure_encode_throughput() -> None:
    texts = [f"Short sentence number {i} about cats, rain or revenue." for i in range(512)]
    started = time.perf_counter()
    embed_texts(texts)
    batch_rate = len(texts) / (time.perf_counter() - started)
    started = time.perf_counter()
    for text in texts[:20]:
        embed_query(text)
    query_ms = (time.perf_counter() - started) / 20 * 1000
    print(
        f"\nMiniLM: {batch_rate:.0f} sentences/s; one query {query_ms:.1f} ms"
        " (the first builds the ONNX graph)"
    )


QUERIES = [
    "where is the kitten sleeping?",
    "Ünïcödé — naïve café façade 日本語のテキスト",
    "",
    " ".join(["revenue grew while costs fell and the rain kept falling"] * 60),  # > 256 tokens
]


def torch_vectors(texts: list[str]) -> list[list[float]]:
    """The reference: the packaged SentenceTransformer's own encode on torch."""
    found = text_encoder().encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    return [list(map(float, v)) for v in found]


def fresh_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the process's onnxruntime sessions and graph, so the test builds them."""
    monkeypatch.setattr(MODELS, "_models", MODELS.without("minilm-onnx"))


def test_onnxruntime_gives_the_vectors_torch_gives() -> None:
    assert minilm_onnx.onnx_minilm("query") is not None, "no onnxruntime MiniLM was built"
    assert minilm_onnx.onnx_minilm("documents") is not None
    texts = [*QUERIES, *(f"{P1} {'and more ' * i}" for i in range(40))]  # mixed lengths
    reference = torch_vectors(texts)
    for got, want in zip(embed_texts(texts), reference, strict=True):
        assert len(got) == TEXT_DIM and cosine(got, want) > 0.99999
    for text, want in zip(QUERIES, reference, strict=False):
        assert cosine(list(embed_query.__wrapped__(text)), want) > 0.99999  # not the cache


def test_torch_answers_when_no_graph_can_be_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Path:
        raise RuntimeError("no exporter here")

    fresh_onnx(monkeypatch)
    monkeypatch.setattr(minilm_onnx, "graph_file", broken)
    assert minilm_onnx.onnx_minilm("query") is None
    assert minilm_onnx.onnx_minilm("documents") is None
    reference = torch_vectors(QUERIES[:2])
    assert cosine(list(embed_query.__wrapped__(QUERIES[0])), reference[0]) > 0.99999
    for got, want in zip(embed_texts(QUERIES[:2]), reference, strict=True):
        assert cosine(got, want) > 0.99999


def test_onnx_sessions_build_and_answer_while_documents_are_encoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fresh_onnx(monkeypatch)
    documents = [f"Document {i} about harbours, cranes and night trains." for i in range(256)]
    queries = [f"which crane moved crate {i}?" for i in range(24)]
    with ThreadPoolExecutor(6) as pool:
        encoded = [pool.submit(embed_texts, documents) for _ in range(2)]
        answers = list(pool.map(embed_query.__wrapped__, queries))
        assert all(f.result() == encoded[0].result() for f in encoded)
    assert minilm_onnx.onnx_minilm("query") is not None  # nothing fell back to torch
    for query, reference in zip(answers, torch_vectors(queries), strict=True):
        assert cosine(list(query), reference) > 0.99999


def test_the_graph_is_exported_once_by_a_child_and_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fresh_onnx(monkeypatch)
    first = minilm_onnx.graph_file()
    assert first.parent == tmp_path / "assay" and first.stat().st_size > 50_000_000
    stamp = first.stat().st_mtime_ns
    assert minilm_onnx.graph_file() == first and first.stat().st_mtime_ns == stamp  # cached
    assert not list(first.parent.glob("*.tmp"))
    encoder = minilm_onnx.onnx_minilm("query")
    assert encoder is not None
    (vector,) = encoder.embed([QUERIES[0]], batch_size=1)
    assert cosine(list(map(float, vector)), torch_vectors(QUERIES[:1])[0]) > 0.99999
