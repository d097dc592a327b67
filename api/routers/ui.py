"""The analyst page: /ui and its static assets, no build step.

Files come from ``api/ui/`` (plain HTML, CSS and ES modules) and the charting
library from the installed ``plotly`` Python package (its bundled
``plotly.min.js``), never from a CDN: the service must work without internet.

Each asset is read once, gzip-compressed once (plotly.min.js is 4.8 MB, about
1.4 MB compressed) and served with an ETag so a browser revalidates cheaply.
The assets are public; the page itself asks for an API key and sends it on
every /v1 call.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import version
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from api.problems import Problem

router = APIRouter(include_in_schema=False)

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
# Plotly injects <style> elements and inline style attributes; nothing else is inline.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class _Asset:
    body: bytes
    gz: bytes
    etag: str
    media_type: str
    mtime: float


_assets: dict[str, _Asset] = {}
_lock = threading.Lock()


def _load(key: str, path: Path, media_type: str, tag: str | None = None) -> _Asset:
    """Read, compress and fingerprint a file; reread only when it changed on disk."""
    mtime = path.stat().st_mtime
    asset = _assets.get(key)
    if asset is not None and asset.mtime == mtime:
        return asset
    with _lock:
        asset = _assets.get(key)
        if asset is not None and asset.mtime == mtime:
            return asset
        body = path.read_bytes()
        etag = '"' + (tag or hashlib.sha256(body).hexdigest()[:20]) + '"'
        asset = _Asset(body, gzip.compress(body, 6, mtime=0), etag, media_type, mtime)
        _assets[key] = asset
        return asset


def _serve(request: Request, asset: _Asset, cache_control: str) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    headers.update(SECURITY_HEADERS)
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gz, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the plotly Python package."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


@router.get("/ui")
def ui_redirect() -> RedirectResponse:
    # Assets are referenced relative to /ui/, so the page needs the slash.
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
def ui_index(request: Request) -> Response:
    return _serve(request, _load("index.html", UI_DIR / "index.html", TYPES[".html"]), "no-cache")


@router.get("/ui/vendor/plotly.min.js")
def ui_plotly(request: Request) -> Response:
    path = plotly_js_path()
    if not path.is_file():
        raise Problem(404, "plotly.min.js is missing from the installed plotly package")
    asset = _load("plotly", path, TYPES[".js"], tag="plotly-" + version("plotly"))
    return _serve(request, asset, "public, max-age=86400")


@router.get("/ui/{name}")
def ui_asset(request: Request, name: str) -> Response:
    """One flat folder of assets; anything else (``..``, sub-folders) is a 404."""
    path = UI_DIR / name
    media_type = TYPES.get(path.suffix)
    if media_type is None or "/" in name or name.startswith(".") or not path.is_file():
        raise Problem(404, f"no such asset: {name}")
    return _serve(request, _load(name, path, media_type), "no-cache")
