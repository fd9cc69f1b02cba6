"""Helpers every action shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from rasa_sdk import Tracker

from api import numbers
from core import vouch
from core.settings import get_settings

SERVICE_DOWN = "抱歉，系统暂时出了点问题，我现在查不到相关信息。请稍后再试，或点「转人工」联系客服。"
HUMAN_BUTTON = {"title": "转人工", "payload": "/request_human"}
CHINA = timezone(timedelta(hours=8))


def _vouched(tracker: Tracker) -> tuple[str, int | None] | None:
    return vouch.vouched(get_settings().internal_token, tracker.latest_message.get("metadata"))


def merchant_id(tracker: Tracker) -> str | None:
    """The merchant the API vouched for (signed) in the message metadata; never a name typed in the text, never
    an id a caller of Rasa's webhook wrote there."""
    found = _vouched(tracker)
    return found[0] if found else None


def conversation_id(tracker: Tracker) -> int | None:
    found = _vouched(tracker)
    return found[1] if found else None


def numbers_in(text: str, prefix: str | None = None) -> list[str]:
    """Case (GD), appeal (SS) and penalty (CF) numbers in a message, full width and lower case accepted."""
    return [n for n in numbers.find_in_text(text) if prefix is None or n.startswith(prefix)]


def malformed_in(tracker: Tracker) -> list[str]:
    """Attempts at a number of the wrong shape (GD12345, SS-12, 261125004217…) in the merchant's latest message."""
    return numbers.find_malformed(tracker.latest_message.get("text") or "")


def china_time(value: str | None, with_time: bool = True) -> str:
    """An API timestamp as merchants read it (Beijing time)."""
    if not value:
        return ""
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(CHINA).strftime("%m月%d日 %H:%M" if with_time else "%m月%d日")
