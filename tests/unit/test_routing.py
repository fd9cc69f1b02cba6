"""Which way free text goes (actions/routing.py): a flow only when the classifier is confident and the message
asks for the action; a question that merely mentions a flow's words is a question for the knowledge base."""

from __future__ import annotations

import pytest

from actions.routing import FLOW_BUTTONS, FLOW_CONFIDENCE, asks_for, goes_to_flow, is_payload, is_social


@pytest.mark.parametrize("intent, text", [
    ("check_progress", "帮我查一下我的申诉进度"),
    ("check_progress", "审核怎么样了"),
    ("file_appeal", "我要申诉"),
    ("withdraw_appeal", "撤回申诉"),
    ("add_evidence", "补充申诉材料"),
    ("list_my_cases", "查看我的工单"),
    ("hot_questions", "常见问题"),
    ("complain", "什么破平台气死我了"),   # anger, though it holds 什么
    ("complain", "垃圾平台怎么这么差"),   # and 怎么
    ("withdraw_appeal", "能不能帮我把申诉撤了"),  # "can you … for me": a polite request
    ("check_progress", "能帮我查下进度吗"),
])
def test_a_request_asks_for_the_action(intent, text):
    assert asks_for(intent, text)
    assert goes_to_flow(intent, 0.95, text)


@pytest.mark.parametrize("intent, text", [
    ("check_progress", "申诉进度在哪里看"),
    ("check_progress", "工单进度怎么查"),
    ("file_appeal", "怎么申诉"),
    ("file_appeal", "申诉被驳回了还能再申诉吗"),
    ("file_appeal", "我要申诉怎么操作"),        # a request word, but a how-to question
    ("withdraw_appeal", "申诉提交后可以撤回吗"),
    ("withdraw_appeal", "怎么撤回申诉"),
    ("add_evidence", "补充材料需要什么格式"),
    ("list_my_cases", "工单是什么"),
    ("complain", "买家辱骂客服怎么办"),         # a question about a buyer, not anger at us
    ("check_progress", "介入的那单到现在还没结论，去哪看处理到哪了"),  # where to look: a how-to
    ("file_appeal", "可以申诉吗"),              # "can I …?" without "for me"
])
def test_a_how_to_question_about_the_action_does_not_ask_for_it(intent, text):
    assert not asks_for(intent, text)
    assert not goes_to_flow(intent, 0.99, text)


def test_asking_what_others_ask_is_a_hot_questions_request():
    assert asks_for("hot_questions", "大家一般都问些什么")


@pytest.mark.parametrize("intent, payload", [
    ("file_appeal", "/file_appeal"), ("check_progress", "/check_progress"), ("withdraw_appeal", "/withdraw_appeal"),
    ("hot_questions", "/hot_questions"), ("complain", "/request_human"),
])
def test_a_button_payload_always_asks(intent, payload):
    assert is_payload(payload)
    assert asks_for(intent, payload) and goes_to_flow(intent, 0.9, payload)


def test_a_full_width_slash_is_a_payload_and_a_slash_inside_text_is_not():
    assert is_payload(" ／file_appeal")  # NFKC
    assert not is_payload("保证金/押金怎么退")


@pytest.mark.parametrize("intent", ["check_progress", "inform"])
@pytest.mark.parametrize("text", ["GD2611180001", "查一下ＧＤ２６１１１８０００１", "SS2611160001 怎么样了",
                                  "GD12345", "SS-12", "工单号是 2611"])
def test_a_number_well_formed_or_not_asks_for_the_lookup(intent, text):
    assert asks_for(intent, text) and goes_to_flow(intent, 0.9, text)


@pytest.mark.parametrize("text", ["保证金交了2000元", "3月15号发的货"])
def test_an_amount_or_a_date_is_not_a_number_to_look_up(text):
    assert not asks_for("inform", text)


@pytest.mark.parametrize("intent, text", [
    ("check_progress", "帮我查一下我的申诉进度"), ("file_appeal", "我要申诉"), ("file_appeal", "/file_appeal"),
    ("inform", "GD2611180001"), ("complain", "什么破平台气死我了"),
])
def test_below_the_confidence_floor_nothing_goes_to_a_flow(intent, text):
    assert goes_to_flow(intent, FLOW_CONFIDENCE, text)
    assert not goes_to_flow(intent, FLOW_CONFIDENCE - 0.01, text)
    assert not goes_to_flow(intent, 0.0, text)


def test_only_the_flow_intents_go_to_a_flow():
    assert not goes_to_flow("ask_question", 0.99, "/file_appeal")
    assert not goes_to_flow("request_human", 0.99, "转人工")
    assert "request_human" not in FLOW_BUTTONS and "check_progress" in FLOW_BUTTONS


@pytest.mark.parametrize("intent, text", [
    ("greet", "你好"), ("greet", "您好呀！"), ("greet", "hello"), ("thanks", "谢谢"), ("thanks", "谢谢啦～"),
    ("goodbye", "拜拜"), ("bot_challenge", "你是机器人吗"),
])
def test_a_plain_social_message_is_social(intent, text):
    assert is_social(intent, text)


@pytest.mark.parametrize("intent, text", [
    ("thanks", "谢谢你，那请问保证金怎么退呢"),  # a question behind the thank-you
    ("greet", "你好，我想问下提现"),
    ("greet", "bzjzenmetui"),                  # pinyin the classifier took for a greeting
    ("out_of_scope", "你好"),                  # no reply of its own to give at once
    ("thanks", "ok"),
])
def test_a_question_or_another_intent_is_not_social(intent, text):
    assert not is_social(intent, text)


def test_a_short_question_after_a_thank_you_is_not_social():
    assert not is_social("thanks", "谢谢，那保证金怎么退呢")
