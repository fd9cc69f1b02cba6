"""The agents' console in real headless Chromium beside a merchant's widget, against the real stack.

Two browser profiles: a merchant on the demo back-office page using the widget, and an agent signed in to
/console. The agent works as they would all day: the queue's badge, take, the bot's turns and the suggested
answers, replies both ways with typing shown, a private note, hand back or close with a rating.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import new_page, screenshot
from .test_widget_browser import Widget, staff_headers

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


class Console:
    def __init__(self, page, api, username: str):
        self.page, self.api, self.username = page, api, username

    def sign_in(self, password: str | None = None) -> Console:
        self.page.goto(f"{self.api.stack_settings.api_url}/console")
        self.page.fill("#username", self.username)
        self.page.fill("#password", password or self.api.stack_settings.demo_password)
        self.page.click("#login-form button")
        expect(self.page.locator("#app")).to_be_visible()
        expect(self.page.locator("#conn")).to_have_text("实时连接正常")
        return self

    def set_availability(self, value: str) -> None:
        self.page.select_option("#availability", value)
        expect(self.page.locator("#availability")).to_have_value(value)

    def item(self, conversation_id: int):
        return self.page.locator(f'#list li[data-id="{conversation_id}"]')


@pytest.fixture
def agent_page(browser):
    pg = new_page(browser, 1400, 900)
    yield pg
    pg.context.close()


@pytest.fixture
def offline_afterwards(api):
    """Agents this test put online go offline again: later tests expect escalations to wait in the queue."""
    yield
    for username in ("agent01", "agent02"):
        api.put("/api/staff/me/availability", json={"availability": "offline"}, headers=staff_headers(api, username))


def test_an_agent_takes_a_conversation_from_the_queue_and_hands_it_back(page, agent_page, api, offline_afterwards):
    console = Console(agent_page, api, "agent02").sign_in()
    console.set_availability("busy")  # nothing is assigned to a busy agent: it waits in the queue for a click
    w = Widget(page, api, "M10002").open()
    w.ask("保证金怎么退")
    expect(w.last_bot()).to_contain_text("保证金")
    page.locator("#sjzs-widget .head button.human").click()
    expect(page.locator("#sjzs-widget .mode")).to_have_text("正在为您转接人工客服…")

    # the queue: badge, title count, the reason
    expect(agent_page.locator("#badge-queue")).not_to_have_text("0")
    expect(agent_page).to_have_title(re.compile(r"^\(\d+\) 客服工作台"))
    item = console.item(w.conversation_id)
    expect(item).to_contain_text("商家要求转人工")
    expect(item).to_contain_text("M10002")
    agent_page.select_option("#reason-filter", "upset")  # filtered by the reason for escalating
    expect(item).to_have_count(0)
    agent_page.select_option("#reason-filter", "merchant_asked")
    expect(item).to_have_count(1)
    item.click()
    # the bot's part, summarised and in full, and answers suggested for the latest message
    expect(agent_page.locator("#summary")).to_contain_text("转人工原因：商家要求转人工")
    expect(agent_page.locator("#log .msg.bot").first).to_contain_text("保证金")
    expect(agent_page.locator("#log .msg.bot .understood").first).to_contain_text("直接回答")
    expect(agent_page.locator("#log .msg.merchant .understood").first).to_contain_text("意图 ask_question")
    agent_page.locator("#btn-take").click()
    expect(agent_page.locator("#c-mode")).to_contain_text("人工服务中")
    expect(w.rows("sys").filter(has_text="客服阿杰 已接入")).to_have_count(1)
    expect(page.locator("#sjzs-widget .mode")).to_have_text("人工客服为您服务")

    # a suggested answer, inserted, edited and sent
    expect(agent_page.locator("#suggestions li").first).to_be_visible()
    agent_page.locator("#suggestions li button", has_text="插入").first.click()
    assert agent_page.locator("#input").input_value()
    agent_page.fill("#input", "您好，我是客服阿杰。保证金退还一般 1–3 个工作日到账。")
    agent_page.click("#send")
    expect(w.rows("agent").last).to_contain_text("我是客服阿杰")

    # typing both ways, messages both ways
    page.locator("#sjzs-widget textarea").type("好的")
    expect(agent_page.locator("#typing")).to_have_text("商家正在输入…")
    page.locator("#sjzs-widget textarea").press("Enter")
    expect(agent_page.locator("#log .msg.merchant .bubble").last).to_have_text("好的")
    agent_page.locator("#input").type("请稍等")
    expect(page.locator("#sjzs-widget .typing")).to_have_text("客服正在输入…")

    # a private note: the merchant never sees it
    agent_page.locator(".side .tabs button", has_text="内部备注").click()
    agent_page.fill("#note-input", "商家着急退保证金，已告知时效")
    agent_page.click("#note-add")
    expect(agent_page.locator("#notes li").first).to_contain_text("已告知时效")
    screenshot(agent_page, "console-conversation")

    # a canned reply of the agent's own, picked with /
    agent_page.locator(".side .tabs button", has_text="常用语").click()
    agent_page.fill("#canned-title", "稍等")
    agent_page.fill("#canned-text", "好的，我这边帮您核实一下，请稍等片刻。")
    agent_page.locator("#canned-form button").click()
    expect(agent_page.locator("#canned-list li").first).to_contain_text("稍等")
    agent_page.fill("#input", "")
    agent_page.locator("#input").type("/稍")
    expect(agent_page.locator("#canned li").first).to_contain_text("帮您核实")
    agent_page.locator("#input").press("Enter")
    expect(agent_page.locator("#input")).to_have_value("好的，我这边帮您核实一下，请稍等片刻。")
    agent_page.locator("#input").press("Enter")
    expect(w.rows("agent").last).to_contain_text("帮您核实")

    # the merchant's case moved on from the console: the widget gets the 服务进度提醒 live
    agent_page.locator(".side .tabs button", has_text="商家信息").click()
    case = agent_page.locator('#profile .item[data-number="GD2611210005"]')
    case.locator("select").select_option("processing")
    case.locator("input").fill("已受理豁免申请，正在核对揽收记录")
    case.locator("button").click()
    expect(agent_page.locator("#audit")).to_contain_text("更新工单")
    expect(page.locator("#sjzs-widget .notice").last).to_contain_text("GD2611210005")

    # reload the console: nothing lost
    agent_page.reload()
    expect(agent_page.locator("#log .msg.agent").filter(has_text="我是客服阿杰")).to_have_count(1)
    expect(agent_page.locator("#notes li").first).to_contain_text("已告知时效")

    # hand back: the bot answers the next question
    agent_page.locator("#btn-release").click()
    expect(page.locator("#sjzs-widget .mode")).to_have_text("智能助手为您服务")
    w.ask("提现多久到账")
    expect(w.last_bot()).to_contain_text("提现")
    assert "已告知时效" not in str(w.history())
    assert not agent_page.errors and not page.errors


def test_an_agent_closes_and_the_merchant_rates(page, agent_page, api, offline_afterwards):
    console = Console(agent_page, api, "agent01").sign_in()
    console.set_availability("busy")
    w = Widget(page, api, "M10003").open()
    page.locator("#sjzs-widget .head button.human").click()
    console.item(w.conversation_id).click()
    agent_page.locator("#btn-take").click()
    expect(w.rows("sys").filter(has_text="客服小林 已接入")).to_have_count(1)
    agent_page.locator(".lists .tabs button", has_text="我的会话").click()
    expect(console.item(w.conversation_id)).to_be_visible()
    expect(agent_page.locator("#btn-close")).to_be_visible()
    agent_page.fill("#input", "问题已处理，祝您生意兴隆")
    agent_page.keyboard.press("Enter")
    expect(w.rows("agent").last).to_contain_text("祝您生意兴隆")
    agent_page.once("dialog", lambda d: d.accept())
    agent_page.locator("#btn-close").click()
    expect(agent_page.locator("#c-mode")).to_contain_text("已结束")
    expect(page.locator("#sjzs-widget .rate")).to_be_visible()
    page.locator("#sjzs-widget .stars button").nth(3).click()
    page.locator("#sjzs-widget .rate .go").click()
    expect(page.locator("#sjzs-widget .rate")).to_contain_text("感谢您的评价")
    conv = api.get(f"/api/conversations/{w.conversation_id}", headers=w.headers).json()
    assert conv["rating"] == 4 and conv["mode"] == "closed"
    screenshot(agent_page, "console-closed")


def test_a_link_opens_its_conversation_after_sign_in_and_other_staff_pages_need_no_second_one(
        page, agent_page, api, offline_afterwards):
    w = Widget(page, api, "M10001").open()
    w.ask("保证金怎么退")
    expect(w.last_bot()).to_contain_text("保证金")
    # the link the analytics drill-down gives: the sign-in form first, then that conversation, open
    agent_page.goto(f"{api.stack_settings.api_url}/console?conversation={w.conversation_id}")
    expect(agent_page.locator("#login")).to_be_visible()
    agent_page.fill("#username", "agent01")
    agent_page.fill("#password", api.stack_settings.demo_password)
    agent_page.click("#login-form button")
    expect(agent_page.locator("#c-merchant")).to_contain_text("M10001")
    expect(agent_page.locator("#log .msg.merchant .bubble").first).to_have_text("保证金怎么退")
    expect(agent_page).to_have_url(re.compile(rf"/console#c={w.conversation_id}$"))  # a reload keeps it open
    Console(agent_page, api, "agent01").set_availability("busy")
    # another staff page in a new tab of the same browser: signed in already, nothing in its URL
    other = agent_page.context.new_page()
    other.goto(f"{api.stack_settings.api_url}/console/analytics")
    expect(other.locator("#app")).to_be_visible()
    expect(other.locator("#me")).to_have_text("客服小林")
    expect(other.locator("#login")).to_be_hidden()
    # 退出 in one tab signs every tab out
    other.click("#logout")
    expect(agent_page.locator("#login")).to_be_visible()
    expect(agent_page.locator("#login-error")).to_have_text("已在其他页面退出登录")
    assert not agent_page.errors and not page.errors


def test_a_kb_editor_cannot_use_the_console(agent_page, api):
    agent_page.goto(f"{api.stack_settings.api_url}/console")
    agent_page.fill("#username", "editor01")
    agent_page.fill("#password", api.stack_settings.demo_password)
    agent_page.click("#login-form button")
    expect(agent_page.locator("#login-error")).to_have_text("该账号没有客服权限")
    expect(agent_page.locator("#app")).to_be_hidden()


def test_a_merchant_who_waits_too_long_leaves_a_message_and_gets_a_case(page, api, stack):
    from datetime import timedelta

    from sqlalchemy import create_engine, update

    from api.models import Conversation, utcnow

    w = Widget(page, api, "M10001").open()
    page.locator("#sjzs-widget .head button.human").click()
    expect(page.locator("#sjzs-widget .mode")).to_have_text("正在为您转接人工客服…")
    engine = create_engine(stack.settings.sqlalchemy_url)  # nobody took it for longer than the limit
    with engine.begin() as conn:
        conn.execute(update(Conversation).where(Conversation.id == w.conversation_id)
                     .values(waiting_since=utcnow() - timedelta(seconds=stack.settings.queue_overdue_seconds + 60)))
    engine.dispose()
    leave = page.locator("#sjzs-widget .row.sys .leave")
    expect(leave).to_be_visible()  # the API's queue clock told the merchant
    leave.click()
    page.locator("#sjzs-widget .leave-box textarea").fill("大促期间发货延迟被判罚，想申请豁免，请客服联系我")
    page.locator("#sjzs-widget .leave-box .go").click()
    expect(page.locator("#sjzs-widget .leave-box")).to_contain_text("工单号 GD")
    expect(w.rows("sys").filter(has_text="已收到您的留言")).to_have_count(1)
    expect(page.locator("#sjzs-widget .rate")).to_have_count(0)
    screenshot(page, "widget-leave-message")
    conv = api.get(f"/api/conversations/{w.conversation_id}", headers=w.headers).json()
    assert conv["mode"] == "closed"
    cases = api.get("/api/cases", headers=w.headers).json()
    assert any(c["title"].startswith("留言：大促期间发货延迟") for c in cases)
