"""Retrieval quality: recall@1 and recall@5 of text queries, per modality, on a labelled set.

Builds a deterministic evaluation set (at `--scale 1`: 200 texts, 30 images with a drawn word,
30 images of one coloured shape, 20 espeak-ng speech clips, 5 videos of 30 s with speech in two
10-s windows and a drawn word in the third), ingests it through the HTTP API of a fresh
`assay serve` (one namespace with multimodal_extractor v1, one bucket, one batch), then runs
every query through `POST /v1/retrievers/execute` over the whole mixed collection, twice:
`feature_search` on `text_embedding` (MiniLM, the shared text space) and `text_search` (BM25).

A hit at rank k is a document of the target object (for a video, of the target 10-s window)
among the first k documents. No `group_by`: every document competes, as users see them.
The query set and every query's top 5 are written to `--out` (JSON lines).

    .venv/bin/python bench/eval_quality.py            # the default set, ~4-5 min on 2 cores
    .venv/bin/python bench/eval_quality.py --scale 0.1
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
ADMIN_KEY = "sk_live_bench_admin_key_0123456789"
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": "quality"}
CLI = "from assay.cli import app; app()"
URI = "assay://multimodal_extractor@v1/text_embedding"
FONTS = Path("/usr/share/fonts/truetype/dejavu")
WINDOW_S, VIDEO_S, FPS, RATE = 10, 30, 5, 16_000
ESPEAK = ["-v", "en", "-s", "130"]  # the voice Whisper tiny.en transcribes best of those tried
SCHEMA = {
    "properties": {
        "body": {"type": "text"},
        "picture": {"type": "image"},
        "sound": {"type": "audio"},
        "clip": {"type": "video"},
    }
}

# ---------------------------------------------------------------- the labelled set


def _split(block: str, sep: str = "|") -> list[str]:
    return [part.strip() for part in block.replace("\n", sep).split(sep) if part.strip()]


def _pairs(block: str, sep: str) -> list[tuple[str, str]]:
    """'a: b | c: d' (or one 'a | b' a line) as [(a, b), (c, d)]."""
    lines = _split(block, "|") if sep == ":" else block.strip().splitlines()
    out = []
    for entry in lines:
        a, b = entry.split(sep)
        out.append((a.strip(), b.strip()))
    return out


# Texts: "<who> <verb> the <thing> <place> ..." — every text has its own (verb, thing, place);
# the paraphrase query says all three in other words, so a text shares two of them with others.
_WHO = "Anna|The caretaker|My uncle|A neighbour|The new tenant|Our manager|The volunteer|Mr Patel"
_WHO += "|The twins|A technician"
_VERBS = """repaired: fixing | painted: colouring | sold: selling | photographed: taking pictures of
delivered: bringing | cleaned: washing | assembled: putting together | lost: misplacing
stole: robbing | measured: taking the dimensions of"""
_THINGS = """bicycle: a bike | sofa: a couch | car: an automobile | sailboat: a yacht
lamp: a light fixture | carpet: a rug | laptop: a notebook computer | wardrobe: a closet
motorcycle: a motorbike | television: a TV set"""
_PLACES = """near the harbour: by the docks | at the hospital: at the clinic
behind the church: behind the chapel | on the farm: at the ranch | in the office: at the workplace
at the hotel: at the inn | in the village: in a small hamlet
inside the warehouse: in a storage depot | at the university: on the college campus
beside the lake: by the pond"""
_CODAS = """Nobody noticed until the evening. | It took longer than anyone expected.
The weather turned cold that afternoon. | Everyone agreed it was worth it.
The receipt is still in the drawer. | It happened on a quiet Tuesday.
Nobody asked any questions. | The neighbours talked about it for weeks."""

# Drawn words (images) and the words drawn on the videos: none is said or written elsewhere.
_DRAWN = _split(
    """INVOICE BANANA ROCKET PIANO TIGER WINTER CASTLE PLANET GUITAR TICKET DRAGON PARKING
PHARMACY BUTTERFLY LEMONADE PYRAMID SUBMARINE VIOLIN CHOCOLATE TELESCOPE KANGAROO TORNADO
ELEPHANT BAKERY DIAMOND PIZZA ANCHOR CARNIVAL PENCIL OCTOPUS""",
    " ",
)
_VIDEO_WORDS = _split("LIGHTHOUSE PENGUIN TRUMPET CACTUS HELICOPTER", " ")
_COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 60),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 20),
    "purple": (130, 40, 170),
    "orange": (245, 140, 20),
}
_SHAPES = ["circle", "square", "triangle", "star", "cross"]

# Speech: what is said | a query asking for it in other words.
_CLIPS = """
The ferry to the island leaves at seven every morning. | when does the boat to the island depart
Our kitchen needs a new refrigerator before the summer. | buying a fridge for the kitchen
The museum will close early on Friday for a private event. | museum closing time on friday
Please water the tomatoes while I am away on holiday. | tomato plants during vacation
The train to the airport was delayed by forty minutes. | late train to the airport
She scored the winning goal in the last minute of the match. | last-minute football winner
The doctor said I should drink more water and sleep longer. | medical advice on hydration and rest
We are painting the bedroom walls a pale shade of green. | redecorating the bedroom in green
The library has extended its opening hours during the exams. | library open longer for exams
A strong wind knocked down the old oak tree in the park. | storm toppled a tree in the park
The bakery on the corner sells fresh croissants every morning. | corner shop with fresh pastries
Remember to bring your passport and boarding pass to the gate. | documents needed to board a flight
The concert was cancelled because the singer lost her voice. | why the concert was called off
My grandfather grew up on a farm with cows and chickens. | grandpa's childhood with farm animals
The new bridge across the river will open next spring. | when will the river bridge open
Turn left at the traffic lights and the hotel is on your right. | directions to the hotel
The price of coffee has doubled over the last two years. | coffee became more expensive
Our team will present the quarterly results on Monday. | quarterly earnings presentation
The children built a sandcastle on the beach this afternoon. | kids playing in sand at the seaside
Scientists discovered a new species of frog in the rainforest. | a new frog found in the jungle
"""
# Two per video: the first said in its first window, the second in its third.
_VIDEO_SPEECH = """
The fire alarm will be tested at noon tomorrow. | fire alarm test
Please leave your umbrellas at the entrance. | where to put umbrellas
The chess tournament starts after lunch in the main hall. | chess competition schedule
Fresh strawberries are on sale at the market today. | cheap strawberries at the market
The pilot announced that we will land in twenty minutes. | plane landing soon announcement
Our neighbour's dog barks every night at midnight. | a noisy dog at night
The swimming pool is closed for cleaning this week. | pool shut for maintenance
He forgot his keys in the taxi on the way home. | lost keys in a cab
The volcano erupted and the whole village was evacuated. | eruption forces residents to leave
The recipe needs two eggs, flour and a cup of milk. | ingredients for the recipe
"""


@dataclass
class Item:
    """One object to ingest: a label, its blob, and the object's metadata."""

    label: str
    kind: str  # text | image | audio | video
    content: str  # the text, or base64
    said: list[str] = field(default_factory=list)  # the sentences spoken, for the record


@dataclass
class Query:
    """A text query, its task, and where its answer is."""

    task: str
    query: str
    target: str  # the item's label
    window_ms: int | None = None  # for a video: the start of the target window
    note: str = ""


@dataclass
class Dataset:
    items: list[Item]
    queries: list[Query]
    limits: list[str]


def counts(scale: float) -> dict[str, int]:
    """How many of each kind at `scale` (1.0: the full set; every kind keeps at least one)."""

    def n(full: int) -> int:
        return max(1, min(full, round(full * scale)))

    return {
        "texts": n(200),
        "words": n(len(_DRAWN)),
        "shapes": n(len(_COLOURS) * len(_SHAPES)),
        "clips": n(len(_pairs(_CLIPS, "|"))),
        "videos": n(len(_VIDEO_WORDS)),
    }


def make_texts(n: int, seed: int = 11) -> list[tuple[str, str, str]]:
    """`n` texts: (text, paraphrase query, keyword query), each with its own triple."""
    rng = random.Random(seed)
    verbs, things, places = (_pairs(b, ":") for b in (_VERBS, _THINGS, _PLACES))
    who, codas = _split(_WHO), _split(_CODAS)
    triples = [(v, t, p) for v in verbs for t in things for p in places]
    rng.shuffle(triples)
    out = []
    for (verb, verb_q), (thing, thing_q), (place, place_q) in triples[:n]:
        text = f"{rng.choice(who)} {verb} the {thing} {place}. " + " ".join(rng.sample(codas, 2))
        out.append((text, f"{verb_q} {thing_q} {place_q}", f"{verb} {thing} {place}"))
    return out


def _font(size: int, rng: random.Random) -> Any:
    from PIL import ImageFont

    name = rng.choice(["DejaVuSans-Bold", "DejaVuSerif-Bold", "DejaVuSans", "DejaVuSansMono-Bold"])
    with contextlib.suppress(OSError):
        return ImageFont.truetype(str(FONTS / f"{name}.ttf"), size)
    return ImageFont.load_default(size=size)


def _png(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def word_scene(word: str, rng: random.Random, size: tuple[int, int] = (480, 320)) -> Any:
    """A drawn word on a light background, with a few faint shapes around it."""
    from PIL import Image, ImageDraw

    w, h = size
    image = Image.new("RGB", size, tuple(rng.randint(200, 255) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(0, 3)):
        x, y = rng.randint(0, w - 60), rng.randint(0, h - 60)
        colour = tuple(rng.randint(120, 230) for _ in range(3))
        draw.ellipse((x, y, x + rng.randint(30, 90), y + rng.randint(30, 90)), fill=colour)
    size_px, face = rng.randint(36, 60), rng.random()
    while True:  # the whole word fits, 8 px from each side
        font = _font(size_px, random.Random(face))
        left, top, right, bottom = draw.textbbox((0, 0), word, font=font)
        if right - left <= w - 16 or size_px <= 12:
            break
        size_px -= 4
    x = rng.randint(8, max(8, w - (right - left) - 8))
    y = rng.randint(8, max(8, h - (bottom - top) - 8))
    ink = tuple(rng.randint(0, 70) for _ in range(3))
    draw.text((x - left, y - top), word, fill=ink, font=font)
    return image


def shape_scene(colour: str, shape: str, rng: random.Random) -> Any:
    """One coloured shape on white or light grey, of a random size and place."""
    from PIL import Image, ImageDraw

    w = h = 320
    image = Image.new("RGB", (w, h), rng.choice(["white", (235, 235, 235)]))
    draw = ImageDraw.Draw(image)
    r = rng.randint(60, 120)
    cx, cy = rng.randint(r + 5, w - r - 5), rng.randint(r + 5, h - r - 5)
    fill = _COLOURS[colour]
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    elif shape == "star":  # five points, the inner corners at 45 % of the radius
        points = []
        for i in range(10):
            radius = r if i % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + i * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        draw.polygon(points, fill=fill)
    else:  # cross
        t = r // 3
        draw.rectangle((cx - r, cy - t, cx + r, cy + t), fill=fill)
        draw.rectangle((cx - t, cy - r, cx + t, cy + r), fill=fill)
    return image


def speak(text: str) -> bytes:
    """espeak-ng's WAV of `text` (22.05 kHz mono)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", *ESPEAK, "-w", str(out), text], check=True)
        return out.read_bytes()


def _samples(wav: bytes) -> Any:
    """Mono float32 16 kHz samples of a WAV (PyAV's resampler)."""
    import av
    import numpy as np

    with av.open(io.BytesIO(wav)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        pieces = [
            f.to_ndarray().reshape(-1) for fr in c.decode(audio=0) for f in resampler.resample(fr)
        ]
        pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(pieces)


def make_video(frames: list[Any], speech: dict[int, bytes]) -> bytes:
    """VIDEO_S seconds at FPS, frame `frames[i]` for window i; `speech[i]` starts 1 s into
    window i. mpeg4 + AAC in mp4."""
    import av
    import numpy as np

    audio = np.zeros(VIDEO_S * RATE, dtype=np.float32)
    for window, wav in speech.items():
        said = _samples(wav)[: (WINDOW_S - 2) * RATE]  # it ends inside its window
        start = (window * WINDOW_S + 1) * RATE
        audio[start : start + said.size] = said
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        v = out.add_stream("mpeg4", rate=FPS)
        v.width, v.height, v.pix_fmt = 320, 240, "yuv420p"
        a = out.add_stream("aac", rate=RATE, layout="mono")
        for i in range(VIDEO_S * FPS):
            frame = av.VideoFrame.from_image(frames[i // (WINDOW_S * FPS)].resize((320, 240)))
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        for i, start in enumerate(range(0, audio.size, 1024)):
            piece = audio[start : start + 1024].reshape(1, -1)
            af = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = RATE, i * 1024, Fraction(1, RATE)
            out.mux(a.encode(af))
        out.mux(a.encode(None))
    return buf.getvalue()


def build(scale: float = 1.0) -> Dataset:
    """The evaluation set at `scale`, the same every time."""
    n = counts(scale)
    items: list[Item] = []
    queries: list[Query] = []
    limits: list[str] = []

    for i, (text, paraphrase, keywords) in enumerate(make_texts(n["texts"])):
        label = f"text-{i:03d}"
        items.append(Item(label, "text", text))
        queries.append(Query("text→text (paraphrase)", paraphrase, label))
        queries.append(Query("text→text (same words)", keywords, label))

    rng = random.Random(23)
    for word in _DRAWN[: n["words"]]:
        label = f"word-{word.lower()}"
        items.append(Item(label, "image", _png(word_scene(word, rng))))
        queries.append(Query("text→image (drawn word)", word.lower(), label))

    combos = [(c, s) for c in _COLOURS for s in _SHAPES]
    random.Random(29).shuffle(combos)
    for colour, shape in combos[: n["shapes"]]:
        label = f"shape-{colour}-{shape}"
        items.append(Item(label, "image", _png(shape_scene(colour, shape, rng))))
        article = "an" if colour[0] in "aeiou" else "a"
        queries.append(Query("text→image (shape + colour)", f"{article} {colour} {shape}", label))

    if shutil.which("espeak-ng") is None:
        limits.append("espeak-ng not found: no speech clips and no speech in the videos")
    else:
        for i, (said, asked) in enumerate(_pairs(_CLIPS, "|")[: n["clips"]]):
            label = f"clip-{i:02d}"
            wav = base64.b64encode(speak(said)).decode()
            items.append(Item(label, "audio", wav, [said]))
            queries.append(Query("text→audio (paraphrase)", asked, label, note=said))

    for i, word in enumerate(_VIDEO_WORDS[: n["videos"]]):
        label = f"video-{i}"
        (said_a, asked_a), (said_b, asked_b) = _pairs(_VIDEO_SPEECH, "|")[2 * i : 2 * i + 2]
        frames = [
            shape_scene(*combos[(7 * i + 3) % len(combos)], rng),
            word_scene(word, rng, (320, 240)),
            shape_scene(*combos[(7 * i + 5) % len(combos)], rng),
        ]
        speech = {} if limits else {0: speak(said_a), 2: speak(said_b)}
        content = base64.b64encode(make_video(frames, speech)).decode()
        items.append(Item(label, "video", content, [said_a, said_b] if speech else []))
        queries.append(
            Query("text→video segment (drawn word)", word.lower(), label, WINDOW_S * 1000)
        )
        if speech:
            queries.append(Query("text→video segment (speech)", asked_a, label, 0, said_a))
            queries.append(
                Query("text→video segment (speech)", asked_b, label, 2 * WINDOW_S * 1000, said_b)
            )
    return Dataset(items, queries, limits)


# ---------------------------------------------------------------- Assay over HTTP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def assay_server(data_dir: Path, workers: int = 1) -> Iterator[str]:
    """`assay serve` in its own process on a fresh data dir; yields its base URL."""
    port = _free_port()
    env = {**os.environ, "ASSAY_ADMIN_KEY": ADMIN_KEY}
    args = ["serve", "--port", str(port), "--workers", str(workers), "--data-dir", str(data_dir)]
    log = (data_dir / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", CLI, *args], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"assay serve did not start: see {data_dir / 'serve.log'}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _ok(r: httpx.Response) -> dict[str, Any]:
    if r.status_code >= 400:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
    out: dict[str, Any] = r.json()
    return out


_PROPERTY = {"text": "body", "image": "picture", "audio": "sound", "video": "clip"}


def ingest(c: httpx.Client, data: Dataset) -> tuple[dict[str, str], dict[str, Any]]:
    """Namespace, bucket, every item as an object, one batch: label → object id, the batch."""
    extractor = {"feature_extractor_name": "multimodal_extractor", "version": "v1"}
    body = {"namespace_name": "quality", "feature_extractors": [extractor]}
    _ok(c.post("/v1/namespaces", json=body))
    _ok(c.post("/v1/buckets", json={"bucket_name": "eval", "bucket_schema": SCHEMA}))
    ids: dict[str, str] = {}
    for start in range(0, len(data.items), 20):
        page = data.items[start : start + 20]
        objects = [
            {
                "metadata": {"label": it.label},
                "blobs": [{"property": _PROPERTY[it.kind], "type": it.kind, "content": it.content}],
            }
            for it in page
        ]
        answer = _ok(c.post("/v1/buckets/eval/objects/batch", json={"objects": objects}))
        if answer["failed"]:
            raise RuntimeError(f"registration failed: {answer['failed'][:2]}")
        ids.update(
            (it.label, o["object_id"]) for it, o in zip(page, answer["succeeded"], strict=True)
        )
    batch_id = _ok(c.post("/v1/buckets/eval/batches", json={"object_ids": list(ids.values())}))[
        "batch_id"
    ]
    task_id = _ok(c.post(f"/v1/buckets/eval/batches/{batch_id}/submit"))["task_id"]
    while _ok(c.get(f"/v1/tasks/{task_id}"))["status"] not in ("COMPLETED", "FAILED", "CANCELED"):
        time.sleep(0.2)
    batch = _ok(c.get(f"/v1/buckets/eval/batches/{batch_id}"))
    if batch["progress"]["failed"]:
        batch["failures"] = _ok(c.get(f"/v1/buckets/eval/batches/{batch_id}/failures"))
    return ids, batch


def _stage(method: str, top_k: int) -> dict[str, Any]:
    if method == "feature_search":
        search = {"feature_uri": URI, "query": "{{INPUT.query}}", "top_k": top_k}
        params: dict[str, Any] = {"searches": [search], "final_top_k": top_k}
    else:
        params = {"query": "{{INPUT.query}}", "top_k": top_k}
    return {"stage_name": method, "config": {"stage_id": method, "parameters": params}}


METHODS = ("feature_search", "text_search")


def evaluate(
    c: httpx.Client, data: Dataset, ids: dict[str, str], k: int = 5
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per task and method: queries, recall@1, recall@k; and every query's top k."""
    label_of = {v: lbl for lbl, v in ids.items()}
    log: list[dict[str, Any]] = []
    hits: dict[tuple[str, str], list[int | None]] = {}
    for q in data.queries:
        for method in METHODS:
            body = {
                "collection_identifiers": ["multimodal_extractor"],
                "stages": [_stage(method, k)],
                "inputs": {"query": q.query},
                "limit": k,
            }
            results = _ok(c.post("/v1/retrievers/execute", json=body))["results"]
            rank = None
            top = []
            for i, r in enumerate(results[:k]):
                segment = r["source"].get("segment") or {}
                got = label_of.get(r["source"]["object_id"], "?")
                top.append({"label": got, "start_ms": segment.get("start_ms"), "score": r["score"]})
                window_ok = q.window_ms is None or segment.get("start_ms") == q.window_ms
                if rank is None and got == q.target and window_ok:
                    rank = i + 1
            hits.setdefault((q.task, method), []).append(rank)
            log.append({**asdict(q), "method": method, "rank": rank, "top": top})
    rows = []
    for task in dict.fromkeys(q.task for q in data.queries):
        row: dict[str, Any] = {"task": task}
        for method in METHODS:
            ranks = hits[(task, method)]
            row["n"] = len(ranks)
            row[f"{method}@1"] = sum(r == 1 for r in ranks) / len(ranks)
            row[f"{method}@{k}"] = sum(r is not None for r in ranks) / len(ranks)
        rows.append(row)
    return rows, log


def transcripts(c: httpx.Client, data: Dataset, ids: dict[str, str]) -> list[dict[str, Any]]:
    """What Whisper heard in each clip and video, next to what was said."""
    out = []
    for it in data.items:
        if not it.said:
            continue
        docs = c.get(f"/v1/objects/{ids[it.label]}/documents").json()
        heard = [
            ((d["source"].get("segment") or {}).get("start_ms"), d["content"].get("transcript"))
            for d in docs
            if d["content"].get("transcript")
        ]
        out.append({"label": it.label, "said": it.said, "heard": sorted(heard)})
    return out


def _print(rows: list[dict[str, Any]], k: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Recall of text queries over one mixed collection (top 5 documents)")
    table.add_column("task")
    table.add_column("queries", justify="right")
    for method in METHODS:
        table.add_column(f"{method} R@1", justify="right")
        table.add_column(f"{method} R@{k}", justify="right")
    for row in rows:
        cells = [f"{row[f'{m}@{j}']:.2f}" for m in METHODS for j in (1, k)]
        table.add_row(row["task"], str(row["n"]), *cells)
    Console(width=140).print(table)


def run(scale: float, out: Path | None, k: int = 5) -> dict[str, Any]:
    """Build, ingest, evaluate; the figures and timings."""
    t0 = time.perf_counter()
    data = build(scale)
    build_s = time.perf_counter() - t0
    with (
        tempfile.TemporaryDirectory() as tmp,
        assay_server(Path(tmp)) as url,
        httpx.Client(base_url=url, headers=HEADERS, timeout=600) as c,
    ):
        t1 = time.perf_counter()
        ids, batch = ingest(c, data)
        ingest_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        rows, log = evaluate(c, data, ids, k)
        eval_s = time.perf_counter() - t2
        heard = transcripts(c, data, ids)
    result = {
        "scale": scale,
        "counts": counts(scale),
        "objects": len(data.items),
        "queries": len(data.queries),
        "batch": {"status": batch["status"], "progress": batch["progress"]},
        "failures": batch.get("failures"),
        "limits": data.limits,
        "seconds": {"build": build_s, "ingest": ingest_s, "evaluate": eval_s},
        "rows": rows,
        "transcripts": heard,
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with (out / "queries.jsonl").open("w") as f:
            for entry in log:
                f.write(json.dumps(entry) + "\n")
        (out / "summary.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full set, (0, 1]")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / ".bench-cache" / "eval_quality",
        help="where the query set with each query's top 5 is written (queries.jsonl)",
    )
    args = parser.parse_args()
    if not 0 < args.scale <= 1:
        parser.error("--scale must be in (0, 1]")
    result = run(args.scale, args.out)
    s = result["seconds"]
    print(
        f"{result['objects']} objects ({result['counts']}), {result['queries']} queries; "
        f"batch {result['batch']['status']} {result['batch']['progress']}; "
        f"build {s['build']:.1f} s, ingest+extract {s['ingest']:.1f} s, "
        f"queries {s['evaluate']:.1f} s"
    )
    for limit in result["limits"]:
        print(f"LIMIT: {limit}")
    if result["failures"]:
        print(f"FAILURES: {result['failures']}")
    _print(result["rows"], 5)
    print(f"query set and top 5 of each: {args.out / 'queries.jsonl'}")


if __name__ == "__main__":
    main()
