"""The real stack (API, Rasa server, action server) started once per session, and a real browser."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from core.settings import REPO_ROOT, get_settings
from devtools.prepare import rasa_model_path
from devtools.stack import Stack

from ..conftest import fresh_database, make_settings


@pytest.fixture(scope="session")
def stack(tmp_path_factory, templates, template_index):
    """The real three processes, started once per test session: own ports, a copy of the seeded SQLite
    template, the index of that data copied in, the Rasa model set-up trained and the unmodified model."""
    tmp = tmp_path_factory.mktemp("stack")
    settings = make_settings(tmp)
    shutil.copytree(template_index, settings.index_dir)
    with fresh_database("sqlite", tmp, templates) as url:
        settings = settings.model_copy(update={"database_url": url})
        lines: list[str] = []
        stack = Stack(settings, echo=lines.append, rasa_model=rasa_model_path(get_settings()))
        stack.log = lines
        stack.start(timeout=300)
        try:
            yield stack
        finally:
            stack.stop()


@pytest.fixture
def api(stack):
    with httpx.Client(base_url=stack.settings.api_url, timeout=60) as client:
        client.stack_settings = stack.settings
        yield client


# --------------------------------------------------------------------------- a real browser (Debian's Chromium)

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright; no browser is ever downloaded."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=90_000)  # a loaded 2-core machine; the waits end as soon as the page is right

    assert Path(CHROMIUM).exists(), "Chromium missing: .ci/run installs Debian's chromium package"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser profile per test; a screenshot of the end state is kept in test-artifacts/."""
    pg = new_page(browser)
    context = pg.context
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        if not pg.is_closed():
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    finally:
        context.close()


@pytest.fixture
def editor_page(browser):
    """A second browser window, for a member of staff beside the merchant's page."""
    pg = new_page(browser, 1440, 960)
    yield pg
    pg.context.close()


def new_page(browser, width: int = 1280, height: int = 860):
    """A page in a browser profile of its own; the page's script errors are collected in ``page.errors``."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    context.set_default_timeout(90_000)
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    return pg


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
