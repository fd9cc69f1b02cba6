"""Text that can never be written out again is refused at the door.

JSON and WebSocket frames may carry a lone surrogate (``"\\ud800"``): Python decodes it into a ``str`` that can be
stored, but never encoded as UTF-8 again, so one such message would break every agent's feed, the conversation's
history and the lists it appears in. ``RefuseBrokenText`` checks every JSON request body before a route sees it
(422 with a Chinese reason); the sockets use ``encodable`` on each frame.
"""

from __future__ import annotations

import json
import re

SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
BROKEN = "内容包含无法识别的字符（不成对的 Unicode 代理字符），请检查后重新发送"


def encodable(value) -> bool:
    """Whether every string in ``value`` (nested dicts and lists too) can be written as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(encodable(k) and encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(encodable(v) for v in value)
    return True


class RefuseBrokenText:
    """ASGI middleware: a JSON body holding a lone surrogate gets 422 before any route runs."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers") or []) if scope["type"] == "http" else {}
        if b"json" not in headers.get(b"content-type", b""):
            return await self.app(scope, receive, send)
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        # A surrogate can only arrive escaped (UTF-8 bytes cannot encode one); clients that escape all non-ASCII
        # text send \uXXXX for every Chinese character, so only a surrogate escape costs a second parse.
        if SURROGATE_ESCAPE.search(body):
            try:
                ok = encodable(json.loads(body))
            except ValueError:
                ok = True  # not JSON: the route's own validation answers
            if not ok:
                payload = json.dumps({"detail": BROKEN}, ensure_ascii=False).encode()
                await send({"type": "http.response.start", "status": 422,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(payload)).encode())]})
                await send({"type": "http.response.body", "body": payload})
                return None

        async def replay():
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)
