"""Helpers every action shares."""

from __future__ import annotations

from rasa_sdk import Tracker

SERVICE_DOWN = "抱歉，系统暂时出了点问题，我现在查不到相关信息。请稍后再试，或联系人工客服。"


def merchant_id(tracker: Tracker) -> str | None:
    """The merchant the API vouched for in the message metadata; never a name typed in the text."""
    metadata = tracker.latest_message.get("metadata") or {}
    value = metadata.get("merchant_id")
    return str(value) if value else None
