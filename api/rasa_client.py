"""Talks to the Rasa server over HTTP on loopback."""

from __future__ import annotations

import httpx

from core.settings import Settings


class RasaUnavailableError(RuntimeError):
    pass


class RasaClient:
    def __init__(self, settings: Settings, client: httpx.AsyncClient):
        self.settings = settings
        self.client = client

    async def send(self, sender_id: str, text: str, metadata: dict) -> list[dict]:
        """One merchant turn through Rasa's REST channel; returns the bot's messages."""
        try:
            resp = await self.client.post(
                f"{self.settings.rasa_url}/webhooks/rest/webhook",
                json={"sender": sender_id, "message": text, "metadata": metadata},
                timeout=self.settings.rasa_timeout_s,
            )
            resp.raise_for_status()
            return resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaUnavailableError(str(exc) or type(exc).__name__) from exc

    async def status(self) -> dict:
        """Rasa's /status (needs the auth token); raises when it does not answer."""
        resp = await self.client.get(
            f"{self.settings.rasa_url}/status", params={"token": self.settings.rasa_token}, timeout=2.0
        )
        resp.raise_for_status()
        return resp.json()

    async def resume(self, sender_id: str) -> None:
        """Hand a paused conversation back to the bot (resume, then listen: a bare resume pauses again)."""
        events = [{"event": "resume"}, {"event": "action", "name": "action_listen"}]
        try:
            resp = await self.client.post(
                f"{self.settings.rasa_url}/conversations/{sender_id}/tracker/events",
                params={"token": self.settings.rasa_token}, json=events, timeout=self.settings.rasa_timeout_s,
            )
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise RasaUnavailableError(str(exc) or type(exc).__name__) from exc
