"""What the client commands share: connection options and profiles, output, exit codes.

Exit codes scripts can rely on: 0 success; 1 a server-side failure, a batch that FAILED or
objects that failed; 2 a usage error; 3 not found or not allowed (401, 403, 404);
130 interrupted. Errors print the server's message, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from assay.client import AssayError, Client, Forbidden, NotFound, Unauthorized
from assay.client.transport import DEFAULT_URL

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = (
    "Exit codes: 0 success; 1 server-side failure, batch FAILED or objects failed; "
    "2 usage error; 3 not found or not allowed (401/403/404); 130 interrupted."
)

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="ASSAY_URL",
        help=f"Assay server URL (default: the profile's, else {DEFAULT_URL})",
        show_default=False,
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="ASSAY_API_KEY", help="API key", show_default=False),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        envvar="ASSAY_PROFILE",
        help="profile NAME: the table profiles.NAME (url, api_key, namespace) in"
        " $XDG_CONFIG_HOME/assay/config.toml (default: the profile 'default', if there is one)",
        show_default=False,
    ),
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace", "-n", envvar="ASSAY_NAMESPACE", help="namespace id or name",
        show_default=False,
    ),
]  # fmt: skip
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]
BucketOpt = Annotated[str, typer.Option("--bucket", "-b", help="bucket id or name")]


def config_path() -> Path:
    """The user's profile file: $XDG_CONFIG_HOME/assay/config.toml (~/.config by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "assay" / "config.toml"


def load_profile(name: str | None) -> dict[str, str]:
    """The named profile's settings; `default` when none is named (and it exists)."""
    path = config_path()
    profiles: dict[str, Any] = {}
    if path.is_file():
        try:
            with path.open("rb") as fh:
                profiles = tomllib.load(fh).get("profiles") or {}
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--profile") from exc
    if name is None:
        name = "default"
        if name not in profiles:
            return {}
    if name not in profiles or not isinstance(profiles[name], dict):
        known = ", ".join(sorted(profiles)) or "none"
        msg = f"no profile '{name}' in {path} (profiles: {known})"
        raise typer.BadParameter(msg, param_hint="--profile")
    return {k: str(v) for k, v in profiles[name].items() if k in ("url", "api_key", "namespace")}


@dataclass
class Output:
    """Where results go: rich tables for people, or one JSON document for scripts."""

    json: bool = False
    out: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=False))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))

    def emit(self, data: Any) -> None:
        """Print `data` (models, lists, dicts) as JSON on stdout."""
        sys.stdout.write(json.dumps(to_jsonable(data), indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def note(self, message: str) -> None:
        """A remark for people (stderr, so stdout stays parseable)."""
        self.err.print(message)

    def error(self, exc: AssayError) -> None:
        """The server's message (and which fields it refused); as JSON with --json."""
        if self.json:
            error = {"type": exc.type, "message": exc.message, "details": exc.details}
            self.emit({"success": False, "status": exc.status, "error": error})
            return
        self.err.print(f"[red]error:[/] {escape(exc.message)} [dim]({escape(_label(exc))})[/]")
        for item in exc.details.get("validation_errors") or []:
            loc = ".".join(str(p) for p in item.get("loc") or [])
            self.err.print(f"  {escape(loc or '-')}: {escape(str(item.get('msg', '')))}")


def _label(exc: AssayError) -> str:
    return f"{exc.status} {exc.type}" if exc.status else exc.type


def to_jsonable(data: Any) -> Any:
    """Models as their JSON form, recursively."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, dict):
        return {str(k): to_jsonable(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [to_jsonable(v) for v in data]
    return data


def exit_code(exc: AssayError) -> int:
    """3 for not found and not allowed, 1 for everything else that went wrong."""
    return EXIT_NOT_FOUND if isinstance(exc, NotFound | Unauthorized | Forbidden) else EXIT_FAILED


@contextmanager
def reporting(output: Output) -> Iterator[None]:
    """Turn client errors and Ctrl-C into a message and the documented exit code."""
    try:
        yield
    except AssayError as exc:
        output.error(exc)
        raise typer.Exit(exit_code(exc)) from None
    except KeyboardInterrupt:
        output.note("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def connect(
    url: str | None,
    api_key: str | None,
    profile: str | None,
    namespace: str | None,
    *,
    need_namespace: bool = True,
) -> Client:
    """A client from flags and environment first, then the profile, then the defaults."""
    chosen = load_profile(profile)
    namespace = namespace or chosen.get("namespace")
    if need_namespace and not namespace:
        raise typer.BadParameter(
            "give a namespace (--namespace, ASSAY_NAMESPACE or the profile's namespace)",
            param_hint="--namespace",
        )
    return Client(
        url or chosen.get("url") or DEFAULT_URL,
        api_key or chosen.get("api_key"),
        namespace,
    )


def human_bytes(n: float) -> str:
    """1.5 MiB, 320 B, ..."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
