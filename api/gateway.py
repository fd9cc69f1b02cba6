"""The chat gateway: every merchant message is stored, then routed by the conversation's mode.

Used by the REST route, the widget's WebSocket and the rasa-webchat Socket.IO channel alike. Every stored
message is also pushed to the conversation's channel on the hub, so other tabs and the agents see it live.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from core import vouch
from core.settings import Settings

from . import crud, labels, presenters
from .hub import Hub
from .models import Conversation, ConversationMode, HandoffReason, Merchant, Message, Notification, Sender
from .rasa_client import RasaClient, RasaUnavailableError
from .rate_limit import RateLimiter
from .services import handover
from .text_guard import encodable

NO_REPLY = "抱歉，我暂时没能处理您的消息，请稍后再试；着急的话可以点「转人工」。"
BOT_DOWN = "抱歉，智能助手暂时无法回复，您的消息已保存。请稍后再试，或点击「转人工」联系客服。"
HUMAN_PAYLOAD = "/request_human"   # the 转人工 button (widget, bot replies): asking for a person never needs the bot
HANDED_OVER = "智能助手暂时无法回复，已为您转接人工客服，请稍候，客服接入后会在这里回复您。您可以先把问题描述一下。"
HANDED_TO_AGENT = "智能助手暂时无法回复，已为您接通人工客服，请直接描述您的问题。"
MAX_PAYLOAD_CHARS = 500
MAX_CLIENT_ID_CHARS = 64


class GatewayError(Exception):
    """Input the gateway refuses: ``status`` is the HTTP status a client gets, ``detail`` the Chinese reason."""

    def __init__(self, status: int, detail: str, retry_after: int | None = None):
        super().__init__(detail)
        self.status, self.detail, self.retry_after = status, detail, retry_after


@dataclass
class Turn:
    conversation: Conversation
    merchant_message: Message
    replies: list[Message] = field(default_factory=list)
    duplicate: bool = False     # the same client_id was stored before: nothing new was done
    bot_down: bool = False
    overloaded: bool = False    # not sent to Rasa: the overload notice was the reply
    merchant_code: str = ""
    started: bool = False       # the conversation asked for had ended: this message started a new one


def clean_text(text: str, limit: int) -> str:
    """Strip the text and refuse what a person could not have meant to send."""
    if not isinstance(text, str) or "\x00" in text or not encodable(text):
        raise GatewayError(422, "消息包含无法识别的字符")
    text = "".join(ch for ch in text if ch in "\n\t" or ch >= " ").strip()
    if not text:
        raise GatewayError(422, "消息不能为空")
    if len(text) > limit:
        raise GatewayError(413, f"消息太长了，请控制在 {limit} 字以内")
    return text


def clean_payload(payload: str | None) -> str | None:
    """A button's payload (``/intent{...}``) goes to Rasa as is; anything else is refused."""
    if payload is None or payload == "":
        return None
    if not isinstance(payload, str) or not payload.startswith("/") or len(payload) > MAX_PAYLOAD_CHARS \
            or "\x00" in payload or not encodable(payload):
        raise GatewayError(422, "按钮内容无效")
    return payload


def clean_client_id(client_id: str | None) -> str | None:
    if client_id is None or client_id == "":
        return None
    if not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID_CHARS or not client_id.isprintable() \
            or not encodable(client_id):
        raise GatewayError(422, "消息编号无效")
    return client_id


def fold_custom(raw: list[dict]) -> list[dict]:
    """Rasa sends an utterance's custom payload as a message of its own: attach it to the text it belongs to."""
    folded: list[dict] = []
    for msg in raw:
        bare_custom = not msg.get("text") and not msg.get("buttons") and msg.get("custom")
        if folded and bare_custom and folded[-1].get("custom") is None:
            folded[-1]["custom"] = msg["custom"]
        else:
            folded.append({"text": msg.get("text") or "", "buttons": msg.get("buttons") or [],
                           "custom": msg.get("custom")})
    return folded


def reply_payload(reply: dict, reply_to: int) -> dict:
    """A bot reply's buttons and custom data, and the merchant message it answers (``reply_to``)."""
    buttons = [{"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))} for b in reply["buttons"]]
    return {"buttons": buttons, "custom": reply["custom"], "reply_to": reply_to}


# --------------------------------------------------------------------------- events on the hub


def message_event(msg: Message) -> dict:
    return {"type": "message", "conversation_id": msg.conversation_id,
            "message": presenters.message(msg).model_dump(mode="json")}


def notification_event(note: Notification) -> dict:
    return {"type": "notification", "notification": presenters.notification(note).model_dump(mode="json")}


def mode_event(conv: Conversation) -> dict:
    return {"type": "mode", "conversation_id": conv.id, "mode": conv.mode.value,
            "mode_label": labels.CONVERSATION_MODE[conv.mode], "assigned_agent_id": conv.assigned_agent_id}


def typing_event(conversation_id: int, who: str, typing: bool = True) -> dict:
    return {"type": "typing", "conversation_id": conversation_id, "who": who, "typing": typing}


def conv_channel(conversation_id: int) -> str:
    return f"conv:{conversation_id}"


def merchant_channel(merchant_id: int) -> str:
    return f"merchant:{merchant_id}"


AGENTS_CHANNEL = "agents"


OVERLOADED = "当前咨询人数较多，请稍候再发送；您的消息已保存，着急的话可以点「转人工」。"


class Gateway:
    """Stores a merchant's message, then lets the bot answer it or leaves it for the agent.

    Never blocks the event loop: every database step runs in the threadpool in a session of its own, and no
    session or connection is held while Rasa is awaited. Turns going to Rasa are admitted by ``Admission``:
    beyond what it can take, the message is still kept and the merchant gets ``OVERLOADED`` at once.
    """

    def __init__(self, rasa: RasaClient, hub: Hub, sessions: sessionmaker[Session], settings: Settings,
                 limiter: RateLimiter | None = None):
        self.rasa, self.hub, self.sessions, self.settings = rasa, hub, sessions, settings
        self.limiter, self.chat_per_minute = limiter or RateLimiter(), settings.chat_per_minute
        self.max_chars = settings.max_message_chars
        self.internal_token = settings.internal_token
        self.admission = Admission(settings.turn_concurrency, settings.turn_queue, settings.turn_queue_timeout_s,
                                   settings.turns_per_conversation)

    def push_messages(self, msgs: list[Message]) -> None:
        for msg in msgs:
            self.hub.publish(conv_channel(msg.conversation_id), message_event(msg))

    def push_handover(self, changes) -> None:
        """Steps between the bot and the agents (``services.handover.Change``): each new message to the merchant's
        widget and to every agent's console, then the conversation's new state."""
        for change in changes:
            self.push_everywhere(change.messages)
            self.push_mode(change.conversation)

    def push_everywhere(self, msgs: list[Message]) -> None:
        """To the merchant's widget and to every agent's console."""
        for msg in msgs:
            event = message_event(msg)
            self.hub.publish(conv_channel(msg.conversation_id), event)
            self.hub.publish(AGENTS_CHANNEL, event)

    def push_mode(self, conv: Conversation) -> None:
        event = mode_event(conv)
        self.hub.publish(conv_channel(conv.id), event)
        self.hub.publish(AGENTS_CHANNEL, event)

    def conversation_for(self, db: Session, merchant: Merchant, conversation_id: int | None,
                         channel_session: str | None = None, missing_ok: bool = False) -> Conversation:
        """The conversation a message belongs to; a closed one gives way to a new conversation.

        ``conversation_id`` names one of the merchant's conversations (404 if it is not theirs, unless
        ``missing_ok``); ``channel_session`` is a rasa-webchat session; neither: the merchant's open one.
        """
        conv = None
        if conversation_id is not None:
            conv = crud.get_conversation(db, merchant, conversation_id)
            if conv is None and not missing_ok:
                raise GatewayError(404, "会话不存在")
        elif channel_session:
            conv = db.scalar(select(Conversation).where(Conversation.merchant_id == merchant.id,
                                                        Conversation.channel_session == channel_session)
                             .order_by(Conversation.id.desc()).limit(1))
        if conv is None or conv.mode == ConversationMode.closed:
            if channel_session or (conversation_id is not None and not missing_ok):
                conv = Conversation(merchant_id=merchant.id, mode=ConversationMode.bot,
                                    channel_session=channel_session)
                db.add(conv)
                db.flush()
            else:
                conv = crud.open_conversation(db, merchant)
        return conv

    async def merchant_says(self, merchant_id: int, text: str, payload: str | None = None,
                            client_id: str | None = None, *, conversation_id: int | None = None,
                            channel_session: str | None = None, missing_ok: bool = False) -> Turn:
        """Store the merchant's message, then let the bot answer it, or leave it for the agent."""
        text = clean_text(text, self.max_chars)
        payload, client_id = clean_payload(payload), clean_client_id(client_id)
        limit = (f"chat:{merchant_id}", self.chat_per_minute, 60)
        wait = await run_in_threadpool(self.limiter.hit, *limit) if self.limiter.remote else self.limiter.hit(*limit)
        if wait:  # refused before anything is stored: the sender knows it was not sent
            raise GatewayError(429, f"发送太频繁了，请 {wait} 秒后再发", retry_after=wait)
        turn = await run_in_threadpool(self._store_said, merchant_id, text, payload, client_id, conversation_id,
                                       channel_session, missing_ok)
        if turn.duplicate:
            return turn
        self.push_messages([turn.merchant_message])
        conv = turn.conversation
        if conv.mode != ConversationMode.bot:  # a person owns the conversation: the message waits for them
            self.hub.publish(AGENTS_CHANNEL, message_event(turn.merchant_message))
            return turn

        channel, asked = conv_channel(conv.id), payload or text
        try:
            async with self.admission.turn(conv.id) as admitted:
                if not admitted:
                    turn.overloaded = True
                    return await self._system_reply(turn, OVERLOADED)
                self.hub.publish(channel, typing_event(conv.id, "bot"))
                try:
                    raw = await self.rasa.send(f"conv-{conv.id}", asked,
                                               vouch.metadata(self.internal_token, turn.merchant_code, conv.id))
                finally:
                    self.hub.publish(channel, typing_event(conv.id, "bot", typing=False))
        except RasaUnavailableError:
            if asked == HUMAN_PAYLOAD:
                return await self._hand_over(turn)
            turn.bot_down = True
            return await self._system_reply(turn, BOT_DOWN)
        if not raw and asked == HUMAN_PAYLOAD:  # Rasa is up but its handoff action could not run
            return await self._hand_over(turn)
        mode_before = conv.mode
        turn.conversation, turn.replies = await run_in_threadpool(self._store_replies, conv.id,
                                                                  turn.merchant_message.id, fold_custom(raw))
        self.push_messages(turn.replies)
        if turn.conversation.mode != mode_before:
            self.push_mode(turn.conversation)
            if not turn.replies:  # another message handed the conversation to a person meanwhile: theirs now
                self.hub.publish(AGENTS_CHANNEL, message_event(turn.merchant_message))
        return turn

    async def _system_reply(self, turn: Turn, text: str) -> Turn:
        turn.replies = await run_in_threadpool(self._store_system, turn.conversation.id, text,
                                               turn.merchant_message.id)
        self.push_messages(turn.replies)
        return turn

    async def _hand_over(self, turn: Turn) -> Turn:
        """The merchant asked for a person but the bot could not take the request (Rasa or the action server
        is down): queue the conversation for the agents here, as the handoff action would have."""
        turn.conversation, turn.replies, changes = await run_in_threadpool(
            self._store_handover, turn.conversation.id, turn.merchant_message.id)
        self.push_handover(changes)
        self.push_everywhere(turn.replies)
        return turn

    # -- database steps (threadpool; each in a session of its own) ---------------------------------------

    def _store_said(self, merchant_id: int, text: str, payload: str | None, client_id: str | None,
                    conversation_id: int | None, channel_session: str | None, missing_ok: bool) -> Turn:
        with self.sessions() as db:
            merchant = db.get(Merchant, merchant_id)
            if merchant is None:
                raise GatewayError(401, "商家不存在")
            conv = self.conversation_for(db, merchant, conversation_id, channel_session, missing_ok)
            started = conv.id != conversation_id and conversation_id is not None
            if client_id is not None:
                earlier = db.scalar(select(Message).where(Message.conversation_id == conv.id,
                                                          Message.client_id == client_id))
                if earlier is not None:
                    db.commit()
                    return Turn(conv, earlier, duplicate=True, merchant_code=merchant.code)
            said = crud.add_message(db, conv, Sender.merchant, text, {"payload": payload} if payload else None)
            said.client_id = client_id
            db.commit()  # the merchant's message is kept whatever happens next
            return Turn(conv, said, merchant_code=merchant.code, started=started)

    def _store_replies(self, conversation_id: int, reply_to: int,
                       replies: list[dict]) -> tuple[Conversation, list[Message]]:
        with self.sessions() as db:
            conv = db.get(Conversation, conversation_id)  # an action (handoff) may have changed the mode meanwhile
            if not replies and conv.mode == ConversationMode.bot:  # e.g. the action server is down: never silence
                replies = [{"text": NO_REPLY, "buttons": [{"title": "转人工", "payload": "/request_human"}],
                            "custom": None}]
            msgs = [crud.add_message(db, conv, Sender.bot, r["text"], reply_payload(r, reply_to)) for r in replies]
            db.commit()
            return conv, msgs

    def _store_handover(self, conversation_id: int,
                        reply_to: int) -> tuple[Conversation, list[Message], list[handover.Change]]:
        with self.sessions() as db:
            conv = db.get(Conversation, conversation_id)
            change = handover.escalate(db, conv, HandoffReason.merchant_asked,
                                       f"已转人工：{labels.HANDOFF_REASON[HandoffReason.merchant_asked]}")
            if change is None:  # a person has it already (or it is waiting for one): nothing to add
                return conv, [], []
            changes = [change, *handover.assign_waiting(db, self.settings)]
            text = HANDED_TO_AGENT if conv.mode == ConversationMode.agent else HANDED_OVER
            reply = crud.add_message(db, conv, Sender.system, text, {"reply_to": reply_to})
            db.commit()
            return conv, [reply], changes

    def _store_system(self, conversation_id: int, text: str, reply_to: int) -> list[Message]:
        with self.sessions() as db:
            conv = db.get(Conversation, conversation_id)
            msg = crud.add_message(db, conv, Sender.system, text, {"reply_to": reply_to})
            db.commit()
            return [msg]


class Admission:
    """How many turns may be with Rasa at once (``concurrency``), how many may wait for a place (``queue``, each
    at most ``timeout`` seconds) and how many of one conversation may be in flight at all (``per_conversation``:
    Rasa answers one conversation's messages one after another, so a flood into one conversation would only queue
    behind itself). A turn that is not admitted is answered at once with the overload notice."""

    def __init__(self, concurrency: int, queue: int, timeout: float, per_conversation: int):
        self.slots = asyncio.Semaphore(concurrency)
        self.queue, self.timeout, self.per_conversation = queue, timeout, per_conversation
        self.waiting = 0
        self.in_flight: dict[int, int] = {}

    @contextlib.asynccontextmanager
    async def turn(self, conversation_id: int):
        mine = self.in_flight.get(conversation_id, 0)
        if mine >= self.per_conversation or (self.slots.locked() and self.waiting >= self.queue):
            yield False
            return
        self.in_flight[conversation_id] = mine + 1
        try:
            self.waiting += 1
            try:
                await asyncio.wait_for(self.slots.acquire(), self.timeout)
            except TimeoutError:
                admitted = False
            else:
                admitted = True
            finally:
                self.waiting -= 1
            try:
                yield admitted
            finally:
                if admitted:
                    self.slots.release()
        finally:
            left = self.in_flight[conversation_id] - 1
            if left:
                self.in_flight[conversation_id] = left
            else:
                del self.in_flight[conversation_id]
