"""Security headers: a Content-Security-Policy per page, nosniff, no framing, no referrer."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP_HEADER = "Content-Security-Policy"
STRICT_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
"""For everything that is not a page (JSON, files): nothing may load, nothing may frame it."""

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

_INLINE_SCRIPT = re.compile(rb"<script\b([^>]*)>(.*?)</script[\s/>]", re.IGNORECASE | re.DOTALL)


def page_policy(script_sources: Iterable[str] = ()) -> str:
    """The CSP of an HTML page: scripts from this server plus `script_sources` (nonces, hashes).

    Styles allow 'unsafe-inline': Plotly's chart fragments size their divs with `style`
    attributes and the reports carry inline `<style>`; CSS cannot run script. Images may be
    `data:`/`blob:` URLs, which Plotly's "download as PNG" button draws through.

    >>> page_policy(["'nonce-abc'"]).split("; ")[1]
    "script-src 'self' 'nonce-abc'"
    """
    scripts = " ".join(["'self'", *script_sources])
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {scripts}",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self'",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def make_nonce() -> str:
    """A fresh per-response script nonce (128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


def inline_script_hashes(html: bytes) -> list[str]:
    """CSP `'sha256-...'` sources for each inline `<script>` (those without `src`) of a page.

    >>> inline_script_hashes(b'<script src="/a.js"></script><script>go()</script>')
    ["'sha256-5KYv+PUboo5h+0+YAtGRPbwv5d/QxzHslP4YGnUaxRw='"]
    """
    sources = []
    for attributes, body in _INLINE_SCRIPT.findall(html):
        if re.search(rb"\bsrc\s*=", attributes, re.IGNORECASE):
            continue
        text = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")  # as the HTML parser sees it
        digest = base64.b64encode(hashlib.sha256(text).digest()).decode("ascii")
        sources.append(f"'sha256-{digest}'")
    return sorted(set(sources))


def file_page_policy(path: Path) -> str:
    """The CSP of a static HTML file: its own inline scripts are allowed by hash, nothing else."""
    stat = path.stat()
    return _file_page_policy(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _file_page_policy(path: Path, _mtime_ns: int, _size: int) -> str:
    return page_policy(inline_script_hashes(path.read_bytes()))


class SecurityHeadersMiddleware:
    """Add `COMMON_HEADERS` to every response, and `STRICT_POLICY` unless the route set a CSP.

    Pages set their own policy (`page_policy`); `exempt_paths` (the Swagger UI and ReDoc pages,
    which load their scripts from a CDN) get no CSP.
    """

    def __init__(self, app: ASGIApp, *, exempt_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exempt = scope.get("path") in self.exempt_paths

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS.items():
                    headers.setdefault(name, value)
                if not exempt:
                    headers.setdefault(CSP_HEADER, STRICT_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)
