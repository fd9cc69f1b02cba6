"""A synonym change on the seeded knowledge base: re-embedding every phrasing (what the API did before) against
re-embedding only the phrasings the change rewrites (``Retriever.reindexed``, what the synonym job does), side by
side in one run, with the product's model and one embedding thread.

    .venv/app/bin/python -m benchmarks.kb_synonyms          # ~2 minutes on 2 cores
"""

from __future__ import annotations

import platform
import resource
import time
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from api import crud
from api.db import make_engine
from api.kb_service import build_retriever, load_embedder
from api.services import faqs as faq_service
from core.settings import REPO_ROOT, get_settings
from knowledge_base.index import FaqIndex
from knowledge_base.retriever import Retriever

RESULTS = REPO_ROOT / "benchmarks" / "results" / "kb_synonyms.md"
CHANGES = [("云仓", "云端仓库"), ("店铺", "网店")]  # a rare term, and one found in hundreds of phrasings


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Counting:
    """The embedder, counting the texts it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.texts = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, texts, **kwargs):
        self.texts += len(texts)
        return self.inner.encode(texts, **kwargs)


def main() -> int:
    s = get_settings()
    embedder = Counting(load_embedder(s.model_path, s.query_prefix, 1))
    engine = make_engine(s.sqlalchemy_url)
    with Session(engine) as db:
        current, _ = build_retriever(db, embedder, s.index_dir, index_options=s.index_options,
                                     model_path=s.model_path)
        table = faq_service.synonyms(db)
        faqs = [(f.id, f.phrasings) for f in crud.published_faqs(db)]
    engine.dispose()
    phrasings = sum(len(p) for _, p in faqs)
    rows = []
    for term, canonical in CHANGES:
        new = {**table, term: canonical}
        for how in ("every phrasing", "only what changes"):
            embedder.texts = 0
            t0, c0 = time.perf_counter(), cpu()
            if how == "every phrasing":
                fresh = Retriever(embedder, FaqIndex(embedder.dim, **s.index_options), current.thresholds,
                                  synonyms=new)
                fresh.index_many(faqs)
            else:
                current.reindexed(new, faqs, FaqIndex(embedder.dim, **s.index_options))
            rows.append(f"| {term} → {canonical} | {how} | {time.perf_counter() - t0:.1f} | {cpu() - c0:.1f} | "
                        f"{embedder.texts:,} of {phrasings:,} |")
            print(rows[-1], flush=True)
    lines = [f"# A synonym change: every phrasing vs only what changes ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
             f"{platform.processor() or platform.machine()}, model {embedder.name}, 1 embedding thread)", "",
             "| change | re-embedding | wall s | CPU s | texts embedded |", "|---|---|---|---|---|", *rows]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
