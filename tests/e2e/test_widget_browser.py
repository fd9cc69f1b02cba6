"""The merchant's chat widget in real headless Chromium, against the real stack (API, Rasa, action server).

Each test opens the demo back-office page as a demo merchant, in a fresh conversation, and uses the widget as a
merchant would: clicks, typing, uploads, reloads, a dropped connection.
"""

from __future__ import annotations

import re
import struct
import zlib

import httpx
import pytest
from playwright.sync_api import expect

from ..conftest import merchant_headers, staff_login
from .conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


class Widget:
    """The widget on the demo back-office page, seen through the browser."""

    def __init__(self, page, api, merchant: str):
        self.page, self.api, self.merchant = page, api, merchant
        self.headers = merchant_headers(api.stack_settings, merchant)
        # A conversation of its own: earlier tests may have left this merchant's last one with an agent.
        resp = api.post("/api/conversations", headers=self.headers)
        assert resp.status_code == 201, resp.text
        self.conversation_id = resp.json()["id"]
        self.log = page.locator("#sjzs-widget .log")

    def open(self) -> Widget:
        self.page.goto(f"{self.api.stack_settings.api_url}/demo?merchant={self.merchant}")
        self.page.locator("#sjzs-widget .launcher").click()
        expect(self.page.locator("#sjzs-widget .panel")).to_be_visible()
        expect(self.page.locator("#sjzs-widget .mode")).to_have_text("智能助手为您服务")
        expect(self.page.locator("#sjzs-widget .hot button").first).to_be_visible()
        return self

    def ask(self, text: str) -> None:
        box = self.page.locator("#sjzs-widget textarea")
        box.fill(text)
        box.press("Enter")

    def rows(self, kind: str):
        return self.page.locator(f"#sjzs-widget .log .row.{kind}:not(.welcome)")

    def last_bot(self):
        return self.rows("bot").last

    def wait_settled(self) -> None:
        """Every message the merchant sent is confirmed by the server."""
        expect(self.page.locator("#sjzs-widget .row.me.pending")).to_have_count(0)

    def history(self) -> list[dict]:
        body = self.api.get(f"/api/conversations/{self.conversation_id}", headers=self.headers).json()
        return body["messages"]


def kb_decision(api, text: str) -> dict:
    s = api.stack_settings
    resp = api.post("/internal/kb/search", json={"text": text, "k": 3},
                    headers={"X-Internal-Token": s.internal_token, "X-Merchant-Id": "M10001"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def rasa_intent(api, text: str) -> str:
    s = api.stack_settings
    resp = httpx.post(f"{s.rasa_url}/model/parse", params={"token": s.rasa_token}, json={"text": text}, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()["intent"]["name"]


def staff_headers(api, username: str = "agent01") -> dict:
    return staff_login(api, api.stack_settings.demo_password, username)


def png_bytes(width: int = 4, height: int = 4) -> bytes:
    """A small valid PNG, made here so the test needs no fixture files."""
    raw = b"".join(b"\x00" + b"\xff\x80\x40" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- answers


def test_ask_an_faq_see_suggestions_get_the_answer_and_rate_it(page, api):
    w = Widget(page, api, "M10001").open()
    box = page.locator("#sjzs-widget textarea")
    box.type("保证金怎么", delay=30)
    suggestions = page.locator("#sjzs-widget .sugg.show button")
    expect(suggestions.first).to_be_visible()
    assert any("保证金" in t for t in suggestions.all_inner_texts())
    screenshot(page, "widget-suggestions")
    box.fill("保证金怎么退")
    box.press("Enter")
    answer = w.last_bot()
    expect(answer).to_contain_text("退还保证金")
    expect(answer.locator(".fb")).to_contain_text("这个回答对您有帮助吗")
    answer.locator(".fb button.useful").click()
    expect(answer.locator(".fb")).to_contain_text("感谢您的反馈")
    stored = [m for m in w.history() if m["sender"] == "bot"]
    assert stored[-1]["feedback"] == "useful"
    screenshot(page, "widget-faq-answer")
    assert page.errors == []


def test_clicking_a_hot_question_asks_it(page, api):
    w = Widget(page, api, "M10001").open()
    chip = page.locator("#sjzs-widget .hot button").first
    question = chip.inner_text()
    hot = api.get("/api/kb/hot-questions", headers=w.headers).json()
    assert question == hot[0]["question"]  # the knowledge team's list, in its order
    chip.click()
    expect(w.rows("me").last).to_have_text(question)
    expect(w.last_bot().locator(".bubble")).not_to_be_empty()
    assert w.history()[0]["text"] == question


def test_picking_a_did_you_mean_choice_answers_it(page, api):
    candidates = ["保证金的事情咋弄", "钱的问题", "那个罚款的事", "店铺分数怎么看", "退款的问题", "发票那个咋整"]
    vague = next((q for q in candidates
                  if kb_decision(api, q)["decision"] == "clarify" and rasa_intent(api, q) == "ask_question"), None)
    assert vague is not None, "none of the vague questions gets a 您是想问 from the retriever"
    options = [h["question"] for h in kb_decision(api, vague)["hits"]]
    w = Widget(page, api, "M10001").open()
    w.ask(vague)
    choice = w.last_bot()
    expect(choice).to_contain_text("您是想问")
    buttons = choice.locator(".btns button")
    expect(buttons.first).to_be_visible()
    picked = buttons.first.inner_text()
    assert picked in options
    buttons.first.click()
    expect(w.rows("me").last).to_have_text(picked)
    expect(w.last_bot().locator(".fb")).to_be_visible()  # an FAQ answer, with 有用/没用
    screenshot(page, "widget-did-you-mean")


def test_traditional_characters_and_full_width_text_get_the_same_answer(page, api):
    w = Widget(page, api, "M10001").open()
    w.ask("保證金怎麼退？？")
    expect(w.last_bot()).to_contain_text("退还保证金")


def test_script_in_a_message_is_shown_as_text(page, api):
    w = Widget(page, api, "M10001").open()
    evil = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
    w.ask(evil)
    expect(w.rows("me").last.locator(".bubble")).to_have_text(evil)
    w.wait_settled()
    assert page.title() != "pwned"
    assert page.locator("#sjzs-widget .log img").count() == 0


# --------------------------------------------------------------------------- self-service


def test_looking_up_a_cases_progress_with_a_button(page, api):
    w = Widget(page, api, "M10002").open()
    w.ask("查一下我的工单进度")
    listing = w.last_bot()
    case_button = listing.locator(".btns button", has_text="GD2611190004")
    expect(case_button).to_be_visible()
    case_button.click()
    reply = w.last_bot()
    expect(reply).to_contain_text("GD2611190004")
    expect(reply).to_contain_text("处理中")
    expect(reply).to_contain_text("纠纷结束后 1 个工作日内解冻")
    screenshot(page, "widget-progress")


def test_filing_an_appeal_and_uploading_an_image(page, api, tmp_path):
    w = Widget(page, api, "M10002").open()
    w.ask("我要申诉")
    w.last_bot().locator(".btns button", has_text="CF2611180004").click()
    w.last_bot().locator(".btns button", has_text="买家恶意行为").click()
    expect(w.last_bot()).to_contain_text("说明")
    w.ask("买家收货后故意损坏商品再申请退款，我们有发货前的打包视频和聊天记录可以证明")
    w.last_bot().locator(".btns button", has_text="确认提交").click()
    done = w.last_bot()
    expect(done).to_contain_text("申诉已提交")
    number = re.search(r"SS\d+", done.inner_text()).group(0)
    try:
        upload = done.locator(".upload input[type=file]")
        wrong = tmp_path / "说明.txt"
        wrong.write_text("不是图片", encoding="utf-8")
        upload.set_input_files(str(wrong))
        expect(done.locator(".upload .err")).to_contain_text("不支持的文件类型")
        huge = tmp_path / "录像.pdf"
        huge.write_bytes(b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024 + 1))
        upload.set_input_files(str(huge))
        expect(done.locator(".upload .err").last).to_contain_text("超过 10 MB")
        image = tmp_path / "打包视频截图.png"
        image.write_bytes(png_bytes())
        upload.set_input_files(str(image))
        expect(done.locator(".upload .ok")).to_have_text("已上传")
        screenshot(page, "widget-appeal-upload")
        appeal = api.get(f"/api/appeals/{number}", headers=w.headers).json()
        assert appeal["penalty_number"] == "CF2611180004" and appeal["reason"] == "buyer_malice"
        assert [e["filename"] for e in appeal["evidence"]] == ["打包视频截图.png"]

        # The reviewer asks for more: the reminder arrives live, with an upload of its own.
        resp = api.post(f"/api/staff/appeals/{number}/review", headers=staff_headers(api),
                        json={"status": "need_more", "note": "请补充买家签收后的开箱照片"})
        assert resp.status_code == 200, resp.text
        card = page.locator("#sjzs-widget .row.notice").last
        expect(card).to_contain_text("需补充材料")
        pdf = tmp_path / "开箱照片.pdf"
        pdf.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
        card.locator(".upload input[type=file]").set_input_files(str(pdf))
        expect(card.locator(".upload .ok")).to_have_text("已上传")
        screenshot(page, "widget-appeal-need-more")
        appeal = api.get(f"/api/appeals/{number}", headers=w.headers).json()
        assert [e["filename"] for e in appeal["evidence"]] == ["打包视频截图.png", "开箱照片.pdf"]
        assert appeal["status"] == "reviewing"  # new material puts it back in review
    finally:  # leave the penalty appealable for the other tests
        api.post(f"/api/appeals/{number}/withdraw", headers=w.headers)


def test_asking_for_a_human_an_agent_replies_then_the_merchant_rates(page, api):
    w = Widget(page, api, "M10003").open()
    page.locator("#sjzs-widget .head button.human").click()
    expect(page.locator("#sjzs-widget .mode")).to_have_text("正在为您转接人工客服…")
    expect(w.rows("sys").filter(has_text="已转人工")).to_have_count(1)
    agent = staff_headers(api)
    assert api.post(f"/api/staff/conversations/{w.conversation_id}/take", headers=agent).status_code == 200
    expect(page.locator("#sjzs-widget .mode")).to_have_text("人工客服为您服务")
    resp = api.post(f"/api/staff/conversations/{w.conversation_id}/reply", headers=agent,
                    json={"text": "您好，我是客服小林，您的问题我来跟进。"})
    assert resp.status_code == 200, resp.text
    person = w.rows("agent").last
    expect(person).to_contain_text("我是客服小林")
    expect(person.locator(".who")).to_have_text("人工客服 · 客服小林")
    w.ask("好的，谢谢")
    w.wait_settled()
    page.locator("#sjzs-widget .head button.end").click()
    page.locator("#sjzs-widget .stars button").nth(4).click()
    page.locator("#sjzs-widget .rate textarea").fill("客服很耐心")
    page.locator("#sjzs-widget .rate .go").click()
    expect(page.locator("#sjzs-widget .rate")).to_contain_text("感谢您的评价")
    screenshot(page, "widget-handoff-rating")
    conv = api.get(f"/api/conversations/{w.conversation_id}", headers=w.headers).json()
    assert conv["rating"] == 5 and conv["mode"] == "closed"
    texts = [m["text"] for m in conv["messages"] if m["sender"] == "merchant"]
    assert texts == ["转人工", "好的，谢谢"]


# --------------------------------------------------------------------------- history and connection


def test_history_survives_a_reload(page, api):
    w = Widget(page, api, "M10001").open()
    w.ask("提现多久能到账")
    expect(w.last_bot()).to_contain_text("到账")
    w.wait_settled()
    before = w.log.locator(".row[data-id]").count()
    page.reload()
    page.locator("#sjzs-widget .launcher").click()
    expect(w.rows("me")).to_have_count(1)
    expect(w.rows("me").first).to_have_text("提现多久能到账")
    expect(w.log.locator(".row[data-id]")).to_have_count(before)  # nothing lost, nothing doubled
    screenshot(page, "widget-after-reload")


def test_a_message_sent_while_the_connection_is_down_arrives_once_after_reconnecting(page, api, stack):
    w = Widget(page, api, "M10001").open()
    w.ask("提现多久能到账")
    expect(w.last_bot()).to_contain_text("到账")
    stack.stop_service("api")  # the server goes away: the connection really drops
    try:
        expect(page.locator("#sjzs-widget .banner")).to_contain_text("正在重新连接")
        w.ask("发票怎么开")
        expect(w.rows("me").last).to_have_class(re.compile("pending"))
        screenshot(page, "widget-reconnecting")
    finally:
        stack.start_service("api")
    w.wait_settled()  # it reconnected by itself and sent what was waiting
    expect(page.locator("#sjzs-widget .banner")).to_be_hidden()
    expect(w.rows("bot").last).to_contain_text("发票")
    mine = [m["text"] for m in w.history() if m["sender"] == "merchant"]
    assert mine == ["提现多久能到账", "发票怎么开"]
    expect(w.rows("me")).to_have_count(2)
    expect(w.log.locator(".row[data-id]")).to_have_count(len(w.history()))


def test_progress_notifications_arrive_live_and_on_the_next_open(page, api, browser):
    w = Widget(page, api, "M10003").open()
    agent = staff_headers(api)
    resp = api.post("/api/staff/cases/GD2611220006/events", headers=agent,
                    json={"status": "processing", "note": "已安排专人核实，预计 2 个工作日内处理完毕"})
    assert resp.status_code == 200, resp.text
    card = page.locator("#sjzs-widget .row.notice").last
    expect(card).to_contain_text("服务进度提醒")
    expect(card).to_contain_text("GD2611220006")
    expect(card).to_contain_text("处理中")
    screenshot(page, "widget-notification-live")
    card.locator("button", has_text="查看进度").click()
    expect(w.last_bot()).to_contain_text("GD2611220006")
    page.close()

    # The widget is closed: the reminder waits, then shows when the merchant opens it again.
    resp = api.post("/api/staff/cases/GD2611220006/events", headers=agent,
                    json={"status": "need_info", "note": "请补充店铺后台截图"})
    assert resp.status_code == 200, resp.text
    waiting = api.get("/api/notifications", headers=w.headers).json()
    assert [n["number"] for n in waiting] == ["GD2611220006"] and "待补充资料" in waiting[0]["title"]
    later = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        page2 = later.new_page()
        page2.set_default_timeout(90_000)
        Widget(page2, api, "M10003").open()
        card = page2.locator("#sjzs-widget .row.notice").last
        expect(card).to_contain_text("待补充资料")
        screenshot(page2, "widget-notification-next-open")
        with httpx.Client(base_url=api.stack_settings.api_url, timeout=30) as client:
            for _ in range(50):
                if client.get("/api/notifications", headers=w.headers).json() == []:
                    break
                page2.wait_for_timeout(200)
            assert client.get("/api/notifications", headers=w.headers).json() == []  # seen in the open widget
    finally:
        later.close()


def test_the_widget_fills_a_phone_screen(page, api):
    page.set_viewport_size({"width": 375, "height": 740})
    w = Widget(page, api, "M10001").open()
    box = page.locator("#sjzs-widget .panel").bounding_box()
    assert box["width"] == 375 and box["height"] == 740
    w.ask("你好")
    expect(w.last_bot().locator(".bubble")).not_to_be_empty()
    screenshot(page, "widget-phone")
