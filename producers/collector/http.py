"""HTTP plumbing of the collector: bounded body reading, cookies, CORS, fixed answers.

Nothing here knows about events; the endpoints (``producers.collector.endpoints``)
build on these helpers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ground.errors import BrokerError, CaptureError

__all__ = [
    "ANON_COOKIE",
    "COOKIE_MAX_AGE_S",
    "NO_CACHE",
    "OFF_LOOP_BYTES",
    "PIXEL_GIF",
    "Answer",
    "BodyTooLarge",
    "cookie_aid",
    "cors_middleware",
    "declared_length",
    "gif_response",
    "guard",
    "off_loop_if_large",
    "read_body",
    "set_aid_cookie",
]

#: The smallest transparent 1x1 GIF (43 bytes).
PIXEL_GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
ANON_COOKIE = "ls_aid"
COOKIE_MAX_AGE_S = 2 * 365 * 86_400

Handler = Callable[[Request], Awaitable[Response]]


class BodyTooLarge(CaptureError):
    """A body over the limit: ``head`` is what was read of it, ``declared`` its Content-Length."""

    def __init__(self, head: bytes, declared: int | None) -> None:
        super().__init__("body too large")
        self.head = head
        self.declared = declared


class Answer(CaptureError):
    """A finished error answer raised out of a helper."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body.get("error")))
        self.status = status
        self.body = body

    def response(self) -> Response:
        return JSONResponse(self.body, status_code=self.status)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (without reading it all) anything over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(b"", int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        chunks.append(chunk)
        if size > limit:
            raise BodyTooLarge(b"".join(chunks)[:limit], None)
    return b"".join(chunks)


def gif_response(status: int = 200) -> Response:
    """The pixel's answer: the transparent GIF, never cached, whatever happened."""
    return Response(PIXEL_GIF, status_code=status, media_type="image/gif", headers=NO_CACHE)


def cookie_aid(request: Request) -> str | None:
    """The anonymous id of the first-party cookie, if the request carries one."""
    if "cookie" not in request.headers:
        return None
    value = request.cookies.get(ANON_COOKIE)
    return unquote(value) if value else None


def set_aid_cookie(request: Request, response: Response, value: str, site_domains: list[str]) -> None:
    """Set the anonymous-id cookie, on the site's registrable domain when it is configured."""
    # Written by hand: http.cookies costs more than the rest of a pixel hit. The value
    # is percent-encoded exactly like the snippet's encodeURIComponent.
    cookie = f"{ANON_COOKIE}={quote(value, safe='')}; Max-Age={COOKIE_MAX_AGE_S}; Path=/; SameSite=Lax"
    if site_domains:  # request.url is costly to build: only when it matters
        host = (request.url.hostname or "").lower()
        domain = next((d for d in site_domains if host == d or host.endswith("." + d)), None)
        if domain:
            cookie += f"; Domain={domain}"
    if request.scope.get("scheme") == "https":
        cookie += "; Secure"
    response.raw_headers.append((b"set-cookie", cookie.encode("latin-1", "replace")))


def cors_middleware(cors_origins: str) -> Middleware:
    """CORS for the snippet's beacons: the configured origins (comma-separated), else any."""
    origins = [o.strip() for o in cors_origins.split(",") if o.strip()] or ["*"]
    return Middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "OPTIONS"],
                      allow_headers=["Content-Type"], allow_credentials=True, max_age=86_400)


def guard(handler: Handler) -> Handler:
    """Answer 503 (not 500) when the broker cannot take events: retryable, not a bug."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except BrokerError as exc:
            return JSONResponse({"error": "unavailable", "detail": str(exc)}, status_code=503)

    return guarded


#: Bodies above this size are parsed and validated in a worker thread: the work is linear,
#: but at the body limit it takes tens of milliseconds that /healthz and every other
#: request would otherwise wait for. Small bodies stay on the loop (a thread hop costs
#: more than their work).
OFF_LOOP_BYTES = 32 * 1024


async def off_loop_if_large(size: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, in a worker thread when the input is over ``OFF_LOOP_BYTES``."""
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(fn, *args, **kwargs)
    return fn(*args, **kwargs)


def declared_length(request: Request) -> int:
    """The request's Content-Length, 0 when absent or not a number."""
    try:
        return int(request.headers.get("content-length", "0"))
    except ValueError:
        return 0
