"""The widget's real-time channel on its own (Rasa is not running): pushes, history, notifications, bad frames."""

from __future__ import annotations

import asyncio
import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from starlette.websockets import WebSocketDisconnect

from api.hub import Hub
from api.main import create_app
from api.models import Message
from api.webchat import to_bot_uttered
from tests.conftest import run_in_new_loop

from ..conftest import merchant_headers, staff_login


@pytest.fixture
def client(database):
    with TestClient(create_app(database)) as c:
        yield c


def token(settings, code: str = "M10001") -> str:
    return merchant_headers(settings, code)["Authorization"].removeprefix("Bearer ")


def staff(client, settings, username: str = "agent01") -> dict:
    return staff_login(client, settings.demo_password, username)


def receive_until(ws, kind: str, limit: int = 20) -> dict:
    for _ in range(limit):
        event = ws.receive_json()
        if event["type"] == kind:
            return event
    raise AssertionError(f"no {kind} event")


def hello(ws, conversation_id=None, after_id=0) -> tuple[dict, dict]:
    ws.send_json({"type": "hello", "conversation_id": conversation_id, "after_id": after_id})
    return receive_until(ws, "hello"), receive_until(ws, "history")


def count_messages(settings) -> int:
    engine = create_engine(settings.sqlalchemy_url)
    with Session(engine) as db:
        n = db.scalar(select(func.count()).select_from(Message))
    engine.dispose()
    return n


def test_a_bad_token_is_refused_with_a_reason(client):
    with client.websocket_connect("/ws/chat?token=nonsense") as ws:
        event = ws.receive_json()
        assert event["type"] == "error" and event["status"] == 401
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4401


def test_history_on_hello_and_never_another_merchants(client, database):
    client.post("/api/chat", json={"text": "保证金怎么退"}, headers=merchant_headers(database))  # Rasa down: 503
    mine = client.get("/api/conversations", headers=merchant_headers(database)).json()[0]["id"]
    with client.websocket_connect(f"/ws/chat?token={token(database)}") as ws:
        first, history = hello(ws, mine)
        assert first["conversation"]["id"] == mine and first["merchant"]["code"] == "M10001"
        assert [m["sender"] for m in history["messages"]] == ["merchant", "system"]
        _, later = hello(ws, mine, after_id=history["messages"][0]["id"])
        assert [m["sender"] for m in later["messages"]] == ["system"]  # only what came after
    with client.websocket_connect(f"/ws/chat?token={token(database, 'M10002')}") as ws:
        theirs, history = hello(ws, mine)
        assert theirs["conversation"]["id"] != mine and history["messages"] == []


@pytest.mark.pg
def test_handoff_agent_messages_and_a_resent_message_reach_the_widget_once(client, database):
    with client.websocket_connect(f"/ws/chat?token={token(database, 'M10003')}") as ws:
        first, _ = hello(ws)
        conv = first["conversation"]["id"]
        resp = client.post(f"/internal/conversations/{conv}/handoff", json={"reason": "商家要求"},
                           headers={"X-Internal-Token": database.internal_token, "X-Merchant-Id": "M10003"})
        assert resp.status_code == 200
        assert receive_until(ws, "mode")["mode"] == "waiting_agent"
        agent = staff(client, database)
        client.post(f"/api/staff/conversations/{conv}/take", headers=agent)
        assert receive_until(ws, "mode")["mode"] == "agent"
        client.post(f"/api/staff/conversations/{conv}/typing", headers=agent)
        assert receive_until(ws, "typing")["who"] == "agent"
        client.post(f"/api/staff/conversations/{conv}/reply", json={"text": "您好，我来处理"}, headers=agent)
        said = receive_until(ws, "message")["message"]
        while said["sender"] != "agent":
            said = receive_until(ws, "message")["message"]
        assert said["text"] == "您好，我来处理" and said["payload"]["agent_name"] == "客服小林"

        before = count_messages(database)
        for _ in range(2):  # the second is a re-send after a reconnect
            ws.send_json({"type": "message", "text": "好的", "client_id": "c-1"})
            echo = receive_until(ws, "message")["message"]
            assert echo["client_id"] == "c-1" and echo["sender"] == "merchant"
        assert count_messages(database) == before + 1


def test_agents_feed_carries_the_queue_and_merchants_messages_in_their_conversations(client, database):
    agent = staff(client, database)["Authorization"].removeprefix("Bearer ")
    with client.websocket_connect("/ws/agent?token=bad") as ws:
        assert ws.receive_json()["status"] == 401
    with client.websocket_connect(f"/ws/agent?token={agent}") as feed, \
            client.websocket_connect(f"/ws/chat?token={token(database, 'M10002')}") as ws:
        first, _ = hello(ws)
        conv = first["conversation"]["id"]
        client.post(f"/internal/conversations/{conv}/handoff", json={"reason": "商家要求"},
                    headers={"X-Internal-Token": database.internal_token, "X-Merchant-Id": "M10002"})
        queued = receive_until(feed, "mode")
        assert queued == {"type": "mode", "conversation_id": conv, "mode": "waiting_agent", "mode_label": "排队等待人工",
                          "assigned_agent_id": None}
        ws.send_json({"type": "typing"})
        assert receive_until(feed, "typing")["who"] == "merchant"
        ws.send_json({"type": "message", "text": "我的货款什么时候解冻", "client_id": "q1"})
        said = receive_until(feed, "message")
        assert said["conversation_id"] == conv and said["message"]["text"] == "我的货款什么时候解冻"


def test_merchants_cannot_open_the_agents_feed(client, database):
    with client.websocket_connect(f"/ws/agent?token={token(database)}") as ws:
        assert ws.receive_json()["status"] == 401
    editor = staff(client, database, "editor01")["Authorization"].removeprefix("Bearer ")
    with client.websocket_connect(f"/ws/agent?token={editor}") as ws:
        assert ws.receive_json()["status"] == 403


def test_a_status_change_notifies_its_merchant_live_and_is_marked_read(client, database):
    agent = staff(client, database)
    with client.websocket_connect(f"/ws/chat?token={token(database)}") as ws, \
            client.websocket_connect(f"/ws/chat?token={token(database, 'M10002')}") as other:
        hello(ws)
        hello(other)
        resp = client.post("/api/staff/cases/GD2611180001/events", headers=agent,
                           json={"status": "resolved", "note": "银行已退回重汇，款项已到账"})
        assert resp.status_code == 200
        note = receive_until(ws, "notification")["notification"]
        assert note["number"] == "GD2611180001" and "已完成" in note["title"] and "已到账" in note["body"]
        other.send_json({"type": "ping"})
        assert other.receive_json()["type"] == "pong"  # nothing for another merchant came before the pong
        assert [n["id"] for n in client.get("/api/notifications", headers=merchant_headers(database)).json()] \
            == [note["id"]]
        ws.send_json({"type": "seen", "ids": [note["id"]]})
        ws.send_json({"type": "ping"})
        receive_until(ws, "pong")
    assert client.get("/api/notifications", headers=merchant_headers(database)).json() == []


def test_an_unread_notification_shows_on_the_next_open(client, database):
    agent = staff(client, database)
    client.post("/api/staff/appeals/SS2611160001/review", headers=agent,
                json={"status": "rejected", "note": "截图无法证明发货时间"})
    with client.websocket_connect(f"/ws/chat?token={token(database)}") as ws:
        hello(ws)
        note = receive_until(ws, "notification")["notification"]
        assert note["kind"] == "appeal" and note["status"] == "rejected" and "驳回" in note["title"]
    # Another merchant cannot mark it read.
    resp = client.post("/api/notifications/read", json={"ids": [note["id"]]},
                       headers=merchant_headers(database, "M10002"))
    assert resp.json() == {"marked": 0}
    assert len(client.get("/api/notifications", headers=merchant_headers(database)).json()) == 1


@pytest.mark.parametrize(
    ("frame", "phrase"),
    [
        ("{not json", "无法解析"),
        ('{"type": "shout"}', "未知的消息类型"),
        ('["hello"]', "未知的消息类型"),
        ('{"type": "message", "text": "' + "退" * 30000 + '"}', "太长"),
        ('{"type": "hello", "after_id": "abc"}', "参数无效"),
        ('{"type": "seen", "ids": ["x"]}', "编号无效"),
        ('{"type": "seen", "ids": [9223372036854775808]}', "编号无效"),
        ('{"type": "hello", "conversation_id": 9223372036854775808}', "参数无效"),
        ('{"type": "message", "text": "\\ud800 坏字符", "client_id": "s1"}', "无法识别的字符"),
        ('{"type": "message", "text": "好", "payload": {"x": "\\udfff"}}', "无法识别的字符"),
    ],
)
def test_malformed_frames_get_a_reason_and_the_socket_stays_open(client, database, frame, phrase):
    with client.websocket_connect(f"/ws/chat?token={token(database)}") as ws:
        ws.send_text(frame)
        event = ws.receive_json()
        assert event["type"] == "error" and phrase in event["detail"]
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"


def test_bad_messages_are_refused_with_their_client_id_and_nothing_is_stored(client, database):
    with client.websocket_connect(f"/ws/chat?token={token(database)}") as ws:
        ws.send_json({"type": "message", "text": "你好", "client_id": "early"})
        assert receive_until(ws, "error")["status"] == 409  # before hello
        hello(ws)
        for body, status in [({"text": "  "}, 422), ({"text": "退" * 2001}, 413), ({"text": 5}, 422),
                             ({"text": "你好", "payload": "not-a-payload"}, 422),
                             ({"text": "你好", "client_id": "x" * 100}, 422)]:
            ws.send_json({"type": "message", "client_id": "c", **body} if "client_id" not in body
                         else {"type": "message", **body})
            error = receive_until(ws, "error")
            assert error["status"] == status
        ws.send_bytes(b"\x00\x01")
        assert "文本" in receive_until(ws, "error")["detail"]
    assert count_messages(database) == 0


def test_suggestions_come_from_the_knowledge_base(client, database):
    assert client.app.state.kb.wait_ready(300)
    headers = merchant_headers(database)
    found = client.get("/api/suggest", params={"q": "保证金怎么退"}, headers=headers).json()
    assert found and "保证金" in found[0]["question"]
    assert client.get("/api/suggest", params={"q": "保"}, headers=headers).json() == []
    assert client.get("/api/suggest", params={"q": "退" * 201}, headers=headers).status_code == 422
    assert client.get("/api/suggest", params={"q": "保证金"}).status_code == 401


# --------------------------------------------------------------------------- the hub and the webchat format


def test_hub_keeps_order_across_threads():
    async def scenario():
        hub = Hub()
        await hub.start()
        sub = hub.subscribe("conv:1")
        worker = threading.Thread(target=lambda: [hub.publish("conv:1", {"n": i}) for i in range(50)])
        worker.start()
        worker.join()
        hub.publish("conv:2", {"n": "elsewhere"})
        got = [(await asyncio.wait_for(sub.get(), 5))["n"] for _ in range(50)]
        sub.close()
        await hub.close()
        return got, sub.queue.empty()

    got, nothing_else = run_in_new_loop(scenario)
    assert got == list(range(50)) and nothing_else


def test_hub_over_redis_reaches_another_instance():
    async def scenario():
        a, b = Hub("redis://127.0.0.1:6379/0"), Hub("redis://127.0.0.1:6379/0")
        await a.start()
        await b.start()
        sub = b.subscribe("merchant:7")
        await asyncio.sleep(0.2)
        for i in range(5):
            a.publish("merchant:7", {"type": "notification", "n": i})
        got = [(await asyncio.wait_for(sub.get(), 5))["n"] for _ in range(5)]
        await a.close()
        await b.close()
        return got

    assert run_in_new_loop(scenario) == [0, 1, 2, 3, 4]


def test_webchat_sees_bot_and_agent_messages_with_quick_replies():
    bot = {"sender": "bot", "text": "您是想问：\n1", "payload": {"buttons": [{"title": "保证金", "payload": "/x"}]}}
    assert to_bot_uttered(bot) == {"text": "您是想问：  \n1", "quick_replies": [
        {"content_type": "text", "title": "保证金", "payload": "/x"}]}
    agent = {"sender": "agent", "text": "您好", "payload": {"agent_name": "客服小林"}}
    assert to_bot_uttered(agent) == {"text": "【人工客服 客服小林】您好"}
    assert to_bot_uttered({"sender": "merchant", "text": "你好", "payload": None}) is None
