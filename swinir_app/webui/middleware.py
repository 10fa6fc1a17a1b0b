"""The web server's HTTP middlewares (ASGI): the request body limit and the upload quota. No gradio here."""
from __future__ import annotations

from ..engine import human_size


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets HTTP 413, except file uploads, which
    gradio limits per file (``max_file_size``). Images sent inline (a pasted data: URL) are JSON."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].rstrip("/").endswith("/upload"):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send):
        body = f"request body over {human_size(self.limit)}".encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class UploadQuota:
    """ASGI middleware: an upload is accepted only if, after the oldest idle files make room, it fits
    in ``--max-temp-size`` with everything on disk; else HTTP 507 with the reason (uploads land in
    gradio's cache before any event runs, so the events' own checks come too late for them)."""

    def __init__(self, app, webapp):  # a WebApp: its config and its storage
        self.app, self.webapp = app, webapp

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith("/upload"):
            length = dict(scope.get("headers") or []).get(b"content-length", b"")
            size = int(length) if length.isdigit() else self.webapp.config.max_file_size
            if not self.webapp.storage.make_room(size):
                body = (f"this server's temporary space ({human_size(self.webapp.config.max_temp_size)}) is full; "
                        f"try again in a minute").encode()
                await send({"type": "http.response.start", "status": 507,
                            "headers": [(b"content-type", b"text/plain"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        return await self.app(scope, receive, send)
