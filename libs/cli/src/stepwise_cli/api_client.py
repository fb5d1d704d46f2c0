"""The operator commands' HTTP client of the Stepwise API, and how they are run.

Where the API is: `--api-url`/`--api-key`, else `STEPWISE_API_URL`/`STEPWISE_API_KEY` (e.g. after
`set -a; . .stepwise/dev.env`), else the `dev.env` that `make run` wrote in `$STEPWISE_HOME`
(default `.stepwise`). Every command has `--json`.

Errors (each printed as one line on stderr, exit status 1):
    CliError         — a refused command (bad argument, missing configuration)
    ├── ApiProblem   — the API answered with a problem+json error: status, code, detail, errors
    └── ApiUnreachable — no answer at all (connection refused, timeout)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final

import aiohttp
import msgspec

from stepwise_cli.stepwise_home import read_dev_env

DEFAULT_API_URL: Final = "http://127.0.0.1:8080"
_MAX_LISTED_ERRORS: Final = 20


class CliError(Exception):
    """A command that cannot do what was asked; the message is the whole explanation."""


class ApiProblem(CliError):
    def __init__(
        self, status: int, code: str, detail: str, errors: list[Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors or []


class ApiUnreachable(CliError):
    pass


class ApiConfig(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    key: str

    @classmethod
    def resolve(cls, args: argparse.Namespace, environ: Mapping[str, str]) -> ApiConfig:
        dev = read_dev_env(environ)
        url = args.api_url or environ.get("STEPWISE_API_URL") or dev.get("STEPWISE_API_URL")
        key = args.api_key or environ.get("STEPWISE_API_KEY") or dev.get("STEPWISE_API_KEY")
        if not key:
            raise CliError(
                "no API key: pass --api-key, or set STEPWISE_API_KEY"
                " (after `make run`: set -a; . .stepwise/dev.env)"
            )
        return cls(url=(url or DEFAULT_API_URL).rstrip("/"), key=key)


class ApiClient:
    """One aiohttp session on the API with the key; JSON in, JSON out; errors as `ApiProblem`."""

    def __init__(self, config: ApiConfig, *, timeout_s: float = 60.0) -> None:
        self.config = config
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.config.key}"}, timeout=self._timeout
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, path: str, params: Any = None) -> Any:
        return msgspec.json.decode(await self.raw("GET", path, params=params))

    async def post(
        self, path: str, body: Any = None, params: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        answer = await self.raw("POST", path, body=body, params=params, headers=headers)
        return msgspec.json.decode(answer)

    async def put(self, path: str, body: Any) -> Any:
        return msgspec.json.decode(await self.raw("PUT", path, body=body))

    async def patch(self, path: str, body: Any) -> Any:
        return msgspec.json.decode(await self.raw("PATCH", path, body=body))

    async def raw(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """The answer's bytes for a 2xx; `ApiProblem` for anything else."""
        assert self._session is not None, "use `async with ApiClient(...)`"
        url = f"{self.config.url}{path}"
        data = None if body is None else msgspec.json.encode(body)
        if data is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
        try:
            async with self._session.request(
                method, url, data=data, params=params, headers=headers
            ) as resp:
                content = await resp.read()
                if resp.status >= 400:
                    raise _problem(resp.status, content)
                return content
        except aiohttp.ClientConnectionError as exc:
            raise ApiUnreachable(
                f"cannot reach the API at {self.config.url} ({exc}); is it running?"
                " (make run prints its URL; set STEPWISE_API_URL or --api-url)"
            ) from None
        except TimeoutError:
            raise ApiUnreachable(
                f"the API at {self.config.url} did not answer {method} {path} in time"
            ) from None


def _problem(status: int, content: bytes) -> ApiProblem:
    try:
        body = msgspec.json.decode(content)
    except msgspec.DecodeError:
        body = None
    if not isinstance(body, dict):
        text = content.decode(errors="replace").strip()[:200] or "no body"
        return ApiProblem(status, "HTTP_ERROR", text)
    errors = body.get("errors")
    return ApiProblem(
        status,
        str(body.get("code") or "HTTP_ERROR"),
        str(body.get("detail") or body.get("title") or ""),
        errors if isinstance(errors, list) else None,
    )


def issue_line(item: Any) -> str:
    """One validation issue / error item, readable: `[CODE] at root.steps[0] (id): message`."""
    if not isinstance(item, dict):
        return str(item)
    code = item.get("code")
    where = item.get("stepPath") or item.get("path") or item.get("pointer")
    step_id = item.get("stepId")
    message = item.get("message") or item.get("detail") or json.dumps(item)
    prefix = f"[{code}] " if code else ""
    location = f"at {where}{f' ({step_id})' if step_id else ''}: " if where else ""
    return f"{prefix}{location}{message}"


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


Command = Callable[[argparse.Namespace, ApiClient], Awaitable[int]]


def run_api_command(args: argparse.Namespace, command: Command) -> int:
    """Resolve the API location, run `command` with a client; errors become one line, exit 1."""
    # ✓/✗ and arrows: a non-UTF-8 terminal gets a replacement character, not a crash.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")

    async def go() -> int:
        config = ApiConfig.resolve(args, os.environ)
        async with ApiClient(config) as api:
            return await command(args, api)

    try:
        return asyncio.run(go())
    except ApiProblem as exc:
        print(f"stepwise: {exc}", file=sys.stderr)
        for item in exc.errors[:_MAX_LISTED_ERRORS]:
            print(f"  - {issue_line(item)}", file=sys.stderr)
        if len(exc.errors) > _MAX_LISTED_ERRORS:
            print(f"  … and {len(exc.errors) - _MAX_LISTED_ERRORS} more", file=sys.stderr)
        return 1
    except CliError as exc:
        print(f"stepwise: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def add_api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--api-url", help=f"the API (default $STEPWISE_API_URL, else {DEFAULT_API_URL})"
    )
    parser.add_argument("--api-key", help="an API key (default $STEPWISE_API_KEY)")


# the most a list command asks of the API per page, and so the most `--limit` may ask for
PAGE_LIMIT: Final = 500


def api_command(
    group: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    command: Command,
) -> argparse.ArgumentParser:
    """A subcommand that calls the API: the common options, `command` run with an `ApiClient`."""
    parser = group.add_parser(name, help=help_text, description=help_text)
    add_api_options(parser)
    parser.set_defaults(func=lambda args: run_api_command(args, command))
    return parser


def add_limit_option(parser: argparse.ArgumentParser) -> None:
    """`--limit N` of a list command: 1..PAGE_LIMIT, 50 by default."""
    parser.add_argument(
        "--limit", type=_limit, default=50, metavar="N", help=f"1..{PAGE_LIMIT} (50)"
    )


def _limit(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 1 <= number <= PAGE_LIMIT:
        raise argparse.ArgumentTypeError(f"--limit must be 1..{PAGE_LIMIT}")
    return number


def json_argument(raw: str) -> Any:
    """`--payload`: inline JSON, or `@file` holding JSON."""
    text = raw
    if raw.startswith("@"):
        try:
            text = Path(raw[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {raw[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
