"""Knowledge-base changes reach every API instance, and a synonym change re-embeds only what it changes.

Two ``KnowledgeBase`` instances share one database (and real Redis where it says so), as two API processes
behind nginx do; edits go through the same service calls and ``refresh_faq`` / ``set_synonyms`` as the routes.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import make_engine, make_sessionmaker
from api.kb_service import KnowledgeBase, saved_index_is_current
from api.main import create_app
from api.models import Faq, FaqStatus, KbChange
from api.services import faqs as faq_service
from core.settings import Settings
from knowledge_base.normalize import normalize

from ..conftest import free_port

REDIS = "redis://127.0.0.1:6379/0"
NEW_FAQ = dict(question="直播间福袋的中奖名额怎么设置", answer="在直播中控台的福袋设置里填写中奖人数即可。",
               category="直播", similar=["福袋中奖人数在哪里改", "直播福袋能设几个中奖名额"], tags=[], action=None)


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "") -> float:
    """Poll until ``condition()`` is true; returns the seconds it took (the deadline only stops a hung test)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"gave up waiting: {what}"
        time.sleep(0.02)
    return time.monotonic() - started


@contextmanager
def instance(settings: Settings) -> Iterator[KnowledgeBase]:
    """One API process's knowledge base, started and loaded."""
    engine = make_engine(settings.sqlalchemy_url, pool_size=8)
    kb = KnowledgeBase(settings, make_sessionmaker(engine))
    kb.start()
    try:
        assert kb.wait_ready(300), kb.status
        yield kb
    finally:
        kb.close()
        engine.dispose()


def second(settings: Settings, tmp_path, **overrides) -> Settings:
    """The settings of another instance on the same database: its own copy of the index."""
    folder = tmp_path / f"index-{uuid.uuid4().hex[:6]}"
    shutil.copytree(settings.index_dir, folder)
    return settings.model_copy(update={"kb_index_dir": folder, **overrides})


@contextmanager
def db_session(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.sqlalchemy_url, pool_size=2)
    try:
        with Session(engine, expire_on_commit=False) as db:
            yield db
    finally:
        engine.dispose()


def publish_new_faq(settings: Settings, kb: KnowledgeBase) -> int:
    """What POST /api/kb/faqs with status published does on instance ``kb``."""
    with db_session(settings) as db:
        faq = faq_service.save_faq(db, None, editor="editor01", status=FaqStatus.published, **NEW_FAQ)
        db.commit()
        faq_id = faq.id
    kb.refresh_faq(faq_id)
    return faq_id


def set_status(settings: Settings, kb: KnowledgeBase, faq_id: int, status: FaqStatus) -> None:
    with db_session(settings) as db:
        faq_service.set_status(db, faq_service.get_faq(db, faq_id), status, "editor01")
        db.commit()
    kb.refresh_faq(faq_id)


def put_synonyms(settings: Settings, kb: KnowledgeBase, table: dict[str, str]):
    """What PUT /api/kb/synonyms does on instance ``kb``."""
    with db_session(settings) as db:
        revision = faq_service.replace_synonyms(db, table)
        db.commit()
    return kb.set_synonyms(table, revision)


def current_synonyms(settings: Settings) -> dict[str, str]:
    with db_session(settings) as db:
        return faq_service.synonyms(db)


def head_revision(settings: Settings) -> int:
    with db_session(settings) as db:
        return faq_service.kb_revision(db)


def top(kb: KnowledgeBase, text: str) -> int | None:
    hits = kb.search(text).hits
    return hits[0].faq_id if hits else None


def channel() -> str:
    return f"sjzs-kb-test-{uuid.uuid4().hex[:8]}"  # other people's stacks may share this Redis


class WatchedEmbedder:
    """The served embedder, recording what the synonym job embeds and able to hold the job at a gate."""

    def __init__(self, inner):
        self.inner = inner
        self.texts: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.active = self.most = 0
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, texts, batch_size=32):
        if threading.current_thread().name != "kb-synonyms":
            return self.inner.encode(texts, batch_size)
        with self._lock:
            self.active += 1
            self.most = max(self.most, self.active)
            self.texts.extend(texts)
        self.entered.set()
        try:
            assert self.gate.wait(120)
            return self.inner.encode(texts, batch_size)
        finally:
            with self._lock:
                self.active -= 1


def watch(kb: KnowledgeBase) -> WatchedEmbedder:
    watched = WatchedEmbedder(kb.retriever.embedder)
    kb.retriever.embedder = watched  # the job's new retriever takes the serving one's embedder
    return watched


# --------------------------------------------------------------------------- between instances


@pytest.mark.pg
def test_an_faq_published_on_one_instance_is_found_on_the_other_through_redis(database, tmp_path):
    ch = channel()
    one = database.model_copy(update={"redis_url": REDIS, "kb_sync_channel": ch})
    two = second(database, tmp_path, redis_url=REDIS, kb_sync_channel=ch, kb_sync_seconds=0)  # Redis only
    with instance(one) as kb1, instance(two) as kb2:
        wait_for(lambda: kb2._feed is not None and kb2._feed.subscribed, what="instance 2 subscribed")
        faq_id = publish_new_faq(database, kb1)
        assert top(kb1, NEW_FAQ["question"]) == faq_id  # the instance that made the change has it at once
        wait_for(lambda: top(kb2, NEW_FAQ["question"]) == faq_id, what="the FAQ on instance 2")
        assert kb2.search(NEW_FAQ["similar"][0]).hits[0].faq_id == faq_id
        assert kb2.health()["index"]["revision"] == head_revision(database)  # nothing left to catch up

        set_status(database, kb1, faq_id, FaqStatus.archived)
        wait_for(lambda: top(kb2, NEW_FAQ["question"]) != faq_id, what="the archived FAQ gone from instance 2")
        assert faq_id not in [h.faq_id for h in kb2.search(NEW_FAQ["question"]).hits]


@pytest.mark.pg
def test_an_instance_that_missed_the_messages_catches_up_from_the_database(database, tmp_path):
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # Redis unreachable: every message is lost
    one = database.model_copy(update={"redis_url": nowhere})
    two = second(database, tmp_path, redis_url=nowhere, kb_sync_seconds=0.2)
    with instance(one) as kb1, instance(two) as kb2:
        faq_id = publish_new_faq(database, kb1)
        table = {**current_synonyms(database), "云仓": "云端仓库"}
        put_synonyms(database, kb1, table)
        wait_for(lambda: top(kb2, NEW_FAQ["question"]) == faq_id, what="the FAQ caught up on instance 2")
        wait_for(lambda: dict(kb2.retriever.synonyms) == table, timeout=120, what="the synonyms on instance 2")
        assert kb2.search("云仓发货慢").normalized == "云端仓库发货慢"
        assert kb2.synonym_job().state == "done"
        wait_for(lambda: kb2.health()["index"]["revision"] == head_revision(database), what="instance 2's marker")


def test_an_instance_behind_the_database_does_not_save_a_fingerprint_its_index_does_not_match(database, tmp_path):
    one = database.model_copy(update={"kb_sync_seconds": 0})
    two = second(database, tmp_path, kb_sync_seconds=0)  # no Redis, no catching up: instance 2 stays behind
    with instance(one) as kb1, instance(two) as kb2:
        publish_new_faq(database, kb1)
        faqs = sorted(kb2.retriever.index._by_faq)
        set_status(database, kb2, faqs[0], FaqStatus.published)  # instance 2's own edit schedules a save
        kb2._save()
        with db_session(database) as db:
            current = saved_index_is_current(db, database.embedding_model, "query: ", two.index_dir)
        assert not current  # had it saved, the next start would trust an index missing instance 1's FAQ
        assert kb2.sync_now() == 1
        kb2._save()
        with db_session(database) as db:
            assert saved_index_is_current(db, database.embedding_model, "query: ", two.index_dir)


def test_a_publish_during_heavy_querying_fails_no_search_and_leaves_other_answers_alone(database, tmp_path):
    ch = channel()
    one = database.model_copy(update={"redis_url": REDIS, "kb_sync_channel": ch})
    two = second(database, tmp_path, redis_url=REDIS, kb_sync_channel=ch)
    with db_session(database) as db:
        faqs = db.scalars(select(Faq).where(Faq.status == FaqStatus.published).order_by(Faq.id)).all()
        edited = faqs[0]
        questions = {f.question: f.id for f in faqs[1:200:10]}  # 20 unrelated FAQs, asked word for word
    with instance(one) as kb1, instance(two) as kb2:
        wait_for(lambda: kb2._feed is not None and kb2._feed.subscribed, what="instance 2 subscribed")
        stop, failures, wrong, counts = threading.Event(), [], [], []

        def ask() -> None:
            n = 0
            while not stop.is_set():
                for text, faq_id in questions.items():
                    try:
                        result = kb2.search(text)
                    except Exception as exc:  # noqa: BLE001 - every failure is the finding
                        failures.append(repr(exc))
                        continue
                    n += 1
                    if result.decision != "answer" or result.hits[0].faq_id != faq_id:
                        wrong.append((text, result.decision, result.hits[0].faq_id if result.hits else None))
            counts.append(n)

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            new_id = publish_new_faq(database, kb1)
            with db_session(database) as db:
                faq = faq_service.get_faq(db, edited.id)
                faq_service.save_faq(db, faq, editor="editor01", question=faq.question, answer=faq.answer,
                                     category=faq.category, similar=[*faq.similar, "这条是并发测试时加的问法"],
                                     tags=list(faq.tags or []), action=faq.action, status=faq.status)
                db.commit()
            kb1.refresh_faq(edited.id)
            table = {**current_synonyms(database), "云仓": "云端仓库"}
            put_synonyms(database, kb1, table)
            wait_for(lambda: top(kb2, NEW_FAQ["question"]) == new_id, what="the new FAQ on instance 2")
            wait_for(lambda: top(kb2, "这条是并发测试时加的问法") == edited.id, what="the edit on instance 2")
            wait_for(lambda: dict(kb2.retriever.synonyms) == table, timeout=120, what="the synonyms")
        finally:
            stop.set()
            for t in threads:
                t.join(60)
    assert not failures, failures[:5]
    assert not wrong, wrong[:5]
    assert len(counts) == 4 and min(counts) > 0


def test_messages_of_another_database_on_a_shared_redis_are_ignored(database):
    with instance(database.model_copy(update={"kb_sync_seconds": 0})) as kb:
        start = kb.health()["index"]["revision"]
        faqs = sorted(kb.retriever.index._by_faq)
        with db_session(database) as db:  # a change committed here that this instance has not applied yet
            faq_service.set_status(db, faq_service.get_faq(db, faqs[0]), FaqStatus.archived, "editor01")
            db.commit()
        kb._on_message({"origin": "elsewhere", "revision": start + 1, "faq_id": faqs[1]})  # not what it changed
        kb._on_message({"origin": "elsewhere", "revision": start + 2, "faq_id": faqs[0]})  # not committed here
        assert kb.health()["index"]["revision"] == start  # still owed: the catch-up will apply it
        assert faqs[0] in kb.retriever.index._by_faq
        kb._on_message({"origin": "elsewhere", "revision": start + 1, "faq_id": faqs[0]})
        assert kb.health()["index"]["revision"] == start + 1
        assert faqs[0] not in kb.retriever.index._by_faq


@pytest.mark.pg
def test_concurrent_changes_commit_consecutive_revisions(database):
    """The revision is bumped under a row lock: no two changes share one, none is skipped (or catching up could
    jump over a change committed late)."""
    start = head_revision(database)
    engine = make_engine(database.sqlalchemy_url, pool_size=8)
    sessions = make_sessionmaker(engine)
    with sessions() as db:
        ids = db.scalars(select(Faq.id).where(Faq.status == FaqStatus.published).order_by(Faq.id).limit(6)).all()
    barrier, got, failures = threading.Barrier(len(ids)), [], []

    def edit(faq_id: int) -> None:
        try:
            with sessions() as db:
                barrier.wait(30)
                faq = faq_service.get_faq(db, faq_id)
                got.append(faq_service.set_status(db, faq, FaqStatus.published, "editor01") and
                           faq_service.last_change(db, faq_id))
                db.commit()
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(repr(exc))

    threads = [threading.Thread(target=edit, args=(faq_id,)) for faq_id in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with sessions() as db:
        changes = faq_service.kb_changes_since(db, start)
        head = faq_service.kb_revision(db)
    engine.dispose()
    assert not failures, failures
    assert sorted(got) == list(range(start + 1, start + len(ids) + 1)) == [c.revision for c in changes]
    assert head == start + len(ids)
    assert sorted(c.faq_id for c in changes) == sorted(ids)


# --------------------------------------------------------------------------- synonyms


def test_a_synonym_change_embeds_only_the_phrasings_it_changes(database):
    with instance(database.model_copy(update={"kb_sync_seconds": 0})) as kb:
        watched = watch(kb)
        old = dict(kb.retriever.synonyms)
        new = {**old, "云仓": "云端仓库"}
        with db_session(database) as db:
            phrasings = [p for f in faq_service.list_faqs(db, FaqStatus.published) for p in f.phrasings]
        before = {normalize(p, old) for p in phrasings}
        changed = {normalize(p, new) for p in phrasings if normalize(p, new) != normalize(p, old)}
        assert 0 < len(changed) < 100

        put_synonyms(database, kb, new)
        wait_for(lambda: kb.synonym_job().state == "done", timeout=120, what="the job")
        assert set(watched.texts) == changed - before  # nothing else was embedded again
        assert len(watched.texts) == len(set(watched.texts))
        job = kb.synonym_job()
        assert (job.done, job.total) == (len(changed - before), len(changed - before))
        assert job.reused == sum(1 for p in phrasings if normalize(p, new) in before) > 6000
        assert job.started_at <= job.finished_at
        assert dict(kb.retriever.synonyms) == new
        assert len(kb.retriever.index) == len(phrasings)
        assert set(kb.retriever.index.vectors_of({normalize(p, new) for p in phrasings})) == \
            {normalize(p, new) for p in phrasings}
        # the vectors kept and the new ones are those a full re-embedding gives
        sample = sorted(changed)[:3] + sorted(before & {normalize(p, new) for p in phrasings})[:3]
        stored = kb.retriever.index.vectors_of(sample)
        fresh = watched.inner.encode(sample)
        for text, vector in zip(sample, fresh):
            assert float(stored[text] @ vector) > 0.999, text


def test_searches_use_the_old_table_during_the_job_and_the_latest_of_two_tables_wins(database):
    with instance(database.model_copy(update={"kb_sync_seconds": 0})) as kb:
        watched = watch(kb)
        old = dict(kb.retriever.synonyms)
        answer = kb.search("保证金怎么退").hits[0].faq_id
        watched.gate.clear()
        first = put_synonyms(database, kb, {**old, "抬头": "开票抬头"})
        assert first.state in ("queued", "running")
        assert watched.entered.wait(120)  # the job is embedding, held at the gate
        assert kb.synonym_job().state == "running"
        assert kb.search("抬头写错了怎么办").normalized == "抬头写错了怎么办"  # still the old table
        assert kb.search("保证金怎么退").hits[0].faq_id == answer

        latest = {**old, "抬头": "单位名称"}
        queued = put_synonyms(database, kb, latest)
        assert (queued.state, queued.superseded) == ("queued", 1)
        assert kb.search("抬头写错了怎么办").normalized == "抬头写错了怎么办"
        watched.gate.set()
        wait_for(lambda: kb.synonym_job().state == "done", timeout=120, what="the job")
        job = kb.synonym_job()
        assert job.revision == head_revision(database)
        assert dict(kb.retriever.synonyms) == latest
        assert kb.search("抬头写错了怎么办").normalized == "单位名称写错了怎么办"
        assert not any("开票抬头" in t for t in watched.texts[-job.total:])  # the superseded table never landed
        assert watched.most == 1  # one job at a time
        assert [t.name for t in threading.enumerate()].count("kb-synonyms") == 1
        assert kb.search("保证金怎么退").hits[0].faq_id == answer


def test_put_synonyms_answers_at_once_and_the_job_reports_its_progress(database):
    with TestClient(create_app(database)) as client:
        token = client.post("/api/auth/login", json={"username": "editor01", "password": database.demo_password})
        editor = {"Authorization": f"Bearer {token.json()['access_token']}"}
        assert client.app.state.kb.wait_ready(300)
        assert client.get("/api/kb/synonyms/job", headers=editor).json()["state"] == "idle"
        table = client.get("/api/kb/synonyms", headers=editor).json() + [{"term": "云仓", "canonical": "云端仓库"}]
        resp = client.put("/api/kb/synonyms", json=table, headers=editor)
        assert resp.status_code == 202, resp.text
        body = resp.json()
        assert {"term": "云仓", "canonical": "云端仓库"} in body["synonyms"]
        assert body["job"]["state"] in ("queued", "running", "done")
        assert body["job"]["terms"] == len(table)
        wait_for(lambda: client.get("/api/kb/synonyms/job", headers=editor).json()["state"] == "done", 120)
        job = client.get("/api/kb/synonyms/job", headers=editor).json()
        assert job["done"] == job["total"] > 0 and job["finished_at"] and "已生效" in job["message"]
        assert client.app.state.kb.search("云仓发货慢").normalized == "云端仓库发货慢"
        with db_session(database) as db:
            last = db.scalars(select(KbChange).order_by(KbChange.revision.desc())).first()
            assert (last.kind, last.faq_id, last.revision) == ("synonyms", None, job["revision"])

        created = client.post("/api/kb/faqs", json={**NEW_FAQ, "status": "published"}, headers=editor).json()
        assert head_revision(database) == job["revision"] + 1  # bumped with the FAQ's own transaction
        assert client.app.state.kb.search(NEW_FAQ["question"]).hits[0].faq_id == created["id"]


# --------------------------------------------------------------------------- imports


def import_published(settings: Settings, kb: KnowledgeBase, n: int):
    """What POST /api/kb/workbench/import (applied) does on instance ``kb``: n new published FAQs."""
    from api.services import faq_io

    rows = [["", f"批量导入的第{i}个问题怎么办", f"第{i}个导入问题的办法", f"答案{i}", "导入", "", "", "已发布"]
            for i in range(n)]
    with db_session(settings) as db:
        report = faq_io.read_import(db, faq_io.write_table(rows, "csv"), "faqs.csv")
        written = faq_io.apply_import(db, report, "editor01")
        db.commit()
    return written, kb.index_import(written)


def test_an_import_is_indexed_by_one_background_job_and_reaches_the_other_instance(database, tmp_path, monkeypatch):
    from knowledge_base.retriever import Retriever

    gate, real = threading.Event(), Retriever.update_many

    def held(self, faqs, **kwargs):
        assert gate.wait(60)
        return real(self, faqs, **kwargs)

    monkeypatch.setattr(Retriever, "update_many", held)
    one = database.model_copy(update={"kb_sync_seconds": 0.2})
    two = second(database, tmp_path, kb_sync_seconds=0.2)  # no Redis: instance 2 catches up from the database
    with instance(one) as kb1, instance(two) as kb2:
        written, job = import_published(database, kb1, 20)
        assert job.state == "queued" and job.faqs == 20
        revisions = sorted(written.values())
        assert revisions == list(range(revisions[0], revisions[0] + 20))  # one each
        with db_session(database) as db:
            assert {c.faq_id for c in faq_service.kb_changes_since(db, revisions[0] - 1)} == set(written)
        wait_for(lambda: kb1.import_job().state == "running", what="the job running")
        kb1._save()  # the index lacks the import while the job runs: it must not be saved as current
        with db_session(database) as db:
            assert not saved_index_is_current(db, database.embedding_model, "query: ", one.index_dir)
        gate.set()
        wait_for(lambda: kb1.import_job().state == "done", timeout=120, what="the import's index job")
        questions = {faq_id: f"批量导入的第{i}个问题怎么办" for i, faq_id in enumerate(sorted(written))}
        assert all(top(kb1, q) == faq_id for faq_id, q in questions.items())
        wait_for(lambda: all(top(kb2, q) == faq_id for faq_id, q in questions.items()), timeout=120,
                 what="the import on instance 2")
        wait_for(lambda: kb2.health()["index"]["revision"] == head_revision(database), what="instance 2's marker")
        assert kb1.health()["index"]["revision"] == head_revision(database)
        kb1._save()
        with db_session(database) as db:
            assert saved_index_is_current(db, database.embedding_model, "query: ", one.index_dir)
