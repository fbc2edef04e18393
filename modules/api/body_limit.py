"""JSON bodies are refused by size before they are parsed.

Parsing JSON costs many times its size in memory (a 45 MB body took +3.2 GB), and no API body needs
much: prompts are capped at 20 000 characters, options and task ids are small. So JSON routes take at
most JSON_BODY_LIMIT; only the routes that carry a base64 image (PNG Info, latent encode) take up to --max-upload-mb,
which the security guard enforces for every body."""
from __future__ import annotations

from fastapi import Request

from modules.api.errors import ApiError
from modules.compat import keep_read_body

JSON_BODY_LIMIT = 1 << 20  # 1 MiB: fifty times the largest prompt pair, with room for script arguments
IMAGE_ROUTES = ("/png-info", "/latent/encode")  # their bodies are base64 images: only --max-upload-mb applies


def body_limit(path: str) -> int | None:
    """The most bytes a body may have on this route; None: no limit beyond --max-upload-mb."""
    return None if path.endswith(IMAGE_ROUTES) else JSON_BODY_LIMIT


async def read_limited_body(request: Request, limit: int) -> None:
    """Read the body, refusing it with 413 as soon as it is over `limit` bytes (by its Content-Length
    when it has one, else while reading); FastAPI then parses the body already read."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    keep_read_body(request, b"".join(chunks))


def _too_large(limit: int) -> ApiError:
    return ApiError(413, None, f"the JSON body is over the {limit // 1024} KB limit of this route; "
                               "prompts are at most 20 000 characters each")
