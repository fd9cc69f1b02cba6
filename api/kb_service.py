"""The knowledge base as the API serves it: the retriever, loaded in the background, kept on disk."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

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

from . import crud
from .models import Faq, FaqStatus
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


class KnowledgeBase:
    """Owns the embedding model and the FAQ index for this API process.

    The model is the one ``Settings.model_path`` names. When the tuning job promotes another (it rewrites
    ``var/models/serving.json``), a watcher thread loads it and its index beside the serving one, then swaps
    both in with one assignment: a search holds one retriever for its whole run, so it never sees a
    half-swapped state. FAQ edits made while the new index is built are replayed onto it before the swap.
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
        self._swap_lock = threading.Lock()
        self._dirty: set[int] | None = None  # FAQs edited while a new retriever is being built
        self._stamp = serving.stamp(settings.serving_file)

    def start(self) -> None:
        """Load the model and the index without blocking the API's start; then watch for promotions."""
        self._thread = threading.Thread(target=self._run, name="kb-loader", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 60.0) -> None:
        """Stop the loader and write pending index changes before the database goes away."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout)
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
        with self.sessions() as db:
            for faq_id in faq_ids:
                faq = db.get(Faq, faq_id)
                if faq is not None and faq.status == FaqStatus.published:
                    retriever.index_faq(faq.id, faq.phrasings)
                else:
                    retriever.remove_faq(faq_id)

    def refresh_faq(self, faq_id: int) -> None:
        """Bring one FAQ's entry in the index in line with the database (incremental, no rebuild)."""
        with self._swap_lock:
            retriever = self.retriever
            if self._dirty is not None:
                self._dirty.add(faq_id)  # a retriever being built gets this edit too
        if retriever is None:
            return  # the loader reads the database after this commit anyway
        self._apply(retriever, {faq_id})
        self._schedule_save()

    def set_synonyms(self, table: dict[str, str]) -> None:
        """New synonyms change how every phrasing reads: re-embed all, then swap the index in at once."""
        current = self.retriever
        if current is None:
            return
        fresh = Retriever(current.embedder, FaqIndex(current.embedder.dim, **self.settings.index_options),
                          current.thresholds, synonyms=table)
        with self.sessions() as db:
            fresh.index_many([(f.id, f.phrasings) for f in crud.published_faqs(db)])
        self.retriever = fresh
        self._schedule_save()

    def _schedule_save(self, delay: float = 2.0) -> None:
        """Persist the index a moment after the last edit (edits come in bursts)."""
        with self._save_lock:
            if self._save_timer is not None:
                self._save_timer.cancel()
            self._save_timer = threading.Timer(delay, self._save)
            self._save_timer.daemon = True
            self._save_timer.start()

    def _save(self) -> None:
        retriever = self.retriever
        if retriever is None:
            return
        try:
            with self.sessions() as db:  # fingerprint first: a later edit makes it stale, never the reverse
                fingerprint = data_fingerprint(db, retriever.embedder, dict(retriever.synonyms))
            retriever.index.save(index_folder(self.settings.index_dir, retriever.embedder),
                                 {"fingerprint": fingerprint, "model": retriever.embedder.name})
        except Exception:
            log.exception("could not save the index; it will be rebuilt at the next start")

    def search(self, text: str, k: int = 5) -> Result:
        retriever = self.retriever  # one retriever for the whole search, whatever a swap does meanwhile
        if retriever is None:
            raise KbUnavailableError(self.status.state)
        return retriever.search(text, k=k)

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
                     "phrasings": len(retriever.index), "source": st.source}
        return {"model": model, "index": index}


class KbUnavailableError(RuntimeError):
    pass
