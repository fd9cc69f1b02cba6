"""The API on its own: Rasa and the action server are not running (their ports are closed)."""

import time

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from api.main import create_app
from api.models import Conversation, Message, Sender
from api.seed import read_seed_faqs

from ..conftest import merchant_headers


@pytest.fixture
def client(database):
    with TestClient(create_app(database)) as c:
        yield c


def messages(settings) -> list[Message]:
    engine = create_engine(settings.sqlalchemy_url)
    with Session(engine) as db:
        rows = list(db.scalars(select(Message).order_by(Message.id)))
    engine.dispose()
    return rows


def test_chat_when_rasa_is_down_keeps_the_message_and_says_so(client, database, settings):
    resp = client.post("/api/chat", json={"text": "保证金怎么退"}, headers=merchant_headers(settings))
    assert resp.status_code == 503
    assert "暂时无法回复" in resp.json()["detail"]
    stored = messages(database)
    assert [(m.sender, m.text) for m in stored][0] == (Sender.merchant, "保证金怎么退")
    assert stored[-1].sender == Sender.system


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        ({"text": ""}, 422, "不能为空"),
        ({"text": "   \n\t "}, 422, "不能为空"),
        ({"text": "退" * 2001}, 413, "太长"),
        ({"text": "a\x00b"}, 422, "无法识别"),
        ({}, 422, "缺少必填项"),
        ({"text": "你好", "conversation_id": "abc"}, 422, "应为整数"),
        ({"text": 12}, 422, "应为文字"),
    ],
)
def test_bad_chat_input_gets_a_chinese_reason_and_stores_nothing(client, database, settings, body, status, phrase):
    resp = client.post("/api/chat", json=body, headers=merchant_headers(settings))
    assert resp.status_code == status
    assert phrase in resp.json()["detail"]
    assert messages(database) == []


def test_malformed_json_is_a_422_in_chinese(client, settings):
    resp = client.post("/api/chat", content=b"{not json",
                       headers={"content-type": "application/json", **merchant_headers(settings)})
    assert resp.status_code == 422
    assert "请求有误" in resp.json()["detail"]


@pytest.mark.parametrize(
    ("headers", "phrase"),
    [
        ({}, "请先登录"),
        ({"Authorization": "Bearer not-a-token"}, "身份凭证无效"),
        ({"Authorization": "Basic abc"}, "请先登录"),
    ],
)
def test_chat_without_a_valid_token_is_refused(client, database, headers, phrase):
    resp = client.post("/api/chat", json={"text": "你好"}, headers=headers)
    assert resp.status_code == 401
    assert phrase in resp.json()["detail"]
    assert messages(database) == []


def test_expired_forged_or_unknown_merchant_tokens_are_refused(client, settings):
    from api.security import create_merchant_token

    expired = create_merchant_token("M10001", settings.widget_secret, minutes=-1)
    forged = create_merchant_token("M10001", "another-secret-of-the-right-length-32+")
    unknown = create_merchant_token("M99999", settings.widget_secret)
    too_long = create_merchant_token("M10001", settings.widget_secret, minutes=60 * 24 * 365)
    now = int(time.time())
    # without iat the 24-hour cap could not be checked: a 10-year token must not get in that way
    no_iat = jwt.encode({"sub": "M10001", "exp": now + 10 * 365 * 86400}, settings.widget_secret, "HS256")
    future = jwt.encode({"sub": "M10001", "iat": now + 86400 * 30, "exp": now + 86400 * 30 + 600},
                        settings.widget_secret, "HS256")
    for token, phrase in [(expired, "过期"), (forged, "无效"), (unknown, "商家不存在"), (too_long, "有效期过长"),
                          (no_iat, "缺少签发时间"), (future, "无效")]:
        resp = client.post("/api/chat", json={"text": "你好"}, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401, token
        assert phrase in resp.json()["detail"]


def test_another_merchants_conversation_looks_missing(client, database, settings):
    client.post("/api/chat", json={"text": "你好"}, headers=merchant_headers(settings, "M10001"))
    engine = create_engine(database.sqlalchemy_url)
    with Session(engine) as db:
        theirs = db.scalar(select(Conversation.id))
    engine.dispose()
    other = merchant_headers(settings, "M10002")
    resp = client.post("/api/chat", json={"text": "你好", "conversation_id": theirs}, headers=other)
    missing = client.post("/api/chat", json={"text": "你好", "conversation_id": 99999}, headers=other)
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


def test_a_lone_surrogate_is_refused_before_it_is_stored(client, settings):
    """One such string could be stored but never encoded again: every agent's feed and the history would break."""
    headers = {**merchant_headers(settings), "Content-Type": "application/json"}
    for body in ('{"text": "\\ud800"}', '{"text": "好", "payload": "/ask_question{\\"x\\": \\"\\udfff\\"}"}',
                 '{"text": "好", "client_id": "\\ud83d"}'):
        resp = client.post("/api/chat", content=body.encode(), headers=headers)
        assert resp.status_code == 422 and "无法识别的字符" in resp.json()["detail"], body
    paired = client.post("/api/chat", content=b'{"text": "\\ud83d\\ude00"}', headers=headers)
    assert paired.status_code != 422  # an emoji written as a surrogate pair is fine (Rasa is down here: 503)
    with Session(create_engine(settings.sqlalchemy_url)) as db:
        stored = [m.text for m in db.scalars(select(Message).where(Message.sender == Sender.merchant))]
    assert stored == ["😀"]


def test_ids_too_large_for_the_database_get_a_422_not_a_500(client, settings):
    merchant = merchant_headers(settings)
    for path in ("/api/conversations/9223372036854775808", "/api/conversations/99999999999999999999",
                 "/api/conversations/9223372036854775807"):
        resp = client.get(path, headers=merchant)
        assert resp.status_code in (404, 422), (path, resp.status_code)
        assert isinstance(resp.json()["detail"], str)


def test_pages_carry_security_headers_and_the_docs_leave_the_internal_interface_out(client):
    for path in ("/console", "/demo"):
        page = client.get(path)
        assert page.status_code == 200
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert client.get("/healthz").headers["x-content-type-options"] == "nosniff"
    spec = client.get("/openapi.json").text.lower()
    assert '"/internal/' not in spec and "x-internal-token" not in spec and "x-merchant-id" not in spec


def test_bodies_too_large_or_uploads_without_a_token_are_refused_before_they_are_read(client, settings):
    merchant = merchant_headers(settings)
    files = {"file": ("proof.png", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "image/png")}
    anonymous = client.post("/api/appeals/SS2611160001/evidence", files=files)
    assert anonymous.status_code == 401 and anonymous.json()["detail"] == "请先登录"
    huge = {"file": ("big.png", b"\x89PNG\r\n\x1a\n" + b"0" * (settings.evidence_max_bytes + 128 * 1024), "image/png")}
    too_big = client.post("/api/appeals/SS2611160001/evidence", files=huge, headers=merchant)
    assert too_big.status_code == 413 and "请求太大" in too_big.json()["detail"]
    chat = client.post("/api/chat", json={"text": "长" * 600_000}, headers=merchant)
    assert chat.status_code == 413
