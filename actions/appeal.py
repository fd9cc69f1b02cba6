"""Filing an appeal in a form: penalty → reason → description → confirmation → submitted through the API."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from api import numbers

from .api_client import ApiClient, ApiError, ServiceUnavailableError
from .common import HUMAN_BUTTON, SERVICE_DOWN, china_time, malformed_in, merchant_id, numbers_in

log = logging.getLogger(__name__)

REASONS = {
    "misjudged": "判罚有误",
    "evidence": "有新的证据",
    "third_party": "第三方原因（物流、系统等）",
    "buyer_malice": "买家恶意行为",
    "other": "其他原因",
}
# Words merchants use for each reason when they type instead of pressing a button.
REASON_WORDS = {
    "third_party": ("物流", "快递", "第三方", "系统", "天气", "停收", "揽收", "网点"),
    "buyer_malice": ("买家恶意", "恶意", "敲诈", "勒索", "职业", "差评师"),
    "evidence": ("证据", "凭证", "截图", "新材料"),
    "misjudged": ("判错", "搞错", "误判", "有误", "冤枉", "不对", "没有违规"),
    "other": ("其他", "别的"),
}
FORM_SLOTS = ("penalty_number", "appeal_reason", "appeal_description", "appeal_confirm")


def reason_from_text(text: str) -> str | None:
    text = (text or "").strip()
    if text in REASONS:
        return text
    for key, label in REASONS.items():
        if text == label:
            return key
    for key, words in REASON_WORDS.items():
        if any(w in text for w in words):
            return key
    return None


def stop_form() -> list:
    events = [SlotSet(s, None) for s in FORM_SLOTS]
    return [*events, SlotSet("requested_slot", None), ActiveLoop(None)]


class ActionAskPenaltyNumber(Action):
    """Offer the merchant's penalties that can be appealed now, as buttons."""

    def name(self) -> str:
        return "action_ask_penalty_number"

    def __init__(self, api: ApiClient | None = None):
        self.api = api or ApiClient()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        mistyped = malformed_in(tracker)  # 我要申诉 CF123, or a mistyped number validation just refused
        try:
            penalties = await self.api.request("GET", "/api/penalties", merchant_id(tracker),
                                               params={"appealable": "true"})
        except (ServiceUnavailableError, ApiError) as exc:
            log.warning("listing penalties failed: %s", exc)
            dispatcher.utter_message(text=SERVICE_DOWN, buttons=[HUMAN_BUTTON])
            return stop_form()
        if not penalties:
            text = ("您目前没有可以申诉的判罚（可能已超过申诉期限，或已有处理中的申诉）。"
                    "如需查询已有申诉的进度，请说「查进度」。")
            if mistyped:
                text = numbers.malformed_reply(mistyped, numbers.PENALTY, choose=False) + "\n" + text
            dispatcher.utter_message(text=text)
            return stop_form()
        buttons = [{"title": f"{p['number']} {p['rule']}（{p['measure']}）",
                    "payload": f'/inform{{"penalty_number": "{p["number"]}"}}'} for p in penalties[:8]]
        lines = [numbers.malformed_reply(mistyped, numbers.PENALTY) if mistyped else "请选择要申诉的判罚："]
        lines += [f"· {p['number']} {p['rule']}，{china_time(p['occurred_at'], False)}，"
                  f"申诉截止 {china_time(p['appeal_deadline']) or '不限'}" for p in penalties[:8]]
        lines.append("说「算了」可以随时退出。")
        dispatcher.utter_message(text="\n".join(lines), buttons=buttons)
        return []


class ActionAskAppealReason(Action):
    def name(self) -> str:
        return "action_ask_appeal_reason"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        buttons = [{"title": label, "payload": f'/inform{{"appeal_reason": "{key}"}}'} for key, label in REASONS.items()]
        dispatcher.utter_message(text="申诉的理由是哪一类？", buttons=buttons)
        return []


class ActionAskAppealConfirm(Action):
    def name(self) -> str:
        return "action_ask_appeal_confirm"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        reason = REASONS.get(tracker.get_slot("appeal_reason") or "", "")
        text = ("请确认申诉内容：\n"
                f"· 判罚：{tracker.get_slot('penalty_number')}\n"
                f"· 理由：{reason}\n"
                f"· 说明：{tracker.get_slot('appeal_description')}\n"
                "确认提交吗？提交后可以在聊天窗口上传图片或 PDF 凭证。")
        dispatcher.utter_message(text=text, buttons=[{"title": "确认提交", "payload": "/affirm"},
                                                     {"title": "取消", "payload": "/deny"}])
        return []


class ValidateAppealForm(FormValidationAction):
    def name(self) -> str:
        return "validate_appeal_form"

    def __init__(self, api: ApiClient | None = None):
        super().__init__()
        self.api = api or ApiClient()

    async def validate_penalty_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                      domain: dict) -> dict:
        found = numbers_in(str(value or ""), "CF") or numbers_in(tracker.latest_message.get("text") or "", "CF")
        if not found:
            if not malformed_in(tracker):  # a mistyped number: action_ask_penalty_number, next, says what is wrong
                dispatcher.utter_message(text="没认出判罚单号，请点上面的按钮选择，或发送以 CF 开头的判罚单号。")
            return {"penalty_number": None}
        try:
            penalty = await self.api.request("GET", f"/api/penalties/{found[0]}", merchant_id(tracker))
        except ApiError as exc:
            dispatcher.utter_message(text=f"查不到判罚 {found[0]}，请核对单号。" if exc.status_code == 404 else exc.detail)
            return {"penalty_number": None}
        except ServiceUnavailableError:
            dispatcher.utter_message(text=SERVICE_DOWN, buttons=[HUMAN_BUTTON])
            return {"penalty_number": None}
        if not penalty["can_appeal_now"]:
            dispatcher.utter_message(text=penalty["cannot_appeal_reason"] or "这条判罚现在不能申诉。")
            return {"penalty_number": None}
        return {"penalty_number": penalty["number"]}

    async def validate_appeal_reason(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                     domain: dict) -> dict:
        reason = reason_from_text(str(value or ""))
        if reason is None:
            dispatcher.utter_message(text="请从下面的理由中选一个。")
            return {"appeal_reason": None}
        return {"appeal_reason": reason}

    async def validate_appeal_description(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                          domain: dict) -> dict:
        text = str(value or "").strip()
        if text.startswith("/"):
            return {"appeal_description": None}
        if len(text) < 10:
            dispatcher.utter_message(text="说明太短了，请至少写 10 个字，说清楚当时的情况。")
            return {"appeal_description": None}
        if len(text) > 2000:
            dispatcher.utter_message(text="说明太长了，请控制在 2000 字以内。")
            return {"appeal_description": None}
        return {"appeal_description": text}

    async def validate_appeal_confirm(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                      domain: dict) -> dict:
        if value not in (True, False):
            dispatcher.utter_message(text="请点「确认提交」或「取消」。")
            return {"appeal_confirm": None}
        return {"appeal_confirm": value}  # False completes the form too; the submit action then cancels


class ActionSubmitAppeal(Action):
    def name(self) -> str:
        return "action_submit_appeal"

    def __init__(self, api: ApiClient | None = None):
        self.api = api or ApiClient()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        reset = [SlotSet(s, None) for s in FORM_SLOTS]
        if tracker.get_slot("appeal_confirm") is not True:
            dispatcher.utter_message(response="utter_appeal_cancelled")
            return reset
        body = {"penalty_number": tracker.get_slot("penalty_number"), "reason": tracker.get_slot("appeal_reason"),
                "description": tracker.get_slot("appeal_description")}
        try:
            appeal = await self.api.request("POST", "/api/appeals", merchant_id(tracker), json=body)
        except ApiError as exc:
            dispatcher.utter_message(text=f"申诉没有提交成功：{exc.detail}")
            return reset
        except ServiceUnavailableError as exc:
            log.warning("filing an appeal failed: %s", exc)
            dispatcher.utter_message(text="抱歉，申诉暂时提交不了，您的内容没有丢失风险——请稍后再试，或转人工帮您提交。",
                                     buttons=[HUMAN_BUTTON])
            return reset
        dispatcher.utter_message(
            text=(f"申诉已提交，申诉单号 {appeal['number']}。\n"
                  f"平台会在 {china_time(appeal['sla_due_at'])} 前完成审核，结果会通知您。\n"
                  "现在可以上传凭证（图片或 PDF，每个不超过 10 MB），有助于更快通过审核。"),
            json_message={"type": "evidence_upload", "appeal_number": appeal["number"]},
        )
        return reset


class ActionAddEvidence(Action):
    """Point the merchant at the upload for their open appeals (the widget shows the upload control)."""

    def name(self) -> str:
        return "action_add_evidence"

    def __init__(self, api: ApiClient | None = None):
        self.api = api or ApiClient()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        try:
            appeals = await self.api.request("GET", "/api/appeals", merchant_id(tracker), params={"open": "true"})
        except (ServiceUnavailableError, ApiError):
            dispatcher.utter_message(text=SERVICE_DOWN, buttons=[HUMAN_BUTTON])
            return []
        mistyped = malformed_in(tracker)  # 给 SS12 补充材料: say so, then offer the uploads there are
        if not appeals:
            text = "您目前没有进行中的申诉，不需要补充材料。"
            if mistyped:
                text = numbers.malformed_reply(mistyped, numbers.APPEAL, choose=False) + "\n" + text
            dispatcher.utter_message(text=text)
            return []
        if mistyped:
            dispatcher.utter_message(text=numbers.malformed_reply(mistyped, numbers.APPEAL))
        wanted = [a for a in appeals if a["status"] == "need_more"] or appeals
        for a in wanted[:3]:
            dispatcher.utter_message(
                text=f"申诉 {a['number']}（{a.get('penalty_rule') or ''}，{a['status_label']}）：点「上传材料」提交图片或 PDF。",
                json_message={"type": "evidence_upload", "appeal_number": a["number"]},
            )
        return []


class ActionResetForms(Action):
    def name(self) -> str:
        return "action_reset_forms"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        slots = (*FORM_SLOTS, "lookup_number", "withdraw_number", "withdraw_confirm")
        return [SlotSet(s, None) for s in slots]
