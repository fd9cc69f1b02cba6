"""A burst beyond what the stack can take, from every channel at once: nothing lost or doubled, nobody left
without an answer, /healthz answering throughout, and normal turns right after."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import socketio
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from websockets.sync.client import connect

from api.db import make_engine
from api.gateway import OVERLOADED
from api.models import Message, Sender

from ..conftest import merchant_headers

pytestmark = pytest.mark.e2e

TEXTS = ["保证金怎么退", "查一下我的工单进度", "我要申诉", "提现多久到账", "你好"]  # FAQ, progress, appeal, chit-chat


@pytest.fixture
def merchants(api) -> list[str]:
    """Merchants of this test alone: a burst hands some conversations to people, which other tests must not see."""
    codes = [f"M9{uuid.uuid4().hex[:6]}" for _ in range(5)]
    engine = make_engine(api.stack_settings.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO merchants (code, name, main_category, created_at) "
                          "VALUES (:code, :name, '服饰', CURRENT_TIMESTAMP)"),
                     [{"code": c, "name": f"压测店铺{c}"} for c in codes])
    engine.dispose()
    return codes


def said(tag: str, n: int) -> str:
    return f"{TEXTS[n % len(TEXTS)]} [{tag}-{n}]"


def rest_burst(api_url: str, settings, codes: list[str], tag: str, per_merchant: int) -> list[tuple[str, int, dict]]:
    """Every merchant fires ``per_merchant`` messages at once into their open conversation."""
    def one(code: str, n: int):
        text = said(f"{tag}-{code}", n)
        with httpx.Client(base_url=api_url, timeout=120) as client:
            resp = client.post("/api/chat", json={"text": text}, headers=merchant_headers(settings, code))
        return text, resp.status_code, resp.json()

    jobs = [(code, n) for code in codes for n in range(per_merchant)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(lambda job: one(*job), jobs))


def socket_burst(api_url: str, settings, code: str, tag: str, count: int) -> tuple[list[str], dict, list[dict]]:
    """A widget's WebSocket sends ``count`` messages back to back and collects what comes back for a while."""
    token = merchant_headers(settings, code)["Authorization"].removeprefix("Bearer ")
    texts, events = [said(f"{tag}-ws-{code}", n) for n in range(count)], []
    with connect(f"{api_url.replace('http', 'ws')}/ws/chat?token={token}", open_timeout=30) as ws:
        ws.send(json.dumps({"type": "hello", "conversation_id": None, "after_id": 0}))
        for text in texts:
            ws.send(json.dumps({"type": "message", "text": text, "client_id": uuid.uuid4().hex}))
        ids: dict[str, int] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                event = json.loads(ws.recv(timeout=5))
            except TimeoutError:
                if len(ids) == count:
                    break
                continue
            events.append(event)
            msg = event.get("message") or {}
            if event.get("type") == "message" and msg.get("sender") == "merchant" and msg["text"] in texts:
                ids[msg["text"]] = msg["id"]
    return texts, ids, events


def webchat_burst(api_url: str, settings, code: str, tag: str, sessions: int) -> list[tuple[str, list[dict]]]:
    """rasa-webchat clients (Socket.IO), each in a session (a conversation) of its own, one message each."""
    token = merchant_headers(settings, code)["Authorization"].removeprefix("Bearer ")

    def one(n: int):
        got, text = [], said(f"{tag}-sio", n)
        client = socketio.Client(reconnection=False)
        client.on("bot_uttered", lambda data: got.append(data))
        client.connect(api_url, socketio_path="socket.io", transports=["polling"], wait_timeout=30)
        client.emit("session_request", {"session_id": uuid.uuid4().hex})
        time.sleep(0.5)
        client.emit("user_uttered", {"message": text, "customData": {"token": token}})
        deadline = time.monotonic() + 90
        while not got and time.monotonic() < deadline:
            time.sleep(0.2)
        client.disconnect()
        return text, got

    with ThreadPoolExecutor(sessions) as pool:
        return list(pool.map(one, range(sessions)))


def stored(settings, texts: list[str]) -> dict[str, int]:
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as db:
        rows = db.scalars(select(Message.text).where(Message.sender == Sender.merchant, Message.text.in_(texts)))
        counts: dict[str, int] = {}
        for text in rows:
            counts[text] = counts.get(text, 0) + 1
    engine.dispose()
    return counts


def test_a_burst_beyond_capacity_is_answered_kept_once_and_recovers(api, merchants):
    settings, url, tag = api.stack_settings, api.stack_settings.api_url, uuid.uuid4().hex[:6]
    health: list[tuple[float, int]] = []
    done = threading.Event()

    def watch_health():
        with httpx.Client(base_url=url, timeout=10) as client:
            while not done.is_set():
                started = time.monotonic()
                try:
                    status = client.get("/healthz").status_code
                except httpx.HTTPError:
                    status = 0
                health.append((time.monotonic() - started, status))
                time.sleep(0.2)

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    try:
        with ThreadPoolExecutor(3 + 1 + 1) as pool:
            rest = pool.submit(rest_burst, url, settings, merchants[:3], tag, 12)  # 36 at once, 12 per conversation
            sockets = [pool.submit(socket_burst, url, settings, code, tag, 8) for code in merchants[:3]]
            webchat = pool.submit(webchat_burst, url, settings, merchants[3], tag, 12)
            rest, sockets, webchat = rest.result(), [s.result() for s in sockets], webchat.result()
    finally:
        done.set()
        watcher.join()

    # Every REST message got the bot's answer or, at once, the overload notice; nothing else, no hang.
    statuses = [status for _, status, _ in rest]
    assert set(statuses) <= {200, 503}, statuses
    for _, status, body in rest:
        if status == 200:  # the bot's answer, or (handed to a person meanwhile) the message waits for them
            assert (body["messages"] and all(m["text"] for m in body["messages"])) or body["mode"] != "bot"
        else:
            assert body["detail"] == OVERLOADED
    assert statuses.count(503) > 0  # the burst did exceed what one conversation may have in flight
    # Every socket message was echoed once and answered (a bot reply or the notice, each naming it).
    for texts, ids, events in sockets:
        assert set(ids) == set(texts)
        answered = {(e["message"].get("payload") or {}).get("reply_to") for e in events
                    if e.get("type") == "message" and e["message"]["sender"] in ("bot", "system")}
        handed_over = any(e.get("type") == "mode" and e["mode"] != "bot" for e in events)
        assert set(ids.values()) <= answered or handed_over
    for _, got in webchat:
        assert got and all(g.get("text") for g in got)
    # Stored exactly once, whatever the answer was.
    texts = [t for t, _, _ in rest] + [t for s in sockets for t in s[0]] + [t for t, _ in webchat]
    assert stored(settings, texts) == dict.fromkeys(texts, 1)
    # /healthz answered all along, quickly.
    assert health and all(status in (200, 503) for _, status in health)
    assert max(seconds for seconds, _ in health) < 5
    # And right after, a turn is a turn again.
    after = api.post("/api/chat", json={"text": "保证金怎么退"}, headers=merchant_headers(settings, merchants[4]))
    assert after.status_code == 200 and after.json()["messages"]
