"""The knowledge base as the API serves it: the retriever, loaded in the background, kept on disk."""

from __future__ import annotations

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
from knowledge_base import Embedder, FaqIndex, MeanEmbedder, Result, Retriever, Thresholds, load_models
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


@lru_cache(maxsize=2)
def load_embedder(path: str, prefix: str, threads: int) -> Embedder | MeanEmbedder:
    """One model (or comma-separated models, averaged) per process, however many apps (tests) ask for it."""
    return load_models(path, prefix=prefix, threads=threads)


def thresholds_for(model_name: str, path: Path = THRESHOLDS_FILE, lexical: float | None = None) -> Thresholds:
    """The calibrated thresholds of this model (devtools.kb calibrate), or the defaults.

    ``lexical``: the thresholds calibrated for another lexical weight of the calibration grid (comparisons).
    """
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
    h = hashlib.sha256()
    h.update(f"{embedder.fingerprint}|{embedder.prefix}|{NORMALIZE_VERSION}|".encode())
    h.update(json.dumps(sorted(synonyms.items()), ensure_ascii=False).encode())
    rows = db.execute(select(Faq.id, Faq.version).where(Faq.status == FaqStatus.published).order_by(Faq.id))
    for faq_id, version in rows:
        h.update(f"{faq_id}:{version};".encode())
    return h.hexdigest()[:20]


def build_retriever(db: Session, embedder: Embedder, index_dir: Path, progress_factory=None,
                    force: bool = False, index_options: dict | None = None) -> tuple[Retriever, str]:
    """The retriever over the published FAQs: from disk when it matches the data, else rebuilt and saved.

    ``index_options``: FaqIndex's ``ann_threshold`` / ``nprobe`` (Settings.index_options).
    """
    synonyms = faq_service.synonyms(db)
    fingerprint = data_fingerprint(db, embedder, synonyms)
    thresholds = thresholds_for(embedder.name)
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
    """Owns the embedding model and the FAQ index for this API process."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]):
        self.settings = settings
        self.sessions = sessions
        self.status = KbStatus(model=settings.model_path)
        self.retriever: Retriever | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._save_timer: threading.Timer | None = None
        self._save_lock = threading.Lock()

    def start(self) -> None:
        """Load the model and the index without blocking the API's start."""
        self._thread = threading.Thread(target=self._load, name="kb-loader", daemon=True)
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
        if self._thread is not None:
            self._thread.join(timeout)
        return self.status.state == "ready"

    def _load(self) -> None:
        started = time.monotonic()
        try:
            s = self.settings
            embedder = load_embedder(s.model_path, s.query_prefix, s.embedding_threads)
            if self._closing.is_set():
                return
            with self.sessions() as db:
                retriever, source = build_retriever(db, embedder, s.index_dir, index_options=s.index_options)
            self.retriever = retriever
            self.status = KbStatus("ready", "", embedder.name, time.monotonic() - started, source)
            log.info("knowledge base ready (%s): %d FAQs, %d phrasings in %.1fs", source,
                     retriever.index.faq_count, len(retriever.index), self.status.load_seconds)
        except Exception as exc:  # reported by /healthz; the API keeps running
            log.exception("knowledge base failed to load")
            self.status = KbStatus("error", str(exc), self.settings.model_path)

    def refresh_faq(self, faq_id: int) -> None:
        """Bring one FAQ's entry in the index in line with the database (incremental, no rebuild)."""
        if self.retriever is None:
            return  # the loader reads the database after this commit anyway
        with self.sessions() as db:
            faq = db.get(Faq, faq_id)
            if faq is not None and faq.status == FaqStatus.published:
                self.retriever.index_faq(faq.id, faq.phrasings)
            else:
                self.retriever.remove_faq(faq_id)
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
            retriever.index.save(self.settings.index_dir, {"fingerprint": fingerprint,
                                                           "model": retriever.embedder.name})
        except Exception:
            log.exception("could not save the index; it will be rebuilt at the next start")

    def search(self, text: str, k: int = 5) -> Result:
        if self.retriever is None:
            raise KbUnavailableError(self.status.state)
        return self.retriever.search(text, k=k)

    def health(self) -> dict[str, dict]:
        model = {"status": "ok" if self.status.state == "ready" else self.status.state,
                 "name": self.status.model}
        if self.status.detail:
            model["detail"] = self.status.detail
        if self.retriever is None:
            index = {"status": self.status.state}
        else:
            index = {"status": "ok", "faqs": self.retriever.index.faq_count,
                     "phrasings": len(self.retriever.index), "source": self.status.source}
        return {"model": model, "index": index}


class KbUnavailableError(RuntimeError):
    pass
