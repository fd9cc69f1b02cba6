"""The migrations on both databases: an empty database goes to head and back down to nothing, then up again."""

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from api.db import make_engine
from core.settings import REPO_ROOT

from ..conftest import fresh_empty_database


@pytest.mark.pg
def test_upgrade_downgrade_upgrade(backend, tmp_path):
    with fresh_empty_database(backend, tmp_path) as url:
        cfg = Config(str(REPO_ROOT / "alembic.ini"))
        cfg.attributes["url"] = url
        engine = make_engine(url)
        command.upgrade(cfg, "head")
        tables = set(inspect(engine).get_table_names())
        assert {"merchants", "conversations", "messages", "faqs", "appeals", "notifications"} <= tables
        command.downgrade(cfg, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        command.upgrade(cfg, "head")
        assert set(inspect(engine).get_table_names()) == tables
        engine.dispose()
