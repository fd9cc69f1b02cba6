"""The merchant's chat turn: store the message, ask Rasa, store and return the replies."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from .. import crud
from ..deps import MerchantDep, RasaDep, SessionDep, SettingsDep
from ..models import ConversationMode, Sender
from ..rasa_client import RasaUnavailableError
from ..schemas import BotMessage, Button, ChatRequest, ChatResponse

router = APIRouter(prefix="/api", tags=["chat"])

NO_REPLY = "抱歉，我暂时没能处理您的消息，请稍后再试；着急的话可以点「转人工」。"
BOT_DOWN = "抱歉，智能助手暂时无法回复，您的消息已保存。请稍后再试，或点击「转人工」联系客服。"


def clean_text(text: str, limit: int) -> str:
    """Strip the text and refuse what a person could not have meant to send."""
    if "\x00" in text:
        raise HTTPException(status_code=422, detail="消息包含无法识别的字符")
    text = "".join(ch for ch in text if ch in "\n\t" or ch >= " ").strip()
    if not text:
        raise HTTPException(status_code=422, detail="消息不能为空")
    if len(text) > limit:
        raise HTTPException(status_code=413, detail=f"消息太长了，请控制在 {limit} 字以内")
    return text


def to_bot_message(raw: dict) -> BotMessage:
    buttons = [Button(title=b.get("title", ""), payload=b.get("payload", "")) for b in raw.get("buttons") or []]
    return BotMessage(text=raw.get("text") or "", buttons=buttons, custom=raw.get("custom"))


def fold_custom(messages: list[BotMessage]) -> list[BotMessage]:
    """Rasa sends an utterance's custom payload as a message of its own: attach it to the text it belongs to."""
    folded: list[BotMessage] = []
    for msg in messages:
        if folded and not msg.text and not msg.buttons and msg.custom and folded[-1].custom is None:
            folded[-1].custom = msg.custom
        else:
            folded.append(msg)
    return folded


@router.post("/chat", response_model=ChatResponse, summary="商家发送一条消息并得到回复")
async def chat(body: ChatRequest, merchant: MerchantDep, db: SessionDep, rasa: RasaDep,
               settings: SettingsDep) -> ChatResponse:
    """The merchant comes from the signed token (``Authorization: Bearer …``), never from the text."""
    text = clean_text(body.text, settings.max_message_chars)
    if body.conversation_id is not None:
        conv = crud.get_conversation(db, merchant, body.conversation_id)
        if conv is None:
            raise HTTPException(status_code=404, detail="会话不存在")
    else:
        conv = crud.open_conversation(db, merchant)
    crud.add_message(db, conv, Sender.merchant, text)
    db.commit()  # the merchant's message is kept whatever happens next

    if conv.mode != ConversationMode.bot:  # a person owns the conversation: the message waits for them
        return ChatResponse(conversation_id=conv.id, mode=conv.mode.value, messages=[])
    metadata = {"merchant_id": merchant.code, "conversation_id": conv.id}
    try:
        raw_replies = await rasa.send(f"conv-{conv.id}", text, metadata)
    except RasaUnavailableError:
        crud.add_message(db, conv, Sender.system, BOT_DOWN)
        db.commit()
        raise HTTPException(status_code=503, detail=BOT_DOWN) from None
    replies = fold_custom([to_bot_message(r) for r in raw_replies])
    db.refresh(conv)  # an action (handoff) may have changed the mode meanwhile
    if not replies and conv.mode == ConversationMode.bot:  # e.g. the action server is down: never silence
        replies = [BotMessage(text=NO_REPLY, buttons=[Button(title="转人工", payload="/request_human")])]
    for reply in replies:
        stored = crud.add_message(db, conv, Sender.bot, reply.text, reply.model_dump(exclude={"sender", "text", "id"}))
        reply.id = stored.id
    db.commit()
    return ChatResponse(conversation_id=conv.id, mode=conv.mode.value, messages=replies)
