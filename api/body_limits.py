"""Request bodies are judged by their headers before a byte of them is read: a body larger than any route takes
gets 413, and an upload without a bearer token gets 401, at once (FastAPI would otherwise receive and parse the
whole multipart body before the route's authentication runs)."""

from __future__ import annotations

import json

JSON_LIMIT = 1024 * 1024  # chat, FAQ edits, imports as JSON: far below this
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and headers around one file


class BodyLimits:
    def __init__(self, app, max_upload_bytes: int):
        self.app = app
        self.form_limit = max_upload_bytes + FORM_OVERHEAD

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        form = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.form_limit if form else JSON_LIMIT
        try:
            length = int(headers.get(b"content-length", b"0"))
        except ValueError:
            length = 0
        if length > limit:
            return await _refuse(send, 413, f"请求太大：最多 {limit // (1024 * 1024)} MB")
        if form and not headers.get(b"authorization", b"").lower().startswith(b"bearer "):
            return await _refuse(send, 401, "请先登录")
        return await self.app(scope, receive, send)


async def _refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
