"""Withdrawing an appeal: which one, then a confirmation."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from api import numbers

from .api_client import ApiClient, ApiError, ServiceUnavailableError
from .common import HUMAN_BUTTON, SERVICE_DOWN, malformed_in, merchant_id, numbers_in
from .progress import item_buttons

log = logging.getLogger(__name__)


class ActionAskWithdrawNumber(Action):
    def name(self) -> str:
        return "action_ask_withdraw_number"

    def __init__(self, api: ApiClient | None = None):
        self.api = api or ApiClient()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        mistyped = malformed_in(tracker)  # 撤回申诉 SS12, or a mistyped number validation just refused
        try:
            appeals = await self.api.request("GET", "/api/appeals", merchant_id(tracker), params={"open": "true"})
        except (ServiceUnavailableError, ApiError):
            dispatcher.utter_message(text=SERVICE_DOWN, buttons=[HUMAN_BUTTON])
            return [SlotSet("requested_slot", None), ActiveLoop(None)]
        if not appeals:
            text = "您目前没有可以撤回的申诉（只有待审核、审核中或需补充材料的申诉可以撤回）。"
            if mistyped:
                text = numbers.malformed_reply(mistyped, numbers.APPEAL, choose=False) + "\n" + text
            dispatcher.utter_message(text=text)
            return [SlotSet("requested_slot", None), ActiveLoop(None)]
        text = numbers.malformed_reply(mistyped, numbers.APPEAL) if mistyped else "要撤回哪个申诉？"
        dispatcher.utter_message(text=text, buttons=item_buttons([], appeals, intent="withdraw_appeal"))
        return []


class ActionAskWithdrawConfirm(Action):
    def name(self) -> str:
        return "action_ask_withdraw_confirm"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        number = tracker.get_slot("withdraw_number")
        dispatcher.utter_message(text=f"确定撤回申诉 {number} 吗？撤回后如仍在申诉期限内，可以重新提交。",
                                 buttons=[{"title": "确定撤回", "payload": "/affirm"},
                                          {"title": "不撤回", "payload": "/deny"}])
        return []


class ValidateWithdrawForm(FormValidationAction):
    def name(self) -> str:
        return "validate_withdraw_form"

    async def validate_withdraw_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                       domain: dict) -> dict:
        found = numbers_in(str(value or ""), "SS") or numbers_in(tracker.latest_message.get("text") or "", "SS")
        if not found:
            if not malformed_in(tracker):  # a mistyped number: action_ask_withdraw_number, next, says what is wrong
                dispatcher.utter_message(text="没认出申诉单号，请点上面的按钮，或发送以 SS 开头的申诉单号。")
            return {"withdraw_number": None}
        return {"withdraw_number": found[0]}

    async def validate_withdraw_confirm(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                        domain: dict) -> dict:
        if value not in (True, False):
            dispatcher.utter_message(text="请点「确定撤回」或「不撤回」。")
            return {"withdraw_confirm": None}
        return {"withdraw_confirm": value}


class ActionSubmitWithdraw(Action):
    def name(self) -> str:
        return "action_submit_withdraw"

    def __init__(self, api: ApiClient | None = None):
        self.api = api or ApiClient()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        number, confirmed = tracker.get_slot("withdraw_number"), tracker.get_slot("withdraw_confirm")
        reset = [SlotSet("withdraw_number", None), SlotSet("withdraw_confirm", None)]
        if confirmed is not True:
            dispatcher.utter_message(text="好的，申诉保留，不撤回。")
            return reset
        try:
            await self.api.request("POST", f"/api/appeals/{number}/withdraw", merchant_id(tracker))
        except ApiError as exc:
            text = f"查不到申诉 {number}，请核对单号。" if exc.status_code in (404, 422) else exc.detail
            dispatcher.utter_message(text=text)
            return reset
        except ServiceUnavailableError:
            dispatcher.utter_message(text=SERVICE_DOWN, buttons=[HUMAN_BUTTON])
            return reset
        dispatcher.utter_message(text=f"申诉 {number} 已撤回。")
        return reset
