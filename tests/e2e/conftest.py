"""The real stack: API, Rasa server and action server, started once per database backend."""

from __future__ import annotations

import httpx
import pytest

from core.settings import get_settings
from devtools.prepare import ensure_database, rasa_model_path
from devtools.stack import Stack

from ..conftest import fresh_database, make_settings


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory):
    """Own ports and database; the Rasa model and embedding model that set-up built."""
    tmp = tmp_path_factory.mktemp(f"stack-{request.param}")
    with fresh_database(request.param, tmp) as url:
        settings = make_settings(tmp, database_url=url)
        ensure_database(url, demo_password=settings.demo_password)
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
