"""Progress lookup: a number in the message is used at once; otherwise the merchant picks from a list."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from api import numbers

from .api_client import ApiClient, ApiError, ServiceUnavailableError
from .common import HUMAN_BUTTON, SERVICE_DOWN, china_time, malformed_in, merchant_id, numbers_in

log = logging.getLogger(__name__)
NOT_FOUND = "查不到单号 {number} 的记录，请核对后再发给我（工单号以 GD 开头，申诉单号以 SS 开头）。"


async def open_items(api: ApiClient, merchant: str | None) -> tuple[list[dict], list[dict]]:
    cases = await api.request("GET", "/api/cases", merchant, params={"open": "true"})
    appeals = await api.request("GET", "/api/appeals", merchant, params={"open": "true"})
    return cases, appeals


def item_buttons(cases: list[dict], appeals: list[dict], intent: str = "check_progress") -> list[dict]:
    buttons = [{"title": f"{c['number']} {c['kind_label']}·{c['status_label']}",
                "payload": f'/{intent}{{"case_number": "{c["number"]}"}}'} for c in cases[:6]]
    buttons += [{"title": f"{a['number']} 申诉·{a['status_label']}",
                 "payload": f'/{intent}{{"appeal_number": "{a["number"]}"}}'} for a in appeals[:6]]
    return buttons


def describe_case(case: dict) -> str:
    lines = [f"工单 {case['number']}（{case['kind_label']}）：{case['title']}", f"当前状态：{case['status_label']}"]
    steps = case.get("timeline") or []
    if steps:
        lines.append("最近进展：")
        lines += [f"· {china_time(s['at'])} {s['status_label']}：{s['note']}" for s in steps[-3:][::-1]]
    if case.get("expected_done_at") and case["status"] in ("submitted", "processing", "need_info"):
        lines.append(f"预计完成时间：{china_time(case['expected_done_at'])} 前")
    if case["status"] == "need_info":
        lines.append("需要您补充资料，请按最近一步的说明操作。")
    return "\n".join(lines)


def describe_appeal(appeal: dict) -> str:
    target = appeal.get("penalty_rule") or appeal.get("arbitration_ref") or ""
    lines = [f"申诉 {appeal['number']}（{target}）", f"当前状态：{appeal['status_label']}"]
    steps = appeal.get("timeline") or []
    if steps:
        lines.append("最近进展：")
        lines += [f"· {china_time(s['at'])} {s['status_label']}：{s['note']}" for s in steps[-3:][::-1]]
    if appeal["status"] in ("pending", "reviewing", "need_more"):
        lines.append(f"预计审核完成：{china_time(appeal['sla_due_at'])} 前")
    if appeal["status"] == "need_more":
        lines.append("审核需要您补充材料：点下方「上传材料」提交图片或 PDF。")
    return "\n".join(lines)


class ValidateProgressForm(FormValidationAction):
    def name(self) -> str:
        return "validate_progress_form"

    async def validate_lookup_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                     domain: dict) -> dict:
        found = numbers_in(str(value or "")) or numbers_in(tracker.latest_message.get("text") or "")
        found = [n for n in found if n.startswith(("GD", "SS"))]
        if not found:
            if not malformed_in(tracker):  # a mistyped number: action_ask_lookup_number, next, says what is wrong
                dispatcher.utter_message(text="没认出单号。请发送以 GD 开头的工单号或以 SS 开头的申诉单号，说「算了」可以退出。")
            return {"lookup_number": None}
        return {"lookup_number": found[0]}


class ActionAskLookupNumber(Action):
    def name(self) -> str:
        return "action_ask_lookup_number"

    def __init__(self, api: ApiClient | None = None):
        self.api = api or ApiClient()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        # Asked on activation (no number was recognised in the message) and after validation refused one: a number
        # of the wrong shape in the message is named, with how our numbers look, before the merchant's items.
        mistyped = malformed_in(tracker)
        try:
            cases, appeals = await open_items(self.api, merchant_id(tracker))
        except (ServiceUnavailableError, ApiError) as exc:
            log.warning("listing open items failed: %s", exc)
            dispatcher.utter_message(text=numbers.malformed_reply(mistyped, choose=False) if mistyped
                                     else "请把工单号（GD 开头）或申诉单号（SS 开头）发给我。")
            return []
        if not cases and not appeals:
            text = "您目前没有进行中的工单或申诉。如果有单号，可以直接发给我；说「算了」可以退出。"
            if mistyped:
                text = numbers.malformed_reply(mistyped, choose=False) + "\n" + text
            dispatcher.utter_message(text=text)
        else:
            text = numbers.malformed_reply(mistyped) if mistyped else "您想查哪一个？点下面的单号，或直接发单号给我："
            dispatcher.utter_message(text=text, buttons=item_buttons(cases, appeals))
        return []


class ActionCheckProgress(Action):
    def name(self) -> str:
        return "action_check_progress"

    def __init__(self, api: ApiClient | None = None):
        self.api = api or ApiClient()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        number = tracker.get_slot("lookup_number")
        reset = [SlotSet("lookup_number", None)]
        if not number:
            return reset
        path = f"/api/cases/{number}" if number.startswith("GD") else f"/api/appeals/{number}"
        try:
            record = await self.api.request("GET", path, merchant_id(tracker))
        except ApiError as exc:
            if exc.status_code in (404, 422):
                dispatcher.utter_message(text=NOT_FOUND.format(number=number))
            else:
                dispatcher.utter_message(text=exc.detail)
            return reset
        except ServiceUnavailableError as exc:
            log.warning("progress lookup failed: %s", exc)
            dispatcher.utter_message(text=SERVICE_DOWN, buttons=[HUMAN_BUTTON])
            return reset
        if number.startswith("GD"):
            dispatcher.utter_message(text=describe_case(record))
        else:
            custom = None
            if record["status"] in ("pending", "reviewing", "need_more"):
                custom = {"type": "evidence_upload", "appeal_number": record["number"]}
            dispatcher.utter_message(text=describe_appeal(record), json_message=custom)
        return [*reset, SlotSet("last_case", number)]  # 「这个什么时候能处理完」 next asks about this one


class ActionListCases(Action):
    def name(self) -> str:
        return "action_list_cases"

    def __init__(self, api: ApiClient | None = None):
        self.api = api or ApiClient()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        merchant = merchant_id(tracker)
        try:
            cases = await self.api.request("GET", "/api/cases", merchant)
            appeals = await self.api.request("GET", "/api/appeals", merchant)
        except (ServiceUnavailableError, ApiError) as exc:
            log.warning("listing cases failed: %s", exc)
            dispatcher.utter_message(text=SERVICE_DOWN, buttons=[HUMAN_BUTTON])
            return []
        if not cases and not appeals:
            dispatcher.utter_message(text="您还没有工单或申诉记录。")
            return []
        lines = ["您的工单和申诉（最近的在前）："]
        lines += [f"· {c['number']} {c['kind_label']}：{c['title']}（{c['status_label']}）" for c in cases[:10]]
        lines += [f"· {a['number']} 申诉 {a.get('penalty_rule') or ''}（{a['status_label']}）" for a in appeals[:10]]
        lines.append("点下面的单号查看详细进度。")
        open_cases = [c for c in cases if c["status"] in ("submitted", "processing", "need_info")]
        open_appeals = [a for a in appeals if a["status"] in ("pending", "reviewing", "need_more")]
        dispatcher.utter_message(text="\n".join(lines), buttons=item_buttons(open_cases or cases[:3],
                                                                           open_appeals or appeals[:3]))
        return []
