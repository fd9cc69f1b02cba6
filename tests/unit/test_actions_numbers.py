"""Numbers of the wrong shape in the actions that read a number (progress lookup, appeal, withdraw, evidence):
the reply names what was typed and how our numbers look, then offers the merchant's items. Runs the actions
in-process with a hand-built tracker and a fake API; well-formed numbers keep today's 查不到."""

from __future__ import annotations

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.api_client import ApiError
from actions.appeal import ActionAddEvidence, ActionAskPenaltyNumber, ValidateAppealForm
from actions.progress import ActionAskLookupNumber, ActionCheckProgress, ValidateProgressForm
from actions.withdraw import ActionAskWithdrawNumber, ValidateWithdrawForm
from core import vouch
from core.settings import get_settings
from tests.conftest import run_in_new_loop

MERCHANT = "M10001"
CASES = [{"number": "GD2611180001", "kind_label": "货款冻结", "status_label": "处理中"}]
APPEALS = [{"number": "SS2611160001", "status_label": "需补充材料", "status": "need_more",
            "penalty_rule": "延迟发货"}]
PENALTIES = [{"number": "CF2611200003", "rule": "虚假发货", "measure": "扣 2 分",
              "occurred_at": "2026-11-20T02:00:00Z", "appeal_deadline": "2026-12-20T02:00:00Z"}]
MALFORMED = ["GD12345", "GD2611250042171234567890", "GD26112500421X", "SS-12", "261125004217", "GB261125004217",
             "工单号是 2611"]


class FakeApi:
    """Answers the paths it was given; any other path is a 404, as the API answers for a number it cannot show
    this merchant (missing or another merchant's: the same)."""

    def __init__(self, answers: dict[str, object] | None = None):
        self.answers = answers or {}
        self.calls: list[tuple[str, str, str | None]] = []

    async def request(self, method, path, merchant_id=None, timeout=None, json=None, params=None):
        self.calls.append((method, path, merchant_id))
        if path not in self.answers:
            raise ApiError(404, "不存在")
        return self.answers[path]


def items_api(cases=CASES, appeals=APPEALS, penalties=PENALTIES, **more) -> FakeApi:
    return FakeApi({"/api/cases": cases, "/api/appeals": appeals, "/api/penalties": penalties, **more})


def tracker(text: str, intent: str = "check_progress", slots: dict | None = None) -> Tracker:
    metadata = vouch.metadata(get_settings().internal_token, MERCHANT, 7)
    message = {"text": text, "intent": {"name": intent, "confidence": 0.95}, "entities": [], "metadata": metadata}
    return Tracker("test", slots or {}, message, [], False, None, {}, "action_listen")


def run(action, text: str, intent: str = "check_progress", slots: dict | None = None) -> list[dict]:
    dispatcher = CollectingDispatcher()
    run_in_new_loop(lambda: action.run(dispatcher, tracker(text, intent, slots), {}))
    return dispatcher.messages


def validate(method, value, text: str, intent: str = "inform") -> tuple[dict, list[dict]]:
    dispatcher = CollectingDispatcher()
    result = run_in_new_loop(lambda: method(value, dispatcher, tracker(text, intent), {}))
    return result, dispatcher.messages


def titles(message: dict) -> list[str]:
    return [b["title"] for b in message.get("buttons") or []]


# --------------------------------------------------------------------------- progress lookup


@pytest.mark.parametrize("text", MALFORMED)
def test_a_mistyped_number_is_named_with_the_format_and_the_open_items_follow(text):
    [message] = run(ActionAskLookupNumber(api=items_api()), text)
    assert message["text"].startswith(f"没有找到“{text.removeprefix('工单号是 ')}”（")
    assert "工单号是 GD 加 12 位数字（例如 GD261125004217）" in message["text"]
    assert "申诉单号以 SS 开头" in message["text"] and "判罚单号以 CF 开头" in message["text"]
    assert message["text"].endswith("请核对后再发一次，或者从下面选一个：")
    assert "您想查哪一个" not in message["text"]
    assert [t.split()[0] for t in titles(message)] == ["GD2611180001", "SS2611160001"]


def test_without_a_number_the_list_is_offered_as_before():
    [message] = run(ActionAskLookupNumber(api=items_api()), "查一下我的进度")
    assert message["text"].startswith("您想查哪一个？") and len(titles(message)) == 2


@pytest.mark.parametrize("text", ["保证金交了2000元", "3月15号发的货", "电话13800138000换了"])
def test_amounts_dates_and_phone_numbers_are_not_called_mistyped_numbers(text):
    [message] = run(ActionAskLookupNumber(api=items_api()), text, intent="inform")
    assert "没有找到" not in message["text"] and message["text"].startswith("您想查哪一个？")


def test_a_mistyped_number_with_nothing_open_says_so_without_offering_a_choice():
    [message] = run(ActionAskLookupNumber(api=items_api(cases=[], appeals=[])), "查下 GD12345")
    assert message["text"].startswith("没有找到“GD12345”（只有 5 位数字）：")
    assert "从下面选" not in message["text"] and "没有进行中的工单或申诉" in message["text"]
    assert not message.get("buttons")


def test_the_form_refuses_a_mistyped_number_and_leaves_the_explanation_to_the_question_that_follows():
    validator = ValidateProgressForm()
    result, said = validate(validator.validate_lookup_number, "GD2611250042171234567890", "GD2611250042171234567890")
    assert result == {"lookup_number": None} and said == []  # once, from action_ask_lookup_number
    [message] = run(ActionAskLookupNumber(api=items_api()), "GD2611250042171234567890", intent="inform")
    assert "“GD2611250042171234567890”（有 22 位数字，太长了）" in message["text"] and titles(message)
    # not a number at all: the form's own words, as before
    result, said = validate(validator.validate_lookup_number, "保证金怎么退", "保证金怎么退", intent="ask_question")
    assert result == {"lookup_number": None} and "没认出单号" in said[0]["text"]


def test_the_form_takes_a_well_formed_number():
    result, said = validate(ValidateProgressForm().validate_lookup_number, "gd-2611180001", "gd-2611180001")
    assert result == {"lookup_number": "GD2611180001"} and said == []


@pytest.mark.parametrize("number", ["GD2699999999", "GD2611190004", "GD1234567"])
def test_a_well_formed_number_that_is_not_the_merchants_keeps_the_same_not_found_reply(number):
    api = FakeApi()  # the API answers 404 alike for a missing number and another merchant's
    [message] = run(ActionCheckProgress(api=api), number, slots={"lookup_number": number})
    assert message["text"].startswith(f"查不到单号 {number} 的记录") and "没有找到" not in message["text"]
    assert api.calls == [("GET", f"/api/cases/{number}", MERCHANT)]


# --------------------------------------------------------------------------- filing an appeal


def test_a_mistyped_penalty_number_when_filing_is_named_before_the_penalties():
    [message] = run(ActionAskPenaltyNumber(api=items_api()), "我要申诉 CF123", intent="file_appeal")
    first = message["text"].splitlines()[0]
    assert first.startswith("没有找到“CF123”（只有 3 位数字）：判罚单号是 CF 加 12 位数字（例如 CF261125004217）")
    assert first.endswith("或者从下面选一个：") and "CF2611200003 虚假发货" in message["text"]
    assert titles(message)[0].startswith("CF2611200003")


def test_the_appeal_form_refuses_a_mistyped_penalty_number_quietly_and_looks_up_a_well_formed_one():
    validator = ValidateAppealForm(api=FakeApi())
    result, said = validate(validator.validate_penalty_number, "CF-2611", "CF-2611")
    assert result == {"penalty_number": None} and said == []
    result, said = validate(validator.validate_penalty_number, "CF2699999999", "CF2699999999")
    assert result == {"penalty_number": None} and said[0]["text"] == "查不到判罚 CF2699999999，请核对单号。"
    result, said = validate(validator.validate_penalty_number, "随便写点", "随便写点")
    assert "没认出判罚单号" in said[0]["text"]


# --------------------------------------------------------------------------- withdrawing, evidence


def test_a_mistyped_appeal_number_when_withdrawing_is_named_before_the_appeals():
    [message] = run(ActionAskWithdrawNumber(api=items_api()), "撤回申诉 SS12", intent="withdraw_appeal")
    assert message["text"].startswith("没有找到“SS12”（只有 2 位数字）：申诉单号是 SS 加 12 位数字")
    assert [b["payload"] for b in message["buttons"]] == ['/withdraw_appeal{"appeal_number": "SS2611160001"}']
    result, said = validate(ValidateWithdrawForm().validate_withdraw_number, "SS12", "SS12")
    assert result == {"withdraw_number": None} and said == []


def test_a_mistyped_appeal_number_when_adding_evidence_is_named_before_the_uploads():
    first, upload = run(ActionAddEvidence(api=items_api()), "给SS2611补充材料", intent="add_evidence")
    assert first["text"].startswith("没有找到“SS2611”（只有 4 位数字）：申诉单号是 SS 加 12 位数字")
    assert upload["custom"] == {"type": "evidence_upload", "appeal_number": "SS2611160001"}
    [only] = run(ActionAddEvidence(api=items_api()), "补充申诉材料", intent="add_evidence")
    assert only["custom"]["appeal_number"] == "SS2611160001"
