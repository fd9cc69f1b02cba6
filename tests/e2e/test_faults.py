"""Faults in the real stack: the action server and then Rasa going down in the middle of a conversation.

The merchant is never left without an answer, asking for a person works without the bot, and once both are
back the same conversation carries on; its history holds every message once, in order, each with its reply.
The services stopped here are started again whatever happens (other tests share the stack).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import text
from websockets.sync.client import connect

from api.db import make_engine

from ..conftest import merchant_headers, staff_login
from .test_bot_flows import Chat, joined

pytestmark = pytest.mark.e2e

HUMAN = {"text": "转人工", "payload": "/request_human"}  # what the widget's 转人工 button sends
RESTART_TIMEOUT_S = 300   # a loaded 2-core machine: Rasa loads its model again
WAIT_S = 90


def own_merchant(api) -> str:
    """A merchant of this test alone: its conversations go to the agents' queue, which other tests read."""
    code = f"M8{uuid.uuid4().hex[:6]}"
    engine = make_engine(api.stack_settings.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO merchants (code, name, main_category, created_at) "
                          "VALUES (:code, :name, '数码', CURRENT_TIMESTAMP)"), {"code": code, "name": f"故障测试店{code}"})
    engine.dispose()
    return code


def staff_headers(api, username: str = "admin") -> dict:
    return staff_login(api, api.stack_settings.demo_password, username)


def say_over_socket(api, code: str, conversation_id: int, said: str) -> tuple[dict, list[dict]]:
    """What the widget does: join the conversation on its WebSocket, send a message, collect what answers it."""
    token = merchant_headers(api.stack_settings, code)["Authorization"].removeprefix("Bearer ")
    url = api.stack_settings.api_url.replace("http", "ws", 1)
    client_id, mine, replies = uuid.uuid4().hex, None, []
    with connect(f"{url}/ws/chat?token={token}", open_timeout=30) as ws:
        ws.send(json.dumps({"type": "hello", "conversation_id": conversation_id, "after_id": 0}))
        ws.send(json.dumps({"type": "message", "text": said, "client_id": client_id}))
        deadline = time.monotonic() + WAIT_S
        while not replies and time.monotonic() < deadline:
            try:
                event = json.loads(ws.recv(timeout=5))
            except TimeoutError:
                continue
            assert event["type"] != "error", event
            msg = event.get("message") or {}
            if event["type"] == "message" and msg.get("client_id") == client_id:
                mine = msg
            elif event["type"] == "message" and mine and (msg.get("payload") or {}).get("reply_to") == mine["id"]:
                replies.append(msg)
    assert mine is not None and replies, "the widget's message must be stored and answered"
    return mine, replies


def bring_back(stack, names: list[str]) -> None:
    """Start again what was stopped (each one even if another fails to start)."""
    failures = []
    for name in names:
        try:
            stack.start_service(name, timeout=RESTART_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 (the others must still be started; the first failure is raised)
            failures.append(exc)
    if failures:
        raise failures[0]


def has_human_button(body: dict) -> bool:
    return any(b["title"] == "转人工" and b["payload"] == "/request_human" for m in body["messages"] for b in m["buttons"])


def test_a_conversation_outlives_the_action_server_and_rasa_going_down_and_coming_back(api, stack):
    code = own_merchant(api)
    chat, other = Chat(api, code), Chat(api, code)
    said = ["保证金怎么退"]
    first = chat.say(said[-1])
    assert "退还保证金" in joined(first) and first["mode"] == "bot"
    replies = [m["id"] for m in first["messages"]]
    admin = staff_headers(api)

    stopped: list[str] = []
    try:
        stack.stop_service("actions")
        stopped.insert(0, "actions")
        said.append("提现一般多久到账")
        apology = chat.say(said[-1])
        assert "抱歉" in joined(apology) and has_human_button(apology) and apology["mode"] == "bot"
        replies += [m["id"] for m in apology["messages"]]

        # 转人工 while the action server (which runs the handoff) is down: the gateway queues it itself
        asked = other.say("发票怎么开")
        assert has_human_button(asked)
        queued = api.post("/api/chat", json={**HUMAN, "conversation_id": other.id}, headers=other.headers)
        assert queued.status_code == 200, queued.text
        assert queued.json()["mode"] in ("waiting_agent", "agent") and "人工客服" in joined(queued.json())

        stack.stop_service("rasa")
        stopped.insert(0, "rasa")
        said.append("我的货款被冻结了")  # over the widget's socket: a system message answers, not an error
        mine, answer = say_over_socket(api, code, chat.id, said[-1])
        assert mine["text"] == said[-1] and "暂时无法回复" in answer[0]["text"] and "转人工" in answer[0]["text"]
        replies += [m["id"] for m in answer]
        said.append("还在吗")  # over REST: the documented 503 with the reason and when to try again
        down = api.post("/api/chat", json={"text": said[-1], "conversation_id": chat.id}, headers=chat.headers)
        assert down.status_code == 503 and down.headers["Retry-After"].isdigit()
        assert "暂时无法回复" in down.json()["detail"] and "转人工" in down.json()["detail"]

        said.append(HUMAN["text"])  # the 转人工 button with Rasa down still reaches the agents
        handed = api.post("/api/chat", json={**HUMAN, "conversation_id": chat.id}, headers=chat.headers)
        assert handed.status_code == 200, handed.text
        assert handed.json()["mode"] in ("waiting_agent", "agent") and "人工客服" in joined(handed.json())
        replies += [m["id"] for m in handed.json()["messages"]]
        for conv in (chat, other):
            seen = api.get(f"/api/staff/conversations/{conv.id}", headers=admin).json()["conversation"]
            assert seen["handoff_reason"] == "merchant_asked" and seen["mode"] in ("waiting_agent", "agent")
    finally:
        bring_back(stack, stopped)

    for conv in (other, chat):  # an agent hands both back to the bot (which needs Rasa again)
        released = api.post(f"/api/staff/conversations/{conv.id}/release", headers=admin)
        assert released.status_code == 200, released.text
    said.append("保证金怎么退")
    back = chat.say(said[-1])
    assert back["mode"] == "bot" and "退还保证金" in joined(back)
    replies += [m["id"] for m in back["messages"]]

    history = chat.get(f"/api/conversations/{chat.id}")["messages"]
    merchant = [m for m in history if m["sender"] == "merchant"]
    assert [m["text"] for m in merchant] == said  # each once, in order
    ids = [m["id"] for m in history]
    assert ids == sorted(ids) and set(replies) <= set(ids)
    for m in merchant:
        answers = [r for r in history if (r["payload"] or {}).get("reply_to") == m["id"]]
        assert answers and all(r["id"] > m["id"] for r in answers), f"no reply to {m['text']}"
