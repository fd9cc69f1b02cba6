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

from api import security
from api.main import create_app

from ..conftest import merchant_headers

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
}
AGENT_PREFIX, EDITOR_PREFIX = "/api/staff/", "/api/kb/"
PARAMS = {"number": "GD2611180001", "conversation_id": "1", "message_id": "1", "evidence_id": "1", "faq_id": "1",
          "row_id": "1", "canned_id": "1"}


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
