"""GET /: the web page for looking inside the network (static files, no build step, no CDN).

A browser (its Accept names text/html) gets the page; any other client gets KServe
v1's liveness answer, `{"status": "alive"}`, which KServe's SDK reads at the root.
Also GET /v1/samples, the sample photos the page offers, so the list lives in one
place: the files under static/samples/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SAMPLES_DIR = STATIC_DIR / "samples"
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png")

# The page loads nothing from elsewhere; blob: and data: are the images it draws itself.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index(request: Request) -> Response:
    """The single-page explorer for browsers (scripts and styles under /static); else liveness."""
    vary = {"Vary": "Accept"}  # one URL, two answers: caches must keep them apart
    if "text/html" in request.headers.get("accept", "").lower():
        return FileResponse(
            STATIC_DIR / "index.html", media_type="text/html", headers=SECURITY_HEADERS | vary
        )
    return JSONResponse({"status": "alive"}, headers=vary)


@router.get("/v1/samples", tags=["page"])
async def samples() -> dict[str, list[dict[str, Any]]]:
    """The sample photos shipped with the service, by name, with the URL of each."""
    found = SAMPLES_DIR.iterdir() if SAMPLES_DIR.is_dir() else iter(())
    files = sorted(p for p in found if p.suffix.lower() in SAMPLE_SUFFIXES)
    return {"samples": [{"name": p.stem, "url": f"/static/samples/{p.name}"} for p in files]}
