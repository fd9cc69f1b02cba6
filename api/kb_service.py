"""The knowledge base as the API serves it: the retriever, loaded in the background, kept on disk."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from core.settings import REPO_ROOT, Settings
from knowledge_base import (
    Embedder,
    FaqIndex,
    MeanEmbedder,
    Result,
    Retriever,
    Thresholds,
    load_models,
    serving,
)
from knowledge_base.embedder import identity, model_folders
from knowledge_base.normalize import NORMALIZE_VERSION
from knowledge_base.retriever import Conflict

from . import crud
from .models import Faq, FaqStatus, KbChange
from .services import faqs as faq_service

log = logging.getLogger("api.kb")
THRESHOLDS_FILE = REPO_ROOT / "data" / "kb_thresholds.json"


@dataclass
class KbStatus:
    state: str = "loading"  # loading | ready | error
    detail: str = ""
    model: str = ""
    load_seconds: float = 0.0
    source: str = ""  # "disk" or "rebuilt"
    promoted_at: str = ""  # when the tuning job promoted the served model ("" for the unmodified one)


@lru_cache(maxsize=2)
def load_embedder(path: str, prefix: str, threads: int) -> Embedder | MeanEmbedder:
    """One model (or comma-separated models, averaged) per process, however many apps (tests) ask for it."""
    return load_models(path, prefix=prefix, threads=threads)


def thresholds_for(model_name: str, path: Path = THRESHOLDS_FILE, lexical: float | None = None,
                   model_path: str = "") -> Thresholds:
    """The calibrated thresholds of this model, or the defaults.

    A tuned model carries its own (kb_training.tune writes them into its first folder); the unmodified model's
    are in data/kb_thresholds.json (devtools.kb calibrate). ``lexical``: the thresholds calibrated for another
    lexical weight of the calibration grid (comparisons).
    """
    for folder in model_folders(model_path)[:1]:
        own = Path(folder) / serving.THRESHOLDS_FILE
        if own.exists():
            path = own
    try:
        values = json.loads(path.read_text(encoding="utf-8"))[model_name]
        if lexical is not None and lexical != values.get("lexical", 0.0):
            values = {**values["calibration"]["lexical_grid"][str(float(lexical))], "lexical": lexical}
        return Thresholds(answer=values["answer"], margin=values["margin"], clarify=values["clarify"],
                          lexical=values.get("lexical", 0.0))
    except (OSError, ValueError, KeyError):
        return Thresholds()


def data_fingerprint(db: Session, embedder: Embedder, synonyms: dict[str, str]) -> str:
    """Changes whenever the indexed content would: model, normalisation, synonyms, published FAQ versions."""
    return fingerprint_of(db, embedder.fingerprint, embedder.prefix, synonyms)


def fingerprint_of(db: Session, model_fingerprint: str, prefix: str, synonyms: dict[str, str]) -> str:
    h = hashlib.sha256()
    h.update(f"{model_fingerprint}|{prefix}|{NORMALIZE_VERSION}|".encode())
    h.update(json.dumps(sorted(synonyms.items()), ensure_ascii=False).encode())
    rows = db.execute(select(Faq.id, Faq.version).where(Faq.status == FaqStatus.published).order_by(Faq.id))
    for faq_id, version in rows:
        h.update(f"{faq_id}:{version};".encode())
    return h.hexdigest()[:20]


def index_folder(index_dir: Path, embedder: Embedder | MeanEmbedder | str) -> Path:
    """Each model's index is saved in a folder of its own, so switching models back and forth rebuilds nothing.

    ``embedder``: a loaded model, or the name of one."""
    return index_dir / (embedder if isinstance(embedder, str) else embedder.name)


def saved_index_is_current(db: Session, model_path: str, prefix: str, index_dir: Path) -> bool:
    """Whether the saved index already matches the model and the data, answered without loading the model."""
    name, model_fingerprint = identity(model_path)
    meta = FaqIndex.saved_meta(index_folder(index_dir, name)) or {}
    return meta.get("fingerprint") == fingerprint_of(db, model_fingerprint, prefix, faq_service.synonyms(db))


def build_retriever(db: Session, embedder: Embedder, index_dir: Path, progress_factory=None,
                    force: bool = False, index_options: dict | None = None,
                    model_path: str = "") -> tuple[Retriever, str]:
    """The retriever over the published FAQs: from disk when it matches the data, else rebuilt and saved.

    ``index_dir`` holds one folder per model (``index_folder``); ``index_options``: FaqIndex's
    ``ann_threshold`` / ``nprobe`` (Settings.index_options); ``model_path``: where the model's own thresholds
    may be (``thresholds_for``).
    """
    index_dir = index_folder(index_dir, embedder)
    synonyms = faq_service.synonyms(db)
    fingerprint = data_fingerprint(db, embedder, synonyms)
    thresholds = thresholds_for(embedder.name, model_path=model_path)
    meta = FaqIndex.saved_meta(index_dir)
    if not force and meta and meta.get("fingerprint") == fingerprint:
        index, _ = FaqIndex.load(index_dir, **(index_options or {}))
        return Retriever(embedder, index, thresholds, synonyms=synonyms), "disk"
    retriever = Retriever(embedder, FaqIndex(embedder.dim, **(index_options or {})), thresholds, synonyms=synonyms)
    faqs = crud.published_faqs(db)
    total = sum(len(f.phrasings) for f in faqs)
    progress = progress_factory(total) if progress_factory else None
    retriever.index_many([(f.id, f.phrasings) for f in faqs], progress=progress)
    if progress is not None:
        progress.close()
    retriever.index.save(index_dir, {"fingerprint": fingerprint, "model": embedder.name})
    return retriever, "rebuilt"


@dataclass
class JobStatus:
    """A background job of the knowledge base as its status endpoint reports it: ``state`` idle (none since the
    start), queued, running, done or failed; ``total`` phrasings' texts to embed, ``done`` of them so far,
    ``reused`` phrasings that kept their vectors."""

    state: str = "idle"
    message: str = ""
    done: int = 0
    total: int = 0
    reused: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass
class SynonymJob(JobStatus):
    """The re-embedding a synonym change starts (``GET /api/kb/synonyms/job``). queued: saved, waits for the
    index or for the job it replaced to stop; failed: the old table keeps serving. ``superseded``: tables saved
    while an earlier one was being applied, replaced by this one before they took effect."""

    message: str = "同义词表自启动以来未修改"
    revision: int = 0
    terms: int = 0
    superseded: int = 0


@dataclass
class ImportIndexJob(JobStatus):
    """Bringing the index in line with an import (``GET /api/kb/workbench/import/job``). queued: saved, waits
    for the index, or for the job of an earlier import or a model or synonym change; failed: the FAQs are saved
    and the index is rebuilt from the database at the next start. ``id``: the import's number on this instance
    (the latest; an earlier import's job still finishes first); ``faqs`` written by it."""

    message: str = "自启动以来没有导入"
    id: int = 0
    faqs: int = 0


class JobBoard:
    """One kind of job's status and the requests behind it, under one lock (which also guards what the owner
    keeps of those requests). Each new request takes the next ``seq``; a worker's update for an older one is
    dropped, so the status always speaks of the latest request."""

    def __init__(self, status: JobStatus):
        self.lock = threading.Lock()
        self.seq = 0
        self.status = status

    def begin(self, status: JobStatus) -> int:
        """(With ``lock`` held.) A new request: its status, and its number."""
        self.seq += 1
        self.status = status
        return self.seq

    def snapshot(self) -> JobStatus:
        with self.lock:
            return dataclasses.replace(self.status)

    def update(self, seq: int | None = None, **changes) -> JobStatus | None:
        """Change the status, unless it belongs to a request a newer one has replaced (then None)."""
        with self.lock:
            if seq is not None and seq != self.seq:
                return None
            self.status = dataclasses.replace(self.status, **changes)
            return dataclasses.replace(self.status)


class ChangeFeed:
    """Knowledge-base changes between API instances over Redis pub/sub (sync client, used from threads).

    A message is ``{"origin": <instance>, "revision": N, "faq_id": id}`` for an FAQ, ``"faq_id": null`` for the
    synonym table. The channel (``kb_sync_channel``, ``sjzs-kb``) lies outside the hub's ``sjzs:*`` pattern.
    Redis being down loses messages, never an edit: instances catch up from the database.
    """

    def __init__(self, url: str, channel: str):
        import redis

        self.channel = channel
        self._errors = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        self._pubsub = None
        self.subscribed = False  # Redis confirmed the subscription (messages published from now on arrive)
        self.failing = False  # Redis did not answer last time (logged once per outage)

    def publish(self, message: dict) -> None:
        try:
            self._client.publish(self.channel, json.dumps(message))
            self.failing = False
        except self._errors as exc:
            self._trouble("publish", exc)

    def receive(self, timeout: float) -> dict | None:
        """The next message within ``timeout`` seconds; ``{"subscribed": True}`` whenever the subscription is
        (re)made, when messages may have been missed; None on silence or while Redis is unreachable."""
        try:
            if self._pubsub is None:
                self._pubsub = self._client.pubsub()
                self._pubsub.subscribe(self.channel)
            item = self._pubsub.get_message(timeout=timeout)
        except self._errors as exc:
            self._trouble("subscribe", exc)
            self._drop()
            return None
        self.failing = False
        if item is None:
            return None
        if item.get("type") == "subscribe":
            self.subscribed = True
            return {"subscribed": True}
        if item.get("type") != "message":
            return None
        try:
            message = json.loads(item["data"])
        except ValueError:
            message = None
        if not isinstance(message, dict):
            log.warning("dropped a malformed knowledge-base message on %s", self.channel)
            return None
        return message

    def close(self) -> None:
        self._drop()
        self._client.close()

    def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self.subscribed = False
        if pubsub is not None:
            try:
                pubsub.close()
            except self._errors:
                pass

    def _trouble(self, what: str, exc: Exception) -> None:
        if not self.failing:  # once per outage, not once per second
            log.warning("knowledge-base sync: Redis %s failed (%s); catching up from the database", what, exc)
        self.failing = True


class KnowledgeBase:
    """Owns the embedding model and the FAQ index for this API process.

    The model is the one ``Settings.model_path`` names. When the tuning job promotes another (it rewrites
    ``var/models/serving.json``), a watcher thread loads it and its index beside the serving one, then swaps
    both in with one assignment: a search holds one retriever for its whole run, so it never sees a
    half-swapped state. FAQ edits made while the new index is built are replayed onto it before the swap.

    A synonym change is applied the same way by a job thread (``set_synonyms``): a new index beside the serving
    one, embedding only the phrasings the new table reads differently, swapped in when done; one job at a
    time, the latest table wins. Model loads and synonym jobs take turns (``_build_lock``).

    Several API instances: each change to the knowledge base bumps a revision in the database (in the change's
    transaction, ``faq_service.record_change``); the instance that made it applies it, then tells the others
    through Redis (``ChangeFeed``), and every ``kb_sync_seconds`` each instance applies the changes committed
    since the last revision it holds, so one that missed messages catches up.
    """

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]):
        self.settings = settings
        self.sessions = sessions
        self.status = KbStatus(model=settings.model_path)
        self.retriever: Retriever | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._save_timer: threading.Timer | None = None
        self._save_lock = threading.Lock()
        self._saving = threading.Lock()
        self._swap_lock = threading.Lock()
        self._dirty: set[int] | None = None  # FAQs edited while a new retriever is being built
        self._stamp = serving.stamp(settings.serving_file)
        self._build_lock = threading.Lock()  # one new retriever at a time: a model load or a synonym job
        self._apply_lock = threading.Lock()  # an FAQ is read and indexed in one step, so a later read wins
        # synonyms: the latest table asked for (None: the served one), its revision, the job applying it
        self._synonyms = JobBoard(SynonymJob())
        self._wanted: dict[str, str] | None = None
        self._wanted_revision = 0
        self._job_wake = threading.Event()
        self._job_thread: threading.Thread | None = None
        # sync: every revision up to ``_revision`` is applied, and those in ``_seen`` above it
        self.origin = uuid.uuid4().hex
        self._sync_lock = threading.Lock()
        self._revision: int | None = None
        self._seen: set[int] = set()
        self._feed = ChangeFeed(settings.redis_url, settings.kb_sync_channel) if settings.redis_url else None
        self._sync_thread: threading.Thread | None = None
        # imports: FAQs written (id → revision) waiting for the index job, the job's status, whether the index
        # lacks imported FAQs whose revisions count as applied (then it is not saved: a restart rebuilds it)
        self._imports = JobBoard(ImportIndexJob())
        self._import_wanted: dict[int, int] = {}
        self._import_unsaved = False
        self._import_wake = threading.Event()
        self._import_thread: threading.Thread | None = None

    def start(self) -> None:
        """Load the model and the index without blocking the API's start; then watch for promotions."""
        self._thread = threading.Thread(target=self._run, name="kb-loader", daemon=True)
        self._thread.start()
        self._job_thread = threading.Thread(target=self._synonym_worker, name="kb-synonyms", daemon=True)
        self._job_thread.start()
        self._sync_thread = threading.Thread(target=self._sync_run, name="kb-sync", daemon=True)
        self._sync_thread.start()
        self._import_thread = threading.Thread(target=self._import_worker, name="kb-import", daemon=True)
        self._import_thread.start()

    def close(self, timeout: float = 60.0) -> None:
        """Stop the threads and write pending index changes before the database goes away."""
        self._closing.set()
        self._job_wake.set()
        self._import_wake.set()
        for thread in (self._thread, self._job_thread, self._sync_thread, self._import_thread):
            if thread is not None:
                thread.join(timeout)
        if self._feed is not None:
            self._feed.close()
        if self._save_timer is not None:
            self._save_timer.cancel()
            self._save()

    def wait_ready(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status.state == "loading" and not self._closing.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        return self.status.state == "ready"

    def _run(self) -> None:
        self._load()
        if self.settings.embedding_model:
            return  # a model fixed by the setting is never swapped
        while not self._closing.wait(self.settings.kb_watch_seconds):
            stamp = serving.stamp(self.settings.serving_file)
            if stamp != self._stamp:
                self._stamp = stamp
                self._load(swap=True)

    def _load(self, swap: bool = False) -> None:
        with self._build_lock:
            self._load_locked(swap)

    def _load_locked(self, swap: bool) -> None:
        started = time.monotonic()
        s = self.settings
        model_path = s.model_path
        pointer = serving.read(s.serving_file) if not s.embedding_model else None
        if swap and self.retriever is not None and model_path == self.status.model:
            return  # the pointer was rewritten with the model already served
        try:
            embedder = load_embedder(model_path, s.query_prefix, s.embedding_threads)
            if self._closing.is_set():
                return
            with self._swap_lock:
                self._dirty = set()
            if self._revision is None:  # read before the FAQs: a change committed in between is applied again
                self._revision = self._read_revision()
            with self.sessions() as db:
                retriever, source = build_retriever(db, embedder, s.index_dir, index_options=s.index_options,
                                                    model_path=model_path)
            self._install(retriever)
            self.status = KbStatus("ready", "", model_path, time.monotonic() - started, source,
                                   pointer.promoted_at if pointer and pointer.model == model_path else "")
            log.info("knowledge base %s (%s): %s, %d FAQs, %d phrasings in %.1fs", "swapped" if swap else "ready",
                     source, embedder.name, retriever.index.faq_count, len(retriever.index),
                     self.status.load_seconds)
        except Exception as exc:  # reported by /healthz; the API keeps running (and keeps the old model)
            log.exception("knowledge base failed to load %s", model_path)
            with self._swap_lock:
                self._dirty = None
            if self.retriever is None:
                self.status = KbStatus("error", str(exc), model_path)
            else:
                self.status = dataclasses.replace(self.status, detail=f"未能切换到 {model_path}：{exc}")

    def _install(self, fresh: Retriever) -> None:
        """Replay the edits made while ``fresh`` was built, then make it the one searches use."""
        while True:
            with self._swap_lock:
                dirty, self._dirty = self._dirty or set(), set()
                if not dirty:
                    self.retriever = fresh
                    self._dirty = None
                    return
            self._apply(fresh, dirty)

    def _apply(self, retriever: Retriever, faq_ids: set[int]) -> None:
        with self._apply_lock, self.sessions() as db:
            for faq_id in faq_ids:
                faq = db.get(Faq, faq_id)
                if faq is not None and faq.status == FaqStatus.published:
                    retriever.index_faq(faq.id, faq.phrasings)
                else:
                    retriever.remove_faq(faq_id)

    def refresh_faq(self, faq_id: int) -> None:
        """Bring one FAQ's entry in the index in line with the database (incremental, no rebuild), then tell
        the other API instances. Called by the routes after the change is committed."""
        revision = self._last_change(faq_id)  # read first: the FAQ read next is at least that new
        self._refresh({faq_id})
        if revision:
            self._mark_seen(revision)
            self._announce(revision, faq_id)

    def _refresh(self, faq_ids: set[int]) -> None:
        with self._swap_lock:
            retriever = self.retriever
            if self._dirty is not None:
                self._dirty.update(faq_ids)  # a retriever being built gets these edits too
        if retriever is None:
            return  # the loader reads the database after this commit anyway
        self._apply(retriever, faq_ids)
        self._schedule_save()

    # ------------------------------------------------------------------ synonyms

    def set_synonyms(self, table: dict[str, str], revision: int = 0) -> SynonymJob:
        """Apply a synonym table committed at ``revision`` in the background and tell the other instances;
        returns the job's status at once. Searches use the old table until the new index swaps in. A table of
        an older revision than one already asked for is ignored (0: revision unknown, always taken)."""
        self._want_synonyms(table, revision)
        if revision:
            self._mark_seen(revision)
            self._announce(revision, None)
        return self.synonym_job()

    def synonym_job(self) -> SynonymJob:
        return self._synonyms.snapshot()

    def _want_synonyms(self, table: dict[str, str], revision: int) -> None:
        with self._synonyms.lock:
            if revision and revision < self._wanted_revision:
                return  # a newer table is already asked for
            self._wanted_revision = max(self._wanted_revision, revision)
            served = self.retriever.synonyms if self.retriever is not None else None
            if table == (self._wanted if self._wanted is not None else served):
                return  # already applied or being applied
            job = self._synonyms.status
            pending = job.state in ("queued", "running")
            self._wanted = dict(table)
            self._synonyms.begin(SynonymJob(state="queued", message="同义词表已保存，等待重新计算受影响的问法",
                                            revision=revision, terms=len(table), started_at=_now(),
                                            superseded=job.superseded + 1 if pending else 0))
        self._job_wake.set()

    def _synonym_worker(self) -> None:
        while not self._closing.is_set():
            self._job_wake.wait()
            self._job_wake.clear()
            if not self.wait_ready() and not self._closing.is_set():
                self._synonyms.update(state="failed", finished_at=_now(),
                                 message=f"同义词表未能生效：知识库未能加载（{self.status.detail}）")
                continue
            while not self._closing.is_set():
                with self._synonyms.lock:
                    seq, table = self._synonyms.seq, self._wanted
                if table is None:
                    break
                try:
                    with self._build_lock:
                        finished = self._apply_synonyms(table, seq)
                except Exception as exc:
                    log.exception("synonym table could not be applied")
                    self._synonyms.update(seq, state="failed", finished_at=_now(),
                                     message=f"同义词表未能生效：{exc}；检索仍使用原来的同义词表")
                    break
                if finished:
                    break  # else a newer table came in meanwhile: apply that one

    def _apply_synonyms(self, table: dict[str, str], seq: int) -> bool:
        """Build the index for ``table`` beside the serving one and swap it in; False when a newer table
        superseded it before the swap."""
        current = self.retriever
        if current is None:
            raise KbUnavailableError(self.status.state)
        if dict(current.synonyms) == table:
            self._synonyms.update(seq, state="done", finished_at=_now(), reused=len(current.index),
                             message="同义词表已生效（检索已在使用这张表）")
            return True
        self._synonyms.update(seq, state="running", message="正在重新计算受影响的问法")

        def progress(done: int, total: int, reused: int) -> None:
            self._synonyms.update(seq, done=done, total=total, reused=reused,
                             message=f"正在重新计算受影响的问法：{done}/{total}")

        def superseded() -> bool:
            return self._synonyms.seq != seq or self._closing.is_set()

        with self._swap_lock:
            self._dirty = set()
        fresh = None
        try:
            with self.sessions() as db:
                faqs = [(f.id, f.phrasings) for f in crud.published_faqs(db)]
            index = FaqIndex(current.embedder.dim, **self.settings.index_options)
            fresh = current.reindexed(table, faqs, index, progress=progress, stop=superseded)
            if fresh is not None:
                with self._synonyms.lock:  # a table asked for from now on starts a new job after this swap
                    fresh = None if self._synonyms.seq != seq else fresh
        finally:
            if fresh is None:
                with self._swap_lock:
                    self._dirty = None
        if fresh is None:
            return False
        self._install(fresh)
        job = self._synonyms.update(seq, state="done", finished_at=_now())
        if job is not None:
            self._synonyms.update(seq, message=f"同义词表已生效：重新计算 {job.total} 条问法，其余 {job.reused} 条沿用原向量")
        log.info("synonyms applied (revision %s): %d texts embedded, %d phrasings reused",
                 job.revision if job else "?", job.total if job else 0, job.reused if job else 0)
        self._schedule_save()
        return True

    # ------------------------------------------------------------------ imports

    def index_import(self, revisions: dict[int, int]) -> ImportIndexJob:
        """Bring the FAQs an import committed (id → the revision of its change) into the index in the background,
        and tell the other instances; returns the job's status at once. Searches use the index as it is
        meanwhile; its new and changed phrasings are embedded in large batches (``Retriever.update_many``)."""
        with self._imports.lock:
            self._import_wanted.update(revisions)
            self._import_unsaved = True
            self._imports.begin(ImportIndexJob(state="queued", message="FAQ 已保存，等待更新检索索引",
                                               id=self._imports.seq + 1, faqs=len(revisions), started_at=_now()))
        # Counted as applied now, so the catch-up does not apply them one by one beside the job; the index is
        # not saved until the job is done (``_save``).
        self._mark_seen_many(revisions.values())
        self._import_wake.set()
        return self.import_job()

    def import_job(self) -> ImportIndexJob:
        return self._imports.snapshot()

    def _import_worker(self) -> None:
        while not self._closing.is_set():
            self._import_wake.wait()
            self._import_wake.clear()
            if self._closing.is_set():
                return
            if not self.wait_ready():
                self._imports.update(state="failed", finished_at=_now(),
                                    message=f"FAQ 已保存，但知识库未能加载（{self.status.detail}），索引将在下次启动时重建")
                continue
            failed = False
            while not self._closing.is_set():
                with self._imports.lock:
                    todo, self._import_wanted = self._import_wanted, {}
                    seq = self._imports.seq
                if not todo:
                    break
                for faq_id, revision in sorted(todo.items(), key=lambda item: item[1]):
                    self._announce(revision, faq_id)
                try:
                    with self._build_lock:
                        self._index_imported(sorted(todo), seq)
                except Exception as exc:
                    failed = True
                    log.exception("the index could not take in an import")
                    self._imports.update(seq, state="failed", finished_at=_now(),
                                        message=f"FAQ 已保存，但检索索引未能更新（{exc}）；索引将在下次启动时重建")
            with self._imports.lock:
                done = not failed and not self._import_wanted and not self._closing.is_set()
                if done:
                    self._import_unsaved = False
            if done:
                self._schedule_save()

    def _index_imported(self, faq_ids: list[int], seq: int) -> None:
        current = self.retriever
        if current is None:
            raise KbUnavailableError(self.status.state)
        self._imports.update(seq, state="running", message="正在更新检索索引")

        def progress(done: int, total: int, reused: int) -> None:
            self._imports.update(seq, done=done, total=total, reused=reused,
                                message=f"正在更新检索索引：{done}/{total} 条问法")

        with self._swap_lock:
            self._dirty = set()  # edits from now on are replayed after the job writes its entries
        finished = False
        try:
            faqs = []
            with self.sessions() as db:
                for start in range(0, len(faq_ids), 500):
                    chunk = faq_ids[start:start + 500]
                    found = {f.id: f for f in db.scalars(select(Faq).where(Faq.id.in_(chunk))
                                                          .options(selectinload(Faq.similar_questions)))}
                    faqs += [(i, found[i].phrasings if i in found and found[i].status == FaqStatus.published
                              else None) for i in chunk]
            finished = current.update_many(faqs, progress=progress, stop=self._closing.is_set)
        finally:
            if not finished:
                with self._swap_lock:
                    self._dirty = None
        if not finished:
            return
        self._install(current)  # the edits made meanwhile, read again from the database: the newest wins
        job = self._imports.update(seq, state="done", finished_at=_now())
        if job is not None:
            self._imports.update(seq, message=f"导入的 FAQ 已全部可检索：新计算 {job.total} 条问法，"
                                             f"{job.reused} 条沿用原向量")
        log.info("import indexed: %d FAQs, %d texts embedded", len(faq_ids), job.total if job else -1)

    def _mark_seen_many(self, revisions) -> None:
        with self._sync_lock:
            if self._revision is None:
                return
            self._seen.update(r for r in revisions if r > self._revision)
            self._advance()

    # ------------------------------------------------------------------ sync between API instances

    def sync_now(self) -> int:
        """Apply every change committed since the last revision this instance holds (messages it missed);
        returns how many it applied."""
        if self.retriever is None or self._revision is None:
            return 0
        with self.sessions() as db:
            if faq_service.kb_revision(db) <= self._revision:
                return 0
            changes = [(c.revision, c.faq_id) for c in faq_service.kb_changes_since(db, self._revision)]
        if not changes:
            return 0
        with self._sync_lock:
            todo = [(rev, faq_id) for rev, faq_id in changes if rev not in self._seen]
        faq_ids = {faq_id for _, faq_id in todo if faq_id is not None}
        if faq_ids:
            self._refresh(faq_ids)
        if any(faq_id is None for _, faq_id in todo):
            self._reload_synonyms()
        with self._sync_lock:
            self._revision = max(self._revision, changes[-1][0])
            self._advance()
        if todo:
            log.info("knowledge base caught up to revision %d (%d changes applied)", self._revision, len(todo))
        return len(todo)

    def _on_message(self, message: dict) -> None:
        if message.get("origin") == self.origin:
            return  # this instance made the change and applied it already
        revision, faq_id = message.get("revision"), message.get("faq_id")
        if not isinstance(revision, int) or not (faq_id is None or isinstance(faq_id, int)):
            log.warning("dropped a malformed knowledge-base message: %r", message)
            return
        with self.sessions() as db:  # committed before it was published, so it is there if it is ours
            change = db.get(KbChange, revision)
            ours = change is not None and change.faq_id == faq_id
        if not ours:  # another deployment sharing this Redis: marking its revision seen would skip one of ours
            log.info("ignored a knowledge-base message for revision %s of another database", revision)
            return
        if faq_id is None:
            self._reload_synonyms()
        else:
            self._refresh({faq_id})
        self._mark_seen(revision)

    def _reload_synonyms(self) -> None:
        with self.sessions() as db:  # the revision first: the table read after it is at least that new
            revision = faq_service.last_change(db, None)
            table = faq_service.synonyms(db)
        self._want_synonyms(table, revision)

    def _sync_run(self) -> None:
        """Apply other instances' changes as their messages come, and catch up from the database regularly."""
        self.wait_ready()
        period = self.settings.kb_sync_seconds
        next_check = time.monotonic()
        while not self._closing.is_set():
            now = time.monotonic()
            if period > 0 and now >= next_check:
                self._guarded(self.sync_now)
                next_check = now + period
            wait = max(0.0, next_check - time.monotonic()) if period > 0 else 1.0
            if self._feed is None:
                self._closing.wait(wait)
                continue
            message = self._feed.receive(timeout=min(wait, 1.0))
            if message is None:
                if self._feed.failing:  # Redis is down: wait, the database check still runs
                    self._closing.wait(min(wait, 1.0))
            elif message.get("subscribed"):
                next_check = time.monotonic()  # (re)subscribed: messages may have been missed meanwhile
            else:
                self._guarded(self._on_message, message)

    def _guarded(self, step, *args) -> None:
        try:
            step(*args)
        except Exception:  # the database or the model failed this time: the next check tries again
            log.exception("knowledge-base sync step failed")

    def _announce(self, revision: int, faq_id: int | None) -> None:
        if self._feed is not None:
            self._feed.publish({"origin": self.origin, "revision": revision, "faq_id": faq_id})

    def _mark_seen(self, revision: int) -> None:
        with self._sync_lock:
            if self._revision is None or revision <= self._revision:
                return
            self._seen.add(revision)
            self._advance()

    def _advance(self) -> None:
        """Move the applied revision over the ones seen in a row above it; under ``_sync_lock``."""
        while self._revision is not None and self._revision + 1 in self._seen:
            self._revision += 1
        self._seen = {r for r in self._seen if self._revision is not None and r > self._revision}

    def _read_revision(self) -> int | None:
        try:
            with self.sessions() as db:
                return faq_service.kb_revision(db)
        except Exception:  # a database without migration 0004: this instance does not sync
            log.exception("could not read the knowledge base's revision; instances will not sync")
            return None

    def _last_change(self, faq_id: int | None) -> int:
        try:
            with self.sessions() as db:
                return faq_service.last_change(db, faq_id)
        except Exception:
            log.exception("could not read the knowledge base's revision")
            return 0

    # ------------------------------------------------------------------ saving, searching, health

    def _schedule_save(self, delay: float = 2.0) -> None:
        """Persist the index a moment after the last edit (edits come in bursts)."""
        with self._save_lock:
            if self._save_timer is not None:
                self._save_timer.cancel()
            self._save_timer = threading.Timer(delay, self._save)
            self._save_timer.daemon = True
            self._save_timer.start()

    def _save(self) -> None:
        with self._saving:  # one save at a time: they write the same folder
            retriever = self.retriever
            if retriever is None:
                return
            try:
                with self.sessions() as db:  # fingerprint first: a later edit makes it stale, never the reverse...
                    fingerprint = data_fingerprint(db, retriever.embedder, dict(retriever.synonyms))
                    # ... provided this index holds every change committed before: another instance's edit not
                    # applied here yet would be in the fingerprint and missing from the index
                    behind = self._revision is not None and faq_service.kb_revision(db) > self._revision
                if behind or self._import_unsaved:  # (an import's FAQs not in the index yet)
                    self._schedule_save()  # again after the next catch-up
                    return
                retriever.index.save(index_folder(self.settings.index_dir, retriever.embedder),
                                     {"fingerprint": fingerprint, "model": retriever.embedder.name})
            except Exception:
                log.exception("could not save the index; it will be rebuilt at the next start")

    def search(self, text: str, k: int = 5) -> Result:
        retriever = self.retriever  # one retriever for the whole search, whatever a swap does meanwhile
        if retriever is None:
            raise KbUnavailableError(self.status.state)
        return retriever.search(text, k=k)

    def search_in_context(self, text: str, context: str | None, context_faq: int | None,
                          k: int = 5) -> tuple[Result, bool]:
        """``search`` of a follow-up: ``context`` is the question of FAQ ``context_faq``, just answered."""
        retriever = self.retriever
        if retriever is None:
            raise KbUnavailableError(self.status.state)
        return retriever.search_in_context(text, context, context_faq, k=k)

    def try_draft(self, text: str, faq_id: int, phrasings: list[str] | None, k: int = 5) -> tuple[Result, Result]:
        """试一试: the search against the published knowledge base and as if FAQ ``faq_id`` had these phrasings
        (None: as if it were not published), from one retriever; the index is not touched."""
        retriever = self.retriever
        if retriever is None:
            raise KbUnavailableError(self.status.state)
        return retriever.search(text, k=k), retriever.search_with(text, faq_id, phrasings, k=k)

    def conflicts(self, faq_id: int, question: str, similar: list[str]) -> list[Conflict]:
        """Similar questions of this FAQ that sit closer to another published FAQ than to their own."""
        retriever = self.retriever
        if retriever is None:
            raise KbUnavailableError(self.status.state)
        return retriever.conflicts(faq_id, question, similar)

    def health(self) -> dict[str, dict]:
        st = self.status
        model = {"status": "ok" if self.retriever is not None else st.state, "name": st.model,
                 "promoted_at": st.promoted_at or None}
        if st.detail:
            model["detail"] = st.detail
        retriever = self.retriever
        if retriever is None:
            index = {"status": st.state}
        else:
            index = {"status": "ok", "faqs": retriever.index.faq_count,
                     "phrasings": len(retriever.index), "source": st.source, "revision": self._revision}
        return {"model": model, "index": index}


def _now() -> datetime:
    return datetime.now(UTC)


class KbUnavailableError(RuntimeError):
    pass
