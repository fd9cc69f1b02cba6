"""The widget's WebSocket: messages both ways, typing indicators and server pushes.

Client → server (JSON objects):
  ``{"type": "hello", "conversation_id": 12 | null, "after_id": 340}``  join (or rejoin) a conversation
  ``{"type": "message", "text": "…", "payload": "/intent{…}" | null, "client_id": "…"}``
  ``{"type": "typing"}``, ``{"type": "seen", "ids": [1, 2]}`` (服务进度提醒 read), ``{"type": "ping"}``
Server → client: ``hello``, ``history``, ``message``, ``typing``, ``mode``, ``notification``, ``error``, ``pong``.
The token (signed by the host site) comes in the query string: browsers cannot set headers on a WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from .. import crud, presenters, security
from ..deps import merchant_for_token
from ..gateway import (
    AGENTS_CHANNEL,
    GatewayError,
    conv_channel,
    merchant_channel,
    message_event,
    notification_event,
    typing_event,
)
from ..hub import Subscription
from ..models import Conversation, ConversationMode, Merchant, Message, Role, User
from ..services import notifications
from ..text_guard import BROKEN, encodable

router = APIRouter(tags=["realtime"])
log = logging.getLogger(__name__)
MAX_FRAME_CHARS = 20_000
HISTORY_LIMIT = 500


def _hello_event(conv: Conversation, merchant: Merchant) -> dict:
    return {"type": "hello", "conversation": presenters.conversation(conv).model_dump(mode="json"),
            "merchant": {"code": merchant.code, "name": merchant.name}}


class ChatSocket:
    """One open widget: the merchant it belongs to, the conversation it shows, its inbox on the hub."""

    def __init__(self, websocket: WebSocket, merchant_id: int, sub: Subscription):
        self.ws, self.state = websocket, websocket.app.state
        self.merchant_id, self.sub = merchant_id, sub
        self.conversation_id: int | None = None

    def send(self, event: dict) -> None:
        """Everything goes out through the inbox, so one task writes to the socket, in order."""
        self.sub.queue.put_nowait(event)

    def error(self, status: int, detail: str, **extra) -> None:
        self.send({"type": "error", "status": status, "detail": detail, **extra})

    def _join(self, conv: Conversation) -> None:
        if self.conversation_id is not None:
            self.sub.remove(conv_channel(self.conversation_id))
        self.conversation_id = conv.id
        self.sub.add(conv_channel(conv.id))

    async def hello(self, event: dict) -> None:
        wanted, after_id = event.get("conversation_id"), event.get("after_id") or 0
        if not _id_like(after_id, zero_ok=True) or (wanted is not None and not _id_like(wanted)):
            return self.error(422, "hello 的参数无效")
        conv, merchant, fresh = await run_in_threadpool(self._open, wanted)
        self._join(conv)  # subscribe before reading history: nothing falls in between
        msgs, unread = await run_in_threadpool(self._since, conv.id, 0 if fresh else after_id)
        self.send(_hello_event(conv, merchant))
        self.send({"type": "history", "conversation_id": conv.id,
                   "messages": [presenters.message(m).model_dump(mode="json") for m in msgs]})
        for n in unread:
            self.send(notification_event(n))

    def _open(self, wanted: int | None) -> tuple[Conversation, Merchant, bool]:
        """The conversation asked for, or the merchant's open one (threadpool)."""
        with self.state.sessions() as db:
            merchant = db.get(Merchant, self.merchant_id)
            conv = crud.get_conversation(db, merchant, wanted) if wanted else None
            fresh = conv is None or conv.mode == ConversationMode.closed
            if fresh:
                conv = crud.open_conversation(db, merchant)
            db.commit()
            return conv, merchant, fresh

    def _since(self, conversation_id: int, after_id: int) -> tuple[list[Message], list]:
        with self.state.sessions() as db:
            msgs = list(db.scalars(select(Message).where(Message.conversation_id == conversation_id,
                                                         Message.id > after_id)
                                   .order_by(Message.id).limit(HISTORY_LIMIT)))
            return msgs, list(notifications.unread(db, self.merchant_id))

    async def message(self, event: dict) -> None:
        client_id = event.get("client_id")
        if self.conversation_id is None:
            return self.error(409, "连接尚未就绪，请稍后重试", client_id=client_id)
        try:
            turn = await self.state.gateway.merchant_says(
                self.merchant_id, event.get("text"), event.get("payload"), client_id,
                conversation_id=self.conversation_id, missing_ok=True)
        except GatewayError as exc:
            return self.error(exc.status, exc.detail, client_id=client_id)
        if turn.started:  # the conversation ended (rated) meanwhile: this message started a new one
            self._join(turn.conversation)
            merchant = await run_in_threadpool(self._merchant)
            self.send(_hello_event(turn.conversation, merchant))
            self.send(message_event(turn.merchant_message))  # published before this socket joined
            for reply in turn.replies:
                self.send(message_event(reply))
        if turn.duplicate:  # re-sent after a reconnect: it was stored before; echo it so the widget settles
            self.send(message_event(turn.merchant_message))

    def _merchant(self) -> Merchant:
        with self.state.sessions() as db:
            return db.get(Merchant, self.merchant_id)

    async def typing(self, event: dict) -> None:
        if self.conversation_id is not None:
            signal = typing_event(self.conversation_id, "merchant")
            self.state.hub.publish(conv_channel(self.conversation_id), signal)
            self.state.hub.publish(AGENTS_CHANNEL, signal)

    async def seen(self, event: dict) -> None:
        ids = event.get("ids")
        if not isinstance(ids, list) or not all(_id_like(i) for i in ids) or len(ids) > 200:
            return self.error(422, "提醒编号无效")
        await run_in_threadpool(self._mark_read, ids)

    def _mark_read(self, ids: list[int]) -> None:
        with self.state.sessions() as db:
            notifications.mark_read(db, self.merchant_id, ids)
            db.commit()

    async def ping(self, event: dict) -> None:
        self.send({"type": "pong"})


HANDLERS = {"hello": ChatSocket.hello, "message": ChatSocket.message, "typing": ChatSocket.typing,
            "seen": ChatSocket.seen, "ping": ChatSocket.ping}


MAX_ID = 2**31 - 1  # every id column holds a 32-bit integer on PostgreSQL


def _id_like(value, zero_ok: bool = False) -> bool:
    """An id a database column can hold: an int (not a bool) from 1 (or 0) to ``MAX_ID``."""
    return isinstance(value, int) and not isinstance(value, bool) and (0 if zero_ok else 1) <= value <= MAX_ID


def _parse(frame: str) -> dict | str:
    """The event, or the reason it is refused."""
    if len(frame) > MAX_FRAME_CHARS:
        return "消息太长了"
    try:
        event = json.loads(frame)
    except ValueError:
        return "无法解析的消息"
    if not isinstance(event, dict) or event.get("type") not in HANDLERS:
        return "未知的消息类型"
    if not encodable(event):
        return BROKEN
    return event


async def _write(sock: ChatSocket) -> None:
    while True:
        await sock.ws.send_json(await sock.sub.get())


async def _serve(sock: ChatSocket, on_event) -> None:
    """Read frames until the socket closes; one task writes the inbox out meanwhile."""
    writer = asyncio.create_task(_write(sock))
    try:
        while True:
            frame = await sock.ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            event = _parse(frame.get("text") or "") if frame.get("bytes") is None else "只接受文本消息"
            await on_event(sock, event)
    except WebSocketDisconnect:
        pass
    finally:
        sock.sub.close()
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


async def _merchant_event(sock: ChatSocket, event: dict | str) -> None:
    if isinstance(event, str):
        return sock.error(400, event)
    await HANDLERS[event["type"]](sock, event)


async def _agent_event(sock: ChatSocket, event: dict | str) -> None:
    if isinstance(event, dict) and event["type"] == "ping":
        return sock.send({"type": "pong"})
    sock.error(400, "客服连接只接收推送；回复请用 /api/staff 接口")


@router.websocket("/ws/chat")
async def chat_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    state = websocket.app.state

    def who() -> int:
        with state.sessions() as db:
            return merchant_for_token(db, state.settings, websocket.query_params.get("token", "")).id

    try:
        merchant_id = await run_in_threadpool(who)
    except HTTPException as exc:
        await websocket.send_json({"type": "error", "status": 401, "detail": exc.detail})
        await websocket.close(code=4401)
        return
    await _serve(ChatSocket(websocket, merchant_id, state.hub.subscribe(merchant_channel(merchant_id))),
                 _merchant_event)


@router.websocket("/ws/agent")
async def agent_socket(websocket: WebSocket) -> None:
    """The agents' live feed: queue and mode changes, merchants' messages and typing in conversations a person
    owns. Agents act through the staff REST endpoints; this socket only listens (and answers pings)."""
    await websocket.accept()
    state = websocket.app.state
    reason = ""
    try:
        user_id, _ = security.read_staff_token(websocket.query_params.get("token", ""), state.settings.secret_key)
    except security.TokenError as exc:
        user_id, reason = None, str(exc)

    def allowed_user() -> bool:
        with state.sessions() as db:
            user = db.get(User, user_id) if user_id else None
            return user is not None and user.is_active and user.role in (Role.agent, Role.admin)

    allowed = await run_in_threadpool(allowed_user)
    if not allowed:
        detail = reason if user_id is None else "没有权限执行此操作"
        await websocket.send_json({"type": "error", "status": 401 if user_id is None else 403, "detail": detail})
        await websocket.close(code=4401 if user_id is None else 4403)
        return
    await _serve(ChatSocket(websocket, 0, state.hub.subscribe(AGENTS_CHANNEL)), _agent_event)
