"""Hand the conversation to a human agent; the bot stays silent until the agent hands it back."""

from __future__ import annotations

import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from .api_client import ApiClient, ApiError, ServiceUnavailableError
from .common import conversation_id, merchant_id

log = logging.getLogger(__name__)
TRANSFERRING = "正在为您转接人工客服，请稍候，客服接入后会在这里回复您。您可以先把问题描述一下。"
NO_AGENTS = "抱歉，人工客服暂时无法接入。请稍后再试，或留下您的问题，客服上线后会尽快回复。"


REASONS = {"merchant_asked": "商家要求转人工", "upset": "商家情绪激动", "not_understood": "连续两次没能理解商家的问题",
           "none_matched": "「您是想问」里没有商家要找的问题"}


def handoff_kind(tracker: Tracker, intent: str) -> str:
    """Why the conversation goes to a person: what the agents' queue shows."""
    if intent == "complain":
        return "upset"
    if intent == "request_human":
        for event in reversed(tracker.events):  # 都不是 under the bot's 您是想问 choices
            if event.get("event") == "bot":
                buttons = (event.get("data") or {}).get("buttons") or []
                return "none_matched" if any(b.get("title") == "都不是" for b in buttons) else "merchant_asked"
        return "merchant_asked"
    return "not_understood"


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    def __init__(self, api: ApiClient | None = None):
        self.api = api or ApiClient()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        conv = conversation_id(tracker)
        intent = (tracker.latest_message.get("intent") or {}).get("name") or ""
        kind = handoff_kind(tracker, intent)
        try:
            if conv is None:
                raise ApiError(422, "no conversation")
            result = await self.api.request("POST", f"/internal/conversations/{conv}/handoff", merchant_id(tracker),
                                            json={"kind": kind, "reason": REASONS[kind]})
        except (ApiError, ServiceUnavailableError) as exc:
            log.warning("handoff failed: %s", exc)
            dispatcher.utter_message(text=NO_AGENTS)
            return [SlotSet("misunderstandings", 0)]
        sorry = "非常抱歉给您带来不好的体验。" if intent == "complain" else ""
        if isinstance(result, dict) and result.get("agent_name"):  # an agent was free and has it already
            dispatcher.utter_message(text=sorry + "已为您接通人工客服，请直接描述您的问题。")
        else:
            dispatcher.utter_message(text=sorry + TRANSFERRING)
        return [SlotSet("misunderstandings", 0), ConversationPaused()]
