"""A FAISS index over every phrasing of every FAQ, updatable one FAQ at a time.

Small knowledge bases are searched exactly (``IndexFlatIP``).  From ``ann_threshold`` phrasings on, the
vectors move to an inverted-file index (``IndexIVFFlat``, nlist ≈ 4·√n, ``nprobe`` lists searched), which
keeps removal by id, so editing one FAQ stays incremental; its centroids are trained when it is built and
re-trained by a rebuild (``devtools.kb rebuild``) or once the index has grown fourfold since.

A search finds the closest phrasings, then scores each FAQ among them by all of its phrasings
(``scoring.pooled``), read back from the index; each phrasing's cosine can be given a lexical bonus
(``lexical.Lexicon``: character-bigram BM25, kept beside the vectors and updated with them).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from .lexical import Lexicon
from .scoring import POOL, pooled


@dataclass(frozen=True)
class Hit:
    faq_id: int
    score: float      # the FAQ's pooled score (scoring.pooled) of cosine + lexical bonus
    phrasing: str     # its closest phrasing


class FaqIndex:
    """Inner-product search over normalised phrasing vectors.

    Each phrasing gets its own vector id; ``replace_faq`` swaps all phrasings of
    one FAQ under a lock, so a concurrent search sees the FAQ either before or
    after the change, never half of it.
    """

    def __init__(self, dim: int, ann_threshold: int = 20_000, nprobe: int = 64, pool: int = POOL):
        self.dim = dim
        self.pool = pool
        self.ann_threshold = ann_threshold
        self.nprobe = nprobe
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._trained_size = 0  # phrasings the IVF centroids were trained on (0: flat index)
        self._bulk = False
        self._lock = threading.RLock()
        self._next_id = 0
        self._by_faq: dict[int, list[int]] = {}
        self._vec_faq: dict[int, int] = {}
        self._vec_text: dict[int, str] = {}
        self._text_faq: dict[str, int] = {}
        self._lexicon = Lexicon()
        self.revision = 0  # bumped by every change of the phrasings (readers built from them compare it)

    def __len__(self) -> int:
        return self._index.ntotal

    @property
    def kind(self) -> str:
        """"flat" (exact) or "ivf" (approximate)."""
        return "ivf" if self._trained_size else "flat"

    @property
    def faq_count(self) -> int:
        return len(self._by_faq)

    def replace_faq(self, faq_id: int, phrasings: list[str], vectors: np.ndarray) -> None:
        """Index ``phrasings`` (with their ``vectors``) as the only phrasings of ``faq_id``."""
        if len(phrasings) != len(vectors):
            raise ValueError("phrasings and vectors differ in length")
        with self._lock:
            self._drop(faq_id)
            self.revision += 1
            if not phrasings:
                return
            ids = np.arange(self._next_id, self._next_id + len(phrasings), dtype=np.int64)
            self._next_id += len(phrasings)
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
            self._by_faq[faq_id] = ids.tolist()
            for vid, text in zip(ids.tolist(), phrasings):
                self._vec_faq[vid] = faq_id
                self._vec_text[vid] = text
                self._text_faq[text] = faq_id
                self._lexicon.add(vid, text)
            if not self._bulk:
                self._maybe_switch()

    def replace_many(self, items) -> None:
        """``replace_faq`` for many (faq_id, phrasings, vectors), choosing the index kind once at the end."""
        with self._lock:
            self._bulk = True
            try:
                for faq_id, phrasings, vectors in items:
                    self.replace_faq(faq_id, phrasings, vectors)
            finally:
                self._bulk = False
            self._maybe_switch()

    def _maybe_switch(self) -> None:
        """Move to IVF above the threshold (or re-train it after fourfold growth); called under the lock."""
        n = self._index.ntotal
        if n < self.ann_threshold or (self._trained_size and n < 4 * self._trained_size):
            return
        ids, vectors = self._all_vectors()
        nlist = max(1, int(4 * np.sqrt(n)))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(vectors)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # removal and look-up by id
        ivf.add_with_ids(vectors, ids)
        ivf.nprobe = self.nprobe
        self._index, self._trained_size = ivf, n

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        ids = np.fromiter(self._vec_faq, dtype=np.int64, count=len(self._vec_faq))
        vectors = np.vstack([self._index.reconstruct(int(i)) for i in ids]) if len(ids) else \
            np.zeros((0, self.dim), dtype=np.float32)
        return ids, np.ascontiguousarray(vectors, dtype=np.float32)

    def vectors_of(self, texts) -> dict[str, np.ndarray]:
        """The stored vectors of those (normalised) phrasings among ``texts`` that the index holds, by text."""
        wanted = set(texts)
        with self._lock:
            ids: dict[str, int] = {}
            for vid, text in self._vec_text.items():
                if text in wanted:
                    ids.setdefault(text, vid)
            if not ids:
                return {}
            vectors = self._index.reconstruct_batch(np.fromiter(ids.values(), dtype=np.int64, count=len(ids)))
        return dict(zip(ids, np.asarray(vectors, dtype=np.float32)))

    def faq_of(self, phrasing: str) -> int | None:
        """The FAQ that has exactly this (normalised) phrasing, if any."""
        with self._lock:
            return self._text_faq.get(phrasing)

    def remove_faq(self, faq_id: int) -> None:
        with self._lock:
            self._drop(faq_id)
            self.revision += 1

    def phrasings(self) -> tuple[int, dict[int, list[str]]]:
        """The revision and every FAQ's (normalised) phrasings, read at once."""
        with self._lock:
            return self.revision, {faq_id: [self._vec_text[v] for v in ids] for faq_id, ids in self._by_faq.items()}

    def _drop(self, faq_id: int) -> None:
        ids = self._by_faq.pop(faq_id, None)
        if not ids:
            return
        self._index.remove_ids(np.asarray(ids, dtype=np.int64))
        for vid in ids:
            self._vec_faq.pop(vid, None)
            text = self._vec_text.pop(vid, None)
            self._lexicon.remove(vid)
            if self._text_faq.get(text) == faq_id:
                self._text_faq.pop(text)

    def save(self, folder: Path, meta: dict) -> None:
        """Write the index and its metadata; the folder is replaced whole (readers never see half of it)."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        with self._lock:
            faiss.write_index(self._index, str(tmp / "index.faiss"))
            state = {"dim": self.dim, "next_id": self._next_id, "meta": meta, "trained_size": self._trained_size,
                     "ann_threshold": self.ann_threshold, "nprobe": self.nprobe, "pool": self.pool,
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
    def load(cls, folder: Path, ann_threshold: int | None = None, nprobe: int | None = None,
             pool: int | None = None) -> tuple[FaqIndex, dict]:
        """An index saved by :meth:`save` (with its own settings unless given), and the metadata saved with it."""
        state = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        index = cls(state["dim"], ann_threshold or state.get("ann_threshold", 20_000),
                    nprobe or state.get("nprobe", 64), pool or state.get("pool", POOL))
        index._index = faiss.read_index(str(folder / "index.faiss"))
        index._trained_size = state.get("trained_size", 0)
        if index._trained_size:
            faiss.extract_index_ivf(index._index).nprobe = index.nprobe
        index._next_id = state["next_id"]
        index._by_faq = {int(f): ids for f, ids in state["faqs"].items()}
        index._vec_faq = {v: f for f, ids in index._by_faq.items() for v in ids}
        index._vec_text = {int(v): t for v, t in state["texts"].items()}
        index._text_faq = {t: index._vec_faq[v] for v, t in index._vec_text.items()}
        for v, t in index._vec_text.items():
            index._lexicon.add(v, t)
        return index, state["meta"]

    @staticmethod
    def saved_meta(folder: Path) -> dict | None:
        try:
            return json.loads((folder / "index.json").read_text(encoding="utf-8"))["meta"]
        except (OSError, ValueError, KeyError):
            return None

    def search(self, vector: np.ndarray, k: int = 5, text: str = "", lexical: float = 0.0) -> list[Hit]:
        """The best ``k`` FAQs for ``vector``: FAQs with a phrasing among the closest, scored by ``pooled``.

        With ``text`` (the normalised question) and a ``lexical`` weight, each phrasing scores its cosine plus
        ``lexical`` × its normalised bigram BM25 against ``text``.
        """
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        with self._lock:
            if self._index.ntotal == 0:
                return []
            # One query gains nothing from a second OpenMP thread and suffers when the cores are busy
            # (BENCHMARKS.md); the setting is per calling thread.
            faiss.omp_set_num_threads(1)
            depth = min(self._index.ntotal, max(k * 8, 32))
            _, ids = self._index.search(query, depth)
            candidates: list[int] = []
            for vid in ids[0].tolist():
                if vid >= 0 and self._vec_faq[vid] not in candidates:
                    candidates.append(self._vec_faq[vid])
                    if len(candidates) >= 2 * k:
                        break
            if not candidates:
                return []
            # Every candidate's phrasings, read back in one call, then split per FAQ.
            groups = [self._by_faq[faq_id] for faq_id in candidates]
            flat = np.fromiter((v for g in groups for v in g), dtype=np.int64)
            all_scores = self._index.reconstruct_batch(flat) @ query[0]
            if lexical and text:
                all_scores = all_scores + lexical * np.asarray(self._lexicon.scores(text, flat.tolist()))
            ends = np.cumsum([len(g) for g in groups])
            hits = []
            for faq_id, vids, scores in zip(candidates, groups, np.split(all_scores, ends[:-1])):
                hits.append(Hit(faq_id, pooled(scores, self.pool), self._vec_text[vids[int(np.argmax(scores))]]))
        return sorted(hits, key=lambda h: h.score, reverse=True)[:k]
