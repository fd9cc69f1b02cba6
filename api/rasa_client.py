"""Talks to the Rasa server over HTTP on loopback (aiohttp: a sixth of httpx's CPU per call, BENCHMARKS.md)."""

from __future__ import annotations

import aiohttp

from core.settings import Settings

HTTP_ERRORS = (aiohttp.ClientError, TimeoutError, ValueError)


def http_session(connections: int) -> aiohttp.ClientSession:
    """The API's one client session for Rasa and the action server: connections kept open and reused."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=60))


class RasaUnavailableError(RuntimeError):
    pass


class RasaClient:
    def __init__(self, settings: Settings, session: aiohttp.ClientSession):
        self.settings = settings
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=settings.rasa_timeout_s)

    async def send(self, sender_id: str, text: str, metadata: dict) -> list[dict]:
        """One merchant turn through Rasa's REST channel; returns the bot's messages."""
        try:
            async with self.session.post(f"{self.settings.rasa_url}/webhooks/rest/webhook",
                                         json={"sender": sender_id, "message": text, "metadata": metadata},
                                         timeout=self.timeout) as resp:
                resp.raise_for_status()
                return await resp.json(content_type=None)
        except HTTP_ERRORS as exc:
            raise RasaUnavailableError(str(exc) or type(exc).__name__) from exc

    async def status(self) -> dict:
        """Rasa's /status (needs the auth token); raises when it does not answer."""
        async with self.session.get(f"{self.settings.rasa_url}/status", params={"token": self.settings.rasa_token},
                                    timeout=aiohttp.ClientTimeout(total=2.0)) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    async def understood(self, sender_id: str) -> list[dict]:
        """What Rasa made of each of the conversation's messages, in order: text, intent, confidence (from the
        tracker it keeps; empty if it has none, e.g. after a restart). Read only when an agent asks."""
        try:
            async with self.session.get(f"{self.settings.rasa_url}/conversations/{sender_id}/tracker",
                                        params={"token": self.settings.rasa_token, "include_events": "ALL"},
                                        timeout=self.timeout) as resp:
                resp.raise_for_status()
                tracker = await resp.json(content_type=None)
        except HTTP_ERRORS as exc:
            raise RasaUnavailableError(str(exc) or type(exc).__name__) from exc
        out = []
        for event in tracker.get("events") or []:
            if event.get("event") == "user":
                intent = (event.get("parse_data") or {}).get("intent") or {}
                out.append({"text": event.get("text") or "", "intent": intent.get("name"),
                            "confidence": round(float(intent.get("confidence") or 0), 3)})
        return out

    async def resume(self, sender_id: str) -> None:
        """Hand a paused conversation back to the bot (resume, then listen: a bare resume pauses again)."""
        events = [{"event": "resume"}, {"event": "action", "name": "action_listen"}]
        try:
            async with self.session.post(f"{self.settings.rasa_url}/conversations/{sender_id}/tracker/events",
                                         params={"token": self.settings.rasa_token}, json=events,
                                         timeout=self.timeout) as resp:
                resp.raise_for_status()
        except HTTP_ERRORS as exc:
            raise RasaUnavailableError(str(exc) or type(exc).__name__) from exc
