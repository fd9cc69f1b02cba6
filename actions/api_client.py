"""The action server's client for the API's internal service endpoints."""

from __future__ import annotations

import httpx

from core.settings import get_settings


class ServiceUnavailableError(RuntimeError):
    """The API did not answer, or answered with a server error."""


class ApiClient:
    def __init__(self, base_url: str | None = None, token: str | None = None, timeout: float = 10.0):
        settings = get_settings()
        self.base_url = base_url or settings.api_url
        self.headers = {"X-Internal-Token": token or settings.internal_token}
        self.timeout = timeout

    async def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            async with httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=self.timeout) as c:
                resp = await c.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(f"{method} {path}: {type(exc).__name__}") from exc
        if resp.status_code >= 500 or resp.status_code == 401:
            raise ServiceUnavailableError(f"{method} {path}: HTTP {resp.status_code}")
        return resp

    async def search_kb(self, text: str, k: int = 5) -> dict:
        resp = await self._request("POST", "/internal/kb/search", json={"text": text, "k": k})
        resp.raise_for_status()
        return resp.json()

    async def get_faq(self, faq_id: int) -> dict | None:
        resp = await self._request("GET", f"/internal/kb/faqs/{faq_id}")
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()
