"""The service analytics page in real headless Chromium, on figures the real stack produced.

A small month is simulated through the real gateway first (devtools/seed_month.py: the bot really answers, agents
take and close conversations, merchants rate), then a knowledge editor opens /console/analytics: the three tiles
with their targets, charts drawn by Chart.js (served by the API, under the page's CSP), the page's numbers equal
to the JSON API's, drill-down and a CSV export.
"""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect

from api.services import analytics

from ..conftest import staff_login
from .conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHARTS = ["chart-daily", "chart-hourly", "chart-escalations", "chart-decisions", "chart-feedback", "chart-ratings"]


@pytest.fixture(scope="module")
def month(stack):
    from devtools.seed_month import simulate
    from devtools.vendor import ensure_package

    ensure_package()  # the chart library, as set-up fetches it
    done = simulate(stack.settings, stack.settings.api_url, merchants=10, conversations=36, seed=3, workers=4,
                    echo=lambda _msg: None)
    assert len(done) >= 36
    return done


def staff(api, username: str) -> dict:
    return staff_login(api, api.stack_settings.demo_password, username)


def sign_in(page, api, username: str = "editor01") -> None:
    page.goto(f"{api.stack_settings.api_url}/console/analytics")
    page.fill("#username", username)
    page.fill("#password", api.stack_settings.demo_password)
    page.click("#login-form button")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("个会话")


def test_the_dashboard_draws_the_months_figures_as_the_api_computes_them(page, api, month):
    sign_in(page, api)
    query = page.evaluate("window.SJZSAnalytics.query")
    expected = api.get("/api/analytics/summary", params={k: v for k, v in query.items() if v},
                       headers=staff(api, "agent01")).json()
    assert expected["totals"]["with_merchant_message"] >= 30  # the simulated month is in the default range
    assert expected["totals"]["escalated"] > 0 and expected["totals"]["rated"] > 0

    for key in ("self_service", "one_contact", "satisfaction"):
        figure = expected["headline"][key]
        tile = page.locator(f"#tile-{key}")
        expect(tile.locator(".value")).to_have_text(f"{figure['value'] * 100:.1f}%")
        expect(tile.locator(".meta")).to_contain_text(f"目标 ≥ {round(figure['target'] * 100)}%")
        expect(tile).to_have_class("tile met" if figure["met"] else "tile missed")
        assert tile.locator(".target").evaluate("e => e.style.left") == f"{round(figure['target'] * 100)}%"

    # every chart is drawn, from the same numbers
    for chart in CHARTS:
        assert page.evaluate("id => !!Chart.getChart(document.getElementById(id))", chart), chart
    drawn = page.evaluate("""() => {
        const data = id => Chart.getChart(document.getElementById(id)).data;
        return {daily: data('chart-daily').datasets[0].data, rate: data('chart-daily').datasets[1].data,
                hourly: data('chart-hourly').datasets[0].data, escalations: data('chart-escalations').datasets[0].data,
                decisions: data('chart-decisions').datasets[0].data, ratings: data('chart-ratings').datasets[0].data};
    }""")
    assert drawn["daily"] == [d["conversations"] for d in expected["daily"]]
    assert drawn["rate"] == [d["self_service_rate"] for d in expected["daily"]]
    assert drawn["hourly"] == [h["conversations"] for h in expected["hourly"]]
    assert drawn["escalations"] == [e["conversations"] for e in expected["escalations"]]
    assert drawn["decisions"] == [d["share"] for d in expected["kb_decisions"]]
    assert drawn["ratings"] == [r["conversations"] for r in expected["ratings"]]
    assert sum(drawn["daily"]) == expected["totals"]["with_merchant_message"]
    # the tables and the definitions
    expect(page.locator("#t-agents tbody tr")).to_have_count(max(1, len(expected["agents"])))
    expect(page.locator("#t-faqs tbody tr")).to_have_count(max(1, min(20, len(expected["faqs"]))))
    expect(page.locator("#definitions")).to_contain_text("自助解决率：会话里商家至少发过一条消息")
    assert page.errors == []
    page.locator("#tile-self_service").scroll_into_view_if_needed()
    screenshot(page, "analytics-dashboard")

    # drill-down from a figure to the conversations behind it
    page.locator("#tile-self_service .drill").click()
    expect(page.locator("#drill")).to_be_visible()
    behind = api.get("/api/analytics/conversations", params={**{k: v for k, v in query.items() if v},
                                                             "metric": "self_service", "outcome": "miss"},
                     headers=staff(api, "agent01")).json()
    expect(page.locator("#drill-total")).to_contain_text(f"共 {behind['total']} 条")
    expect(page.locator("#t-drill tbody tr")).to_have_count(max(1, min(100, behind["total"])))
    if behind["rows"]:
        expect(page.locator("#t-drill tbody tr").first).to_contain_text(str(behind["rows"][0]["conversation_id"]))
    expect(page.locator("#t-drill a")).to_have_count(0)  # an editor cannot open the 客服工作台: no links there
    screenshot(page, "analytics-drill-down")

    # CSV of a table, downloaded with the signed-in token
    with page.expect_download() as download:
        page.locator('button.csv[data-table="daily"]').click()
    with open(download.value.path(), encoding="utf-8-sig") as f:
        text = f.read()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [title for _, title in analytics.TABLES["daily"][1]]
    assert [int(r[1]) for r in rows[1:]] == [d["conversations"] for d in expected["daily"]]
    assert download.value.suggested_filename.startswith("每日会话_")


def test_filters_redraw_and_bad_ranges_are_explained(page, api, month):
    sign_in(page, api, "agent02")
    page.select_option("#f-agent", "agent01")
    page.click("#apply")
    expect(page.locator("#status")).to_contain_text("个会话")
    query = page.evaluate("window.SJZSAnalytics.query")
    assert query["agent"] == "agent01"
    expected = api.get("/api/analytics/summary", params={k: v for k, v in query.items() if v},
                       headers=staff(api, "agent01")).json()
    shown = page.evaluate("window.SJZSAnalytics.data.totals")
    assert shown == expected["totals"]
    assert [a["username"] for a in expected["agents"]] in ([], ["agent01"])
    # an agent's drill-down links each conversation to the 客服工作台 (/console?conversation=<id>, a new tab)
    page.locator(".drill-escalation").click()
    rows = api.get("/api/analytics/conversations", params={**{k: v for k, v in query.items() if v},
                                                           "metric": "escalation", "outcome": "all"},
                   headers=staff(api, "agent01")).json()["rows"]
    page.select_option("#drill-outcome", "all")
    if rows:
        link = page.locator("#t-drill tbody tr").first.locator("a")
        first = rows[0]["conversation_id"]
        expect(link).to_have_text(str(first))
        expect(link).to_have_attribute("href", f"/console?conversation={first}")
        expect(link).to_have_attribute("target", "_blank")

    # a range the API refuses: the reason in Chinese, the last figures stay
    page.fill("#f-start", "2031-05-01")
    page.fill("#f-end", "2031-04-01")
    page.click("#apply")
    expect(page.locator("#error")).to_have_text("开始日期不能晚于结束日期")
    screenshot(page, "analytics-bad-range")


def test_a_merchant_token_cannot_read_the_figures(api, month):
    from api.security import create_merchant_token

    token = create_merchant_token("M10001", api.stack_settings.widget_secret, 5)
    resp = api.get("/api/analytics/summary", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403 and resp.json()["detail"] == "没有权限执行此操作"
