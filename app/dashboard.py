"""The web dashboard at /ui: static files from app/ui/, no build step.

plotly.js comes from the `plotly` package on PyPI (pinned in pyproject.toml), which ships the
minified bundle; the API serves it, so the page loads nothing from a CDN.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from app import EXAMPLE_SPEC

UI = Path(__file__).resolve().parent / "ui"


def install(app: FastAPI) -> None:
    plotly_js = Path(str(files("plotly") / "package_data" / "plotly.min.js"))

    @app.get("/ui/vendor/plotly.min.js", include_in_schema=False)
    async def _plotly():
        return FileResponse(plotly_js, media_type="text/javascript")

    @app.get("/ui/example-spec.json", include_in_schema=False)
    async def _example():
        return FileResponse(EXAMPLE_SPEC, media_type="application/json")

    @app.get("/", include_in_schema=False)
    async def _root():
        return RedirectResponse("/ui/")

    app.mount("/ui", StaticFiles(directory=UI, html=True), name="ui")
