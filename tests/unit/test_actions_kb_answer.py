"""action_route and action_answer_question (actions/kb_answer.py), run in-process with a hand-built tracker and a
fake API that records each knowledge-base search and answers with a canned result."""

from __future__ import annotations

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.api_client import ServiceUnavailableError
from actions.kb_answer import CLARIFY, NO_ANSWER, ActionAnswerQuestion, ActionRoute
from actions.routing import FLOW_BUTTONS
from core import vouch
from core.settings import get_settings
from tests.conftest import run_in_new_loop

MERCHANT, CONVERSATION = "M10001", 7


def hit(faq_id: int, question: str, score: float, action: str | None = None) -> dict:
    return {"faq_id": faq_id, "key": f"faq-{faq_id}", "question": question, "answer": f"{question}的答案",
            "category": "测试", "action": action, "score": score, "answer_html": f"<p>{question}的答案</p>"}


APPEAL_PROGRESS = hit(31, "申诉进度在哪里看？", 0.95, action="check_progress")
DEPOSIT_REFUND = hit(12, "保证金怎么退？", 0.97)
CHOICES = [hit(40, "申诉的流程是怎样的？", 0.90), hit(41, "申诉需要准备哪些材料？", 0.89),
           hit(42, "申诉被驳回了还能再申诉吗？", 0.885), hit(43, "申诉有时间限制吗？", 0.88)]


def answer(*hits: dict, context_used: bool = False) -> dict:
    return {"decision": "answer", "hits": list(hits), "context_used": context_used}


def clarify(*hits: dict) -> dict:
    return {"decision": "clarify", "hits": list(hits), "context_used": False}


NO = {"decision": "no_answer", "hits": [], "context_used": False}


class FakeApi:
    """The two knowledge-base calls the actions make; every call recorded."""

    def __init__(self, result: dict | Exception = NO):
        self.result = result
        self.searches: list[dict] = []
        self.faqs: list[int] = []

    async def search_kb(self, text, merchant_id, conversation_id=None, k=5, context_faq_id=None,
                        log_unanswered=True):
        self.searches.append({"text": text, "merchant_id": merchant_id, "conversation_id": conversation_id,
                              "context_faq_id": context_faq_id, "log_unanswered": log_unanswered})
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    async def get_faq(self, faq_id):
        self.faqs.append(faq_id)
        return None


def tracker(text: str, intent: str, confidence: float = 0.95, slots: dict | None = None) -> Tracker:
    metadata = vouch.metadata(get_settings().internal_token, MERCHANT, CONVERSATION)
    message = {"text": text, "intent": {"name": intent, "confidence": confidence}, "entities": [],
               "metadata": metadata}
    return Tracker("test", slots or {}, message, [], False, None, {}, "action_listen")


def run(action, text: str, intent: str, confidence: float = 0.95,
        slots: dict | None = None) -> tuple[list[dict], list[dict]]:
    dispatcher = CollectingDispatcher()
    events = run_in_new_loop(lambda: action.run(dispatcher, tracker(text, intent, confidence, slots), {}))
    return events, dispatcher.messages


def payloads(message: dict) -> list[str]:
    return [b["payload"] for b in message.get("buttons") or []]


# --------------------------------------------------------------------------- action_route


def test_a_confident_request_goes_to_the_flow_without_asking_the_kb():
    api = FakeApi(answer(APPEAL_PROGRESS))
    events, said = run(ActionRoute(api=api), "帮我查一下我的申诉进度", "check_progress", 0.93)
    assert events == [SlotSet("route", "flow")]
    assert said == [] and api.searches == []


def test_an_unconfident_request_is_left_to_the_kb():
    api = FakeApi(answer(APPEAL_PROGRESS))
    events, said = run(ActionRoute(api=api), "帮我查一下我的申诉进度", "check_progress", 0.45)
    assert len(api.searches) == 1 and SlotSet("route", "kb") in events
    assert said[0]["text"] == APPEAL_PROGRESS["answer"]


def test_a_how_to_question_classified_as_a_flow_is_answered_by_the_kb():
    api = FakeApi(answer(APPEAL_PROGRESS))
    events, said = run(ActionRoute(api=api), "申诉进度在哪里看", "check_progress", 0.97)
    [message] = said
    assert message["text"] == APPEAL_PROGRESS["answer"]
    assert message["custom"]["type"] == "faq_answer" and message["custom"]["faq_id"] == 31
    assert message["custom"]["answer_html"] == APPEAL_PROGRESS["answer_html"]
    assert message["custom"]["understood"]["intent"] == "check_progress"
    assert payloads(message) == ["/check_progress"]  # the FAQ's linked action
    assert events == [SlotSet("route", "kb"), SlotSet("misunderstandings", 0), SlotSet("last_faq", 31)]
    [search] = api.searches
    assert search["text"] == "申诉进度在哪里看" and search["merchant_id"] == MERCHANT
    assert search["conversation_id"] == CONVERSATION
    assert search["log_unanswered"] is False  # a decline here starts the flow: not a gap in the KB


def test_a_kb_clarify_offers_the_flow_the_classifier_heard_before_none_of_these():
    api = FakeApi(clarify(*CHOICES))
    events, said = run(ActionRoute(api=api), "怎么申诉", "file_appeal", 0.9)
    [message] = said
    assert message["text"] == CLARIFY
    titles = [b["title"] for b in message["buttons"]]
    assert titles == ["申诉的流程是怎样的？", "申诉需要准备哪些材料？", "申诉被驳回了还能再申诉吗？",
                      FLOW_BUTTONS["file_appeal"]["title"], "都不是"]
    assert payloads(message)[3] == "/file_appeal" and titles[3] == "我要申诉"
    assert payloads(message)[0] == '/ask_question{"faq_id": "40"}'
    assert message["custom"]["type"] == "kb_clarify"
    assert events == [SlotSet("route", "kb"), SlotSet("misunderstandings", 1)]


def test_a_kb_clarify_on_a_complaint_offers_a_human_once():
    api = FakeApi(clarify(*CHOICES[:2]))
    _, [message] = run(ActionRoute(api=api), "买家辱骂客服怎么办", "complain", 0.9)
    assert payloads(message).count("/request_human") == 1 and payloads(message)[-1] == "/request_human"
    assert len(message["buttons"]) == 3


def test_a_kb_decline_leaves_the_message_to_the_flow_in_silence():
    api = FakeApi(NO)
    events, said = run(ActionRoute(api=api), "申诉提交后可以撤回吗", "withdraw_appeal", 0.9)
    assert events == [SlotSet("route", "flow")] and said == []
    assert len(api.searches) == 1


@pytest.mark.parametrize("error", [ServiceUnavailableError("POST /internal/kb/search: HTTP 503"), KeyError("hits")])
def test_an_unavailable_kb_leaves_the_message_to_the_flow(error):
    api = FakeApi(error)
    events, said = run(ActionRoute(api=api), "申诉进度在哪里看", "check_progress", 0.9)
    assert events == [SlotSet("route", "flow")] and said == []
    assert len(api.searches) == 1


# --------------------------------------------------------------------------- action_answer_question


def test_an_out_of_scope_verdict_answered_by_the_kb_gives_the_faq():
    api = FakeApi(answer(DEPOSIT_REFUND))
    events, [message] = run(ActionAnswerQuestion(api=api), "押的钱能拿回来不", "out_of_scope", 0.6)
    assert message["text"] == DEPOSIT_REFUND["answer"] and message["custom"]["faq_id"] == 12
    assert events == [SlotSet("misunderstandings", 0), SlotSet("last_faq", 12)]
    assert api.searches[0]["log_unanswered"] is True  # no route slot from this action


def test_an_out_of_scope_verdict_the_kb_declines_gets_the_out_of_scope_reply():
    api = FakeApi(NO)
    events, said = run(ActionAnswerQuestion(api=api), "红烧肉怎么做", "out_of_scope", 0.9,
                       slots={"misunderstandings": 1})
    assert [m["response"] for m in said] == ["utter_out_of_scope"]
    assert events == []  # not a misunderstanding: no handoff count, however many came before
    assert len(api.searches) == 1


def test_a_greeting_is_greeted_without_asking_the_kb():
    api = FakeApi(answer(DEPOSIT_REFUND))
    events, said = run(ActionAnswerQuestion(api=api), "你好", "greet", 0.99)
    assert [m["response"] for m in said] == ["utter_greet"]
    assert events == [] and api.searches == []


def test_pinyin_taken_for_a_greeting_is_asked_of_the_kb_and_answered():
    api = FakeApi(answer(DEPOSIT_REFUND))
    events, [message] = run(ActionAnswerQuestion(api=api), "bzjzenmetui", "greet", 0.7)
    assert [s["text"] for s in api.searches] == ["bzjzenmetui"]
    assert message["text"] == DEPOSIT_REFUND["answer"] and message.get("response") is None
    assert SlotSet("last_faq", 12) in events


def test_a_greeting_verdict_the_kb_declines_is_greeted():
    api = FakeApi(NO)
    events, said = run(ActionAnswerQuestion(api=api), "你好，我想问下那个", "greet", 0.8)
    assert len(api.searches) == 1 and [m["response"] for m in said] == ["utter_greet"] and events == []


def test_the_faq_just_answered_is_passed_as_context():
    api = FakeApi(answer(hit(13, "保证金退还要多久？", 0.95), context_used=True))
    events, [message] = run(ActionAnswerQuestion(api=api), "要多久", "ask_question", 0.8, slots={"last_faq": 12})
    assert api.searches[0]["context_faq_id"] == 12
    assert message["custom"]["understood"]["context_faq"] == 12
    assert SlotSet("last_faq", 13) in events


def test_the_context_reaches_the_kb_from_action_route_too_and_a_string_slot_is_read_as_a_number():
    api = FakeApi(answer(APPEAL_PROGRESS))
    run(ActionRoute(api=api), "那申诉进度在哪里看", "check_progress", 0.9, slots={"last_faq": "12"})
    assert api.searches[0]["context_faq_id"] == 12


def test_without_an_faq_just_answered_there_is_no_context():
    api = FakeApi(answer(DEPOSIT_REFUND))
    _, [message] = run(ActionAnswerQuestion(api=api), "保证金怎么退", "ask_question", 0.9)
    assert api.searches[0]["context_faq_id"] is None
    assert "context_faq" not in message["custom"]["understood"]


@pytest.mark.parametrize("result", [NO, clarify(*CHOICES)])
def test_the_second_misunderstanding_hands_over_to_a_human(result):
    api = FakeApi(result)
    events, said = run(ActionAnswerQuestion(api=api), "那个东西怎么弄", "ask_question", 0.5,
                       slots={"misunderstandings": 1})
    assert events == [SlotSet("misunderstandings", 0), FollowupAction("action_handoff")]
    assert said == []


def test_the_first_misunderstanding_is_counted_and_says_so():
    api = FakeApi(NO)
    events, [message] = run(ActionAnswerQuestion(api=api), "那个东西怎么弄", "ask_question", 0.5)
    assert events == [SlotSet("misunderstandings", 1)]
    assert message["text"] == NO_ANSWER and payloads(message) == ["/request_human"]
    assert message["custom"]["type"] == "kb_no_answer"


def test_an_unavailable_kb_says_so_and_offers_a_human():
    api = FakeApi(ServiceUnavailableError("down"))
    events, [message] = run(ActionAnswerQuestion(api=api), "保证金怎么退", "ask_question", 0.9)
    assert events == [] and "系统暂时出了点问题" in message["text"] and payloads(message) == ["/request_human"]


# ----------------------------------------------------------------------------------------- the case just shown


def test_a_question_pointing_back_at_the_case_just_shown_looks_that_case_up_again():
    api = FakeApi(answer(APPEAL_PROGRESS))
    events, messages = run(ActionRoute(api), "这个什么时候能处理完", "check_progress",
                           slots={"last_case": "GD2611180001"})
    assert events == [SlotSet("route", "flow"), SlotSet("lookup_number", "GD2611180001")]
    assert messages == [] and api.searches == []


def test_without_a_case_shown_or_with_a_number_of_its_own_the_case_just_shown_is_not_used():
    api = FakeApi(answer(APPEAL_PROGRESS))
    events, _ = run(ActionRoute(api), "这个什么时候能处理完", "check_progress")  # nothing shown yet
    assert SlotSet("lookup_number", "GD2611180001") not in events and api.searches  # the KB was asked
    events, _ = run(ActionRoute(FakeApi()), "那SS2611160001呢", "check_progress", slots={"last_case": "GD2611180001"})
    assert events == [SlotSet("route", "flow")]  # its own number: the form reads it from the message
    events, _ = run(ActionRoute(FakeApi(answer(DEPOSIT_REFUND))), "这个保证金怎么退", "ask_question",
                    slots={"last_case": "GD2611180001"})
    assert SlotSet("lookup_number", "GD2611180001") not in events  # not a progress question
