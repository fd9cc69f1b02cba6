"""The action server's client for the API's service endpoints.

Every call names the merchant it acts for (``X-Merchant-Id``, taken from the
message metadata the API put there) and carries the internal token; the API
then applies the same rules as for the merchant's own requests.
"""

from __future__ import annotations

import asyncio

import httpx

from core.settings import get_settings


class ServiceUnavailableError(RuntimeError):
    """The API did not answer, or answered with a server error."""


class ApiError(RuntimeError):
    """The API refused the request (4xx); ``detail`` is its Chinese explanation."""

    def __init__(self, status_code: int, detail: str):
        super().__init__(detail)
        self.status_code, self.detail = status_code, detail


class ApiClient:
    def __init__(self, base_url: str | None = None, token: str | None = None, timeout: float = 10.0):
        settings = get_settings()
        self.base_url = base_url or settings.api_url
        self.token = token or settings.internal_token
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        """One client per event loop, its connections to the API kept open and reused: building a client (and
        its TLS context) and a TCP connection for every call cost more CPU than the call itself."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout,
                                             limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))
            self._loop = loop
        return self._client

    async def request(self, method: str, path: str, merchant_id: str | None = None, **kwargs) -> dict | list:
        headers = {"X-Internal-Token": self.token}
        if merchant_id:
            headers["X-Merchant-Id"] = merchant_id
        try:
            resp = await self._http().request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(f"{method} {path}: {type(exc).__name__}") from exc
        if resp.status_code >= 500 or resp.status_code == 401:
            raise ServiceUnavailableError(f"{method} {path}: HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise ServiceUnavailableError(f"{method} {path}: not JSON") from exc
        if resp.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else None
            raise ApiError(resp.status_code, detail if isinstance(detail, str) else "请求有误")
        return body

    async def search_kb(self, text: str, merchant_id: str | None, conversation_id: int | None = None,
                        k: int = 5) -> dict:
        # The API may still be loading its index after a restart; it waits up to 20 s for it.
        return await self.request("POST", "/internal/kb/search", merchant_id, timeout=25.0,
                                  json={"text": text, "k": k, "log_unanswered": True,
                                        "conversation_id": conversation_id})

    async def get_faq(self, faq_id: int) -> dict | None:
        try:
            return await self.request("GET", f"/internal/kb/faqs/{faq_id}")
        except ApiError as exc:
            if exc.status_code == 404:
                return None
            raise
