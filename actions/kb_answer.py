"""Answer a business question from the knowledge base: answer, "您是想问…", or no answer.

``action_answer_question`` answers questions (ask_question, nlu_fallback, out_of_scope: an off-topic verdict of
the classifier is checked against the knowledge base, which declines off-topic questions). ``action_route`` runs
first for the flow intents (progress, appeal, handoff…): the flow when the message asks for it, else the
knowledge base decides (``routing``). Both pass the FAQ just answered, so a follow-up such as 「要多久」 is read
with it in mind.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from .api_client import ApiClient, ApiError, ServiceUnavailableError
from .common import HUMAN_BUTTON, SERVICE_DOWN, conversation_id, merchant_id
from .routing import FLOW_BUTTONS, asks_about_shown_case, goes_to_flow, is_social

log = logging.getLogger(__name__)

NO_ANSWER = "抱歉，这个问题我暂时回答不了。您可以换个说法再问一次，比如说清楚是保证金、提现、发票还是申诉方面的问题。"
CLARIFY = "您是想问以下哪个问题？"
LINKED_ACTIONS = {  # an FAQ's linked self-service action → the button that starts it
    "check_progress": {"title": "查询进度", "payload": "/check_progress"},
    "file_appeal": {"title": "我要申诉", "payload": "/file_appeal"},
    "list_my_cases": {"title": "我的工单", "payload": "/list_my_cases"},
    "request_human": HUMAN_BUTTON,
}
MISUNDERSTANDINGS_BEFORE_HANDOFF = 2
# intents with a reply of their own: given at once to a plain greeting, thank-you… (routing.is_social), else
# when the knowledge base declines (a question in pinyin can look like a greeting to the classifier)
OWN_REPLY = {"out_of_scope": "utter_out_of_scope", "chitchat": "utter_chitchat", "greet": "utter_greet",
             "thanks": "utter_thanks", "goodbye": "utter_goodbye", "bot_challenge": "utter_bot_challenge"}


def _faq_entity(tracker: Tracker) -> int | None:
    """A FAQ id chosen from a "您是想问" or hot-question button (``/ask_question{"faq_id": "12"}``)."""
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == "faq_id":
            try:
                return int(str(entity.get("value")).strip())
            except ValueError:
                return None
    return None


def understood(tracker: Tracker, decision: str, hits: list[dict]) -> dict:
    """What the bot made of the message, for the agent who may take the conversation over (the widget does not
    show it): Rasa's intent and confidence, the knowledge base's decision and the FAQs it answered or offered."""
    intent = tracker.latest_message.get("intent") or {}
    return {"intent": intent.get("name"), "confidence": round(float(intent.get("confidence") or 0), 3),
            "decision": decision, "faqs": [{"id": h["faq_id"], "question": h["question"], "score": round(h["score"], 3)}
                                           for h in hits[:3]]}


class ActionAnswerQuestion(Action):
    route_slot = False  # action_route sets the ``route`` slot its rules branch on

    def name(self) -> str:
        return "action_answer_question"

    def __init__(self, api: ApiClient | None = None):
        self.api = api or ApiClient()

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        intent = tracker.latest_message.get("intent") or {}
        name, confidence = intent.get("name") or "", float(intent.get("confidence") or 0)
        text = tracker.latest_message.get("text") or ""
        route = self.route_slot
        if route and goes_to_flow(name, confidence, text):
            return [SlotSet("route", "flow")]
        shown = tracker.get_slot("last_case")
        if route and shown and asks_about_shown_case(name, confidence, text):  # 「这个什么时候能处理完」
            return [SlotSet("route", "flow"), SlotSet("lookup_number", shown)]
        if name in OWN_REPLY and is_social(name, text):
            dispatcher.utter_message(response=OWN_REPLY[name])
            return []
        misunderstood = float(tracker.get_slot("misunderstandings") or 0)
        try:
            chosen = _faq_entity(tracker)
            if chosen is not None:
                faq = await self.api.get_faq(chosen)
                if faq is None:
                    dispatcher.utter_message(text=NO_ANSWER)
                    return self._routed(route, "kb")
                self._answer(dispatcher, faq)
                return [*self._routed(route, "kb"), SlotSet("misunderstandings", 0), SlotSet("last_faq", faq["faq_id"])]
            context = tracker.get_slot("last_faq")
            result = await self.api.search_kb(text, merchant_id(tracker), conversation_id(tracker),
                                              context_faq_id=int(context) if context else None,
                                              log_unanswered=not route)
        except (ServiceUnavailableError, ApiError, KeyError, ValueError) as exc:  # never leave the merchant waiting
            log.warning("knowledge base unavailable: %s", exc)
            if route:  # the flow does not need the knowledge base
                return [SlotSet("route", "flow")]
            dispatcher.utter_message(text=SERVICE_DOWN, buttons=[HUMAN_BUTTON])
            return []

        decision, hits = result["decision"], result["hits"]
        seen = understood(tracker, decision, hits)
        if result.get("context_used"):
            seen["context_faq"] = int(context)
        if decision == "answer":
            self._answer(dispatcher, hits[0], seen)
            return [*self._routed(route, "kb"), SlotSet("misunderstandings", 0), SlotSet("last_faq", hits[0]["faq_id"])]
        if route and decision == "no_answer":  # the classifier's flow, as it said
            return [SlotSet("route", "flow")]
        if name in OWN_REPLY and decision == "no_answer":
            dispatcher.utter_message(response=OWN_REPLY[name])
            return []
        if misunderstood + 1 >= MISUNDERSTANDINGS_BEFORE_HANDOFF:
            return [*self._routed(route, "kb"), SlotSet("misunderstandings", 0), FollowupAction("action_handoff")]
        if decision == "clarify":
            buttons = [{"title": h["question"], "payload": f'/ask_question{{"faq_id": "{h["faq_id"]}"}}'}
                       for h in hits[:3]]
            if route and name in FLOW_BUTTONS and FLOW_BUTTONS[name] != HUMAN_BUTTON:
                buttons.append(FLOW_BUTTONS[name])  # what the classifier heard, as one of the choices
            dispatcher.utter_message(text=CLARIFY, buttons=[*buttons, {"title": "都不是", "payload": "/request_human"}],
                                     json_message={"type": "kb_clarify", "understood": seen})
        else:
            dispatcher.utter_message(text=NO_ANSWER, buttons=[HUMAN_BUTTON],
                                     json_message={"type": "kb_no_answer", "understood": seen})
        return [*self._routed(route, "kb"), SlotSet("misunderstandings", misunderstood + 1)]

    def _routed(self, route: bool, value: str) -> list:
        return [SlotSet("route", value)] if route else []

    @staticmethod
    def _answer(dispatcher: CollectingDispatcher, faq: dict, seen: dict | None = None) -> None:
        buttons = [LINKED_ACTIONS[faq["action"]]] if faq.get("action") in LINKED_ACTIONS else []
        custom = {"type": "faq_answer", "faq_id": faq["faq_id"], "feedback": True}
        if faq.get("answer_html"):  # the widget shows the rendered answer; other clients keep the text
            custom["answer_html"] = faq["answer_html"]
        if seen:
            custom["understood"] = seen
        dispatcher.utter_message(text=faq["answer"], buttons=buttons, json_message=custom)


class ActionRoute(ActionAnswerQuestion):
    """A flow intent's first step: ``route`` = flow (the rules start the flow) or kb (answered here)."""

    route_slot = True

    def name(self) -> str:
        return "action_route"
