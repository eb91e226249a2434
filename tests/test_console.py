"""The web console's files as served (issue 16, items 1 and 3): from the package, under a strict
Content-Security-Policy, with their content types, and with nothing in them from elsewhere or
that would parse data as HTML. The browser tests are in test_console_browser.py.

The app here is built through `config` and `main` (not the `settings` fixture), so these tests
run once, on SQLite: the console is static files and does not depend on the database.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from assay import config, main
from assay.console import router as console
from tests.conftest import ADMIN_KEY

in_module_loop = pytest.mark.asyncio(loop_scope="module")  # the app fixture's loop

ROOT = Path(__file__).parent.parent
STATIC = ROOT / "src" / "assay" / "console" / "static"
FILES = sorted(p for p in STATIC.rglob("*") if p.is_file())


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def web(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI, with no key: the console's files need none."""
    data = tmp_path_factory.mktemp("console") / "data"
    settings = config.Settings(
        data_dir=data, admin_key=ADMIN_KEY, database_url=f"sqlite:///{data / 'assay.db'}"
    )
    app = main.create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://assay.test") as c:
            yield c


def _csp(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    directives = (d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


@in_module_loop
async def test_the_console_is_served_at_ui_and_the_root_leads_there(
    web: httpx.AsyncClient,
) -> None:
    for path in ("/", "/ui"):
        r = await web.get(path)
        assert r.status_code == 307 and r.headers["location"] == "/ui/", path
    r = await web.get("/ui/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="static/app.js"></script>' in r.text
    assert r.content == (STATIC / "index.html").read_bytes()


@in_module_loop
async def test_console_pages_carry_a_strict_content_security_policy(
    web: httpx.AsyncClient,
) -> None:
    for path in ("/ui/", "/ui/static/app.js", "/ui/sw.js"):
        r = await web.get(path)
        csp = _csp(r)
        assert csp["default-src"] == "'none'"
        assert csp["script-src"] == "'self'"  # no inline scripts, no eval
        assert csp["style-src"] == "'self'"
        assert csp["connect-src"] == "'self'"
        assert csp["frame-ancestors"] == "'none'"
        assert csp["base-uri"] == "'none'"
        assert csp["require-trusted-types-for"] == "'script'"
        assert csp["trusted-types"] == console.TRUSTED_TYPES_POLICY
        assert "unsafe" not in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_uploads_to_another_origin_are_allowed_by_the_policy(tmp_path: Path) -> None:
    """A public URL behind a proxy, or an S3 store, is where the browser PUTs upload bytes."""
    behind = config.Settings(data_dir=tmp_path, public_url="https://assay.example:8443/")
    assert console.upload_origins(behind) == ["https://assay.example:8443"]
    s3 = config.Settings(
        data_dir=tmp_path, blob_store="s3://b/p", s3_endpoint_url="http://minio:9000/"
    )
    assert "connect-src 'self' http://minio:9000;" in console.content_security_policy(s3)
    aws = config.Settings(data_dir=tmp_path, blob_store="s3://b/p")
    assert console.upload_origins(aws) == ["https://*.amazonaws.com"]


@in_module_loop
@pytest.mark.parametrize("file", FILES, ids=lambda p: p.relative_to(STATIC).as_posix())
async def test_every_console_file_is_served_with_its_type(
    web: httpx.AsyncClient, file: Path
) -> None:
    name = file.relative_to(STATIC).as_posix()
    r = await web.get(f"/ui/static/{name}")
    assert r.status_code == 200, name
    assert r.content == file.read_bytes()
    expected = console.MEDIA_TYPES[file.suffix]
    assert r.headers["content-type"] == expected
    again = await web.get(f"/ui/static/{name}", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


@in_module_loop
async def test_nothing_else_is_served_from_the_console_folders(web: httpx.AsyncClient) -> None:
    for path in (
        "/ui/static/",
        "/ui/static/missing.js",
        "/ui/static/../router.py",
        "/ui/static/%2e%2e/router.py",
        "/ui/static/..%2f__init__.py",
        "/ui/router.py",
        "/ui/files/ns/v1/namespaces",  # only the service worker answers these
    ):
        r = await web.get(path)
        assert r.status_code == 404, path
        assert "import" not in r.text


@in_module_loop
async def test_the_console_needs_no_key_but_its_data_does(web: httpx.AsyncClient) -> None:
    assert (await web.get("/ui/")).status_code == 200
    r = await web.get("/v1/namespaces")
    assert r.status_code == 401
    schema = (await web.get("/openapi.json")).json()
    assert not [p for p in schema["paths"] if p == "/" or p.startswith("/ui")]


def test_console_files_hold_no_external_urls_and_build_no_html_from_strings() -> None:
    """Nothing is fetched from elsewhere (no CDN, no font service), and no data is parsed as
    HTML: DOM nodes and textContent only."""
    url = re.compile(r"\b(?:https?|wss?|ftp):|(?<![:\w])//[\w.-]+\.\w", re.I)
    sinks = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"setTimeout\(\s*[\"'`]|srcdoc|createContextualFragment|DOMParser",
    )
    assert FILES
    for file in FILES:
        text = file.read_text(encoding="utf-8")
        if file.suffix == ".svg":  # an SVG's own namespace declaration
            text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not url.search(text), (file.name, url.search(text))
        assert not sinks.search(text), (file.name, sinks.search(text))
        if file.suffix == ".css":
            assert "@import" not in text and "url(" not in text, file.name


def test_the_page_has_no_inline_script_or_style() -> None:
    html = (STATIC / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts == [(' type="module" src="static/app.js"', "")]
    assert not re.search(r"\son\w+\s*=", html)  # no event handler attributes
    assert "style=" not in html and "<style" not in html


def test_every_module_import_resolves_to_a_packaged_file() -> None:
    """The modules load each other by relative path: each one must exist in the package."""
    for file in STATIC.rglob("*.js"):
        for target in re.findall(r'from\s+"(\.{1,2}/[^"]+)"', file.read_text()):
            assert (file.parent / target).resolve().is_file(), (file.name, target)


def test_the_console_files_are_package_data() -> None:
    """pyproject's package-data globs take every console file into the wheel and sdist."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["assay"]
    package = ROOT / "src" / "assay"
    for file in FILES:
        name = file.relative_to(package).as_posix()
        taken = [g for g in globs if fnmatch.fnmatch(name, g) and name.count("/") == g.count("/")]
        assert taken, name
    assert set(console.assets()) == {f.relative_to(STATIC).as_posix() for f in FILES}
