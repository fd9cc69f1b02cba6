"""The service API on SQLite and PostgreSQL: isolation between merchants, roles, appeals, the FAQ store."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from api.main import create_app

from ..conftest import merchant_headers, staff_login

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%test\n"


@pytest.fixture
def client(database):
    with TestClient(create_app(database)) as c:
        c.settings = database
        yield c


def m(client, code="M10001"):
    return merchant_headers(client.settings, code)


def staff(client, username="agent01"):
    return staff_login(client, client.settings.demo_password, username)


# --------------------------------------------------------------------------- merchants see only their own


OWN = [  # (method, path) of M10001's resources, each of which M10002 must not see
    ("GET", "/api/cases/GD2611180001"),
    ("GET", "/api/penalties/CF2611150001"),
    ("GET", "/api/appeals/SS2611160001"),
    ("POST", "/api/appeals/SS2611160001/withdraw"),
]
MISSING = {
    "/api/cases/GD2611180001": "/api/cases/GD9999999999",
    "/api/penalties/CF2611150001": "/api/penalties/CF9999999999",
    "/api/appeals/SS2611160001": "/api/appeals/SS9999999999",
    "/api/appeals/SS2611160001/withdraw": "/api/appeals/SS9999999999/withdraw",
}


@pytest.mark.parametrize(("method", "path"), OWN)
def test_another_merchants_record_is_indistinguishable_from_a_missing_one(client, method, path):
    theirs = client.request(method, path, headers=m(client, "M10002"))
    missing = client.request(method, MISSING[path], headers=m(client, "M10002"))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert client.request("GET", path.removesuffix("/withdraw"), headers=m(client)).status_code == 200


def test_lists_hold_only_the_merchants_own_records(client):
    for path, field, own_prefix in [("/api/cases", "number", "GD"), ("/api/penalties", "number", "CF"),
                                    ("/api/appeals", "number", "SS")]:
        mine = {r[field] for r in client.get(path, headers=m(client, "M10001")).json()}
        theirs = {r[field] for r in client.get(path, headers=m(client, "M10002")).json()}
        assert mine and theirs and not mine & theirs
        assert all(n.startswith(own_prefix) for n in mine)


def test_evidence_upload_to_another_merchants_appeal_looks_missing_and_writes_nothing(client):
    resp = client.post("/api/appeals/SS2611160001/evidence", headers=m(client, "M10002"),
                       files={"file": ("a.png", PNG, "image/png")})
    assert resp.status_code == 404
    assert client.get("/api/appeals/SS2611160001", headers=m(client)).json()["evidence"] == []


def test_case_progress_shows_status_timeline_and_expected_time(client):
    body = client.get("/api/cases/GD2611180001", headers=m(client)).json()
    assert body["status_label"] == "处理中"
    assert [s["status"] for s in body["timeline"]] == ["submitted", "processing"]
    assert body["expected_done_at"] is not None


@pytest.mark.parametrize("raw", ["gd2611180001", "ＧＤ２６１１１８０００１", "GD-2611180001", " GD2611180001 "])
def test_numbers_are_accepted_as_merchants_type_them(client, raw):
    resp = client.get(f"/api/cases/{raw}", headers=m(client))
    assert resp.status_code == 200 and resp.json()["number"] == "GD2611180001"


@pytest.mark.parametrize("raw", ["123", "SS2611160001", "GD12", "<img src=x onerror=alert(1)>", "GD" + "9" * 40])
def test_malformed_numbers_get_a_chinese_reason(client, raw):
    resp = client.get(f"/api/cases/{raw}", headers=m(client))
    assert resp.status_code == 422
    assert "格式不对" in resp.json()["detail"]


# --------------------------------------------------------------------------- roles


STAFF_ONLY = [("GET", "/api/staff/cases"), ("GET", "/api/staff/appeals"), ("GET", "/api/kb/faqs"),
              ("GET", "/api/kb/unanswered"), ("GET", "/api/staff/users")]


@pytest.mark.parametrize(("method", "path"), STAFF_ONLY)
def test_staff_endpoints_refuse_merchant_tokens_and_strangers(client, method, path):
    assert client.request(method, path, headers=m(client)).status_code == 403
    assert client.request(method, path).status_code == 401


def test_each_role_reaches_only_its_own_endpoints(client):
    agent, editor, admin = staff(client, "agent01"), staff(client, "editor01"), staff(client, "admin")
    assert client.get("/api/staff/cases", headers=agent).status_code == 200
    assert client.get("/api/kb/faqs", headers=agent).status_code == 403
    assert client.get("/api/kb/faqs", headers=editor).status_code == 200
    assert client.get("/api/staff/cases", headers=editor).status_code == 403
    assert client.get("/api/staff/users", headers=agent).status_code == 403
    for path in ("/api/staff/cases", "/api/kb/faqs", "/api/staff/users"):
        assert client.get(path, headers=admin).status_code == 200
    assert client.get("/api/cases", headers=agent).status_code == 403  # merchant-only


def test_login_with_a_wrong_password_is_refused_in_chinese(client):
    resp = client.post("/api/auth/login", json={"username": "agent01", "password": "wrong"})
    assert resp.status_code == 401 and resp.json()["detail"] == "用户名或密码错误"


def test_admin_creates_a_staff_account_that_can_log_in(client):
    admin = staff(client, "admin")
    body = {"username": "agent09", "display_name": "新客服", "password": "a-long-password", "role": "agent"}
    assert client.post("/api/staff/users", json=body, headers=admin).status_code == 201
    assert client.post("/api/staff/users", json=body, headers=admin).status_code == 409
    login = client.post("/api/auth/login", json={"username": "agent09", "password": "a-long-password"})
    assert login.status_code == 200 and login.json()["role"] == "agent"


# --------------------------------------------------------------------------- appeals


def file(client, penalty="CF2611200003", code="M10001", **extra):
    body = {"penalty_number": penalty, "reason": "third_party",
            "description": "物流单号是快递员手写录错的，已附快递公司更正说明。", **extra}
    return client.post("/api/appeals", json=body, headers=m(client, code))


def test_filing_an_appeal_gives_a_number_an_sla_and_a_timeline(client):
    resp = file(client)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["number"].startswith("SS") and body["status"] == "pending" and body["status_label"] == "待审核"
    assert body["penalty_number"] == "CF2611200003" and body["sla_due_at"]
    assert [s["status"] for s in body["timeline"]] == ["pending"]
    penalty = client.get("/api/penalties/CF2611200003", headers=m(client)).json()
    assert penalty["can_appeal_now"] is False and body["number"] in penalty["cannot_appeal_reason"]


@pytest.mark.pg
def test_one_open_appeal_per_penalty_then_again_after_withdrawal(client):
    first = file(client).json()["number"]
    again = file(client)
    assert again.status_code == 409 and "请勿重复提交" in again.json()["detail"]
    withdrawn = client.post(f"/api/appeals/{first}/withdraw", headers=m(client))
    assert withdrawn.json()["status"] == "withdrawn"
    assert client.post(f"/api/appeals/{first}/withdraw", headers=m(client)).status_code == 409
    assert file(client).status_code == 201


@pytest.mark.pg
def test_concurrent_filings_for_one_penalty_create_exactly_one_appeal(client):
    results: list[int] = []
    barrier = threading.Barrier(4)

    def go():
        barrier.wait()
        results.append(file(client).status_code)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201, 409, 409, 409]
    open_ones = [a for a in client.get("/api/appeals?open=true", headers=m(client)).json()
                 if a["penalty_number"] == "CF2611200003"]
    assert len(open_ones) == 1


@pytest.mark.parametrize(
    ("penalty", "code", "status", "phrase"),
    [
        ("CF2611010002", "M10001", 409, "申诉期限"),      # deadline passed
        ("CF2610200005", "M10002", 409, "不支持申诉"),     # not appealable
        ("CF2611180004", "M10001", 404, "查不到"),         # another merchant's penalty
        ("CF123", "M10001", 422, "格式不对"),
    ],
)
def test_appeals_that_break_a_rule_are_explained(client, penalty, code, status, phrase):
    resp = file(client, penalty, code)
    assert resp.status_code == status and phrase in resp.json()["detail"]


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [({"description": "太短"}, "太短"), ({"description": "字" * 2500}, "太长"), ({"reason": "bored"}, "理由"),
     ({"penalty_number": None}, "二选一")],
)
def test_invalid_appeal_input_is_refused_and_nothing_is_created(client, extra, phrase):
    before = len(client.get("/api/appeals", headers=m(client)).json())
    resp = file(client, **extra)
    assert resp.status_code == 422 and phrase in resp.json()["detail"]
    assert len(client.get("/api/appeals", headers=m(client)).json()) == before


def test_reviewer_asks_for_evidence_and_the_merchants_upload_resumes_the_review(client):
    number = file(client).json()["number"]
    agent = staff(client)
    asked = client.post(f"/api/staff/appeals/{number}/review", headers=agent,
                        json={"status": "need_more", "note": "请补充快递公司的更正说明"})
    assert asked.json()["status"] == "need_more"
    assert client.get(f"/api/appeals/{number}", headers=m(client)).json()["reviewer_note"] == "请补充快递公司的更正说明"
    up = client.post(f"/api/appeals/{number}/evidence", headers=m(client),
                     files={"file": ("更正说明.pdf", PDF, "application/pdf")})
    assert up.status_code == 201, up.text
    body = client.get(f"/api/appeals/{number}", headers=m(client)).json()
    assert body["status"] == "reviewing" and [e["filename"] for e in body["evidence"]] == ["更正说明.pdf"]
    download = client.get(f"/api/appeals/{number}/evidence/{up.json()['id']}", headers=m(client))
    assert download.content == PDF
    done = client.post(f"/api/staff/appeals/{number}/review", headers=agent, json={"status": "approved"})
    assert done.json()["status_label"] == "通过"
    late = client.post(f"/api/appeals/{number}/evidence", headers=m(client), files={"file": ("b.png", PNG, "image/png")})
    assert late.status_code == 409


@pytest.mark.parametrize(
    ("name", "data", "ctype", "status", "phrase"),
    [
        ("empty.png", b"", "image/png", 422, "空的"),
        ("notes.png", b"just some text pretending", "image/png", 415, "只支持"),
        ("evil.png", b"<script>alert(1)</script>", "image/png", 415, "只支持"),
        ("photo.pdf", PNG, "application/pdf", 415, "不符"),
        ("big.png", PNG + b"\x00" * (10 * 1024 * 1024), "image/png", 413, "太大"),
    ],
)
def test_bad_evidence_files_are_refused_and_nothing_is_stored(client, name, data, ctype, status, phrase):
    number = file(client).json()["number"]
    resp = client.post(f"/api/appeals/{number}/evidence", headers=m(client), files={"file": (name, data, ctype)})
    assert resp.status_code == status and phrase in resp.json()["detail"]
    assert client.get(f"/api/appeals/{number}", headers=m(client)).json()["evidence"] == []
    folder = client.settings.evidence_dir / number
    assert not folder.exists() or not any(folder.iterdir())


@pytest.mark.pg
def test_a_failed_database_write_leaves_no_orphan_file(client, monkeypatch):
    from sqlalchemy.orm import Session

    number = file(client).json()["number"]

    def broken_flush(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Session, "flush", broken_flush)
    with pytest.raises(RuntimeError):
        client.post(f"/api/appeals/{number}/evidence", headers=m(client), files={"file": ("a.png", PNG, "image/png")})
    monkeypatch.undo()
    folder = client.settings.evidence_dir / number
    assert not folder.exists() or not any(folder.iterdir())
    assert client.get(f"/api/appeals/{number}", headers=m(client)).json()["evidence"] == []


# --------------------------------------------------------------------------- cases and conversations


def test_an_agents_progress_update_appears_in_the_merchants_timeline(client):
    agent = staff(client)
    resp = client.post("/api/staff/cases/GD2611200003/events", headers=agent,
                       json={"status": "processing", "note": "已收到营业执照，正在重开发票"})
    assert resp.status_code == 200
    body = client.get("/api/cases/GD2611200003", headers=m(client)).json()
    assert body["status_label"] == "处理中" and body["timeline"][-1]["note"] == "已收到营业执照，正在重开发票"
    bad = client.post("/api/staff/cases/GD2611200003/events", headers=agent, json={"status": "flying", "note": "x"})
    assert bad.status_code == 422


def test_feedback_and_rating_on_the_merchants_own_conversation(client):
    client.post("/api/chat", json={"text": "你好"}, headers=m(client))  # Rasa is down: a system message is kept
    conv = client.get("/api/conversations", headers=m(client)).json()[0]
    detail = client.get(f"/api/conversations/{conv['id']}", headers=m(client)).json()
    assert [x["sender"] for x in detail["messages"]] == ["merchant", "system"]
    other = client.get(f"/api/conversations/{conv['id']}", headers=m(client, "M10002"))
    assert other.status_code == 404
    msg_id = detail["messages"][0]["id"]
    assert client.post(f"/api/messages/{msg_id}/feedback", json={"value": "useful"}, headers=m(client)).status_code == 422
    assert client.post(f"/api/conversations/{conv['id']}/rating", json={"rating": 6}, headers=m(client)).status_code == 422
    assert client.post(f"/api/conversations/{conv['id']}/rating", json={"rating": 5},
                       headers=m(client, "M10002")).status_code == 404
    rated = client.post(f"/api/conversations/{conv['id']}/rating", json={"rating": 5, "comment": "很快"},
                        headers=m(client))
    assert rated.json()["rating"] == 5 and rated.json()["mode"] == "closed"
    assert client.post(f"/api/conversations/{conv['id']}/rating", json={"rating": 4}, headers=m(client)).status_code == 409


# --------------------------------------------------------------------------- FAQ store


def test_faq_edits_reach_search_at_once_and_keep_their_history(client):
    assert client.app.state.kb.wait_ready(timeout=180)
    editor = staff(client, "editor01")
    internal = {"X-Internal-Token": client.settings.internal_token}

    def top(text):
        return client.post("/internal/kb/search", json={"text": text}, headers=internal).json()["hits"][0]["faq_id"]

    body = {"question": "店铺装修模板在哪里更换？", "answer": "进入「店铺 → 装修」选择模板后点击发布。",
            "category": "店铺装修", "similar": ["怎么换店铺首页模板", "装修模版更换"], "status": "published"}
    created = client.post("/api/kb/faqs", json=body, headers=editor)
    assert created.status_code == 201, created.text
    faq = created.json()
    assert top("店铺首页的装修模板怎么换") == faq["id"]

    stale = client.put(f"/api/kb/faqs/{faq['id']}", json={**body, "version": faq["version"] - 1}, headers=editor)
    assert stale.status_code == 409
    client.put(f"/api/kb/faqs/{faq['id']}", json={**body, "answer": "新答案", "version": faq["version"]},
               headers=editor)
    client.post(f"/api/kb/faqs/{faq['id']}/archive", headers=editor)
    assert top("店铺首页的装修模板怎么换") != faq["id"]
    history = client.get(f"/api/kb/faqs/{faq['id']}/versions", headers=editor).json()
    assert [v["version"] for v in history] == [1, 2, 3]
    assert [v["snapshot"]["status"] for v in history] == ["published", "published", "archived"]
    assert history[1]["snapshot"]["answer"] == "新答案" and history[0]["editor"] == "editor01"


def test_hot_questions_are_readable_by_merchants_and_set_by_editors(client):
    hot = client.get("/api/kb/hot-questions", headers=m(client)).json()
    assert hot and hot[0]["question"] == "保证金怎么退？"
    editor = staff(client, "editor01")
    ids = [h["faq_id"] for h in hot][::-1][:3]
    assert [h["faq_id"] for h in client.put("/api/kb/hot-questions", json=ids, headers=editor).json()] == ids
    assert client.put("/api/kb/hot-questions", json=ids, headers=m(client)).status_code == 403


def test_unanswered_questions_are_logged_for_the_knowledge_team(client):
    assert client.app.state.kb.wait_ready(timeout=180)
    internal = {"X-Internal-Token": client.settings.internal_token, "X-Merchant-Id": "M10001"}
    resp = client.post("/internal/kb/search", json={"text": "红烧肉怎么做才好吃", "log_unanswered": True},
                       headers=internal)
    assert resp.json()["decision"] == "no_answer"
    rows = client.get("/api/kb/unanswered", headers=staff(client, "editor01")).json()
    assert [r["text"] for r in rows] == ["红烧肉怎么做才好吃"]


@pytest.mark.pg
def test_a_clash_of_random_appeal_numbers_is_retried_not_reported_as_a_duplicate(client, monkeypatch):
    from api import numbers

    taken = file(client, "CF2611200003").json()["number"]
    draws = iter([taken, taken, "SS2611250000001"])
    monkeypatch.setattr(numbers, "new_number", lambda prefix: next(draws))
    resp = file(client, "CF2611210006", "M10003")
    assert resp.status_code == 201, resp.text
    assert resp.json()["number"] == "SS2611250000001"
