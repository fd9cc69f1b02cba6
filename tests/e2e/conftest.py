"""The real stack: API, Rasa server and action server, started once for the end-to-end tests."""

from __future__ import annotations

import httpx
import pytest

from core.settings import get_settings
from devtools.prepare import ensure_database, rasa_model_path
from devtools.stack import Stack

from ..conftest import make_settings


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """Own ports and database; the Rasa model and embedding model that set-up built."""
    settings = make_settings(tmp_path_factory.mktemp("stack"))
    ensure_database(settings.sqlalchemy_url)
    lines: list[str] = []
    stack = Stack(settings, echo=lines.append, rasa_model=rasa_model_path(get_settings()))
    stack.log = lines
    stack.start(timeout=300)
    yield stack
    stack.stop()


@pytest.fixture
def api(stack):
    with httpx.Client(base_url=stack.settings.api_url, timeout=60) as client:
        yield client
