"""The merchant's chat turn over plain HTTP: store the message, ask Rasa, store and return the replies."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from ..deps import GatewayDep, MerchantDep, SessionDep
from ..gateway import GatewayError
from ..schemas import BotMessage, Button, ChatRequest, ChatResponse

router = APIRouter(prefix="/api", tags=["chat"])


@router.post("/chat", response_model=ChatResponse, summary="商家发送一条消息并得到回复")
async def chat(body: ChatRequest, merchant: MerchantDep, db: SessionDep, gateway: GatewayDep) -> ChatResponse:
    """The merchant comes from the signed token (``Authorization: Bearer …``), never from the text.

    ``payload`` is a button's payload (``/intent{…}``): the bot gets it, the history shows ``text``.
    """
    try:
        conv = gateway.conversation_for(db, merchant, body.conversation_id)
        turn = await gateway.merchant_says(db, merchant, conv, body.text, body.payload, body.client_id)
    except GatewayError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from None
    if turn.bot_down:
        raise HTTPException(status_code=503, detail=turn.replies[0].text)
    messages = [BotMessage(id=m.id, text=m.text, custom=(m.payload or {}).get("custom"),
                           buttons=[Button(**b) for b in (m.payload or {}).get("buttons", [])])
                for m in turn.replies]
    return ChatResponse(conversation_id=turn.conversation.id, mode=turn.conversation.mode.value, messages=messages)
