"""Rate limits (api/rate_limit.py) and where the API applies them: chat, uploads, login and its lockout."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.rate_limit import RateLimiter

from ..conftest import merchant_headers


def test_a_window_lets_the_limit_through_then_says_how_long_to_wait(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    limiter = RateLimiter()
    assert [limiter.hit("k", 3, 60) for _ in range(3)] == [0, 0, 0]
    assert limiter.hit("k", 3, 60) == 60 and limiter.wait("k", 3, 60) == 60
    assert limiter.hit("other", 3, 60) == 0  # keys are counted apart
    clock[0] += 30
    assert limiter.hit("k", 3, 60) == 30
    clock[0] += 31
    assert limiter.hit("k", 3, 60) == 0
    limiter.clear("k")
    assert limiter.wait("k", 1, 60) == 0


@pytest.fixture
def tight(database):
    settings = database.model_copy(update={"chat_per_minute": 3, "login_per_minute": 50,
                                           "login_failures_before_lockout": 3, "uploads_per_minute": 2})
    with TestClient(create_app(settings)) as client:
        yield client, settings


def test_a_merchant_sending_too_fast_gets_429_with_retry_after_and_nothing_stored(tight):
    client, settings = tight
    headers = merchant_headers(settings, "M10001")
    codes = [client.post("/api/chat", json={"text": f"第{i}条"}, headers=headers).status_code for i in range(5)]
    assert codes[:3] == [503, 503, 503]  # let through (Rasa is not running here: kept, "busy")
    refused = client.post("/api/chat", json={"text": "又一条"}, headers=headers)
    assert refused.status_code == 429 and "太频繁" in refused.json()["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    texts = [m["text"] for c in client.get("/api/conversations", headers=headers).json()
             for m in client.get(f"/api/conversations/{c['id']}", headers=headers).json()["messages"]
             if m["sender"] == "merchant"]
    assert sorted(texts) == ["第0条", "第1条", "第2条"]
    other = client.post("/api/chat", json={"text": "你好"}, headers=merchant_headers(settings, "M10002"))
    assert other.status_code == 503  # another merchant is not held back


def test_repeated_wrong_passwords_lock_the_account_and_a_wrong_name_takes_as_long(tight):
    client, settings = tight
    for _ in range(3):
        assert client.post("/api/auth/login", json={"username": "agent01", "password": "wrong"}).status_code == 401
    locked = client.post("/api/auth/login", json={"username": "agent01", "password": settings.demo_password})
    assert locked.status_code == 429 and "锁定" in locked.json()["detail"] and "retry-after" in locked.headers
    assert client.post("/api/auth/login", json={"username": "agent02",
                                                "password": settings.demo_password}).status_code == 200

    def timed(username: str) -> float:
        start = time.perf_counter()
        client.post("/api/auth/login", json={"username": username, "password": "wrong-password"})
        return time.perf_counter() - start

    timed("nobody-at-all"), timed("editor01")  # warm
    unknown = sorted(timed("nobody-at-all") for _ in range(2))[0]
    known = sorted(timed("admin") for _ in range(2))[0]
    assert unknown > known / 3  # the password hash is checked either way (it was 3 ms against 115 ms)


# --------------------------------------------------------------------------- shared between API instances (Redis)

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def shared_prefix(monkeypatch):
    """Keys of this test alone (Redis outlives the test; windows last a minute)."""
    import uuid

    from api.rate_limit import SharedRateLimiter

    monkeypatch.setattr(SharedRateLimiter, "PREFIX", f"sjzs-limit-test-{uuid.uuid4().hex[:8]}:")


def test_instances_sharing_redis_count_one_window(shared_prefix):
    from api.rate_limit import SharedRateLimiter

    one, two = SharedRateLimiter(REDIS), SharedRateLimiter(REDIS)
    assert [one.hit("k", 3, 60), two.hit("k", 3, 60), one.hit("k", 3, 60)] == [0, 0, 0]
    assert 55 <= two.hit("k", 3, 60) <= 60 and 55 <= one.wait("k", 3, 60) <= 60
    assert one.hit("other", 3, 60) == 0
    two.clear("k")
    assert one.hit("k", 3, 60) == 0


def test_with_redis_unreachable_each_instance_counts_on_its_own():
    from api.rate_limit import SharedRateLimiter

    limiter = SharedRateLimiter("redis://127.0.0.1:1/0")  # nothing listens there
    assert [limiter.hit("k", 2, 60) for _ in range(3)] == [0, 0, 60]


def test_a_login_lockout_holds_on_every_instance(database, shared_prefix):
    settings = database.model_copy(update={"redis_url": REDIS, "login_failures_before_lockout": 3,
                                           "login_per_minute": 50})
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        for client in (one, two, one):
            assert client.post("/api/auth/login", json={"username": "agent01", "password": "wrong"}).status_code == 401
        for client in (one, two):
            locked = client.post("/api/auth/login", json={"username": "agent01", "password": settings.demo_password})
            assert locked.status_code == 429 and "Retry-After" in locked.headers, locked.text
