"""Shared fixtures: an isolated settings object and a migrated, seeded database."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from core.settings import REPO_ROOT, Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def model_path() -> str:
    """The embedding model set-up built (``make setup``)."""
    path = Settings(_env_file=None).model_path
    assert (Path(path) / "modules.json").exists(), f"embedding model missing at {path}: run make setup"
    return path


def make_settings(tmp: Path, **overrides) -> Settings:
    """Settings for a test: its own SQLite file and ports nobody listens on."""
    values = dict(
        var_dir=tmp, database_url=f"sqlite:///{tmp / 'test.db'}",
        embedding_model=str(REPO_ROOT / "var" / "models" / "multilingual-e5-small"),
        api_port=free_port(), rasa_port=free_port(), action_port=free_port(),
        internal_token="test-internal", rasa_token="test-rasa",
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def database(settings: Settings) -> str:
    """A migrated database with the demo data and seed FAQs."""
    from devtools.prepare import ensure_database

    ensure_database(settings.sqlalchemy_url)
    return settings.sqlalchemy_url


@pytest.fixture(scope="session")
def embedder(model_path):
    from knowledge_base.embedder import Embedder

    return Embedder(model_path, prefix="query: ", threads=2)
