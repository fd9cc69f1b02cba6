"""A FAISS index over every phrasing of every FAQ, updatable one FAQ at a time."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np


@dataclass(frozen=True)
class Hit:
    faq_id: int
    score: float
    phrasing: str


class FaqIndex:
    """Inner-product search over normalised phrasing vectors.

    Each phrasing gets its own vector id; ``replace_faq`` swaps all phrasings of
    one FAQ under a lock, so a concurrent search sees the FAQ either before or
    after the change, never half of it.
    """

    def __init__(self, dim: int):
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._lock = threading.RLock()
        self._next_id = 0
        self._by_faq: dict[int, list[int]] = {}
        self._vec_faq: dict[int, int] = {}
        self._vec_text: dict[int, str] = {}

    def __len__(self) -> int:
        return self._index.ntotal

    @property
    def faq_count(self) -> int:
        return len(self._by_faq)

    def replace_faq(self, faq_id: int, phrasings: list[str], vectors: np.ndarray) -> None:
        """Index ``phrasings`` (with their ``vectors``) as the only phrasings of ``faq_id``."""
        if len(phrasings) != len(vectors):
            raise ValueError("phrasings and vectors differ in length")
        with self._lock:
            self._drop(faq_id)
            if not phrasings:
                return
            ids = np.arange(self._next_id, self._next_id + len(phrasings), dtype=np.int64)
            self._next_id += len(phrasings)
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
            self._by_faq[faq_id] = ids.tolist()
            for vid, text in zip(ids.tolist(), phrasings):
                self._vec_faq[vid] = faq_id
                self._vec_text[vid] = text

    def remove_faq(self, faq_id: int) -> None:
        with self._lock:
            self._drop(faq_id)

    def _drop(self, faq_id: int) -> None:
        ids = self._by_faq.pop(faq_id, None)
        if not ids:
            return
        self._index.remove_ids(np.asarray(ids, dtype=np.int64))
        for vid in ids:
            self._vec_faq.pop(vid, None)
            self._vec_text.pop(vid, None)

    def save(self, folder: Path, meta: dict) -> None:
        """Write the index and its metadata; the folder is replaced whole (readers never see half of it)."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        with self._lock:
            faiss.write_index(self._index, str(tmp / "index.faiss"))
            state = {"dim": self.dim, "next_id": self._next_id, "meta": meta,
                     "faqs": {str(f): ids for f, ids in self._by_faq.items()},
                     "texts": {str(v): t for v, t in self._vec_text.items()}}
        (tmp / "index.json").write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
        old = folder.with_name(folder.name + f".old{os.getpid()}")
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        if old.exists():
            for f in old.iterdir():
                f.unlink()
            old.rmdir()

    @classmethod
    def load(cls, folder: Path) -> tuple[FaqIndex, dict]:
        """An index saved by :meth:`save`, and the metadata saved with it."""
        state = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        index = cls(state["dim"])
        index._index = faiss.read_index(str(folder / "index.faiss"))
        index._next_id = state["next_id"]
        index._by_faq = {int(f): ids for f, ids in state["faqs"].items()}
        index._vec_faq = {v: f for f, ids in index._by_faq.items() for v in ids}
        index._vec_text = {int(v): t for v, t in state["texts"].items()}
        return index, state["meta"]

    @staticmethod
    def saved_meta(folder: Path) -> dict | None:
        try:
            return json.loads((folder / "index.json").read_text(encoding="utf-8"))["meta"]
        except (OSError, ValueError, KeyError):
            return None

    def search(self, vector: np.ndarray, k: int = 5) -> list[Hit]:
        """The best ``k`` FAQs for ``vector``, each scored by its closest phrasing."""
        with self._lock:
            if self._index.ntotal == 0:
                return []
            depth = min(self._index.ntotal, max(k * 8, 32))
            scores, ids = self._index.search(vector.reshape(1, -1).astype(np.float32), depth)
            best: dict[int, Hit] = {}
            for score, vid in zip(scores[0].tolist(), ids[0].tolist()):
                if vid < 0:
                    continue
                faq_id = self._vec_faq[vid]
                if faq_id not in best:
                    best[faq_id] = Hit(faq_id, float(score), self._vec_text[vid])
                if len(best) >= k:
                    break
        return sorted(best.values(), key=lambda h: h.score, reverse=True)
