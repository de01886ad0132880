"""The labelling web page: `chatforge prefs serve RUN_DIR`, for several labellers at once.

Each labeller enters a name and is shown the pairs they have not labelled (the store's
`next_unlabelled`), with keyboard shortcuts (a, b, t, s, u) and undo; a statistics view
shows labels per labeller, agreement (raw and Cohen's kappa) and A/B position bias. The page
and its script are package files (serve/web/label.*), no CDN. All text from the store reaches
the page as JSON and is placed with `textContent`, and the Content-Security-Policy allows
only this server's own script, so a prompt or answer holding HTML is shown, never run.

A label is answered only after the store has committed it, so a page that saw "saved" can
rely on it surviving a crash of the server.
"""

from __future__ import annotations

from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from chatforge.align.prefs import CHOICES, PrefStore
from chatforge.errors import InputError

ASSETS = {"label.js": "text/javascript", "label.css": "text/css"}
MAX_NAME = 64
_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'"


class LabelIn(BaseModel):
    pair_id: int
    choice: str
    labeller: str


class UndoIn(BaseModel):
    labeller: str


def _asset(name: str) -> str:
    return resources.files("chatforge.serve").joinpath("web", name).read_text(encoding="utf-8")


def _name(labeller: str) -> str:
    name = labeller.strip()
    if not name or len(name) > MAX_NAME:
        raise HTTPException(422, f"a labeller name is 1 to {MAX_NAME} characters")
    return name


def create_app(store_path: str | Path, split: str | None = None) -> FastAPI:
    """The labelling app over one preference store (a prefs dir or a prefs.db file)."""
    store = PrefStore(store_path)
    app = FastAPI(title="chatforge labelling", docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def _headers(request: Any, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return _asset("label.html")

    @app.get("/assets/{name}")
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, "no such asset")
        return Response(_asset(name), media_type=ASSETS[name])

    def progress(labeller: str) -> dict[str, Any]:
        pair = store.next_unlabelled(labeller, split)
        return {"labeller": labeller, "pair": asdict(pair) if pair else None,
                "done": store.labelled_count(labeller, split), "total": store.count(split)}

    @app.get("/api/next")
    def next_pair(labeller: str) -> dict[str, Any]:
        return progress(_name(labeller))

    @app.post("/api/label")
    def label(body: LabelIn) -> dict[str, Any]:
        name = _name(body.labeller)
        if body.choice not in CHOICES:
            raise HTTPException(422, f"choice must be one of {', '.join(CHOICES)}")
        try:
            store.label(body.pair_id, body.choice, name)
        except InputError as exc:
            raise HTTPException(404, str(exc)) from None
        return {"saved": body.pair_id, **progress(name)}

    @app.post("/api/undo")
    def undo(body: UndoIn) -> dict[str, Any]:
        name = _name(body.labeller)
        return {"undone": store.undo(name), **progress(name)}

    @app.get("/api/stats")
    def stats() -> dict[str, Any]:
        return store.stats()

    return app


def serve(store_path: str | Path, host: str, port: int, split: str | None = None) -> None:
    """Run the labelling app until interrupted."""
    uvicorn.run(create_app(store_path, split), host=host, port=port, log_level="warning")
