"""Answer a business question from the knowledge base."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from .api_client import ApiClient, ApiError, ServiceUnavailableError
from .common import SERVICE_DOWN, merchant_id

log = logging.getLogger(__name__)

NO_ANSWER = "抱歉，这个问题我暂时回答不了。您可以换个说法再问一次，比如说清楚是保证金、提现、发票还是申诉方面的问题。"
CLARIFY = "您是想问以下哪个问题？"


def _faq_entity(tracker: Tracker) -> int | None:
    """A FAQ id chosen from a "您是想问" button (``/ask_question{"faq_id": "12"}``)."""
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == "faq_id":
            try:
                return int(str(entity.get("value")).strip())
            except ValueError:
                return None
    return None


class ActionAnswerQuestion(Action):
    def name(self) -> str:
        return "action_answer_question"

    def __init__(self, api: ApiClient | None = None):
        self.api = api or ApiClient()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        try:
            chosen = _faq_entity(tracker)
            if chosen is not None:
                faq = await self.api.get_faq(chosen)
                if faq is None:
                    dispatcher.utter_message(text=NO_ANSWER)
                else:
                    self._answer(dispatcher, faq)
                return []
            metadata = tracker.latest_message.get("metadata") or {}
            result = await self.api.search_kb(tracker.latest_message.get("text") or "", merchant_id(tracker),
                                              metadata.get("conversation_id"))
        except (ServiceUnavailableError, ApiError, KeyError, ValueError) as exc:  # never leave the merchant without a reply
            log.warning("knowledge base unavailable: %s", exc)
            dispatcher.utter_message(text=SERVICE_DOWN)
            return []

        decision, hits = result["decision"], result["hits"]
        if decision == "answer":
            self._answer(dispatcher, hits[0])
        elif decision == "clarify":
            buttons = [
                {"title": h["question"], "payload": f'/ask_question{{"faq_id": "{h["faq_id"]}"}}'}
                for h in hits[:3]
            ]
            dispatcher.utter_message(text=CLARIFY, buttons=buttons)
        else:
            dispatcher.utter_message(text=NO_ANSWER)
        return []

    @staticmethod
    def _answer(dispatcher: CollectingDispatcher, faq: dict) -> None:
        dispatcher.utter_message(text=faq["answer"])
