"""Security headers on every response: no MIME sniffing anywhere; pages may not be framed, and load scripts,
styles and connections from this origin only (the widget's styles live in its own <style>, hence
'unsafe-inline' for styles, never for scripts). /docs loads Swagger UI from its CDN and keeps FastAPI's defaults."""

from __future__ import annotations

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'self'; form-action 'self'; "
            "frame-ancestors 'none'")
EVERY = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
PAGES = [(b"content-security-policy", PAGE_CSP.encode()), (b"x-frame-options", b"DENY")]
DOCS = ("/docs", "/redoc")


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        docs = scope.get("path", "").startswith(DOCS)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                html = any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers)
                extra = EVERY + (PAGES if html and not docs else [])
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, with_headers)
