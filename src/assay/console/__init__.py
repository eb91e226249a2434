"""The web console: a browser front end served from the package at `/ui`.

It holds no data and checks no key itself. Its pages are static files (no build step, nothing
fetched from elsewhere); their scripts call the JSON API with the key the user signs in with,
so the console can do exactly what that key may do.
"""

from assay.console.router import include_console

__all__ = ["include_console"]
