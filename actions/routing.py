"""Which way free text goes: a flow (progress, appeal, handoff…) or the knowledge base.

Rasa's classifier names an intent; a message goes to that intent's flow only when the classifier is confident
*and* the text asks for the action (``asks_for``), e.g. 「帮我查下GD…到哪了」, 「我要申诉」. Otherwise the
knowledge base's calibrated decision is the arbiter: it answers, offers 您是想问 (with the flow's button among the
choices) or declines, and only a decline leaves the message to the classifier's flow. A question that merely
mentions a flow's words (「申诉进度在哪里看」, 「申诉被驳回了还能再申诉吗」, 「买家辱骂客服怎么办」) is a question.
"""

from __future__ import annotations

import re
import unicodedata

from api import numbers

from .common import HUMAN_BUTTON, numbers_in

FLOW_CONFIDENCE = 0.5  # below this the classifier is not trusted to start a flow whatever the text says

# the flows the arbiter may start, each with the button offered beside 您是想问 when the knowledge base is unsure
FLOW_BUTTONS = {
    "check_progress": {"title": "查询我的工单和申诉进度", "payload": "/check_progress"},
    "list_my_cases": {"title": "查看我的工单和申诉", "payload": "/list_my_cases"},
    "file_appeal": {"title": "我要申诉", "payload": "/file_appeal"},
    "add_evidence": {"title": "补充申诉材料", "payload": "/add_evidence"},
    "withdraw_appeal": {"title": "撤回申诉", "payload": "/withdraw_appeal"},
    "complain": HUMAN_BUTTON,
    "inform": {"title": "查询我的工单和申诉进度", "payload": "/check_progress"},  # a number sent on its own
    "hot_questions": {"title": "看看大家常问的问题", "payload": "/hot_questions"},
}

# a how-to question about the thing, not a request to do it (怎么样 asks for a state: not a how-to)
_HOW_TO = re.compile(r"怎么(?!样)|怎样|如何|在哪|去哪|哪里|哪儿|为什么|为啥|什么|啥|会不会|是否|多久|多长|几天|要不要|需要|"
                     r"有没有|规则|流程|入口|方法|办法")
# "can I …?" is a question, unless it asks someone to do it: 「能不能帮我把申诉撤了」 is a request
_CAN_I = re.compile(r"能不能|能否|可不可以|可以.{0,8}吗|能.{0,8}吗")
_ON_MY_BEHALF = re.compile(r"帮我|给我|替我|麻烦")
_ASKS = {
    "check_progress": re.compile(
        r"(查|看|问)[一下查看]{0,3}.{0,10}(进度|结果|状态|到哪|处理[得的]?怎么样|审核[得的]?怎么样|怎么样了|进展)|"
        r"(进度|结果|进展|状态)(如何|怎么样|呢|出来|到哪)|到哪[一步了里]|怎么样了|处理完了?[没吗]|审[核完]{0,2}了?[没吗]|"
        r"有结果了?[没吗]|还没[有]?(结果|处理|审核|回复|消息)"),
    "list_my_cases": re.compile(r"(我的|查看|看看|看下|看一下|列出|所有|全部)(所有|全部)?的?(工单|申诉|判罚|单子)"),
    "file_appeal": re.compile(r"(我要|我想|我得|想要|帮我|给我|申请|发起|提交|提个|提一个|要|去)(一个|个)?申诉|"
                              r"申诉(一下|这个|这条|那个|那条)|^申诉$"),
    "add_evidence": re.compile(r"(补充|上传|补交|追加|补传|再传|传)(一下|一些|些|几张)?(申诉)?(材料|凭证|证据|图片|截图|照片|视频)"),
    "withdraw_appeal": re.compile(r"撤回|撤销|撤了|撤掉|取消(我的|这个|那个|这条|那条)?申诉|不申诉了"),
    "hot_questions": re.compile(r"热门|常见问题|常问|大家.{0,4}(问|关心)|猜你想问"),
    "complain": re.compile(r"垃圾|什么破|破平台|骗子|坑人|坑爹|气死|投诉你们|投诉平台|举报你们|太差|差劲|无语|恶心|"
                           r"滚|烂透|搞什么|有病|什么玩意|去死|没用的机器人|听不懂人话|人工智障|太慢了|要疯了"),
}


# the short social messages that are what the classifier says they are, whatever the knowledge base would find
_SOCIAL = {
    "greet": re.compile(r"^[\W_]*((你|您)好(呀|啊)?|hi|hello|哈喽|嗨|在吗|在不在|在么|早上好|早安|上午好|中午好|下午好|晚上好|"
                        r"hey|喂|有人吗|小助手|助手)+[\W_]*$", re.IGNORECASE),
    "thanks": re.compile(r"谢谢|多谢|感谢|谢了|thx|thanks|thank you|辛苦", re.IGNORECASE),
    "goodbye": re.compile(r"再见|拜拜|bye|^88$|回头聊|下次再说|先这样|没事了|没别的", re.IGNORECASE),
    "bot_challenge": re.compile(r"机器人|真人|人工智能|(?<![a-z])ai(?![a-z])|是人吗|是不是人", re.IGNORECASE),
}
SOCIAL_CHARS = 12  # longer than this, a thank-you or a greeting carries a question: the knowledge base looks
_FILLER = re.compile(r"[\W_]|好的|好|嗯|哦|噢|啊|呀|啦|了|你|您|们|哈|的|吧|呢|是|吗|么|ok|okay", re.IGNORECASE)


def is_social(intent: str, text: str) -> bool:
    """A greeting, a thank-you, a goodbye or "are you a bot?" and nothing more (「谢谢，那保证金怎么退呢」 is a
    question)."""
    plain = _plain(text)
    pattern = _SOCIAL.get(intent)
    if pattern is None or len(plain) > SOCIAL_CHARS or not pattern.search(plain):
        return False
    return len(_FILLER.sub("", pattern.sub("", plain))) <= 1


# 「这个」「这单」「刚才那个」: the message is about what the conversation just showed
_POINTS_BACK = re.compile(r"这个|这单|那单|那个|这条|那条|它|刚才|刚刚|上面")
PROGRESS_INTENTS = ("check_progress", "inform")


def asks_about_shown_case(intent: str, confidence: float, text: str) -> bool:
    """A progress question about the case or appeal just shown, with no number of its own."""
    plain = _plain(text)
    return (intent in PROGRESS_INTENTS and confidence >= FLOW_CONFIDENCE and not is_payload(plain)
            and not numbers_in(plain) and not numbers.find_malformed(plain) and _POINTS_BACK.search(plain) is not None)


def _plain(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").strip()


def is_payload(text: str) -> bool:
    """A button's payload (``/file_appeal``): the merchant picked the action itself."""
    return _plain(text).startswith("/")


def asks_for(intent: str, text: str) -> bool:
    """Does the message ask for the intent's action (rather than ask about it)?"""
    plain = _plain(text)
    if is_payload(plain):
        return True
    if intent in PROGRESS_INTENTS and (numbers_in(plain) or numbers.find_malformed(plain)):
        return True
    pattern = _ASKS.get(intent)
    if pattern is None or not pattern.search(plain):
        return False
    if intent in ("complain", "hot_questions"):  # anger is anger; "大家都问什么" is asked with 什么
        return True
    if _HOW_TO.search(plain):
        return False
    return not _CAN_I.search(plain) or _ON_MY_BEHALF.search(plain) is not None


def goes_to_flow(intent: str, confidence: float, text: str) -> bool:
    return intent in FLOW_BUTTONS and confidence >= FLOW_CONFIDENCE and asks_for(intent, text)
