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


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    def __init__(self, api: ApiClient | None = None):
        self.api = api or ApiClient()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        conv = conversation_id(tracker)
        intent = (tracker.latest_message.get("intent") or {}).get("name") or ""
        reason = {"request_human": "商家要求人工", "complain": "商家不满"}.get(intent, "连续两次没能理解商家的问题")
        try:
            if conv is None:
                raise ApiError(422, "no conversation")
            await self.api.request("POST", f"/internal/conversations/{conv}/handoff", merchant_id(tracker),
                                   json={"reason": reason})
        except (ApiError, ServiceUnavailableError) as exc:
            log.warning("handoff failed: %s", exc)
            dispatcher.utter_message(text=NO_AGENTS)
            return [SlotSet("misunderstandings", 0)]
        if intent == "complain":
            dispatcher.utter_message(text="非常抱歉给您带来不好的体验。" + TRANSFERRING)
        else:
            dispatcher.utter_message(text=TRANSFERRING)
        return [SlotSet("misunderstandings", 0), ConversationPaused()]
