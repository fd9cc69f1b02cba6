"""The authorisation matrix: every operation in the OpenAPI spec, called as every kind of caller.

Each operation has an entry saying who may call it; an operation without one fails the first test, so a new
route cannot ship without deciding. Callers without a valid token (none, expired, ``alg: none``, signed with the
wrong secret) get 401 everywhere but the public routes; valid callers of the wrong kind get 403.
"""

from __future__ import annotations

import re

import jwt
import pytest
from fastapi.testclient import TestClient
from starlette.routing import WebSocketRoute

from api import security
from api.main import create_app

from ..conftest import merchant_headers

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

pytestmark = pytest.mark.slow  # ~600 requests, about a minute: in `make test`, not in `make check`

PUBLIC, ANYONE, MERCHANT, AGENT, EDITOR, ADMIN = "public", "anyone", "merchant", "agent", "editor", "admin"
# who may call each operation (admins may do what agents and editors may)
WHO: dict[str, set[str]] = {
    "GET /healthz": {PUBLIC}, "POST /api/auth/login": {PUBLIC},
    "GET /api/me": {ANYONE}, "GET /api/kb/hot-questions": {ANYONE},
    "GET /api/appeals/{number}/evidence/{evidence_id}": {MERCHANT, AGENT},
    **{f"{m} {p}": {MERCHANT} for m, p in [
        ("POST", "/api/chat"), ("GET", "/api/cases"), ("GET", "/api/cases/{number}"), ("GET", "/api/penalties"),
        ("GET", "/api/penalties/{number}"), ("GET", "/api/appeals"), ("POST", "/api/appeals"),
        ("GET", "/api/appeals/{number}"), ("POST", "/api/appeals/{number}/evidence"),
        ("POST", "/api/appeals/{number}/withdraw"), ("GET", "/api/conversations"), ("POST", "/api/conversations"),
        ("GET", "/api/conversations/{conversation_id}"), ("POST", "/api/messages/{message_id}/feedback"),
        ("POST", "/api/conversations/{conversation_id}/rating"),
        ("POST", "/api/conversations/{conversation_id}/leave-message"), ("GET", "/api/suggest"),
        ("GET", "/api/notifications"), ("POST", "/api/notifications/read")]},
    "POST /api/staff/users": {ADMIN}, "GET /api/staff/users": {ADMIN},
    # service analytics: the service team (agents, knowledge editors, admins)
    **{f"GET /api/analytics/{p}": {AGENT, EDITOR} for p in ("options", "summary", "conversations", "export")},
}
AGENT_PREFIX, EDITOR_PREFIX = "/api/staff/", "/api/kb/"
PARAMS = {"number": "GD2611180001", "conversation_id": "1", "message_id": "1", "evidence_id": "1", "faq_id": "1",
          "row_id": "1", "canned_id": "1", "old": "1", "new": "1", "version": "1"}


def operations(app) -> list[str]:
    return [f"{method.upper()} {path}" for path, ops in app.openapi()["paths"].items() for method in ops]


def who(op: str) -> set[str]:
    if op in WHO:
        return WHO[op]
    path = op.split(" ", 1)[1]
    if path.startswith(AGENT_PREFIX):
        return {AGENT}
    if path.startswith(EDITOR_PREFIX):
        return {EDITOR}
    raise KeyError(op)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, templates, template_index):
    from ..conftest import fresh_database, make_settings

    tmp = tmp_path_factory.mktemp("authz")
    with fresh_database("sqlite", tmp, templates) as url:
        settings = make_settings(tmp, database_url=url)
        with TestClient(create_app(settings)) as client:
            def login(user: str) -> dict:
                resp = client.post("/api/auth/login", json={"username": user, "password": settings.demo_password})
                return {"Authorization": f"Bearer {resp.json()['access_token']}"}

            valid = {MERCHANT: merchant_headers(settings, "M10001"), AGENT: login("agent01"),
                     EDITOR: login("editor01"), ADMIN: login("admin")}
            bad = {
                "no token": {},
                "expired merchant": security.create_merchant_token("M10001", settings.widget_secret, -1),
                "expired staff": security.create_staff_token(1, "admin", settings.secret_key, -1),
                "alg none": jwt.encode({"sub": "M10001", "kind": "staff", "role": "admin", "exp": 2**31 - 1},
                                       None, algorithm="none"),
                "wrong secret": security.create_merchant_token("M10001", "x" * 40),
            }
            bad = {k: (v if isinstance(v, dict) else {"Authorization": f"Bearer {v}"}) for k, v in bad.items()}
            yield client, valid, bad


@pytest.fixture(scope="module")
def objects(setup):
    """Merchant A's (M10001's) own objects of every kind a path names, and B's (M10002's) headers."""
    client, valid, _ = setup
    a = valid[MERCHANT]
    conv = client.post("/api/conversations", headers=a).json()["id"]
    client.post("/api/chat", json={"text": "保证金怎么退", "conversation_id": conv}, headers=a)  # Rasa absent: stored
    message = client.get(f"/api/conversations/{conv}", headers=a).json()["messages"][0]["id"]
    evidence = client.post("/api/appeals/SS2611160001/evidence", headers=a,
                           files={"file": ("a.png", PNG, "image/png")}).json()["id"]
    client.post("/api/staff/cases/GD2611180001/events", headers=valid[AGENT],
                json={"status": "processing", "note": "已联系仓库核实"})
    notes = [n["id"] for n in client.get("/api/notifications", headers=a).json()]
    assert notes, "A needs an unread notification for the matrix to mean something"
    own = {"cases": "GD2611180001", "penalties": "CF2611150001", "appeals": "SS2611160001",
           "conversation_id": str(conv), "message_id": str(message), "evidence_id": str(evidence)}
    missing = {"cases": "GD9999999999", "penalties": "CF9999999999", "appeals": "SS9999999999",
               "conversation_id": "2147480000", "message_id": "2147480000", "evidence_id": "2147480000"}
    b = merchant_headers(client.app.state.settings, "M10002")
    return {"own": own, "missing": missing, "notes": notes, "a": a, "b": b, "conversation": conv}


def test_every_operation_has_an_entry(setup):
    client, _, _ = setup
    missing = []
    for op in operations(client.app):
        try:
            who(op)
        except KeyError:
            missing.append(op)
    assert not missing, f"operations without an authorisation entry: {missing}"
    stale = [op for op in WHO if op not in operations(client.app)]
    assert not stale, f"entries for operations that no longer exist: {stale}"


def test_callers_without_a_valid_token_get_401(setup):
    client, _, bad = setup
    wrong = []
    for op in operations(client.app):
        if PUBLIC in who(op):
            continue
        method, path = op.split(" ", 1)
        url = re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], path)
        for name, headers in bad.items():
            status = client.request(method, url, headers=headers, json={}).status_code
            if status != 401:
                wrong.append(f"{op} as {name}: {status}")
    assert not wrong, wrong


def test_each_kind_of_caller_reaches_only_its_own_operations(setup):
    client, valid, _ = setup
    wrong = []
    for op in operations(client.app):
        allowed = who(op)
        if PUBLIC in allowed:
            continue
        method, path = op.split(" ", 1)
        url = re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], path)
        for name, headers in valid.items():
            may = ANYONE in allowed or name in allowed or (name == ADMIN and allowed & {AGENT, EDITOR})
            status = client.request(method, url, headers=headers, json={}).status_code
            if may and status in (401, 403):
                wrong.append(f"{op} as {name}: {status}, should be let through")
            if not may and status != 403:
                wrong.append(f"{op} as {name}: {status}, should be 403")
    assert not wrong, wrong


# --------------------------------------------------------------------------- merchant A on merchant B's objects

# a body that passes validation, so the request reaches the ownership check (an operation missing here is sent
# ``{}``: if that stops it at validation, the test fails and asks for an entry)
BODIES = {
    "POST /api/messages/{message_id}/feedback": {"json": {"value": "useless"}},
    "POST /api/conversations/{conversation_id}/rating": {"json": {"rating": 1}},
    "POST /api/conversations/{conversation_id}/leave-message": {"json": {"text": "请尽快回电"}},
    "POST /api/appeals/{number}/evidence": {"files": {"file": ("b.png", PNG, "image/png")}},
}


def _fill(path: str, values: dict[str, str]) -> str:
    kind = path.split("/")[2]  # cases / penalties / appeals / conversations / messages
    return re.sub(r"\{(\w+)\}", lambda m: values[kind if m.group(1) == "number" else m.group(1)], path)


def test_another_merchants_objects_are_indistinguishable_from_missing_ones(setup, objects):
    """Every merchant operation that names an object, called by B on A's object and on a missing one: the same
    404 and the same body, and A's objects are left as they were."""
    client, _, _ = setup
    a, b = objects["a"], objects["b"]
    before = {p: client.get(p, headers=a).json() for p in (f"/api/conversations/{objects['conversation']}",
                                                            "/api/appeals/SS2611160001", "/api/cases")}
    checked, wrong = [], []
    for op in operations(client.app):
        method, path = op.split(" ", 1)
        if MERCHANT not in who(op) or "{" not in path:
            continue
        kwargs = BODIES.get(op, {"json": {}} if method == "POST" else {})
        theirs = client.request(method, _fill(path, objects["own"]), headers=b, **kwargs)
        missing = client.request(method, _fill(path, objects["missing"]), headers=b, **kwargs)
        if not (theirs.status_code == missing.status_code == 404 and theirs.json() == missing.json()):
            wrong.append(f"{op}: theirs {theirs.status_code} {theirs.text[:80]} / "
                         f"missing {missing.status_code} {missing.text[:80]}")
        checked.append(op)
    assert not wrong, wrong
    assert len(checked) >= 10, checked  # a case, a penalty, an appeal (4), a conversation (3), a message
    for path, body in before.items():
        assert client.get(path, headers=a).json() == body, f"{path} changed by another merchant"
    # the objects were real: A reaches each of them
    for path in ("/api/cases/GD2611180001", "/api/penalties/CF2611150001", "/api/appeals/SS2611160001",
                 f"/api/appeals/SS2611160001/evidence/{objects['own']['evidence_id']}"):
        assert client.get(path, headers=a).status_code == 200, path


def test_another_merchant_cannot_read_or_clear_a_merchants_notifications(setup, objects):
    client, _, _ = setup
    a, b = objects["a"], objects["b"]
    assert client.post("/api/notifications/read", json={"ids": objects["notes"]}, headers=b).json() == {"marked": 0}
    assert [n["id"] for n in client.get("/api/notifications", headers=b).json()] == []
    assert [n["id"] for n in client.get("/api/notifications", headers=a).json()] == objects["notes"]


# --------------------------------------------------------------------------- the sockets

def _socket_refusal(client, path: str, token: str) -> tuple[int, int]:
    """(status of the error event, close code) for a socket opened with ``token``."""
    from starlette.websockets import WebSocketDisconnect

    with client.websocket_connect(f"{path}?token={token}") as ws:
        event = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    return event.get("status"), closed.value.code


def _token(headers: dict) -> str:
    return headers.get("Authorization", "").removeprefix("Bearer ")


# who may open each socket, and the events each one takes once open
SOCKETS = {"/ws/chat": ({MERCHANT}, {"hello", "message", "typing", "seen", "ping"}),
           "/ws/agent": ({AGENT}, {"ping"})}
SOCKETIO_EVENTS = {"connect", "disconnect", "session_request", "user_uttered"}


def _routes(routes) -> list:
    """Every route, through the routers the app includes."""
    found = []
    for r in routes:
        inner = getattr(getattr(r, "original_router", None), "routes", None)
        found += _routes(inner) if inner is not None else [r]
    return found


def test_every_socket_and_event_has_an_entry(setup):
    from api.routes.realtime import HANDLERS

    client, _, _ = setup
    sockets = {r.path for r in _routes(client.app.routes) if isinstance(r, WebSocketRoute)}
    assert sockets == set(SOCKETS), f"sockets without an entry: {sockets ^ set(SOCKETS)}"
    assert set(HANDLERS) == SOCKETS["/ws/chat"][1]
    from api.main import create_server

    sio = create_server(client.app.state.settings).engineio_server
    assert set(sio.handlers["/"]) == SOCKETIO_EVENTS


def test_sockets_refuse_callers_without_a_valid_token_and_the_wrong_kind(setup):
    client, valid, bad = setup
    wrong = []
    for path, (allowed, _) in SOCKETS.items():
        for name, headers in bad.items():
            got = _socket_refusal(client, path, _token(headers))
            if got != (401, 4401):
                wrong.append(f"{path} as {name}: {got}")
        for name, headers in valid.items():
            may = name in allowed or (name == ADMIN and AGENT in allowed)
            if may:
                with client.websocket_connect(f"{path}?token={_token(headers)}") as ws:
                    ws.send_json({"type": "ping"})
                    if ws.receive_json() != {"type": "pong"}:
                        wrong.append(f"{path} as {name}: no pong")
                continue
            got = _socket_refusal(client, path, _token(headers))
            # a merchant token is no staff token (401); a staff member of the wrong role is known (403)
            expected = (403, 4403) if name in (EDITOR,) and path == "/ws/agent" else (401, 4401)
            if got != expected:
                wrong.append(f"{path} as {name}: {got}, expected {expected}")
    assert not wrong, wrong


def test_socket_events_on_another_merchants_objects_look_like_missing_ones(setup, objects):
    client, _, _ = setup
    a_conv = objects["conversation"]
    with client.websocket_connect(f"/ws/chat?token={_token(objects['b'])}") as ws:
        replies = {}
        for label, wanted in (("theirs", a_conv), ("missing", int(objects["missing"]["conversation_id"]))):
            ws.send_json({"type": "hello", "conversation_id": wanted})
            replies[label] = [ws.receive_json(), ws.receive_json()]  # hello, history
        assert replies["theirs"] == replies["missing"]
        hello_event, history = replies["theirs"]
        assert hello_event["type"] == "hello" and hello_event["merchant"]["code"] == "M10002"
        assert hello_event["conversation"]["id"] != a_conv and history["messages"] == []
        ws.send_json({"type": "seen", "ids": objects["notes"]})
        ws.send_json({"type": "message", "text": "我是B", "client_id": "b-1"})
        ws.send_json({"type": "ping"})
        while ws.receive_json() != {"type": "pong"}:
            pass
    a = objects["a"]
    assert [n["id"] for n in client.get("/api/notifications", headers=a).json()] == objects["notes"]
    texts = [m["text"] for m in client.get(f"/api/conversations/{a_conv}", headers=a).json()["messages"]]
    assert "我是B" not in texts


def test_a_socketio_session_of_another_merchant_is_a_new_conversation(setup, objects):
    """rasa-webchat names its session; B naming A's session gets a conversation of B's own."""
    import threading
    import time
    import uuid

    import socketio
    import uvicorn

    from api.main import create_server

    from ..conftest import free_port

    client, _, bad = setup
    settings = client.app.state.settings.model_copy(update={"api_port": free_port()})
    server = uvicorn.Server(uvicorn.Config(create_server(settings), host="127.0.0.1", port=settings.api_port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        session = uuid.uuid4().hex

        def say(headers: dict, text: str) -> list[dict]:
            got: list[dict] = []
            sio = socketio.Client(reconnection=False)
            sio.on("bot_uttered", lambda data: got.append(data))
            sio.connect(f"http://127.0.0.1:{settings.api_port}", socketio_path="socket.io",
                        transports=["polling"], wait_timeout=30)
            try:
                sio.emit("session_request", {"session_id": session})
                sio.emit("user_uttered", {"message": text, "customData": {"token": _token(headers)}})
                deadline = time.monotonic() + 30
                while not got and time.monotonic() < deadline:
                    time.sleep(0.05)
            finally:
                sio.disconnect()
            return got

        for name, headers in bad.items():
            got = say(headers, "查一下我的工单")
            assert got and "身份验证失败" in got[0]["text"], name
        say(objects["a"], "A 的消息")
        say(objects["b"], "B 的消息")
        ids = {code: [c["id"] for c in client.get("/api/conversations", headers=h).json()]
               for code, h in (("a", objects["a"]), ("b", objects["b"]))}
        assert not set(ids["a"]) & set(ids["b"])
        a_texts = [m["text"] for c in ids["a"]
                   for m in client.get(f"/api/conversations/{c}", headers=objects["a"]).json()["messages"]]
        b_texts = [m["text"] for c in ids["b"]
                   for m in client.get(f"/api/conversations/{c}", headers=objects["b"]).json()["messages"]]
        assert "A 的消息" in a_texts and "B 的消息" not in a_texts
        assert "B 的消息" in b_texts and "A 的消息" not in b_texts
    finally:
        server.should_exit = True
        thread.join(10)
