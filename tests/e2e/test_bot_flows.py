"""The bot's flows through the real stack: progress lookup, filing and withdrawing appeals, handoff, and which way
free text goes (a flow, or the knowledge base: answered, 您是想问, or a reply of its own)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from ..conftest import merchant_headers, staff_login

pytestmark = pytest.mark.e2e


class Chat:
    """One merchant in one fresh conversation."""

    def __init__(self, api, merchant: str = "M10001"):
        self.api, self.merchant = api, merchant
        self.headers = merchant_headers(api.stack_settings, merchant)
        resp = api.post("/api/conversations", headers=self.headers)
        assert resp.status_code == 201, resp.text
        self.id = resp.json()["id"]

    def say(self, text: str) -> dict:
        resp = self.api.post("/api/chat", json={"text": text, "conversation_id": self.id}, headers=self.headers)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def text(self, text: str) -> str:
        return "\n".join(m["text"] for m in self.say(text)["messages"])

    def buttons(self, body: dict) -> list[dict]:
        return [b for m in body["messages"] for b in m["buttons"]]

    def press(self, body: dict, title_part: str) -> dict:
        button = next(b for b in self.buttons(body) if title_part in b["title"])
        return self.say(button["payload"])

    def get(self, path: str) -> dict | list:
        return self.api.get(path, headers=self.headers).json()


def joined(body: dict) -> str:
    return "\n".join(m["text"] for m in body["messages"])


OUT_OF_SCOPE = "这个不在我能处理的范围内"  # utter_out_of_scope
_FAQ_CHOICE = re.compile(r'^/ask_question\{"faq_id": "(\d+)"\}$')


@pytest.fixture(scope="module")
def faq(stack) -> dict[str, int]:
    """FAQ key → id, as an editor of the knowledge base sees them (the bot's replies name FAQs by id)."""
    with httpx.Client(base_url=stack.settings.api_url, timeout=60) as client:
        editor = staff_login(client, stack.settings.demo_password, "editor01")
        faqs = client.get("/api/kb/faqs", headers=editor).json()
    return {f["key"]: f["id"] for f in faqs}


def kb_reply(body: dict) -> tuple[str, int | None, list[int]]:
    """The knowledge base's part in the first reply: ("answer", the FAQ's id, []), ("clarify", None, the FAQs
    offered as 您是想问 choices), or (the reply's custom type or "", None, []) when the reply is not the KB's."""
    assert body["messages"], "the merchant must not be left without a reply"
    first = body["messages"][0]
    custom = first.get("custom") or {}
    kind = custom.get("type") or ""
    if kind == "faq_answer":
        return "answer", custom["faq_id"], []
    if kind == "kb_clarify":
        return "clarify", None, [int(m[1]) for b in first["buttons"] if (m := _FAQ_CHOICE.match(b["payload"]))]
    return kind, None, []


def understood(body: dict) -> dict:
    """What the bot made of the message (the custom payload kept for the agent), from the KB's reply."""
    return next((m["custom"]["understood"] for m in body["messages"] if (m.get("custom") or {}).get("understood")), {})


def lists_cases(body: dict) -> bool:
    """The progress flow's or the case list's reply: the merchant's cases as buttons, or the word that there are none."""
    text = joined(body)
    return any(b["payload"].startswith("/check_progress{") for m in body["messages"] for b in m["buttons"]) \
        or "没有进行中的工单或申诉" in text or "您还没有工单或申诉记录" in text


# --------------------------------------------------------------------------- progress lookup


def test_a_number_in_the_message_is_looked_up_at_once(api):
    text = Chat(api).text("帮我查下工单 gd2611180001 到哪一步了")
    assert "GD2611180001" in text and "处理中" in text
    assert "已联系结算银行核查" in text and "预计完成时间" in text


def test_a_question_about_the_case_just_shown_looks_it_up_again(api):
    chat = Chat(api)
    assert "GD2611180001" in chat.text("帮我查下工单 GD2611180001 到哪一步了")
    again = chat.text("这个什么时候能处理完")  # no number: the case just shown
    assert "GD2611180001" in again and "预计完成时间" in again
    fresh = Chat(api).text("这个什么时候能处理完")  # nothing shown in this conversation: not that case
    assert "预计完成时间" not in fresh


@pytest.mark.parametrize("text", ["查一下我的进度", "帮我查一下我的工单进度"])
def test_without_a_number_the_bot_lists_open_cases_and_appeals_as_buttons(api, text):
    chat = Chat(api)
    body = chat.say(text)
    assert kb_reply(body)[0] == "" and "您想查哪一个" in joined(body)  # the flow, not the knowledge base
    titles = [b["title"] for b in chat.buttons(body)]
    assert any(t.startswith("GD2611180001") for t in titles)
    assert any(t.startswith("SS2611160001") for t in titles)
    assert not any("GD2611100002" in t for t in titles)  # resolved cases are not offered
    detail = joined(chat.press(body, "SS2611160001"))
    assert "需补充材料" in detail and "预计审核完成" in detail


def test_a_wrong_number_and_another_merchants_number_get_the_same_polite_answer(api):
    chat = Chat(api)
    missing = chat.text("工单 GD2699999999 的进度")
    theirs = chat.text("工单 GD2611190004 的进度")  # M10002's case
    assert "查不到" in missing
    assert theirs == missing.replace("GD2699999999", "GD2611190004")
    assert "货款" not in theirs  # nothing of the other shop's case leaks


def test_a_number_of_the_wrong_shape_is_named_with_the_format_and_the_open_items(api):
    chat = Chat(api)
    body = chat.say("帮我查下工单 GD12345 的进度")
    text = joined(body)
    assert "没有找到“GD12345”（只有 5 位数字）" in text and "工单号是 GD 加 12 位数字（例如 GD261125004217）" in text
    assert "您想查哪一个" not in text
    titles = [b["title"] for b in chat.buttons(body)]
    assert any(t.startswith("GD2611180001") for t in titles) and any(t.startswith("SS2611160001") for t in titles)
    again = chat.say("GD2611250042171234567890")  # typed again while the lookup waits for a number: once, the same way
    assert joined(again).count("没有找到") == 1 and "“GD2611250042171234567890”（有 22 位数字，太长了）" in joined(again)
    assert "没认出单号" not in joined(again) and chat.buttons(again)
    assert "处理中" in joined(chat.press(again, "GD2611180001"))  # a button still looks the case up
    bare = Chat(api).text("261125004217")
    assert "没有找到“261125004217”（前面少了 GD、SS 或 CF）" in bare


# --------------------------------------------------------------------------- appeals


def test_filing_an_appeal_step_by_step(api):
    chat = Chat(api)
    body = chat.say("我要申诉")
    assert kb_reply(body)[0] == "" and "请选择要申诉的判罚" in joined(body)  # the form's first question, not the KB
    titles = [b["title"] for b in chat.buttons(body)]
    assert any("CF2611200003" in t for t in titles)
    assert not any("CF2611010002" in t for t in titles)  # past its deadline
    assert not any("CF2611150001" in t for t in titles)  # already has an open appeal
    body = chat.press(body, "CF2611200003")
    assert "理由" in joined(body)
    body = chat.press(body, "第三方原因")
    assert "说明" in joined(body)
    body = chat.say("物流单号是快递员录入时写错了一位，快递公司已经出具了更正说明")
    assert "请确认" in joined(body) and "CF2611200003" in joined(body)
    body = chat.press(body, "确认提交")
    reply = body["messages"][0]
    assert "申诉已提交" in reply["text"]
    assert reply["custom"]["type"] == "evidence_upload"
    number = reply["custom"]["appeal_number"]
    appeal = chat.get(f"/api/appeals/{number}")
    assert appeal["penalty_number"] == "CF2611200003" and appeal["reason"] == "third_party"
    assert appeal["status"] == "pending"
    again = chat.say("我还要申诉")
    assert "CF2611200003" not in joined(again)  # now blocked: one open appeal per penalty


def test_an_invalid_answer_is_explained_and_the_merchant_can_stop(api):
    chat = Chat(api, "M10003")
    body = chat.say("这个判罚我不服，我要申诉")
    body = chat.press(body, "CF2611210006")
    body = chat.press(body, "判罚有误")
    short = chat.text("不对")
    assert "太短" in short
    stopped = chat.text("算了，不申诉了")
    assert "没有提交" in stopped
    assert chat.get("/api/appeals") == []
    assert "商家助手" in chat.text("你好")  # the form is really gone


def test_withdrawing_an_appeal_after_confirmation(api):
    chat = Chat(api, "M10001")
    body = chat.say("我要撤回申诉 SS2611160001")
    assert "确定撤回" in joined(body)
    done = chat.press(body, "确定撤回")
    assert "已撤回" in joined(done)
    assert chat.get("/api/appeals/SS2611160001")["status"] == "withdrawn"


# --------------------------------------------------------------------------- handoff


def agent_headers(api) -> dict:
    s = api.stack_settings
    token = api.post("/api/auth/login", json={"username": "agent01", "password": s.demo_password}).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def test_handoff_pauses_the_bot_until_the_agent_hands_back(api):
    chat = Chat(api, "M10002")
    answered = chat.say("保证金怎么退")
    seen = [m["custom"] for m in answered["messages"] if (m.get("custom") or {}).get("understood")]
    assert seen and seen[0]["understood"]["decision"] == "answer" and seen[0]["understood"]["intent"]
    body = chat.say("转人工")
    assert "转接人工客服" in joined(body) and body["mode"] == "waiting_agent"
    assert kb_reply(body)[0] == ""  # handed off, not answered from the knowledge base
    quiet = chat.say("我的货款什么时候解冻？")
    assert quiet["messages"] == [] and quiet["mode"] == "waiting_agent"

    agent = agent_headers(api)
    queue = api.get("/api/staff/conversations", headers=agent).json()
    assert [c["handoff_reason"] for c in queue if c["id"] == chat.id] == ["merchant_asked"]
    assert api.post(f"/api/staff/conversations/{chat.id}/take", headers=agent).status_code == 200
    api.post(f"/api/staff/conversations/{chat.id}/reply", json={"text": "您好，我帮您看一下冻结原因"}, headers=agent)
    history = chat.get(f"/api/conversations/{chat.id}")["messages"]
    assert [m["text"] for m in history if m["sender"] == "agent"] == ["您好，我帮您看一下冻结原因"]
    assert "我的货款什么时候解冻？" in [m["text"] for m in history if m["sender"] == "merchant"]

    assert api.post(f"/api/staff/conversations/{chat.id}/release", headers=agent).status_code == 200
    back = chat.say("你好")
    assert back["mode"] == "bot" and "商家助手" in joined(back)


def test_two_misunderstandings_in_a_row_hand_over_to_a_person(api):
    chat = Chat(api, "M10003")
    first = chat.say("呃呃呃呃 zzzz 那个东西咋整")
    assert first["mode"] == "bot"
    second = chat.say("qwerty 嗯嗯那个啥玩意儿")
    assert second["mode"] == "waiting_agent" and "转接人工客服" in joined(second)
    detail = api.get(f"/api/staff/conversations/{chat.id}", headers=agent_headers(api)).json()
    assert detail["conversation"]["handoff_reason"] == "not_understood"


def test_complaints_go_to_a_person(api):
    body = Chat(api, "M10003").say("你们这什么破平台，垃圾客服，说了半天一点用没有！")
    assert body["mode"] == "waiting_agent" and "抱歉" in joined(body)


# --------------------------------------------------------------------------- free text: a flow or the knowledge base

# held-out merchant questions (benchmarks/data/heldout) that the classifier sends away from the knowledge base:
# before the KB arbitrated they got the out-of-scope reply or the case list
SENT_AWAY = [
    ("顾客想把M码的换成L码的，我这边应该怎么操作", "aftersale-exchange"),  # out_of_scope
    ("想给消费满一百五的顾客送个帆布袋，该怎么配置", "marketing-gift"),  # out_of_scope
    ("我有三百多个ＳＫＵ，有没有导入模板一次性全部上架", "product-bulk-publish"),  # list_my_cases
    ("每周一让系统自己把钱打到卡上，这个功能在哪开", "withdraw-auto"),
    ("以前绑的工行卡不用了，想改成建行的", "withdraw-change-card"),
]


@pytest.mark.parametrize(("text", "gold"), SENT_AWAY, ids=[gold for _, gold in SENT_AWAY])
def test_a_question_the_classifier_sends_away_reaches_the_knowledge_base(api, faq, text, gold):
    chat = Chat(api, "M10001")  # a merchant with open cases: a case list would show them
    body = chat.say(text)
    kind, answered, offered = kb_reply(body)
    assert kind in ("answer", "clarify"), body
    assert faq[gold] == answered or faq[gold] in offered, body
    assert OUT_OF_SCOPE not in joined(body) and not lists_cases(body), body
    if kind == "clarify":  # the right choice answers it
        chosen = chat.say(f'/ask_question{{"faq_id": "{faq[gold]}"}}')
        assert kb_reply(chosen)[:2] == ("answer", faq[gold])


def test_a_how_to_question_about_a_flow_gets_the_faq_with_the_flows_button(api, faq):
    chat = Chat(api, "M10001")
    body = chat.say("申诉进度在哪里看")  # the classifier hears check_progress; the text asks how, not for the lookup
    assert kb_reply(body)[:2] == ("answer", faq["appeal-progress"])
    assert "申诉记录" in joined(body) and not lists_cases(body)
    assert [(b["title"], b["payload"]) for b in chat.buttons(body)] == [("查询进度", "/check_progress")]
    looked_up = chat.press(body, "查询进度")  # the button starts the lookup itself
    assert lists_cases(looked_up) and any(b["title"].startswith("GD2611180001") for b in chat.buttons(looked_up))


def test_when_the_knowledge_base_is_unsure_the_flow_is_one_of_the_choices(api):
    chat = Chat(api, "M10001")
    body = chat.say("工单多久处理完")  # check_progress to the classifier, a question to the knowledge base
    kind, _, offered = kb_reply(body)
    assert kind == "clarify" and offered and not lists_cases(body)
    payloads = [b["payload"] for b in chat.buttons(body)]
    assert "/check_progress" in payloads and payloads[-1] == "/request_human"  # …and 都不是 last
    assert lists_cases(chat.press(body, "查询我的工单和申诉进度"))


def test_a_follow_up_is_read_with_the_faq_just_answered(api, faq):
    chat = Chat(api, "M10001")
    first = chat.say("被判罚了怎么申诉")
    assert kb_reply(first)[:2] == ("answer", faq["appeal-how"])
    follow_up = chat.say("要准备什么材料")
    assert kb_reply(follow_up)[:2] == ("answer", faq["appeal-materials"])
    assert understood(follow_up).get("context_faq") == faq["appeal-how"]
    # the same words with nothing before them: read alone, not answered as the appeal's materials
    alone = Chat(api, "M10001").say("要准备什么材料")
    assert kb_reply(alone)[:2] != ("answer", faq["appeal-materials"])
    assert "context_faq" not in understood(alone)


@pytest.mark.parametrize("text", ["baozhengjin zenme tui", "bzj怎么退"])
def test_a_question_in_pinyin_is_answered(api, faq, text):
    body = Chat(api, "M10002").say(text)
    assert kb_reply(body)[:2] == ("answer", faq["deposit-refund"])
    assert "退还保证金" in joined(body)


def test_off_topic_and_social_messages_keep_their_own_replies(api):
    chat = Chat(api, "M10002")
    off_topic = chat.say("这周末广州降温吗")
    assert OUT_OF_SCOPE in joined(off_topic) and kb_reply(off_topic)[0] == ""
    assert [b["title"] for b in chat.buttons(off_topic)] == ["热门问题", "转人工"]
    greeting = chat.say("你好")
    assert "您好，我是商家助手" in joined(greeting) and kb_reply(greeting)[0] == ""


# --------------------------------------------------------------------------- when a part is down


def test_the_action_server_being_down_gets_an_apology_not_silence(api, stack):
    stack.stop_service("actions")
    try:
        body = Chat(api, "M10002").say("保证金怎么退")
        assert body["messages"], "the merchant must not be left without a reply"
        assert "抱歉" in joined(body)
        assert any(b["title"] == "转人工" for m in body["messages"] for b in m["buttons"])
    finally:
        stack.start_service("actions")
    assert "退还保证金" in Chat(api, "M10002").text("保证金怎么退")


def test_a_caller_of_rasas_webhook_cannot_act_for_another_merchant(api):
    """Rasa's REST channel takes no token: whoever reaches it on this host can write any metadata. The action
    server acts only for the merchant the API signed for, so a forged id reads nothing and queues nothing."""
    s = api.stack_settings
    forged = {"merchant_id": "M10002", "conversation_id": 1}

    def say(text: str) -> str:
        resp = httpx.post(f"{s.rasa_url}/webhooks/rest/webhook", timeout=60,
                          json={"sender": "intruder", "message": text, "metadata": forged})
        assert resp.status_code == 200
        return " ".join(m.get("text") or "" for m in resp.json())

    for text in ("查一下我的工单进度", "工单 GD2611190004 的进度"):
        said = say(text)
        assert "GD2611190004" not in said and "冻结" not in said, said
    assert "正在为您转接" not in say("转人工")


def test_rasas_token_guards_its_api_and_is_on_no_command_line(api, stack):
    s = api.stack_settings
    assert httpx.get(f"{s.rasa_url}/status", timeout=30).status_code == 401
    assert httpx.get(f"{s.rasa_url}/status", params={"token": s.rasa_token}, timeout=30).status_code == 200
    for name, pid in stack.pids().items():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert s.rasa_token not in cmdline, name
