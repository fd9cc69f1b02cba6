"""The process supervisor with stand-in processes (the real ones are covered end to end)."""

import sys
import time

import pytest

from devtools.stack import Service, Stack, StackError

from ..conftest import free_port


def server(port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]


def stack_of(settings, *services: Service) -> tuple[Stack, list[str]]:
    lines: list[str] = []
    stack = Stack(settings, echo=lines.append)
    stack.services = list(services)
    return stack, lines


def test_healthy_services_start_log_with_prefix_and_stop(settings):
    p1, p2 = free_port(), free_port()
    stack, lines = stack_of(
        settings,
        Service("one", server(p1), f"http://127.0.0.1:{p1}/"),
        Service("two", server(p2), f"http://127.0.0.1:{p2}/"),
    )
    stack.start(timeout=30)
    try:
        assert all(svc.check() for svc in stack.services)
    finally:
        stack.stop()
    assert all(svc.proc.poll() is not None for svc in stack.services)
    assert any(line.startswith("one") and "|" in line for line in lines)


def test_a_service_that_dies_is_named_with_its_reason_and_the_others_stop(settings):
    port = free_port()
    crash = [sys.executable, "-c", "import sys; print('配置文件缺失'); sys.exit(3)"]
    stack, _ = stack_of(
        settings,
        Service("good", server(port), f"http://127.0.0.1:{port}/"),
        Service("broken", crash, "http://127.0.0.1:1/"),
    )
    with pytest.raises(StackError) as info:
        stack.start(timeout=30)
    assert info.value.service == "broken"
    assert "退出码 3" in str(info.value)
    assert "配置文件缺失" in str(info.value)
    good = stack.services[0]
    assert good.proc.poll() is not None  # stopped, not left behind


def test_watch_reports_a_service_dying_later(settings):
    port = free_port()
    stack, _ = stack_of(settings, Service("short", [sys.executable, "-c",
                        f"import http.server,threading;s=http.server.HTTPServer(('127.0.0.1',{port}),"
                        "http.server.SimpleHTTPRequestHandler);threading.Timer(1.5,s.shutdown).start();"
                        "s.serve_forever()"], f"http://127.0.0.1:{port}/"))
    stack.start(timeout=30)
    started = time.monotonic()
    with pytest.raises(StackError) as info:
        stack.watch()
    stack.stop()
    assert info.value.service == "short"
    assert time.monotonic() - started < 20


def test_no_secret_is_on_any_command_line(settings):
    """Process listings are readable by every user of the host: secrets travel in the environment."""
    from pathlib import Path

    stack = Stack(settings, echo=lambda _line: None, rasa_model=Path("model.tar.gz"))
    secrets = [settings.rasa_token, settings.internal_token, settings.secret_key, settings.widget_secret]
    for svc in stack.services:
        assert not [s for s in secrets if any(s in arg for arg in svc.argv)], svc.name
    assert stack.env["SJZS_RASA_TOKEN"] == settings.rasa_token
