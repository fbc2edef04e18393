"""User mistakes become 4xx JSON naming the field; nothing a user sends gives a 500 with a traceback.

The mapping lives in a route class, not in app-wide exception handlers, so mounting the API on the
Gradio app changes nothing for Gradio's own routes."""
from __future__ import annotations

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from modules.capabilities.base import InternalError
from modules.errors import (BadModelFile, InvalidRequest, ModelNotFound, UserError, internal_error_message,
                            report_internal_error)
from modules.models.fifo_lock import QueueFull, UserQueueFull
from modules.public_paths import scrub


class ApiError(UserError):
    """A 4xx answer with a field name, for cases the backend's own errors do not cover."""

    def __init__(self, status_code: int, field: str | None, message: str):
        self.status_code, self.field, self.message = status_code, field, message
        super().__init__(f"{field}: {message}" if field else message)


def error_response(status_code: int, field: str | None, message: str, **extra) -> JSONResponse:
    # A message may quote what the client sent; an unpaired surrogate in it would make the JSON encoder fail.
    field, message = _printable(field), _printable(message)
    message = scrub(message)  # no absolute server path in any answer
    detail = f"{field}: {message}" if field else message
    return JSONResponse({"error": _reason(status_code), "detail": detail, "field": field, "message": message,
                         **extra}, status_code=status_code)


def user_error_response(error: UserError, field: str | None = None) -> JSONResponse:
    if isinstance(error, InternalError):  # the runner logged it under this id already
        return internal_error_response(error.error_id)
    if isinstance(error, ApiError):
        return error_response(error.status_code, error.field, error.message)
    if isinstance(error, InvalidRequest):
        return error_response(422, field or error.field, error.message)
    if isinstance(error, ModelNotFound):
        return error_response(404, field, str(error))
    if isinstance(error, BadModelFile):
        return error_response(422, field, str(error))
    if isinstance(error, UserQueueFull):  # this user's share of the queue is full: too many requests
        response = error_response(429, None, str(error), waiting=error.waiting, limit=error.limit)
        response.headers["Retry-After"] = "1"
        return response
    if isinstance(error, QueueFull):  # busy, not broken: the client may retry
        response = error_response(503, None, str(error), waiting=error.waiting, limit=error.limit)
        response.headers["Retry-After"] = "1"
        return response
    return error_response(400, field, str(error))


def validation_response(error: RequestValidationError) -> JSONResponse:
    """Pydantic's errors, led by one line naming the first bad field (without its 'body' prefix)."""
    errors = error.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return error_response(422, None, f"the request body is not valid JSON ({first.get('ctx', {}).get('error')})")
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(location) or None
    # The input itself is left out: it can be large (an image), and it is the client's own anyway.
    details = [{key: value for key, value in e.items() if key not in ("input", "ctx", "url")} for e in errors]
    return error_response(422, field, first.get("msg", "invalid request"), errors=jsonable_encoder(details))


class ApiRoute(APIRoute):
    """Checks the login first (before the body is even parsed), then maps errors to 4xx JSON."""

    logins = None  # a modules.api.auth.Logins; set by api_route_class

    def get_route_handler(self):
        handle = super().get_route_handler()
        logins = self.logins
        from modules.api.body_limit import body_limit, read_limited_body  # here: it imports this module
        limit = body_limit(self.path) if self.body_field is not None else None

        async def guarded(request: Request):
            if logins is not None:
                logins.user_of(request)  # raises the 401
            try:
                if limit is not None:
                    await read_limited_body(request, limit)  # before FastAPI parses it
                return await handle(request)
            except HTTPException:
                raise
            except RequestValidationError as e:
                return validation_response(e)
            except UserError as e:
                return user_error_response(e)
            except Exception as e:  # noqa: BLE001 - a bug or a model failure: an id for the log, nothing else
                return internal_error_response(report_internal_error(e, f"API {request.method} {request.url.path}"))

        return guarded


def internal_error_response(error_id: str) -> JSONResponse:
    """A 500 says nothing of the code (no class name, no traceback): the log has it under `id`."""
    return JSONResponse({"error": "internal error", "id": error_id, "detail": internal_error_message(error_id)},
                        status_code=500)


def _printable(text: str | None) -> str | None:
    return None if text is None else str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def _reason(status_code: int) -> str:
    return {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 409: "Conflict",
            413: "Payload Too Large", 422: "Unprocessable Entity", 500: "Internal Server Error",
            429: "Too Many Requests", 503: "Service Unavailable"}.get(status_code, "Error")


def api_route_class(logins) -> type[ApiRoute]:
    return type("LoggedInApiRoute", (ApiRoute,), {"logins": logins})
