"""The knowledge base as the API serves it: the retriever, loaded in the background."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from knowledge_base import Embedder, FaqIndex, Result, Retriever

from . import crud
from .models import Faq, FaqStatus
from .services import faqs as faq_service

log = logging.getLogger("api.kb")


@dataclass
class KbStatus:
    state: str = "loading"  # loading | ready | error
    detail: str = ""
    model: str = ""
    load_seconds: float = 0.0


@lru_cache(maxsize=2)
def load_embedder(path: str, prefix: str, threads: int) -> Embedder:
    """One model per process, however many apps (tests) ask for it."""
    return Embedder(path, prefix=prefix, threads=threads)


class KnowledgeBase:
    """Owns the embedding model and the FAQ index for this API process."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]):
        self.settings = settings
        self.sessions = sessions
        self.status = KbStatus(model=settings.model_path)
        self.retriever: Retriever | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    def start(self) -> None:
        """Load the model and build the index without blocking the API's start."""
        self._thread = threading.Thread(target=self._load, name="kb-loader", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 60.0) -> None:
        """Stop the loader before the database goes away."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout)

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
                retriever = Retriever(embedder, FaqIndex(embedder.dim), synonyms=faq_service.synonyms(db))
                self._index_all(retriever, crud.published_faqs(db))
            self.retriever = retriever
            self.status = KbStatus("ready", "", embedder.name, time.monotonic() - started)
            log.info("knowledge base ready: %d FAQs, %d phrasings in %.1fs",
                     retriever.index.faq_count, len(retriever.index), self.status.load_seconds)
        except Exception as exc:  # reported by /healthz; the API keeps running
            log.exception("knowledge base failed to load")
            self.status = KbStatus("error", str(exc), self.settings.model_path)

    @staticmethod
    def _index_all(retriever: Retriever, faqs: list) -> None:
        for faq in faqs:
            retriever.index_faq(faq.id, faq.phrasings)

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

    def set_synonyms(self, table: dict[str, str]) -> None:
        """New synonyms change how every phrasing reads: re-embed all, then swap the index in at once."""
        current = self.retriever
        if current is None:
            return
        fresh = Retriever(current.embedder, FaqIndex(current.embedder.dim), current.thresholds, synonyms=table)
        with self.sessions() as db:
            self._index_all(fresh, crud.published_faqs(db))
        self.retriever = fresh

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
                     "phrasings": len(self.retriever.index)}
        return {"model": model, "index": index}


class KbUnavailableError(RuntimeError):
    pass
