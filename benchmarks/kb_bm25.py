"""A character-bigram BM25 baseline for FAQ retrieval (our own implementation, numpy + scipy).

Every phrasing of every FAQ is a document; an FAQ scores as its best phrasing. Raw BM25 grows with the
query's length, so scores are divided by the score the query would get against a copy of itself: 1.0 means
"as good as typing the phrasing", which makes one threshold usable for short and long questions alike.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy import sparse

from knowledge_base.lexical import bigrams


class Bm25:
    def __init__(self, docs: list[str], owners: list[int], k1: float = 1.2, b: float = 0.75):
        self.docs, self.owners = docs, np.asarray(owners)
        self.k1, self.b = k1, b
        counts = [Counter(bigrams(d)) for d in docs]
        self.vocab = {t: i for i, t in enumerate(sorted({t for c in counts for t in c}))}
        lengths = np.array([sum(c.values()) for c in counts], dtype=np.float64)
        self.n_docs, self.avgdl = len(docs), max(float(lengths.mean()), 1.0)
        df = np.zeros(len(self.vocab))
        for c in counts:
            df[[self.vocab[t] for t in c]] += 1
        self.idf = self._idf(df)
        rows, cols, vals = [], [], []
        for d, c in enumerate(counts):
            norm = self.k1 * (1 - self.b + self.b * lengths[d] / self.avgdl)
            for t, tf in c.items():
                j = self.vocab[t]
                rows.append(d)
                cols.append(j)
                vals.append(self.idf[j] * tf * (self.k1 + 1) / (tf + norm))
        self.weights = sparse.csr_matrix((vals, (rows, cols)), shape=(self.n_docs, len(self.vocab)))

    def _idf(self, df):
        return np.log(1 + (self.n_docs - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> np.ndarray:
        """Normalised BM25 of ``query`` against every document."""
        q = Counter(bigrams(query))
        if not q:
            return np.zeros(self.n_docs)
        vec = np.zeros(len(self.vocab))
        for t, n in q.items():
            if t in self.vocab:
                vec[self.vocab[t]] = n
        raw = self.weights @ vec
        # The query's score against an identical document (unknown bigrams count with df = 0).
        qlen = sum(q.values())
        norm = self.k1 * (1 - self.b + self.b * qlen / self.avgdl)
        self_score = sum(n * (self.idf[self.vocab[t]] if t in self.vocab else float(self._idf(0.0)))
                         * n * (self.k1 + 1) / (n + norm) for t, n in q.items())
        return raw / self_score

    def best_per_faq(self, scores: np.ndarray, k: int) -> list[tuple[int, float, int]]:
        """The ``k`` best FAQs as (faq, score, index of the best phrasing)."""
        out: list[tuple[int, float, int]] = []
        seen: set[int] = set()
        for i in np.argsort(-scores, kind="stable"):
            if scores[i] == -np.inf:
                break
            f = int(self.owners[i])
            if f not in seen:
                seen.add(f)
                out.append((f, float(scores[i]), int(i)))
                if len(out) == k:
                    break
        return out
