"""Content types from users and remote servers, parsed and normalised before they are stored.

A content type ends up in a response header of every download, so whatever is kept must be a
plain `type/subtype` (RFC 9110 tokens, lower case) with at most a `charset` parameter: a CR or
LF smuggled into it would otherwise break every later download of the blob.
"""

from __future__ import annotations

import re
from urllib.parse import quote

_TOKEN = r"[a-z0-9!#$&^_.+\-]+"
_MEDIA_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})")
_CHARSET = re.compile(r"charset\s*=\s*\"?([a-z0-9_.:\-]{1,40})\"?")
GENERIC = "application/octet-stream"

# Types a browser would run or render as a page if served inline from the API's origin.
_ACTIVE = re.compile(
    r"^(text/html|application/xhtml\+xml|image/svg\+xml|text/xml|application/xml"
    r"|[a-z]+/[a-z0-9.\-]*\+xml|text/javascript|application/javascript|application/ecmascript"
    r"|text/ecmascript|application/x-javascript|text/xsl|application/pdf"
    r"|application/x-shockwave-flash|multipart/x-mixed-replace)$"
)


def normalize(value: str | None) -> str | None:
    """`type/subtype[; charset=x]` in lower case, or None when `value` is not a content type."""
    if not value or len(value) > 200 or not value.isascii() or not value.isprintable():
        return None
    media_type, _, params = value.strip().lower().partition(";")
    match = _MEDIA_TYPE.fullmatch(media_type.strip())
    if match is None:
        return None
    base = f"{match[1]}/{match[2]}"
    charset = _CHARSET.search(params)
    return f"{base}; charset={charset[1]}" if charset and base.startswith("text/") else base


def base_type(value: str) -> str:
    """The `type/subtype` part of a normalised content type."""
    return value.partition(";")[0]


def is_active(value: str) -> bool:
    """Whether a browser would execute or render this type (it is then sent as an attachment)."""
    return bool(_ACTIVE.match(base_type(value)))


def download_headers(content_type: str | None, filename: str | None) -> tuple[str, dict[str, str]]:
    """The content type to send a stored blob with, and the headers that keep it inert.

    Blobs are served from the API's own origin: the browser must neither guess another type
    (`nosniff`) nor run what it gets (a sandboxing CSP), and active types go out as
    attachments so they are saved, never rendered.
    """
    sent = normalize(content_type) or GENERIC
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if is_active(sent):
        headers["Content-Disposition"] = _attachment(filename)
    return sent, headers


def _attachment(filename: str | None) -> str:
    """`attachment` with the file name as RFC 6266 allows: an ASCII fallback and UTF-8 form."""
    if not filename:
        return "attachment"
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"%' else "_" for c in name
    )
    encoded = quote(name.encode("utf-8", "backslashreplace"), safe="")
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"
