"""The action server's client for the API's service endpoints.

Every call names the merchant it acts for (``X-Merchant-Id``, taken from the
message metadata the API put there) and carries the internal token; the API
then applies the same rules as for the merchant's own requests.
"""

from __future__ import annotations

import asyncio
import json as json_module

import aiohttp

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
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> aiohttp.ClientSession:
        """One session per event loop, its connections to the API kept open and reused: a new client and TCP
        connection for every call cost more CPU than the call itself (and aiohttp a sixth of httpx's CPU)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop:
            self._session = aiohttp.ClientSession(self.base_url, connector=aiohttp.TCPConnector(limit=32))
            self._loop = loop
        return self._session

    async def request(self, method: str, path: str, merchant_id: str | None = None, timeout: float | None = None,
                      json: dict | None = None, params: dict | None = None) -> dict | list:
        headers = {"X-Internal-Token": self.token}
        if merchant_id:
            headers["X-Merchant-Id"] = merchant_id
        try:
            async with self._http().request(method, path, headers=headers, json=json, params=params,
                                            timeout=aiohttp.ClientTimeout(total=timeout or self.timeout)) as resp:
                status, raw = resp.status, await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ServiceUnavailableError(f"{method} {path}: {type(exc).__name__}") from exc
        if status >= 500 or status == 401:
            raise ServiceUnavailableError(f"{method} {path}: HTTP {status}")
        try:
            body = json_module.loads(raw)
        except ValueError as exc:
            raise ServiceUnavailableError(f"{method} {path}: not JSON") from exc
        if status >= 400:
            detail = body.get("detail") if isinstance(body, dict) else None
            raise ApiError(status, detail if isinstance(detail, str) else "请求有误")
        return body

    async def search_kb(self, text: str, merchant_id: str | None, conversation_id: int | None = None,
                        k: int = 5, context_faq_id: int | None = None, log_unanswered: bool = True) -> dict:
        """``context_faq_id``: the FAQ the conversation just answered, to read a follow-up question with."""
        # The API may still be loading its index after a restart; it waits up to 20 s for it.
        return await self.request("POST", "/internal/kb/search", merchant_id, timeout=25.0,
                                  json={"text": text, "k": k, "log_unanswered": log_unanswered,
                                        "conversation_id": conversation_id, "context_faq_id": context_faq_id})

    async def get_faq(self, faq_id: int) -> dict | None:
        try:
            return await self.request("GET", f"/internal/kb/faqs/{faq_id}")
        except ApiError as exc:
            if exc.status_code == 404:
                return None
            raise
