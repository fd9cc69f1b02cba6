"""A merchant's first conversation through the real stack: API → Rasa → action server → knowledge base."""

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from api.models import Message, Sender

from ..conftest import merchant_headers

pytestmark = __import__("pytest").mark.e2e


def say(api, text, merchant="M10001", **extra):
    headers = merchant_headers(api.stack_settings, merchant)
    resp = api.post("/api/chat", json={"text": text, **extra}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_every_part_is_healthy(api):
    resp = api.get("/healthz")
    assert resp.status_code == 200, resp.text
    parts = resp.json()["components"]
    assert {name: p["status"] for name, p in parts.items()} == {
        "api": "ok", "database": "ok", "rasa": "ok", "action_server": "ok", "model": "ok", "index": "ok",
    }
    assert parts["index"]["faqs"] >= 12


def test_greeting_gets_a_greeting(api):
    body = say(api, "你好")
    assert "商家助手" in body["messages"][0]["text"]


def test_deposit_question_is_answered_from_the_knowledge_base(api, stack):
    body = say(api, "保证金怎么退")
    text = "\n".join(m["text"] for m in body["messages"])
    assert "退还保证金" in text and "原路退回" in text  # the deposit-refund FAQ's answer
    with Session(create_engine(stack.settings.sqlalchemy_url)) as db:
        stored = list(db.scalars(select(Message).where(Message.conversation_id == body["conversation_id"])))
    senders = [m.sender for m in stored]
    assert Sender.merchant in senders and Sender.bot in senders
    assert any("原路退回" in m.text for m in stored if m.sender == Sender.bot)


def test_a_colloquial_traditional_question_still_finds_the_answer(api):
    """Answered outright, or offered among the "您是想问" choices; either way the right FAQ is reached."""
    body = say(api, "提現一直沒到帳，要等多久？", merchant="M10002")
    first = body["messages"][0]
    if first["buttons"]:
        assert first["text"].startswith("您是想问")
        choice = next(b for b in first["buttons"] if b["title"] == "提现多久能到账？")
        first = say(api, choice["payload"], merchant="M10002")["messages"][0]
    assert "工作日 16:00 前提交" in first["text"]


def test_clarify_choice_answers_the_chosen_faq(api):
    """A "您是想问" button payload names a FAQ; sending it gets that FAQ's answer."""
    hits = api.post("/internal/kb/search", json={"text": "发票"},
                    headers={"X-Internal-Token": "test-internal"}).json()["hits"]
    chosen = next(h for h in hits if h["key"] == "invoice-apply")
    body = say(api, f'/ask_question{{"faq_id": "{chosen["faq_id"]}"}}')
    assert body["messages"][0]["text"] == chosen["answer"]


def test_a_socketio_message_that_is_not_text_gets_a_clear_answer(api):
    """rasa-webchat's user_uttered with a dict, a list, a number or broken text: an answer, never silence."""
    import time
    import uuid

    import socketio

    token = merchant_headers(api.stack_settings, "M10001")["Authorization"].removeprefix("Bearer ")
    got: list[dict] = []
    client = socketio.Client(reconnection=False)
    client.on("bot_uttered", lambda data: got.append(data))
    client.connect(api.stack_settings.api_url, socketio_path="socket.io", transports=["polling"], wait_timeout=30)
    try:
        client.emit("session_request", {"session_id": uuid.uuid4().hex})
        bad = [{"message": {"text": "你好"}, "customData": {"token": token}},
               {"message": ["你好"], "customData": {"token": token}}, {"message": 42}, ["user_uttered"]]
        for n, payload in enumerate(bad, start=1):
            client.emit("user_uttered", payload)
            deadline = time.monotonic() + 30
            while len(got) < n and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(got) == n and "消息格式不正确" in got[-1]["text"], payload
    finally:
        client.disconnect()
