"""A site already using the published rasa-webchat 1.0.1 widget points it at our server and gets answers."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest
from playwright.sync_api import expect

from core.settings import REPO_ROOT

from ..conftest import free_port, merchant_headers
from .conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
BUNDLE = REPO_ROOT / "var" / "webchat" / "rasa-webchat-1.0.1.js"

HOST_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>某商家后台</title></head>
<body><h1>某商家后台</h1>
<script src="/rasa-webchat.js"></script>
<script>
  WebChat.default({
    socketUrl: "%(api)s",
    customData: {token: "%(token)s"},
    initPayload: "/get_started",
    title: "商家助手",
    params: {storage: "session"}
  }, null);
</script></body></html>
"""


@pytest.fixture
def host_site(tmp_path, api):
    """The merchant's own site on another origin, serving the published bundle and its embed code."""
    assert BUNDLE.exists(), f"{BUNDLE} missing: make setup downloads the published rasa-webchat bundle"
    token = merchant_headers(api.stack_settings, "M10001")["Authorization"].removeprefix("Bearer ")
    (tmp_path / "index.html").write_text(HOST_PAGE % {"api": api.stack_settings.api_url, "token": token},
                                         encoding="utf-8")
    (tmp_path / "rasa-webchat.js").write_bytes(BUNDLE.read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_published_rasa_webchat_gets_an_answer(page, api, host_site):
    page.goto(host_site)
    page.locator(".rw-launcher").click()
    responses = page.locator(".rw-message .rw-response")
    expect(responses.first).to_contain_text("商家助手")  # the welcome, answering webchat's init payload
    page.locator("textarea.rw-new-message").fill("保证金怎么退")
    page.locator(".rw-send").click()
    expect(responses.last).to_contain_text("退还保证金")
    screenshot(page, "rasa-webchat-answer")
    # The conversation went through our gateway like any other: stored, under the token's merchant.
    headers = merchant_headers(api.stack_settings, "M10001")
    latest = api.get("/api/conversations", headers=headers).json()[0]
    messages = api.get(f"/api/conversations/{latest['id']}", headers=headers).json()["messages"]
    assert messages[0]["text"] == "保证金怎么退" and "退还保证金" in messages[1]["text"]


def test_a_bad_token_gets_a_clear_answer_not_silence(page, api, host_site, tmp_path):
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    token = merchant_headers(api.stack_settings, "M10001")["Authorization"].removeprefix("Bearer ")
    (tmp_path / "index.html").write_text(html.replace(token, "not-a-token"), encoding="utf-8")
    page.goto(host_site)
    page.locator(".rw-launcher").click()
    expect(page.locator(".rw-message .rw-response").first).to_contain_text("身份验证失败")
