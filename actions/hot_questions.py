"""The knowledge team's hot questions, as buttons."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from .api_client import ApiClient, ApiError, ServiceUnavailableError
from .common import HUMAN_BUTTON, SERVICE_DOWN, merchant_id


class ActionHotQuestions(Action):
    def name(self) -> str:
        return "action_hot_questions"

    def __init__(self, api: ApiClient | None = None):
        self.api = api or ApiClient()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        try:
            hot = await self.api.request("GET", "/api/kb/hot-questions", merchant_id(tracker))
        except (ApiError, ServiceUnavailableError):
            dispatcher.utter_message(text=SERVICE_DOWN, buttons=[HUMAN_BUTTON])
            return []
        if not hot:
            dispatcher.utter_message(text="您可以直接输入问题，比如「保证金怎么退」「提现多久到账」。")
            return []
        buttons = [{"title": h["question"], "payload": f'/ask_question{{"faq_id": "{h["faq_id"]}"}}'} for h in hot]
        dispatcher.utter_message(text="大家常问的问题：", buttons=buttons)
        return []
