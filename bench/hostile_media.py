"""Hostile media (issue 11): what extracting a tiny file that states a huge size costs in memory.

Two files from the issue, made here: a ~1.7 KB MP4 stating 5x10^7 s (its boxes patched after
PyAV wrote ten real frames) and a 420 KB 12000x12000 RGB PNG (zero rows compressed as they
stream). Each goes through the multimodal extractor, called directly, in a child process of its
own: with the default `MediaLimits`, and with the limits raised so far that both would pass
registration, to show that extraction bounds itself too.

Every child first extracts a small normal image and video (models loaded, heap warm), hands
freed heap back, resets its peak-RSS mark (`/proc/self/clear_refs`, so ru_maxrss starts again
from the current RSS) and then extracts the file under test: the rise is its ru_maxrss after,
minus its RSS before. A baseline child extracts the normal files a second time instead; its
rise is what ordinary work costs. Each child's whole-process peak is shown as well.

    .venv/bin/python bench/hostile_media.py                       # this checkout
    .venv/bin/python bench/hostile_media.py --src /tmp/old/src    # another checkout's src/
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Any

TARGET_RISE_MB = 200  # the bound for the two hostile files
# Limits an operator could set that admit both hostile files at registration.
RAISED = {
    "max_image_pixels": 200_000_000,
    "max_media_duration_s": 1e12,
    "min_media_bitrate_bps": 0,
    "max_video_windows": 10**12,
}
NO_OCR = {"ocr": False}
CASES = [  # (name, file, limits, extractor params)
    ("baseline: normal image + video again", "normal", {}, {}),
    ("MP4 1.7 KB stating 5x10^7 s", "tiny_long.mp4", {}, {}),
    ("PNG 12000x12000, 420 KB", "big.png", {}, {}),
    ("MP4 stating 5x10^7 s, limits raised", "tiny_long.mp4", RAISED, {}),
    ("PNG 12000x12000, limits raised", "big.png", RAISED, {}),
    ("PNG 12000x12000, limits raised, no OCR", "big.png", RAISED, NO_OCR),
]


# ---------------------------------------------------------------- the files


def zero_png(width: int, height: int) -> bytes:
    """An 8-bit RGB PNG of black pixels, its rows compressed as they stream (never held whole)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    row = b"\0" * (1 + 3 * width)
    z = zlib.compressobj(9)
    parts, left, per_block = [], height, max(1, (1 << 22) // len(row))
    while left:
        n = min(per_block, left)
        parts.append(z.compress(row * n))
        left -= n
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts))
    return png + chunk(b"IEND", b"")


def mp4(frames: int, fps: int, size: tuple[int, int], text: bool = True) -> bytes:
    """`frames` mpeg4 frames of `size`, colours changing frame to frame (with a caption)."""
    import av
    from PIL import Image, ImageDraw

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        v = out.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = *size, "yuv420p"
        for i in range(frames):
            img = Image.new("RGB", size, (i * 20 % 256, 60, 120))
            if text:
                ImageDraw.Draw(img).text((10, 10), f"FRAME {i}", fill="white")
            frame = av.VideoFrame.from_image(img)
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return buf.getvalue()


def stating(data: bytes, seconds: int, frames: int) -> bytes:
    """An MP4 patched to state `seconds`: movie and media time scales of 1 s, the durations
    (mvhd, tkhd, elst, mdhd) and the frames' spacing (stts) stretched to match."""
    out = bytearray(data)
    for box, offset, value in [
        (b"mvhd", 20, 1),
        (b"mvhd", 24, seconds),
        (b"tkhd", 28, seconds),
        (b"elst", 16, seconds),
        (b"mdhd", 20, 1),
        (b"mdhd", 24, seconds),
        (b"stts", 20, seconds // frames),
    ]:
        struct.pack_into(">I", out, out.find(box) - 4 + offset, value)
    return bytes(out)


def normal_png() -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (640, 480), "white")
    ImageDraw.Draw(img).text((40, 200), "A NORMAL PICTURE", fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_files(folder: Path) -> dict[str, Path]:
    """The files every child reads, written once."""
    files = {
        "tiny_long.mp4": stating(mp4(10, 10, (64, 64), text=False), 50_000_000, 10),
        "big.png": zero_png(12_000, 12_000),
        "normal.png": normal_png(),
        "normal.mp4": mp4(50, 5, (320, 240)),  # 10 s
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


# ---------------------------------------------------------------- the child


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(target: str, folder: str, limits: dict[str, Any], params: dict[str, Any]) -> None:
    """Warm up on the normal files, reset the peak mark, extract `target`; print JSON."""
    from assay.extractors.base import BlobInput, ExtractorError, ObjectInput
    from assay.extractors.builtin.multimodal import MultimodalExtractor
    from assay.kit.memory import trim_heap

    try:
        from assay.kit.limits import MediaLimits

        extractor = MultimodalExtractor(MediaLimits(**limits))
    except (ImportError, TypeError):  # a checkout from before the extractors took limits
        extractor = MultimodalExtractor()

    def extract(name: str, params: dict[str, Any]) -> str:
        kind = "video" if name.endswith(".mp4") else "image"
        blob = BlobInput("b", "p", kind, f"{kind}/x", {}, path=Path(folder) / name)
        try:
            docs = extractor.extract(ObjectInput("o", {}, {}, (blob,)), params)
        except ExtractorError as exc:
            return f"{exc.error_type}"
        return f"{len(docs)} documents"

    for name in ("normal.png", "normal.mp4"):
        extract(name, {})
    gc.collect()
    trim_heap()
    warm_peak = maxrss_mb()
    reset = False
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # the peak mark starts again from here
        reset = True
    base = rss_mb()
    t0 = time.perf_counter()
    names = ("normal.png", "normal.mp4") if target == "normal" else (target,)
    outcome = "; ".join(extract(n, params) for n in names)
    seconds = time.perf_counter() - t0
    peak = maxrss_mb()
    print(
        json.dumps(
            {
                "outcome": outcome,
                "seconds": seconds,
                "base_mb": base,
                "rise_mb": peak - base if reset else None,
                "process_peak_mb": max(warm_peak, peak),
            }
        )
    )


# ---------------------------------------------------------------- the parent


def run_case(
    target: str, folder: Path, limits: dict[str, Any], params: dict[str, Any], src: str | None
) -> dict[str, Any]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--child", target, str(folder), json.dumps([limits, params])]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"outcome": f"child failed ({done.returncode}): {done.stderr[-300:]}"}
    return dict(json.loads(lines[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", help="another checkout's src/ folder, put first on PYTHONPATH")
    parser.add_argument("--only", default="", help="run only the cases whose name has this text")
    parser.add_argument(
        "--child", nargs=3, metavar=("TARGET", "FOLDER", "JSON"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        target, folder, given = args.child
        limits, params = json.loads(given)
        child(target, folder, limits, params)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = make_files(folder)
        sizes = {name: path.stat().st_size for name, path in files.items()}
        print(f"files: {json.dumps(sizes)}; code: {args.src or 'this checkout'}")
        header = f"{'case':42} {'outcome':28} {'s':>7} {'rise MB':>8} {'process peak MB':>16}"
        print(header)
        for name, target, limits, params in CASES:
            if args.only not in name:
                continue
            r = run_case(target, folder, limits, params, args.src)
            rise = r.get("rise_mb")
            mark = ""
            if target != "normal" and rise is not None:
                mark = "  ok" if rise < TARGET_RISE_MB else f"  over {TARGET_RISE_MB}"
            print(
                f"{name:42} {r['outcome'][:28]:28} {r.get('seconds', 0):7.2f} "
                f"{rise if rise is not None else float('nan'):8.0f} "
                f"{r.get('process_peak_mb', float('nan')):16.0f}{mark}"
            )


if __name__ == "__main__":
    main()
