"""The web console in a real headless Chromium (Debian's `chromium`, driven by Playwright), as a
person uses it: sign in, create a namespace and a bucket, drop an image and a video, watch the
batch finish, search by a drawn word and a spoken one; and hostile values shown as text
(issue 16, items 3 and 4).

Each page is photographed at 1280x800 and 390x844 into tests/artifacts/console/ (git-ignored).
The server runs on SQLite only: the console is front end, and the API under it is tested on
both databases elsewhere (this module builds its settings through `config`, so it is not
parametrized over backends).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import av
import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from assay import config
from tests.conftest import ADMIN_KEY, LiveServer
from tests.media_fixtures import RATE, speech_track

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = Path(__file__).parent / "artifacts" / "console"
VIEWPORTS = {"desktop": (1280, 800), "mobile": (390, 844)}
DRAWN_WORD = "BANANA"
VIDEO_S, SPEECH_AT_S, WINDOW_S = 20, 12, 10  # the speech lands in the 10-20 s window
HOSTILE_KEY = "<script>window.__xss=1</script>"
HOSTILE_TEXT = '<img src=x onerror="window.__xss=1;alert(1)">'


def chromium_path() -> str:
    """Debian's chromium (installed by .ci/run); a missing one fails, it never skips."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's chromium is not installed: apt-get install chromium (.ci/run does)")
    return found


def word_png(word: str) -> bytes:
    """A big black word on white, as OCR reads it."""
    img = Image.new("RGB", (480, 200), "white")
    try:
        font: Any = ImageFont.truetype("DejaVuSans-Bold.ttf", 64)
    except OSError:
        font = ImageFont.load_default(size=64)
    ImageDraw.Draw(img).text((30, 60), word, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def truncated_jpeg() -> bytes:
    """A JPEG cut in half: its header passes registration, its pixels do not decode."""
    img = Image.new("RGB", (200, 150), "white")
    draw = ImageDraw.Draw(img)
    for x in range(0, 200, 7):
        draw.line((x, 0, 200 - x, 150), fill=(x, 100, 50))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def speech_webm() -> bytes:
    """VP8 + Opus (what any Chromium plays): a plain frame, the fixture's speech at 12 s."""
    audio = speech_track(VIDEO_S, [SPEECH_AT_S])
    frame = av.VideoFrame.from_image(Image.new("RGB", (320, 240), (40, 90, 160)))
    buf = io.BytesIO()
    fps, opus_rate = 5, 48_000
    with av.open(buf, "w", format="webm") as out:
        v = out.add_stream("libvpx", rate=fps)
        v.width, v.height, v.pix_fmt = 320, 240, "yuv420p"
        a = out.add_stream("libopus", rate=opus_rate, layout="mono")
        for i in range(VIDEO_S * fps):
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        up = np.repeat(audio, opus_rate // RATE).astype(np.float32)  # 16 kHz -> 48 kHz
        for i, start in enumerate(range(0, up.size, 960)):
            af = av.AudioFrame.from_ndarray(up[start : start + 960].reshape(1, -1), "flt", "mono")
            af.sample_rate, af.pts, af.time_base = opus_rate, i * 960, Fraction(1, opus_rate)
            out.mux(a.encode(af))
        out.mux(a.encode(None))
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("console") / "data"
    settings = config.Settings(
        data_dir=data,
        admin_key=ADMIN_KEY,
        database_url=f"sqlite:///{data / 'assay.db'}",
        allow_private_urls=True,  # webhooks to the receiver below, on loopback
    )
    with LiveServer(settings) as live:
        yield live


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[str]] = []  # event types

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append(body["event_type"])
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def hook_url() -> Iterator[str]:
    """A webhook receiver on loopback that answers 200 and records event types."""
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    receiver.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            yield launched
        finally:
            launched.close()


class Visit:
    """A page of the console with the failures it logged and a camera."""

    def __init__(self, browser: Any, base: str, **context: Any) -> None:
        w, h = VIEWPORTS["desktop"]
        self.context = browser.new_context(viewport={"width": w, "height": h}, **context)
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []  # uncaught exceptions and console errors
        self.dialogs: list[str] = []  # alert(), confirm() ...: none may open
        self.refused: list[str] = []  # answers >= 400, as "status path"
        self.media: list[tuple[int, str | None]] = []  # (status, Range) of players' requests
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._console)
        self.page.on("response", self._response)
        self.page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        # a failed load is logged too: _response records it with its URL
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.refused.append(f"{response.status} {response.url.removeprefix(self.base)}")
        if "/ui/files/" in response.url:
            self.media.append((response.status, response.request.headers.get("range")))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def shoot(self, name: str) -> None:
        """The page as it stands, at both sizes."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        for size, (w, h) in VIEWPORTS.items():
            self.page.set_viewport_size({"width": w, "height": h})
            self.page.wait_for_timeout(150)
            self.page.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)
        w, h = VIEWPORTS["desktop"]
        self.page.set_viewport_size({"width": w, "height": h})

    def go(self, route: str) -> None:
        self.page.goto(f"{self.base}/ui/#{route}")

    def sign_in(self, key: str = ADMIN_KEY) -> None:
        self.page.goto(f"{self.base}/")
        self.page.fill("#api-key", key)
        self.page.click("button[type=submit]")
        self.page.wait_for_selector("h1:text-is('Namespaces')")

    def close(self) -> None:
        self.context.close()


def _drop(page: Any, selector: str, files: list[tuple[str, str, bytes]]) -> None:
    """Drop files on an element as a drag from the desktop would."""
    payload = [{"name": n, "type": t, "b64": base64.b64encode(b).decode()} for n, t, b in files]
    transfer = page.evaluate_handle(
        """(files) => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, { type: f.type }));
            }
            return dt;
        }""",
        payload,
    )
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def _until(page: Any, script: str, arg: Any = None, timeout_s: float = 20) -> None:
    """Poll `script` (a function of `arg`) until it answers true. Playwright's own
    wait_for_function evaluates strings, which the console's CSP refuses."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(script, arg):
        assert time.monotonic() < deadline, f"still false: {script}"
        page.wait_for_timeout(100)


def _first_result(page: Any, query: str) -> Any:
    page.fill("#query", query)
    page.click("#search-form button[type=submit]")
    # the first search of a process loads the query model (and may export it once)
    page.wait_for_selector(
        "#search-summary:has-text('found'), #notice:not([hidden])", timeout=120_000
    )
    assert page.locator("#notice").is_hidden(), page.locator("#notice").inner_text()
    return page.locator("#results > li").first


def test_a_person_uploads_watches_and_searches(
    browser: Any, server: LiveServer, hook_url: str
) -> None:
    visit = Visit(browser, server.url)
    page = visit.page
    page.goto(f"{server.url}/")
    assert page.url.endswith("/ui/")
    page.wait_for_selector("#api-key")
    visit.shoot("01-sign-in")
    page.fill("#api-key", "sk_live_not_a_key_at_all_000000")
    page.click("button[type=submit]")
    page.wait_for_selector("text=That key is not valid")
    visit.sign_in()

    # a namespace and a bucket, through the forms
    page.fill("#create-namespace input[name=name]", "media")
    visit.shoot("02-namespaces")
    page.click("#create-namespace button[type=submit]")
    page.wait_for_selector("#create-bucket")

    # a webhook for every event of the namespace; its secret is shown once
    page.click("a.tab:text-is('Webhooks')")
    page.fill("#create-webhook input[name=url]", hook_url)
    page.check("#create-webhook input[value='*']")
    page.click("#create-webhook button[type=submit]")
    page.wait_for_selector("text=shown this once")
    page.click("a.tab:text-is('Buckets')")
    page.fill("#create-bucket input[name=name]", "things")
    page.fill(".schema-row:nth-child(1) input[name=prop]", "picture")
    page.select_option(".schema-row:nth-child(1) select", "image")
    page.click("#add-property")
    page.fill(".schema-row:nth-child(2) input[name=prop]", "clip")
    page.select_option(".schema-row:nth-child(2) select", "video")
    visit.shoot("03-buckets")
    page.click("#create-bucket button[type=submit]")
    page.wait_for_selector("text=No objects yet")

    # drop an image with a drawn word and a video with speech, upload, process
    page.click("a.tab:text-is('Upload')")
    page.wait_for_selector("#dropzone")
    files = [
        ("banana.png", "image/png", word_png(DRAWN_WORD)),
        ("fox.webm", "video/webm", speech_webm()),
        ("broken.jpg", "image/jpeg", truncated_jpeg()),  # registers, then fails extraction
    ]
    _drop(page, "#dropzone", files)
    assert page.locator("#queue li").count() == 3
    visit.shoot("04-upload")
    page.click("#start-upload")
    page.wait_for_url("**/batches/btch_*", wait_until="commit")
    status = page.locator("#batch-status")
    status.wait_for(state="attached")
    seen = {status.text_content()}
    deadline = time.monotonic() + 180
    while (current := status.text_content()) not in ("COMPLETED", "FAILED"):
        assert time.monotonic() < deadline, f"batch still {current}"
        seen.add(current)
        page.wait_for_timeout(200)
    assert current == "COMPLETED", page.locator("main").inner_text()
    assert seen & {"QUEUED", "PROCESSING"}, seen  # the page showed it moving
    assert "2 succeeded · 1 failed" in page.locator("main").inner_text()
    page.wait_for_selector("#failures td:text-is('CorruptImage')")
    visit.shoot("05-batch")
    # retry: the failed object runs again (and fails again: its bytes are still cut)
    before = status.get_attribute("data-completed-at")
    page.click("#retry")
    page.wait_for_selector("#notice:has-text('Retrying')")
    _until(
        page,
        """(before) => {
            const s = document.querySelector('#batch-status');
            return s.textContent === 'COMPLETED' && s.dataset.completedAt !== before;
        }""",
        before,
        timeout_s=60,
    )  # it ran again, and the page followed it
    page.wait_for_selector("#failures td:text-is('CorruptImage')")

    # the objects, with an image thumbnail and a video player
    page.click("a.tab:text-is('Objects')")
    page.wait_for_selector("#objects img.preview-image")
    _until(page, "() => [...document.querySelectorAll('#objects img')].every((i) => i.complete)")
    banana = page.locator("#objects li:has-text('banana.png') img")
    assert banana.evaluate("(i) => i.naturalWidth") > 0
    assert page.locator("#objects video").count() == 1
    visit.shoot("06-objects")
    page.click("#objects li:has(video) a.title")
    page.wait_for_selector(".transcript")
    assert "fox" in page.locator(".transcript").first.inner_text().lower()
    assert page.locator(".doc button.time").count() == 2  # two 10 s windows
    visit.shoot("07-object-video")
    page.go_back()
    page.click("#objects li:has-text('banana.png') a.title")
    page.wait_for_selector(".ocr")
    assert DRAWN_WORD.lower() in page.locator(".ocr").first.inner_text().lower()
    visit.shoot("08-object-image")

    # search: the drawn word finds the image first, its thumbnail shown
    page.click(".crumbs a:text-is('media')")
    page.click("a.tab:text-is('Search')")
    page.wait_for_selector("#query")
    first = _first_result(page, DRAWN_WORD.lower())
    assert first.get_attribute("data-modality") == "image"
    thumb = first.locator("img.preview-image")
    thumb.wait_for()
    _until(page, "() => document.querySelector('#results > li img.preview-image').naturalWidth > 0")
    assert DRAWN_WORD.lower() in first.locator(".snippet").inner_text().lower()
    visit.shoot("09-search-word")

    # a spoken phrase finds the video window that holds it; its player starts there
    first = _first_result(page, "a quick brown fox jumping over the lazy dog")
    assert first.get_attribute("data-modality") == "video"
    player = first.locator("video")
    start = float(player.get_attribute("data-start") or 0)
    assert start == WINDOW_S, start  # the 10-20 s window, not the silent first one
    _until(
        page,
        "(v) => v.readyState >= 1 && Math.abs(v.currentTime - Number(v.dataset.start)) < 0.25",
        player.element_handle(),
    )
    player.evaluate("(v) => { v.muted = true; return v.play(); }")
    _until(
        page,
        "(v) => !v.paused && v.currentTime > Number(v.dataset.start) + 0.3",
        player.element_handle(),
    )
    position = float(player.evaluate("(v) => v.currentTime"))
    assert start <= position < start + WINDOW_S, position
    # the player streamed through the console's service worker with HTTP Range requests
    assert page.evaluate("() => !!navigator.serviceWorker.controller")
    assert any(status == 206 and rng for status, rng in visit.media), visit.media
    visit.shoot("10-search-speech")

    # the batches list and the webhooks pages render too
    visit.go("/ns/media/b/things/batches")
    page.wait_for_selector("#batches")
    visit.shoot("11-batches")
    visit.go("/ns/media/webhooks")
    page.wait_for_selector("#create-webhook")
    visit.shoot("12-webhooks")

    # the webhook's delivery log holds the batch's events; one is sent again
    page.click(".cards a.title")
    page.wait_for_selector("#deliveries tr:has-text('batch.completed')")
    rows = page.locator("#deliveries tbody tr")
    before = rows.count()
    completed = _Hook.received.count("batch.completed")
    assert completed >= 1 and "upload.confirmed" in _Hook.received, _Hook.received
    rows.filter(has_text="batch.completed").first.locator("button").click()
    page.wait_for_selector("#notice:has-text('Redelivery queued')")
    _until(page, "(n) => document.querySelectorAll('#deliveries tbody tr').length > n", before)
    deadline = time.monotonic() + 20
    while _Hook.received.count("batch.completed") == completed:
        assert time.monotonic() < deadline, _Hook.received
        time.sleep(0.1)
    visit.shoot("13-webhook-deliveries")

    assert not visit.errors, visit.errors
    assert visit.refused == ["401 /v1/namespaces?limit=1"], visit.refused  # the wrong key
    assert not visit.dialogs, visit.dialogs
    visit.close()


@pytest.fixture(scope="module")
def hostile(server: LiveServer) -> dict[str, str]:
    return _hostile_world(server.url)


def _hostile_world(base: str) -> dict[str, str]:
    """A namespace whose bucket holds an object with hostile key, metadata, text and file name,
    processed (passthrough: no models) so that search shows it too."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    ns = {**headers, "X-Namespace": "hostile"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
        extractor = {"feature_extractor_name": "passthrough_extractor", "version": "v1"}
        r = c.post(
            "/v1/namespaces",
            json={
                "namespace_name": "hostile",
                "description": HOSTILE_TEXT,
                "feature_extractors": [extractor],
            },
        )
        assert r.status_code == 200, r.text
        schema = {"properties": {"body": {"type": "text"}, "note": {"type": "text"}}}
        r = c.post(
            "/v1/buckets",
            headers=ns,
            json={"bucket_name": "box", "description": HOSTILE_KEY, "bucket_schema": schema},
        )
        assert r.status_code == 200, r.text
        r = c.post(
            "/v1/buckets/box/objects",
            headers=ns,
            json={
                "key_prefix": HOSTILE_KEY,
                "metadata": {"caption": HOSTILE_TEXT, HOSTILE_KEY: "<svg onload=alert(1)>"},
                "blobs": [
                    {"property": "body", "type": "text", "content": f"hostile {HOSTILE_TEXT}"}
                ],
            },
        )
        assert r.status_code == 200, r.text
        object_id = r.json()["object_id"]
        r = c.post(
            "/v1/buckets/box/uploads",
            headers=ns,
            json={
                "filename": f"{HOSTILE_TEXT}.txt",
                "content_type": "text/plain",
                "blob_property": "note",
                "object_metadata": {"from": HOSTILE_TEXT},
            },
        )
        assert r.status_code == 200, r.text
        upload = r.json()
        put = httpx.put(upload["presigned_url"], content=f"hostile {HOSTILE_KEY}".encode())
        assert put.status_code == 200, put.text
        r = c.post(f"/v1/buckets/box/uploads/{upload['upload_id']}/confirm", headers=ns)
        assert r.status_code == 200, r.text
        ids = [object_id, r.json()["object_id"]]
        batch = c.post("/v1/buckets/box/batches", headers=ns, json={"object_ids": ids}).json()
        c.post(f"/v1/buckets/box/batches/{batch['batch_id']}/submit", headers=ns)
        deadline = time.monotonic() + 60
        where = f"/v1/buckets/box/batches/{batch['batch_id']}"
        while c.get(where, headers=ns).json()["status"] != "COMPLETED":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    return {"object_id": object_id, "batch_id": batch["batch_id"]}


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-csp", "escaping-alone"])
def test_hostile_values_are_shown_as_text(
    browser: Any, server: LiveServer, hostile: dict[str, str], bypass_csp: bool
) -> None:
    """No script runs from what users wrote; with the CSP bypassed, escaping alone holds."""
    world = hostile
    visit = Visit(browser, server.url, bypass_csp=bypass_csp)
    page = visit.page
    visit.sign_in()
    tag = "xss" if not bypass_csp else "xss-nocsp"
    routes = {
        "namespaces": ("/", "text=hostile"),
        "buckets": ("/ns/hostile", "text=box"),
        "objects": ("/ns/hostile/b/box", "#objects li"),
        "object": (f"/ns/hostile/b/box/o/{world['object_id']}", ".doc"),
        "batch": (f"/ns/hostile/b/box/batches/{world['batch_id']}", "#batch-status"),
    }
    for name, (route, ready) in routes.items():
        visit.go(route)
        page.wait_for_selector(ready)
        page.wait_for_timeout(300)  # let images fail and handlers (if any) fire
        if name in ("objects", "object"):
            assert page.locator(f"text={HOSTILE_KEY}").count() >= 1
        visit.shoot(f"20-{tag}-{name}")
        _assert_inert(page)
    visit.go("/ns/hostile/search")
    page.fill("#query", "hostile")
    page.select_option("#search-form select[name=mode]", "words")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#results > li")
    page.wait_for_timeout(300)
    assert HOSTILE_TEXT in page.locator("#results").inner_text()
    visit.shoot(f"20-{tag}-search")
    _assert_inert(page)
    assert not visit.dialogs, visit.dialogs
    visit.close()


def _assert_inert(page: Any) -> None:
    assert page.evaluate("window.__xss") is None
    # the only script is the console's own module; no element came from a user's markup
    assert page.evaluate("document.scripts.length") == 1
    assert page.locator("img[onerror], svg, [onload], img[src='x']").count() == 0


def test_a_read_key_sees_its_namespace_and_can_change_nothing(
    browser: Any, server: LiveServer, hostile: dict[str, str]
) -> None:
    """The console only calls the API: a read key limited to one namespace lists that one
    alone, finds another tenant's as missing, and is refused writes."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=server.url, headers=admin, timeout=30) as c:
        r = c.post("/v1/namespaces", json={"namespace_name": "tenant-b", "feature_extractors": []})
        assert r.status_code == 200, r.text
        r = c.post("/v1/keys", json={"name": "viewer", "role": "read", "namespaces": ["hostile"]})
        assert r.status_code == 201, r.text
        key = r.json()["key"]
    visit = Visit(browser, server.url)
    page = visit.page
    visit.sign_in(key)
    names = page.locator(".cards .title").all_inner_texts()
    assert names == ["hostile"], names
    visit.go("/ns/tenant-b")
    page.wait_for_selector("main .error")
    assert "not visible to this key" in page.locator("main .error").inner_text()
    visit.go("/ns/hostile")
    page.fill("#create-bucket input[name=name]", "mine")
    page.fill(".schema-row input[name=prop]", "picture")
    page.click("#create-bucket button[type=submit]")
    page.wait_for_selector("#notice:not([hidden])")
    assert "role" in page.locator("#notice").inner_text().lower()
    visit.shoot("30-read-key")
    page.click("#signout")
    page.wait_for_selector("#api-key")
    assert page.evaluate("() => sessionStorage.length") == 0
    assert key not in page.url
    visit.close()


def test_media_show_without_a_service_worker(browser: Any, server: LiveServer) -> None:
    """Where no service worker may run (plain HTTP to another host), previews and players get
    the bytes with the key and play them from blob: URLs."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    ns = {**admin, "X-Namespace": "plain"}
    schema = {"properties": {"picture": {"type": "image"}, "clip": {"type": "video"}}}
    with httpx.Client(base_url=server.url, headers=admin, timeout=30) as c:
        r = c.post("/v1/namespaces", json={"namespace_name": "plain", "feature_extractors": []})
        assert r.status_code == 200, r.text
        r = c.post("/v1/buckets", headers=ns, json={"bucket_name": "b", "bucket_schema": schema})
        assert r.status_code == 200, r.text
        for prop, kind, data in (
            ("picture", "image", word_png("PLAIN")),
            ("clip", "video", speech_webm()),
        ):
            blob = {"property": prop, "type": kind, "content": base64.b64encode(data).decode()}
            r = c.post("/v1/buckets/b/objects", headers=ns, json={"blobs": [blob]})
            assert r.status_code == 200, r.text
    visit = Visit(browser, server.url, service_workers="block")
    page = visit.page
    visit.sign_in()
    visit.go("/ns/plain/b/b")
    page.wait_for_selector("#objects video")
    _until(page, "() => document.querySelector('#objects img')?.naturalWidth > 0")
    assert page.locator("#objects img").get_attribute("src").startswith("blob:")
    _until(page, "() => document.querySelector('#objects video').readyState >= 1")
    assert page.locator("#objects video").get_attribute("src").startswith("blob:")
    assert not visit.media and not visit.errors, (visit.media, visit.errors)
    visit.close()
