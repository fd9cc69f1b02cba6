"""The database unreachable for a while: merchants get a clear 503 in Chinese (never a 500 or a hang), nothing is
half-written, and everything works again once it is back.

PostgreSQL is reached through a TCP proxy the test cuts (open connections dropped, new ones never answered, so
the driver's connect timeout decides how long a request waits). SQLite has no network to cut: there every
statement of the app's engine fails while it is "cut", as a lost disk would make it fail. Rasa is replaced by a
stand-in that answers every turn, so a whole turn (message and reply) can be stored.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from api.main import create_app
from api.models import Conversation, Message

from ..conftest import merchant_headers
from ..tcp_proxy import TcpProxy

pytestmark = pytest.mark.pg

UNAVAILABLE = "服务暂时不可用"
CONNECT_TIMEOUT_S = 4  # how long a request may wait for PostgreSQL to answer a new connection
GIVE_UP_S = 120        # a request not back by then hangs (generous: a loaded 2-core machine)


class ProxiedPostgres:
    """The app reaches its PostgreSQL database only through a proxy the test can cut."""

    def __init__(self, settings):
        url = make_url(settings.sqlalchemy_url)
        self.proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        via = url.set(host="127.0.0.1", port=self.proxy.port, query={"connect_timeout": str(CONNECT_TIMEOUT_S)})
        self.settings = settings.model_copy(update={"database_url": via.render_as_string(hide_password=False)})

    def attach(self, engine) -> None:
        pass

    def cut(self) -> None:
        self.proxy.cut()

    def restore(self) -> None:
        self.proxy.restore()

    def close(self) -> None:
        self.proxy.close()


class FailingSqlite:
    """While cut, every statement the app's engine runs fails the way SQLite fails when its file is gone."""

    def __init__(self, settings):
        self.settings, self.down = settings, False

    def attach(self, engine) -> None:
        event.listen(engine, "before_cursor_execute", self._check)

    def _check(self, *_args) -> None:
        if self.down:
            raise sqlite3.OperationalError("unable to open database file")

    def cut(self) -> None:
        self.down = True

    def restore(self) -> None:
        self.down = False

    def close(self) -> None:
        pass


class StandInRasa:
    """Answers every turn at once; ``during`` runs while a turn is with it (the merchant's message is stored)."""

    def __init__(self):
        self.during = None

    async def send(self, sender_id: str, text: str, metadata: dict) -> list[dict]:
        if self.during is not None:
            self.during()
        return [{"text": f"收到：{text}"}]


@pytest.fixture
def outage(backend, database):
    fault = ProxiedPostgres(database) if backend == "postgresql" else FailingSqlite(database)
    yield fault
    fault.close()


@pytest.fixture
def client(outage):
    app = create_app(outage.settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert app.state.kb.wait_ready(timeout=GIVE_UP_S)  # the index is loaded from the database at start
        outage.attach(app.state.engine)
        app.state.gateway.rasa = StandInRasa()
        yield c
        outage.restore()


def call(client, method: str, path: str, **kwargs):
    """One request, failing the test (not hanging it) if it does not come back."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(client.request, method, path, **kwargs).result(timeout=GIVE_UP_S)


def counts(database) -> tuple[int, int]:
    """Messages and conversations, read directly (not through the proxy or the failing engine)."""
    engine = create_engine(database.sqlalchemy_url)
    with Session(engine) as db:
        n = (db.scalar(select(func.count()).select_from(Message)),
             db.scalar(select(func.count()).select_from(Conversation)))
    engine.dispose()
    return n


def assert_unavailable(resp) -> None:
    assert resp.status_code == 503, (resp.status_code, resp.text)
    assert UNAVAILABLE in resp.json()["detail"]
    assert resp.headers.get("Retry-After", "").isdigit()


def history(client, headers, conversation_id: int) -> list[dict]:
    resp = call(client, "GET", f"/api/conversations/{conversation_id}", headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["messages"]


def test_while_the_database_is_unreachable_merchants_get_a_clear_503_and_nothing_is_half_written(
        client, outage, database):
    headers = merchant_headers(database)
    first = call(client, "POST", "/api/chat", json={"text": "保证金怎么退", "client_id": "outage-1"}, headers=headers)
    assert first.status_code == 200, first.text
    conv = first.json()["conversation_id"]
    before = counts(database)

    outage.cut()
    try:
        for path in ("/api/conversations", f"/api/conversations/{conv}", "/api/cases", "/api/appeals"):
            assert_unavailable(call(client, "GET", path, headers=headers))
        sent = call(client, "POST", "/api/chat", headers=headers,
                    json={"text": "提现多久到账", "client_id": "outage-2", "conversation_id": conv})
        assert_unavailable(sent)
        health = call(client, "GET", "/healthz")
        assert health.status_code == 503 and health.json()["components"]["database"]["status"] == "down"
    finally:
        outage.restore()

    assert counts(database) == before  # the refused message left no row behind
    assert call(client, "GET", "/api/conversations", headers=headers).status_code == 200
    again = call(client, "POST", "/api/chat", headers=headers,
                 json={"text": "提现多久到账", "client_id": "outage-2", "conversation_id": conv})
    assert again.status_code == 200, again.text
    assert [m["text"] for m in again.json()["messages"]] == ["收到：提现多久到账"]
    stored = history(client, headers, conv)
    said = [m for m in stored if m["sender"] == "merchant"]
    assert [m["text"] for m in said] == ["保证金怎么退", "提现多久到账"]
    for m in said:
        assert [r["text"] for r in stored if (r["payload"] or {}).get("reply_to") == m["id"]] == [f"收到：{m['text']}"]


def test_a_turn_cut_off_after_its_message_was_kept_tells_the_merchant_and_keeps_the_message_once(
        client, outage, database):
    """The gateway commits the merchant's message before the bot answers: if the database goes away meanwhile,
    the reply cannot be stored; the merchant is told so, the message is there once, and no part of a reply is."""
    headers = merchant_headers(database)
    conv = call(client, "POST", "/api/conversations", headers=headers).json()["id"]
    before, _ = counts(database)
    client.app.state.gateway.rasa.during = outage.cut
    try:
        resp = call(client, "POST", "/api/chat", headers=headers,
                    json={"text": "货款冻结了怎么办", "client_id": "outage-3", "conversation_id": conv})
        assert_unavailable(resp)
    finally:
        client.app.state.gateway.rasa.during = None
        outage.restore()

    stored = history(client, headers, conv)
    assert [(m["sender"], m["text"]) for m in stored] == [("merchant", "货款冻结了怎么办")]
    assert counts(database)[0] == before + 1
    after = call(client, "POST", "/api/chat", headers=headers,
                 json={"text": "发票怎么开", "client_id": "outage-4", "conversation_id": conv})
    assert after.status_code == 200 and after.json()["messages"][0]["text"] == "收到：发票怎么开"
