"""The FAQ workbench's API: list and figures, editing with versions, 试一试, the conflict check, import/export,
and the markdown answers the widget shows."""

from __future__ import annotations

import csv
import io
import threading
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from api.main import create_app
from api.models import Faq, FaqVersion, Feedback, KbChange, Message, Sender
from api.rendering import answer_html

from ..conftest import merchant_headers, staff_login

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def client(database):
    with TestClient(create_app(database)) as c:
        c.settings = database
        c.editor = login(c, "editor01")
        yield c


def login(client, username):
    return staff_login(client, client.settings.demo_password, username)


def db_session(settings) -> Session:
    return Session(create_engine(settings.sqlalchemy_url))


def faq_by_question(client, question: str) -> dict:
    rows = client.get("/api/kb/workbench/faqs", params={"q": question, "limit": 500}, headers=client.editor).json()
    return next(r for r in rows["items"] if r["question"] == question)


def count(settings, model) -> int:
    with db_session(settings) as db:
        return db.scalar(select(func.count()).select_from(model))


NEW = {"question": "直播间的福袋怎么设置？", "answer": "在「直播中控台 → 互动 → 福袋」里设置。", "category": "直播工具",
       "similar": ["福袋在哪里设置", "直播福袋怎么弄"], "tags": ["直播", "营销"], "status": "draft"}


# --------------------------------------------------------------------------- pages and markdown


def test_the_workbench_page_and_its_scripts_are_served_under_the_page_policy(client):
    page = client.get("/workbench")
    assert page.status_code == 200 and "知识库工作台" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text  # no inline script: the policy would block it
    for name in ("workbench.js", "workbench.css", "inbox.js", "tuning.js"):
        assert client.get(f"/workbench/static/{name}").status_code == 200
    assert 'id="tab-inbox"' in page.text and 'id="tab-tuning"' in page.text


@pytest.mark.parametrize("markdown", [
    "<script>alert(1)</script>正文",
    '<img src=x onerror="alert(1)">',
    "[点我](javascript:alert(1))",
    '<a href="javascript:alert(1)" onclick="x()">链接</a>',
    "[看](https://ok.example/ \"t\" onmouseover=alert(1))",
])
def test_markdown_answers_lose_scripts_handlers_and_javascript_links(markdown):
    tags = elements(answer_html(markdown))
    assert not [t for t, _ in tags if t in ("script", "img", "iframe")]
    attrs = [(name, value or "") for _, a in tags for name, value in a]
    assert not [n for n, _ in attrs if n.startswith("on")]
    assert not [v for n, v in attrs if n == "href" and not v.startswith(("http:", "https:", "mailto:"))]


def elements(html: str) -> list[tuple[str, list]]:
    """The real elements of ``html`` (escaped text does not count) with their attributes."""
    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collect().feed(html)
    return found


def test_markdown_links_open_in_a_new_tab_without_the_opener():
    html = answer_html("详见 **[保证金规则](https://example.com/rules)**\n\n- 第一步\n- 第二步")
    assert '<a href="https://example.com/rules"' in html
    assert 'target="_blank"' in html and 'rel="noopener noreferrer"' in html
    assert "<strong>" in html and "<li>第一步</li>" in html


def test_the_preview_and_the_bot_get_the_same_rendering(client):
    faq = client.post("/api/kb/faqs", json={**NEW, "answer": "**加粗** <b onclick=x>坏</b>", "status": "published"},
                      headers=client.editor).json()
    preview = client.post("/api/kb/workbench/render", json={"markdown": faq["answer"]}, headers=client.editor).json()
    internal = {"X-Internal-Token": client.settings.internal_token}
    served = client.get(f"/internal/kb/faqs/{faq['id']}", headers=internal).json()
    assert served["answer_html"] == preview["html"] == answer_html(faq["answer"])
    assert "<strong>加粗</strong>" in preview["html"]
    assert [t for t, _ in elements(preview["html"])] == ["p", "strong"]  # the raw <b onclick> stays text
    assert served["answer"] == faq["answer"]  # other clients keep the text


# --------------------------------------------------------------------------- the list and its figures


def test_the_list_filters_by_search_category_status_and_tag(client):
    created = client.post("/api/kb/faqs", json=NEW, headers=client.editor)
    assert created.status_code == 201
    faq_id = created.json()["id"]

    def ids(**params):
        body = client.get("/api/kb/workbench/faqs", params={"limit": 500, **params}, headers=client.editor).json()
        return {r["id"] for r in body["items"]}, body

    found, body = ids(q="直播福袋怎么弄")  # a similar question finds its FAQ
    assert found == {faq_id}
    assert "直播工具" in body["categories"] and "营销" in body["tags"]
    assert faq_id in ids(tag="营销")[0] and faq_id not in ids(tag="发票")[0]
    assert faq_id in ids(status="draft")[0] and faq_id not in ids(status="published")[0]
    assert ids(category="直播工具")[0] == {faq_id}
    everything = ids()[1]
    assert everything["total"] >= 217
    assert client.get("/api/kb/workbench/faqs", params={"status": "gone"}, headers=client.editor).status_code == 422
    assert client.get("/api/kb/workbench/faqs", headers=login(client, "agent01")).status_code == 403


def test_hits_feedback_and_offers_not_picked_come_from_the_stored_replies(client):
    a, b = faq_by_question(client, "保证金怎么退？"), faq_by_question(client, "提现多久能到账？")
    conv = client.post("/api/conversations", headers=merchant_headers(client.settings)).json()["id"]
    now = datetime.now(UTC).replace(tzinfo=None)

    def answer(faq_id, feedback=None, at=now):
        return Message(conversation_id=conv, sender=Sender.bot, text="答", feedback=feedback, created_at=at,
                       payload={"custom": {"type": "faq_answer", "faq_id": faq_id, "feedback": True}})

    def offer(*faq_ids):
        return Message(conversation_id=conv, sender=Sender.bot, text="您是想问以下哪个问题？", created_at=now,
                       payload={"buttons": [], "custom": {"type": "kb_clarify", "understood": {
                           "faqs": [{"id": i, "question": "", "score": 0.9} for i in faq_ids]}}})

    with db_session(client.settings) as db:
        db.add_all([answer(a["id"], Feedback.useful), answer(a["id"], Feedback.useless), answer(a["id"]),
                    answer(a["id"], at=now - timedelta(days=90)),        # outside the range
                    offer(a["id"], b["id"]), answer(b["id"]),             # offered both, the merchant picked b
                    offer(a["id"], b["id"]),                              # offered both, picked neither ...
                    Message(conversation_id=conv, sender=Sender.merchant, text="都不是", created_at=now),
                    Message(conversation_id=conv, sender=Sender.system, text="转人工", created_at=now)])
        db.commit()
    rows = client.get("/api/kb/workbench/faqs", params={"sort": "hits", "limit": 500},
                      headers=client.editor).json()["items"]
    got = {r["id"]: r for r in rows}
    assert (got[a["id"]]["hits"], got[a["id"]]["useful"], got[a["id"]]["useless"]) == (3, 1, 1)
    assert (got[a["id"]]["offered"], got[a["id"]]["not_picked"]) == (2, 2)
    assert (got[b["id"]]["hits"], got[b["id"]]["offered"], got[b["id"]]["not_picked"]) == (1, 2, 1)
    assert rows[0]["id"] == a["id"]  # sorted by hits
    old = (now - timedelta(days=95)).date().isoformat(), (now - timedelta(days=85)).date().isoformat()
    past = client.get("/api/kb/workbench/faqs", params={"start": old[0], "end": old[1], "limit": 500},
                      headers=client.editor).json()["items"]
    assert {r["id"]: r["hits"] for r in past}[a["id"]] == 1
    bad = client.get("/api/kb/workbench/faqs", params={"start": old[1], "end": old[0]}, headers=client.editor)
    assert bad.status_code == 422 and "开始日期" in bad.json()["detail"]


# --------------------------------------------------------------------------- versions


def test_versions_compare_and_restore_as_a_new_version(client):
    faq = client.post("/api/kb/faqs", json=NEW, headers=client.editor).json()
    changed = {**NEW, "answer": "第一行\n在「营销 → 福袋」里设置。", "similar": ["福袋在哪里设置", "福袋怎么发"],
               "version": faq["version"]}
    v2 = client.put(f"/api/kb/faqs/{faq['id']}", json=changed, headers=client.editor).json()
    published = client.post(f"/api/kb/faqs/{faq['id']}/publish", headers=client.editor).json()
    assert (v2["version"], published["version"]) == (2, 3)

    diff = client.get(f"/api/kb/faqs/{faq['id']}/versions/1/diff/3", headers=client.editor).json()
    assert diff["similar_added"] == ["福袋怎么发"] and diff["similar_removed"] == ["直播福袋怎么弄"]
    assert diff["answer_changed"] and {"op": "+", "text": "第一行"} in diff["answer"]
    assert {"op": "-", "text": NEW["answer"]} in diff["answer"]
    assert [f["field"] for f in diff["fields"]] == ["status"]

    restored = client.post(f"/api/kb/faqs/{faq['id']}/versions/1/restore", headers=client.editor).json()
    assert restored["version"] == 4 and restored["answer"] == NEW["answer"]
    assert restored["similar"] == NEW["similar"] and restored["status"] == "published"  # status unchanged
    history = client.get(f"/api/kb/faqs/{faq['id']}/versions", headers=client.editor).json()
    assert [v["version"] for v in history] == [1, 2, 3, 4]
    assert history[-1]["editor"] == "editor01" and history[-1]["snapshot"]["note"] == "恢复自版本 1"
    assert history[2]["snapshot"]["note"] == "发布"
    same = client.get(f"/api/kb/faqs/{faq['id']}/versions/1/diff/4", headers=client.editor).json()
    assert not same["answer_changed"] and not same["similar_added"] and not same["similar_removed"]
    missing = client.get(f"/api/kb/faqs/{faq['id']}/versions/1/diff/99", headers=client.editor)
    assert missing.status_code == 404 and "版本" in missing.json()["detail"]
    assert client.post(f"/api/kb/faqs/{faq['id']}/versions/99/restore", headers=client.editor).status_code == 404


def test_pasted_similar_questions_are_trimmed_and_deduplicated(client):
    body = {**NEW, "similar": ["  福袋 在哪里设置 ", "福袋在哪里设置！", "ＦＵ袋", "fu袋", "", "直播间的福袋怎么设置"]}
    faq = client.post("/api/kb/faqs", json=body, headers=client.editor).json()
    assert faq["similar"] == ["福袋 在哪里设置", "ＦＵ袋"]


# --------------------------------------------------------------------------- import and export


def import_file(client, data: bytes, name: str, dry_run: bool = True):
    ctype = XLSX if name.endswith(".xlsx") else "text/csv"
    return client.post("/api/kb/workbench/import", params={"dry_run": str(dry_run).lower()},
                       files={"file": (name, data, ctype)}, headers=client.editor)


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([["编号", "标准问题", "相似问法", "答案", "分类", "标签", "关联动作", "状态"], *rows])
    return out.getvalue().encode("utf-8")


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_export_then_import_changes_nothing_and_an_edit_shows_as_changed(client, fmt):
    exported = client.get("/api/kb/workbench/export", params={"format": fmt}, headers=client.editor)
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    total = count(client.settings, Faq)
    versions = count(client.settings, FaqVersion)
    report = import_file(client, exported.content, f"faqs.{fmt}").json()
    assert (report["unchanged"], report["new"], report["changed"], report["bad"]) == (total, 0, 0, 0)
    applied = import_file(client, exported.content, f"faqs.{fmt}", dry_run=False).json()
    assert applied["applied"] and count(client.settings, FaqVersion) == versions  # nothing written

    if fmt == "xlsx":
        wb = load_workbook(io.BytesIO(exported.content))
        wb["FAQ"]["D2"] = wb["FAQ"]["D2"].value + "\n补充一句。"
        buf = io.BytesIO()
        wb.save(buf)
        edited = buf.getvalue()
    else:
        rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
        rows[1][3] += "\n补充一句。"
        out = io.StringIO()
        csv.writer(out).writerows(rows)
        edited = out.getvalue().encode("utf-8")
    report = import_file(client, edited, f"faqs.{fmt}").json()
    assert (report["changed"], report["unchanged"]) == (1, total - 1)
    assert report["rows"][0]["line"] == 2 and report["rows"][0]["changes"] == ["答案"]


def test_an_import_with_bad_rows_reports_each_and_writes_nothing(client):
    existing = faq_by_question(client, "保证金怎么退？")
    rows = [
        ["", "新问题一？", "问法甲\n问法乙", "答案一", "新分类", "新、标签", "转人工", "已发布"],   # 2 new
        [existing["key"], "保证金怎么退？", "", "改过的答案", existing["category"], "", "", ""],  # 3 changed
        ["", "缺答案的问题", "", "", "分类", "", "", ""],                                        # 4 bad
        ["", "状态不对", "", "答", "分类", "", "", "上线"],                                        # 5 bad
        ["", "动作不对", "", "答", "分类", "", "发红包", ""],                                     # 6 bad
        ["bad key!", "编号不对", "", "答", "分类", "", "", ""],                                   # 7 bad
        ["", "新问题一？", "", "答", "分类", "", "", ""],                                          # 8 bad: repeats 2
        ["", "<script>alert(1)</script>", "", "<img src=x onerror=alert(1)>", "分类", "", "", ""],  # 9 new (text)
    ]
    before = (count(client.settings, Faq), count(client.settings, FaqVersion))
    report = import_file(client, csv_bytes(rows), "faqs.csv").json()
    assert (report["new"], report["changed"], report["bad"]) == (2, 1, 5)
    bad = {r["line"]: r["reason"] for r in report["rows"] if r["kind"] == "bad"}
    assert set(bad) == {4, 5, 6, 7, 8}
    assert "答案" in bad[4] and "状态" in bad[5] and "关联动作" in bad[6] and "编号" in bad[7] and "第 2 行" in bad[8]
    refused = import_file(client, csv_bytes(rows), "faqs.csv", dry_run=False)
    assert refused.status_code == 422 and "没有导入任何内容" in refused.json()["detail"]
    assert (count(client.settings, Faq), count(client.settings, FaqVersion)) == before

    good = [rows[0], rows[1], rows[7]]
    applied = import_file(client, csv_bytes(good), "faqs.csv", dry_run=False).json()
    assert applied["applied"] and (applied["new"], applied["changed"]) == (2, 1)
    assert count(client.settings, Faq) == before[0] + 2
    new = faq_by_question(client, "新问题一？")
    full = client.get(f"/api/kb/faqs/{new['id']}", headers=client.editor).json()
    assert full["similar"] == ["问法甲", "问法乙"] and full["tags"] == ["新", "标签"]
    assert full["status"] == "published" and full["action"] == "request_human"
    changed = client.get(f"/api/kb/faqs/{existing['id']}", headers=client.editor).json()
    assert changed["answer"] == "改过的答案"
    versions = client.get(f"/api/kb/faqs/{existing['id']}/versions", headers=client.editor).json()
    assert versions[-1]["snapshot"]["note"] == "导入" and versions[-1]["editor"] == "editor01"


def test_an_import_fails_whole_when_the_database_refuses_a_row(client, monkeypatch):
    from api.services import faqs as faq_service

    real, calls = faq_service.fill_faq, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise faq_service.Invalid("模拟写入失败")
        return real(*args, **kwargs)

    monkeypatch.setattr(faq_service, "fill_faq", failing)
    before = (count(client.settings, Faq), count(client.settings, FaqVersion), count(client.settings, KbChange))
    rows = [["", f"全有或全无 {i}", "", "答", "分类", "", "", "已发布"] for i in range(3)]
    resp = import_file(client, csv_bytes(rows), "faqs.csv", dry_run=False)
    assert resp.status_code == 422
    assert (count(client.settings, Faq), count(client.settings, FaqVersion), count(client.settings, KbChange)) == before
    assert client.get("/api/kb/workbench/import/job", headers=client.editor).json()["state"] == "idle"


def wait_for_import_job(client, import_id: int, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get("/api/kb/workbench/import/job", headers=client.editor).json()
        if job["id"] == import_id and job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"the import's index job did not finish: {job}")


def test_a_published_import_is_indexed_in_the_background_in_one_batch(client, monkeypatch):
    from knowledge_base.retriever import Retriever

    kb = client.app.state.kb
    assert kb.wait_ready(120)
    existing = faq_by_question(client, "保证金怎么退？")
    rows = [["", f"导入的第{i}个新问题怎么处理？", f"第{i}个新问题的处理办法\n第{i}个新问题找谁", f"答案{i}", "导入分类",
             "", "", "已发布"] for i in range(30)]
    rows.append([existing["key"], "保证金怎么退？", "", "改过的答案", existing["category"], "", "", ""])  # changed
    gate, entered, calls = threading.Event(), threading.Event(), []
    real = Retriever.update_many

    def held(self, faqs, **kwargs):  # the job waits here until the test has looked at it
        calls.append(len(faqs))
        entered.set()
        assert gate.wait(60)
        return real(self, faqs, **kwargs)

    monkeypatch.setattr(Retriever, "update_many", held)
    before = kb.retriever.index.faq_count
    resp = import_file(client, csv_bytes(rows), "faqs.csv", dry_run=False)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["applied"] and body["new"] == 30 and "正在后台更新" in body["message"]
    assert body["index_job"]["state"] in ("queued", "running") and body["index_job"]["faqs"] == 31
    assert entered.wait(60)
    job = client.get("/api/kb/workbench/import/job", headers=client.editor).json()
    assert job["state"] == "running" and job["id"] == body["index_job"]["id"]

    # meanwhile searches answer from the index as it was, and an edit made now is not lost
    assert kb.search("保证金怎么退？").hits[0].faq_id == existing["id"]
    assert kb.retriever.index.faq_of(kb.retriever.prepare("导入的第0个新问题怎么处理？")) is None
    first = faq_by_question(client, "导入的第0个新问题怎么处理？")
    full = client.get(f"/api/kb/faqs/{first['id']}", headers=client.editor).json()
    edited = client.put(f"/api/kb/faqs/{first['id']}", headers=client.editor, json={
        "question": full["question"], "answer": full["answer"], "category": full["category"],
        "similar": [*full["similar"], "编辑时加的问法"], "tags": full["tags"], "action": full["action"],
        "status": "published", "version": full["version"]})
    assert edited.status_code == 200, edited.text
    gate.set()

    job = wait_for_import_job(client, body["index_job"]["id"])
    assert job["state"] == "done" and job["done"] == job["total"] > 60 and job["reused"] > 0, job  # 保证金 kept its
    assert calls == [31]  # one batch for the whole import
    assert kb.retriever.index.faq_count == before + 30
    for i in (0, 17, 29):
        hit = kb.search(f"导入的第{i}个新问题怎么处理？").hits[0]
        assert hit.faq_id == faq_by_question(client, f"导入的第{i}个新问题怎么处理？")["id"]
    assert kb.retriever.index.faq_of(kb.retriever.prepare("编辑时加的问法")) == first["id"]  # the edit survived
    assert kb.search("保证金怎么退？").hits[0].faq_id == existing["id"]


@pytest.mark.parametrize(("data", "name", "phrase"), [
    (b"", "faqs.csv", "空"),
    (b"PK\x03\x04" + b"\x00garbage" * 50, "faqs.xlsx", "XLSX"),
    (b"\x00\x01\x02binary", "faqs.csv", "二进制"),
    ("标准问题,分类\n问,类\n".encode(), "faqs.csv", "缺少列：答案"),
    (b"whatever", "faqs.xls", ".xlsx"),
    (b"whatever", "faqs.pdf", ".xlsx 或 .csv"),
    ("编号,标准问题,答案,分类\n".encode("utf-16"), "faqs.csv", "二进制"),
])
def test_unreadable_files_get_a_chinese_reason(client, data, name, phrase):
    resp = import_file(client, data, name)
    assert resp.status_code == 422, resp.text
    assert phrase in resp.json()["detail"]


def test_a_gbk_csv_from_excel_is_read(client):
    data = "标准问题,答案,分类\n表格里的新问题,答案,分类\n".encode("gb18030")
    report = import_file(client, data, "faqs.csv").json()
    assert report["new"] == 1 and report["rows"][0]["question"] == "表格里的新问题"


def test_formula_like_cells_stay_text_in_exports_and_round_trip(client):
    faq = client.post("/api/kb/faqs", json={**NEW, "answer": "=HYPERLINK(\"http://evil\")", "similar": ["-福袋"]},
                      headers=client.editor).json()
    xlsx = client.get("/api/kb/workbench/export", params={"format": "xlsx"}, headers=client.editor).content
    ws = load_workbook(io.BytesIO(xlsx))["FAQ"]
    row = next(r for r in ws.iter_rows() if r[0].value == faq["key"])
    assert row[3].data_type == "s" and row[3].value.startswith("=HYPERLINK")
    text = client.get("/api/kb/workbench/export", params={"format": "csv"}, headers=client.editor).content.decode()
    assert "'=HYPERLINK" in text and "'-福袋" in text
    for fmt, data in (("xlsx", xlsx), ("csv", text.encode())):
        report = import_file(client, data, f"faqs.{fmt}").json()
        assert report["changed"] == 0 and report["bad"] == 0, report["rows"][:3]


def test_the_template_imports_as_one_new_draft(client):
    for fmt in ("xlsx", "csv"):
        tpl = client.get("/api/kb/workbench/template", params={"format": fmt}, headers=client.editor)
        assert tpl.status_code == 200
        report = import_file(client, tpl.content, f"template.{fmt}").json()
        assert (report["new"], report["bad"]) == (1, 0)
    wb = Workbook()
    wb.active.append(["问题", "回答"])
    buf = io.BytesIO()
    wb.save(buf)
    wrong = import_file(client, buf.getvalue(), "x.xlsx")
    assert wrong.status_code == 422 and "缺少列" in wrong.json()["detail"]


# --------------------------------------------------------------------------- 试一试 and the conflict check


def test_try_it_compares_the_published_kb_with_the_draft_and_leaves_the_index_alone(client):
    assert client.app.state.kb.wait_ready(timeout=180)
    faq = faq_by_question(client, "保证金怎么退？")
    full = client.get(f"/api/kb/faqs/{faq['id']}", headers=client.editor).json()
    text = "紫色长颈鹿押金怎么拿回来"
    body = {"text": text, "faq_id": faq["id"], "draft": {"question": full["question"],
                                                          "similar": [*full["similar"], text]}}
    r = client.post("/api/kb/workbench/try", json=body, headers=client.editor).json()
    live, drafted = r["published"], r["with_draft"]
    assert drafted["decision"] == "answer" and drafted["answer_faq_id"] == faq["id"]
    assert drafted["hits"][0]["draft"] and drafted["hits"][0]["phrasing"]
    assert not (live["decision"] == "answer" and live["answer_faq_id"] == faq["id"] and
                live["hits"][0]["score"] >= drafted["hits"][0]["score"])
    assert all(not h["draft"] for h in live["hits"])
    internal = {"X-Internal-Token": client.settings.internal_token}
    again = client.post("/internal/kb/search", json={"text": text, "log_unanswered": False}, headers=internal).json()
    assert again["decision"] == live["decision"]
    assert [h["faq_id"] for h in again["hits"]] == [h["faq_id"] for h in live["hits"]]

    # a new FAQ (no id yet) is tried too; and without a draft only the published side is given
    new = client.post("/api/kb/workbench/try", json={"text": "直播福袋怎么弄", "draft": {
        "question": NEW["question"], "similar": NEW["similar"]}}, headers=client.editor).json()
    assert new["with_draft"]["decision"] == "answer" and new["with_draft"]["hits"][0]["faq_id"] is None
    alone = client.post("/api/kb/workbench/try", json={"text": "保证金怎么退"}, headers=client.editor).json()
    assert alone["with_draft"] is None and alone["published"]["answer_faq_id"] == faq["id"]


def test_the_conflict_check_flags_a_phrasing_closer_to_another_faq_and_it_can_be_moved(client):
    assert client.app.state.kb.wait_ready(timeout=180)
    a, b = faq_by_question(client, "保证金怎么退？"), faq_by_question(client, "提现多久能到账？")
    full = client.get(f"/api/kb/faqs/{a['id']}", headers=client.editor).json()
    similar = [*full["similar"], "提现多久能到账"]
    found = client.post("/api/kb/workbench/conflicts", json={"faq_id": a["id"], "question": full["question"],
                                                             "similar": similar}, headers=client.editor).json()
    flagged = {c["text"]: c for c in found}
    assert "提现多久能到账" in flagged
    c = flagged["提现多久能到账"]
    assert c["other_faq_id"] == b["id"] and c["other_question"] == "提现多久能到账？"
    assert c["other_score"] > c["own_score"]
    assert len(found) <= len(full["similar"]) // 4  # most of the FAQ's own phrasings sit with it
    assert all(c["other_score"] > c["own_score"] for c in found)

    saved = client.put(f"/api/kb/faqs/{a['id']}", json={**full, "similar": similar, "version": full["version"]},
                       headers=client.editor).json()
    moved = client.post("/api/kb/workbench/move-similar", json={"text": "提现多久能到账", "from_faq_id": a["id"],
                                                                "to_faq_id": b["id"]}, headers=client.editor)
    assert moved.status_code == 200, moved.text
    assert "提现多久能到账" not in moved.json()["source"]["similar"]
    assert moved.json()["source"]["version"] == saved["version"] + 1
    target = moved.json()["target"]
    assert target["similar"] == client.get(f"/api/kb/faqs/{b['id']}", headers=client.editor).json()["similar"]
    same = client.post("/api/kb/workbench/move-similar", json={"text": "x", "from_faq_id": a["id"], "to_faq_id": a["id"]},
                       headers=client.editor)
    assert same.status_code == 422
