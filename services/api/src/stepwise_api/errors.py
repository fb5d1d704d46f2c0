"""Errors as `application/problem+json` (RFC 9457) with a stable `code` (SPEC §7).

Tree:
    ApiError                 — raised by handlers and logic; carries status, code, detail, extras
    (aiohttp HTTPException)  — unknown route 404, 405, 413 from the framework: converted
    (any other Exception)    — 500 INTERNAL_ERROR; logged with its traceback, never sent
The `problem_middleware` turns every one of them into the same body shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
import structlog
from aiohttp import web

log = structlog.get_logger("stepwise_api.errors")

PROBLEM_CONTENT_TYPE = "application/problem+json"
_encode = msgspec.json.Encoder().encode


class ApiError(Exception):
    """An answer other than success: `status`, a stable `code`, a human `detail`."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[Any] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


def not_found(what: str, code: str = "NOT_FOUND") -> ApiError:
    return ApiError(404, code, f"{what} not found")


def bad_request(detail: str, code: str = "INVALID_REQUEST", **extra: Any) -> ApiError:
    return ApiError(400, code, detail, **extra)


def conflict(detail: str, code: str, **extra: Any) -> ApiError:
    return ApiError(409, code, detail, **extra)


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[Any] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": f"urn:stepwise:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    for key, value in (extra or {}).items():
        body.setdefault(key, value)
    return web.Response(
        status=status, body=_encode(body), content_type=PROBLEM_CONTENT_TYPE, headers=headers
    )


_FRAMEWORK_CODES = {
    400: "INVALID_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    status = exc.status
    code = _FRAMEWORK_CODES.get(status, f"HTTP_{status}")
    if status == 404:
        detail = "no such route"
    elif status == 405:
        detail = "method not allowed on this route"
    elif status == 413:
        detail = "request body too large"
    else:
        detail = exc.reason
    headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
    return problem_response(status, code, detail, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return problem_response(
            exc.status,
            exc.code,
            exc.detail,
            errors=exc.errors,
            headers=exc.headers,
            extra=exc.extra,
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc)
    except asyncpg.DataError as exc:
        # Postgres refused a value the client sent (a NUL character in text, a number beyond
        # the column's range): the client's input is at fault, not the server.
        log.warning(
            "request_data_refused", method=request.method, path=request.path, error=str(exc)
        )
        return problem_response(400, "INVALID_INPUT", f"a value was refused by the database: {exc}")
    except Exception:
        # The traceback goes to our log, never to the client.
        log.exception("request_failed", method=request.method, path=request.path)
        return problem_response(500, "INTERNAL_ERROR", "internal error; see the server log")
