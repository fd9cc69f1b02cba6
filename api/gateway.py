"""The chat gateway: every merchant message is stored, then routed by the conversation's mode.

Used by the REST route, the widget's WebSocket and the rasa-webchat Socket.IO channel alike. Every stored
message is also pushed to the conversation's channel on the hub, so other tabs and the agents see it live.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import crud, labels, presenters
from .hub import Hub
from .models import Conversation, ConversationMode, Merchant, Message, Notification, Sender
from .rasa_client import RasaClient, RasaUnavailableError

NO_REPLY = "抱歉，我暂时没能处理您的消息，请稍后再试；着急的话可以点「转人工」。"
BOT_DOWN = "抱歉，智能助手暂时无法回复，您的消息已保存。请稍后再试，或点击「转人工」联系客服。"
MAX_PAYLOAD_CHARS = 500
MAX_CLIENT_ID_CHARS = 64


class GatewayError(Exception):
    """Input the gateway refuses: ``status`` is the HTTP status a client gets, ``detail`` the Chinese reason."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class Turn:
    conversation: Conversation
    merchant_message: Message
    replies: list[Message] = field(default_factory=list)
    duplicate: bool = False     # the same client_id was stored before: nothing new was done
    bot_down: bool = False


def clean_text(text: str, limit: int) -> str:
    """Strip the text and refuse what a person could not have meant to send."""
    if not isinstance(text, str) or "\x00" in text:
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
            or "\x00" in payload:
        raise GatewayError(422, "按钮内容无效")
    return payload


def clean_client_id(client_id: str | None) -> str | None:
    if client_id is None or client_id == "":
        return None
    if not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID_CHARS or not client_id.isprintable():
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


def reply_payload(reply: dict) -> dict:
    buttons = [{"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))} for b in reply["buttons"]]
    return {"buttons": buttons, "custom": reply["custom"]}


# --------------------------------------------------------------------------- events on the hub


def message_event(msg: Message) -> dict:
    return {"type": "message", "conversation_id": msg.conversation_id,
            "message": presenters.message(msg).model_dump(mode="json")}


def notification_event(note: Notification) -> dict:
    return {"type": "notification", "notification": presenters.notification(note).model_dump(mode="json")}


def mode_event(conv: Conversation) -> dict:
    return {"type": "mode", "conversation_id": conv.id, "mode": conv.mode.value,
            "mode_label": labels.CONVERSATION_MODE[conv.mode]}


def typing_event(conversation_id: int, who: str, typing: bool = True) -> dict:
    return {"type": "typing", "conversation_id": conversation_id, "who": who, "typing": typing}


def conv_channel(conversation_id: int) -> str:
    return f"conv:{conversation_id}"


def merchant_channel(merchant_id: int) -> str:
    return f"merchant:{merchant_id}"


AGENTS_CHANNEL = "agents"


class Gateway:
    def __init__(self, rasa: RasaClient, hub: Hub, max_chars: int):
        self.rasa, self.hub, self.max_chars = rasa, hub, max_chars

    def push_messages(self, msgs: list[Message]) -> None:
        for msg in msgs:
            self.hub.publish(conv_channel(msg.conversation_id), message_event(msg))

    def push_mode(self, conv: Conversation) -> None:
        event = mode_event(conv)
        self.hub.publish(conv_channel(conv.id), event)
        self.hub.publish(AGENTS_CHANNEL, event)

    def conversation_for(self, db: Session, merchant: Merchant, conversation_id: int | None,
                         channel_session: str | None = None) -> Conversation:
        """The conversation a message belongs to; a closed one gives way to a new conversation."""
        conv = None
        if conversation_id is not None:
            conv = crud.get_conversation(db, merchant, conversation_id)
            if conv is None:
                raise GatewayError(404, "会话不存在")
        elif channel_session:
            conv = db.scalar(select(Conversation).where(Conversation.merchant_id == merchant.id,
                                                        Conversation.channel_session == channel_session)
                             .order_by(Conversation.id.desc()).limit(1))
        if conv is None or conv.mode == ConversationMode.closed:
            if channel_session or conversation_id is not None:
                conv = Conversation(merchant_id=merchant.id, mode=ConversationMode.bot,
                                    channel_session=channel_session)
                db.add(conv)
                db.flush()
            else:
                conv = crud.open_conversation(db, merchant)
        return conv

    async def merchant_says(self, db: Session, merchant: Merchant, conv: Conversation, text: str,
                            payload: str | None = None, client_id: str | None = None) -> Turn:
        """Store the merchant's message, then let the bot answer it, or leave it for the agent."""
        text = clean_text(text, self.max_chars)
        payload, client_id = clean_payload(payload), clean_client_id(client_id)
        if client_id is not None:
            earlier = db.scalar(select(Message).where(Message.conversation_id == conv.id,
                                                      Message.client_id == client_id))
            if earlier is not None:
                return Turn(conv, earlier, duplicate=True)
        said = crud.add_message(db, conv, Sender.merchant, text, {"payload": payload} if payload else None)
        said.client_id = client_id
        db.commit()  # the merchant's message is kept whatever happens next
        self.push_messages([said])
        turn = Turn(conv, said)
        if conv.mode != ConversationMode.bot:  # a person owns the conversation: the message waits for them
            self.hub.publish(AGENTS_CHANNEL, message_event(said))
            return turn

        channel = conv_channel(conv.id)
        self.hub.publish(channel, typing_event(conv.id, "bot"))
        mode_before = conv.mode
        metadata = {"merchant_id": merchant.code, "conversation_id": conv.id}
        try:
            raw = await self.rasa.send(f"conv-{conv.id}", payload or text, metadata)
        except RasaUnavailableError:
            turn.replies = [crud.add_message(db, conv, Sender.system, BOT_DOWN)]
            turn.bot_down = True
            db.commit()
            self.push_messages(turn.replies)
            return turn
        finally:
            self.hub.publish(channel, typing_event(conv.id, "bot", typing=False))
        db.refresh(conv)  # an action (handoff) may have changed the mode meanwhile
        replies = fold_custom(raw)
        if not replies and conv.mode == ConversationMode.bot:  # e.g. the action server is down: never silence
            replies = [{"text": NO_REPLY, "buttons": [{"title": "转人工", "payload": "/request_human"}],
                        "custom": None}]
        turn.replies = [crud.add_message(db, conv, Sender.bot, r["text"], reply_payload(r)) for r in replies]
        db.commit()
        self.push_messages(turn.replies)
        if conv.mode != mode_before:
            self.push_mode(conv)
        return turn
