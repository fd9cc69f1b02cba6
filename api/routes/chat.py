"""The merchant's chat turn over plain HTTP: store the message, ask Rasa, store and return the replies."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from ..deps import GatewayDep, MerchantOnlyDep
from ..gateway import GatewayError
from ..schemas import BotMessage, Button, ChatRequest, ChatResponse

router = APIRouter(prefix="/api", tags=["chat"])


@router.post("/chat", response_model=ChatResponse, summary="商家发送一条消息并得到回复")
async def chat(body: ChatRequest, merchant: MerchantOnlyDep, gateway: GatewayDep) -> ChatResponse:
    """The merchant comes from the signed token (``Authorization: Bearer …``), never from the text.

    ``payload`` is a button's payload (``/intent{…}``): the bot gets it, the history shows ``text``.
    When the assistant is busy (or down) the message is kept and the answer is a 503 with the reason and a
    ``Retry-After``; nothing waits longer than the turn queue allows.
    """
    try:
        turn = await gateway.merchant_says(merchant.id, body.text, body.payload, body.client_id,
                                           conversation_id=body.conversation_id)
    except GatewayError as exc:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        raise HTTPException(status_code=exc.status, detail=exc.detail, headers=headers) from None
    if turn.bot_down or turn.overloaded:
        raise HTTPException(status_code=503, detail=turn.replies[0].text,
                            headers={"Retry-After": "5" if turn.overloaded else "30"})
    messages = [BotMessage(id=m.id, text=m.text, custom=(m.payload or {}).get("custom"),
                           buttons=[Button(**b) for b in (m.payload or {}).get("buttons", [])])
                for m in turn.replies]
    return ChatResponse(conversation_id=turn.conversation.id, mode=turn.conversation.mode.value, messages=messages)
