"""rasa-webchat's Socket.IO protocol, so a site already using that widget can point it here unchanged.

Path ``/socket.io``; ``session_request {session_id}`` → ``session_confirm``; ``user_uttered {message,
customData, session_id}``; replies as ``bot_uttered {text, quick_replies}``. The merchant is the one named by
the signed token in ``customData.token``; each webchat session is a conversation of its own, and agent
messages reach the widget the same way as the bot's.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

import socketio
from fastapi import FastAPI, HTTPException
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from .deps import merchant_for_token
from .gateway import GatewayError, conv_channel
from .hub import Subscription
from .models import Message, Sender
from .services import faqs as faq_service
from .text_guard import encodable

log = logging.getLogger(__name__)
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
INIT_PAYLOADS = {"/get_started", "/greet"}
WELCOME = "您好，我是商家助手，可以直接输入问题，也可以点下面的热点问题。"
BAD_MESSAGE = "消息格式不正确：请发送文字消息"
BAD_TOKEN = "身份验证失败，请刷新商家后台页面后重试。"


def to_bot_uttered(message: dict) -> dict | None:
    """A stored message as rasa-webchat shows it; the merchant's own messages are not echoed."""
    sender, text = message["sender"], message["text"]
    if sender == Sender.merchant.value or not text:
        return None
    if sender == Sender.agent.value:
        name = (message.get("payload") or {}).get("agent_name", "")
        text = f"【人工客服 {name}】{text}" if name else f"【人工客服】{text}"
    out: dict = {"text": text.replace("\n", "  \n")}  # webchat renders markdown: keep the line breaks
    buttons = (message.get("payload") or {}).get("buttons") or []
    if buttons:
        out["quick_replies"] = [{"content_type": "text", "title": b["title"], "payload": b["payload"]}
                                for b in buttons]
    return out


def create_webchat(app: FastAPI) -> socketio.AsyncServer:
    settings = app.state.settings
    origins = "*" if "*" in settings.widget_origins else settings.widget_origins
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=origins, logger=False,
                               engineio_logger=False)
    pumps: dict[str, tuple[Subscription, asyncio.Task]] = {}

    async def pump(sid: str, sub: Subscription) -> None:
        while True:
            event = await sub.get()
            if event.get("type") == "message" and (out := to_bot_uttered(event["message"])):
                await sio.emit("bot_uttered", out, to=sid)

    def follow(sid: str, conversation_id: int) -> None:
        """Forward the conversation's bot, agent and system messages to this socket."""
        current = pumps.get(sid)
        if current and conv_channel(conversation_id) in current[0].channels:
            return
        stop(sid)
        sub = app.state.hub.subscribe(conv_channel(conversation_id))
        pumps[sid] = (sub, asyncio.create_task(pump(sid, sub)))

    def stop(sid: str) -> None:
        if sid in pumps:
            sub, task = pumps.pop(sid)
            sub.close()
            task.cancel()

    @sio.event
    async def connect(sid, environ, auth=None):
        return True

    @sio.event
    async def disconnect(sid, *args):
        stop(sid)

    @sio.on("session_request")
    async def session_request(sid, data):
        session_id = data.get("session_id") if isinstance(data, dict) else None
        if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
            session_id = uuid.uuid4().hex
        await sio.save_session(sid, {"session_id": session_id})
        await sio.emit("session_confirm", session_id, to=sid)

    @sio.on("user_uttered")
    async def user_uttered(sid, data):
        text = data.get("message") if isinstance(data, dict) else None
        if not isinstance(text, str) or not encodable(text):  # a dict, a list, a number, broken text: say so
            await sio.emit("bot_uttered", {"text": BAD_MESSAGE}, to=sid)
            return
        custom = data.get("customData") if isinstance(data.get("customData"), dict) else {}
        session_id = (await sio.get_session(sid)).get("session_id") or data.get("session_id")
        if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
            session_id = uuid.uuid4().hex
            await sio.save_session(sid, {"session_id": session_id})
        token = str(custom.get("token") or "")
        try:
            merchant_id, hot, conversation_id, title = await run_in_threadpool(_prepare, app, token, session_id,
                                                                                text)
        except HTTPException:
            await sio.emit("bot_uttered", {"text": BAD_TOKEN}, to=sid)
            return
        except GatewayError as exc:
            await sio.emit("bot_uttered", {"text": exc.detail}, to=sid)
            return
        if hot is not None:
            await sio.emit("bot_uttered", {"text": WELCOME, "quick_replies": [
                {"content_type": "text", "title": q, "payload": q} for q in hot[:6]]}, to=sid)
            return
        follow(sid, conversation_id)
        gateway = app.state.gateway
        try:
            if title is None:
                await gateway.merchant_says(merchant_id, text, channel_session=session_id)
            else:  # history shows what was clicked; the bot gets the payload
                await gateway.merchant_says(merchant_id, title, payload=text, channel_session=session_id)
        except GatewayError as exc:
            await sio.emit("bot_uttered", {"text": exc.detail}, to=sid)

    return sio


def _prepare(app: FastAPI, token: str, session_id: str, text) -> tuple[int, list[str] | None, int, str | None]:
    """(threadpool) The merchant, the hot questions for a greeting, else the session's conversation (opened now,
    so this socket follows it before the turn) and the title of a clicked quick reply."""
    with app.state.sessions() as db:
        merchant = merchant_for_token(db, app.state.settings, token)
        if text in INIT_PAYLOADS:
            return merchant.id, [f.question for f in faq_service.hot_questions(db)], 0, None
        conv = app.state.gateway.conversation_for(db, merchant, None, channel_session=session_id)
        db.commit()
        return merchant.id, None, conv.id, _button_title(db, conv.id, text)


def _button_title(db, conversation_id: int, text) -> str | None:
    """A quick reply arrives as its payload: find the title the merchant clicked, for the history."""
    if not isinstance(text, str) or not text.startswith("/"):
        return None
    last = db.scalar(select(Message).where(Message.conversation_id == conversation_id, Message.sender == Sender.bot)
                     .order_by(Message.id.desc()).limit(1))
    for b in ((last.payload or {}).get("buttons") or []) if last else []:
        if b.get("payload") == text:
            return b.get("title") or None
    return None
