"""Request guards: body-size limit (413), API keys (401/403) and per-client rate limits (429)."""

from __future__ import annotations

import hmac
import logging
import math
import time
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import ConfigError

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
API_KEY_ENV = "CRYPTOPRED_API_KEY"
RATE_LIMIT_SCOPE = "api"


def _json_response(status: int, detail: str, headers: dict[str, str] | None = None) -> Any:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


# ------------------------------------------------------------------------------ body size
class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413, declared or streamed (pure ASGI).

    Routes in `self_limited_paths` read their body against their own limit (`api.batch_body`).
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, self_limited_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.self_limited_paths = self_limited_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.self_limited_paths:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _json_response(413, self._message(declared))(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # HTTPException passes through FastAPI's body parsing as 413 (not 400)
                    raise HTTPException(status_code=413, detail=self._message(received))
            return message

        return counted

    def _message(self, size: int) -> str:
        return (
            f"request body too large: {size} bytes > api.max_body_bytes={self.max_bytes}; "
            "send fewer rows per request"
        )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


# ------------------------------------------------------------------------------ API keys
def key_matches(given: str | None, expected: SecretStr | None) -> bool:
    """Constant-time comparison of a presented key with the configured one."""
    if given is None or expected is None:
        return False
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def check_api_key(given: str | None, expected: SecretStr | None, *, action: str) -> None:
    """Raise 403 when no key is configured, 401 when the presented key is missing or wrong."""
    if expected is None:
        raise HTTPException(
            status_code=403,
            detail=f"{action} is disabled: no API key is configured; set {API_KEY_ENV} "
            "in the server's environment and restart it",
        )
    if not key_matches(given, expected):
        raise HTTPException(
            status_code=401,
            detail=f"{action} needs a valid {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )


class ApiKeyMiddleware:
    """With `api.require_key_for_all`, every request (pages, docs, files) needs the key."""

    def __init__(self, app: ASGIApp, *, expected: SecretStr | None) -> None:
        self.app = app
        self.expected = expected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-api-key"), None)
        try:
            check_api_key(given, self.expected, action="this server (api.require_key_for_all)")
        except HTTPException as e:
            headers = dict(e.headers) if e.headers else None
            await _json_response(e.status_code, str(e.detail), headers)(scope, receive, send)
            return
        await self.app(scope, receive, send)


# ------------------------------------------------------------------------------ rate limit
class RateLimitMiddleware:
    """Per-client (remote address) fixed-window limit across every route; 429 + Retry-After.

    Built on `limits`, the library under slowapi. slowapi's own middlewares are not used:
    with FastAPI >= 0.137 they cannot resolve routes added by `include_router` and silently
    let every request through (laurentS/slowapi#281, verified here with FastAPI 0.165).
    Counters live in process memory, so each uvicorn worker counts on its own.
    """

    def __init__(self, app: ASGIApp, *, rate: RateLimitItem) -> None:
        self.app = app
        self.rate = rate
        self.limiter = FixedWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = client[0] if client else "unknown"
        if self.limiter.hit(self.rate, key, RATE_LIMIT_SCOPE):
            await self.app(scope, receive, send)
            return
        reset_at, _remaining = self.limiter.get_window_stats(self.rate, key, RATE_LIMIT_SCOPE)
        retry_after = max(1, math.ceil(float(reset_at) - time.time()))
        logger.info("Rate limit %s hit by %s on %s", self.rate, key, scope.get("path"))
        response = _json_response(
            429,
            f"rate limit exceeded ({self.rate} per client); retry after {retry_after} s",
            {"Retry-After": str(retry_after)},
        )
        await response(scope, receive, send)


def parse_rate_limit(rate_limit: str) -> RateLimitItem:
    """`"600/minute"` -> a rate item.

    Raises:
        ConfigError: the string is not a rate such as "600/minute" or "10 per second".
    """
    try:
        return parse(rate_limit)
    except ValueError as e:
        raise ConfigError(
            f"api.rate_limit: {rate_limit!r} is not a rate such as '600/minute' ({e})"
        ) from e
