"""GET /extra-networks/preview?kind=lora&name=NAME: the preview picture of a listed extra network, for the
Extra Networks panel's cards. Only a preview file beside a network the folders list is ever served (looked up
by the network's name, never by a path), with the UI's logins (modules/security/guard.py) like every page."""
from __future__ import annotations

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse

from modules.errors import InvalidRequest
from modules.networks.previews import MEDIA_TYPES, PREVIEW_ROUTE, network_folder, preview_file

# The URL carries the preview's mtime (v=...): a new preview is a new URL, so a cached one may be kept long.
CACHE_CONTROL = "private, max-age=86400"


def add_preview_route(app: FastAPI, backend) -> None:
    @app.get(PREVIEW_ROUTE, include_in_schema=False)
    def extra_network_preview(kind: str = Query(max_length=40), name: str = Query(max_length=500)):
        try:
            path = preview_file(network_folder(backend, kind), name)
        except InvalidRequest as e:
            return JSONResponse({"detail": str(e), "field": e.field}, status_code=404)
        if path is None:
            return JSONResponse({"detail": f"{name} has no preview picture"}, status_code=404)
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix.lower()],
                            headers={"Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"})
