"""Answers to requests aiohttp's HTTP parser refuses (a control character in a header, a header
line over 8 KiB, too many headers, a malformed request line).

aiohttp answers those itself, before any middleware, with a `text/plain` body that quotes the
offending bytes — an `Authorization` header included. Here they get the same problem+json body as
every other error (`400 INVALID_REQUEST`), nothing of the request is echoed, and the log line
names only the error's type.
"""

from __future__ import annotations

from http import HTTPStatus

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from stepwise_api.errors import problem_response

log = structlog.get_logger("stepwise_api.parser_errors")


class _ProblemRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        log.warning(
            "request_unparseable" if status < 500 else "request_failed",
            status=status,
            error_type=type(exc).__name__ if exc is not None else None,
        )
        if request.writer.output_size > 0:  # the response already started: only closing helps
            raise ConnectionError("response already started; closing the connection")
        if status == HTTPStatus.BAD_REQUEST:
            response = problem_response(
                status, "INVALID_REQUEST", "the request could not be parsed as HTTP"
            )
        else:
            phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
            response = problem_response(
                status, "INTERNAL_ERROR" if status >= 500 else f"HTTP_{status}", phrase or "error"
            )
        response.force_close()
        return response


class _ProblemServer(Server):
    def __call__(self) -> RequestHandler:
        return _ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ProblemAppRunner(web.AppRunner):
    """An `AppRunner` whose connections answer parser errors in problem+json."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        # Application._make_handler builds the Server; only its connection factory differs here
        server.__class__ = _ProblemServer
        return server
