"""Character-bigram BM25 over the indexed phrasings, kept up to date one phrasing at a time.

The retriever adds ``weight · lexical score`` to a phrasing's cosine (BENCHMARKS.md, "a lexical signal"): the
embedding model ranks well but sometimes misses the one concrete term a merchant typed (开票 vs 发票抬头,
云仓 vs 发货), which shared character pairs catch.  Raw BM25 grows with the question's length, so a score
is divided by the score the question would get against a copy of itself: 1.0 means "as close as typing the
phrasing" whatever the length.  Document frequencies change with every edit, so nothing needs a rebuild.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterable

K1 = 1.2
B = 0.75


def bigrams(text: str) -> list[str]:
    """Character bigrams within each space-separated run; a one-character run is its own token."""
    tokens: list[str] = []
    for run in text.split():
        tokens.extend([run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)])
    return tokens


class Lexicon:
    """Bigram counts of every phrasing by id, and the document frequencies BM25 needs. Not thread-safe on its
    own: ``FaqIndex`` changes and reads it under its lock."""

    def __init__(self) -> None:
        # id -> (its distinct bigrams, their counts, length in bigrams): tuples of interned strings, because a
        # dict per phrasing tripled the index's memory at 100k phrasings (BENCHMARKS.md, latency).
        self._docs: dict[int, tuple[tuple[str, ...], tuple[int, ...], int]] = {}
        self._df: Counter = Counter()
        self._total_length = 0

    def __len__(self) -> int:
        return len(self._docs)

    def add(self, doc_id: int, text: str) -> None:
        self.remove(doc_id)
        counts = Counter(bigrams(text))
        length = sum(counts.values())
        self._docs[doc_id] = (tuple(sys.intern(t) for t in counts), tuple(counts.values()), length)
        self._df.update(counts.keys())
        self._total_length += length

    def remove(self, doc_id: int) -> None:
        doc = self._docs.pop(doc_id, None)
        if doc is None:
            return
        terms, _, length = doc
        self._df.subtract(terms)
        for term in terms:
            if self._df[term] <= 0:
                del self._df[term]
        self._total_length -= length

    def _idf(self, df: int) -> float:
        n = len(self._docs)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def scores(self, query: str, doc_ids: Iterable[int]) -> list[float]:
        """BM25 of ``query`` against each of ``doc_ids``, divided by its score against itself (0 for an
        unknown id or a query without bigrams)."""
        ids = list(doc_ids)
        q = Counter(bigrams(query))
        if not q or not self._docs:
            return [0.0] * len(ids)
        avgdl = max(self._total_length / len(self._docs), 1.0)
        idf = {t: self._idf(self._df.get(t, 0)) for t in q}
        q_norm = K1 * (1 - B + B * sum(q.values()) / avgdl)
        self_score = sum(n * idf[t] * n * (K1 + 1) / (n + q_norm) for t, n in q.items())
        out = []
        for doc_id in ids:
            doc = self._docs.get(doc_id)
            if doc is None:
                out.append(0.0)
                continue
            terms, counts, length = doc
            norm = K1 * (1 - B + B * length / avgdl)
            raw = 0.0
            for t, tf in zip(terms, counts):
                n = q.get(t)
                if n:
                    raw += n * idf[t] * tf * (K1 + 1) / (tf + norm)
            out.append(raw / self_score)
        return out
