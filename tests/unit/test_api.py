"""The API on its own: Rasa and the action server are not running (their ports are closed)."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from api.main import create_app
from api.models import Conversation, Message, Sender
from api.seed import read_seed_faqs


@pytest.fixture
def client(settings, database):
    with TestClient(create_app(settings)) as c:
        yield c


def messages(url: str) -> list[Message]:
    with Session(create_engine(url)) as db:
        return list(db.scalars(select(Message).order_by(Message.id)))


def test_chat_when_rasa_is_down_keeps_the_message_and_says_so(client, database):
    resp = client.post("/api/chat", json={"merchant_id": "M10001", "text": "保证金怎么退"})
    assert resp.status_code == 503
    assert "暂时无法回复" in resp.json()["detail"]
    stored = messages(database)
    assert [(m.sender, m.text) for m in stored][0] == (Sender.merchant, "保证金怎么退")
    assert stored[-1].sender == Sender.system


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        ({"merchant_id": "M10001", "text": ""}, 422, "不能为空"),
        ({"merchant_id": "M10001", "text": "   \n\t "}, 422, "不能为空"),
        ({"merchant_id": "M10001", "text": "退" * 2001}, 413, "太长"),
        ({"merchant_id": "M10001", "text": "a\x00b"}, 422, "无法识别"),
        ({"merchant_id": "M10001"}, 422, "缺少必填项"),
        ({"merchant_id": "", "text": "你好"}, 422, "不能为空"),
        ({"merchant_id": "M99999", "text": "你好"}, 404, "商家不存在"),
        ({"merchant_id": "M10001", "text": "你好", "conversation_id": "abc"}, 422, "应为整数"),
        ({"merchant_id": "M10001", "text": 12}, 422, "应为文字"),
    ],
)
def test_bad_chat_input_gets_a_chinese_reason_and_stores_nothing(client, database, body, status, phrase):
    resp = client.post("/api/chat", json=body)
    assert resp.status_code == status
    assert phrase in resp.json()["detail"]
    assert messages(database) == []


def test_malformed_json_is_a_422_in_chinese(client):
    resp = client.post("/api/chat", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422
    assert "请求有误" in resp.json()["detail"]


def test_another_merchants_conversation_looks_missing(client, database):
    client.post("/api/chat", json={"merchant_id": "M10001", "text": "你好"})
    with Session(create_engine(database)) as db:
        theirs = db.scalar(select(Conversation.id))
    resp = client.post("/api/chat", json={"merchant_id": "M10002", "text": "你好", "conversation_id": theirs})
    missing = client.post("/api/chat", json={"merchant_id": "M10002", "text": "你好", "conversation_id": 99999})
    assert resp.status_code == missing.status_code == 404
    assert resp.json() == missing.json()


def test_healthz_reports_rasa_and_actions_down_but_answers(client):
    resp = client.get("/healthz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "degraded"
    parts = body["components"]
    assert parts["api"]["status"] == "ok"
    assert parts["database"]["status"] == "ok"
    assert parts["rasa"]["status"] == "down"
    assert parts["action_server"]["status"] == "down"
    assert set(parts) >= {"model", "index"}


def test_internal_search_needs_the_token(client):
    resp = client.post("/internal/kb/search", json={"text": "保证金"})
    assert resp.status_code == 401


def test_internal_search_answers_once_the_index_is_ready(client, settings):
    assert client.app.state.kb.wait_ready(timeout=120)
    resp = client.post("/internal/kb/search", json={"text": "押金怎么退回来"},
                       headers={"X-Internal-Token": settings.internal_token})
    assert resp.status_code == 200
    body = resp.json()
    assert body["hits"][0]["key"] == "deposit-refund"
    assert body["decision"] in {"answer", "clarify"}
    health = client.get("/healthz").json()["components"]
    assert health["model"]["status"] == "ok"
    assert health["index"]["faqs"] == len(read_seed_faqs())
