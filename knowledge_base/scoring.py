"""How one FAQ is scored from the scores of its phrasings.

An FAQ scores the mean of its ``POOL`` best phrasings (all of them if it has fewer).  With a dozen phrasings
per FAQ, one stray phrasing that happens to sit close to a question no longer wins on its own: a question
that really belongs to an FAQ is close to several of its phrasings (BENCHMARKS.md, "pooling").
"""

from __future__ import annotations

import numpy as np

POOL = 2


def pooled(scores: np.ndarray, pool: int = POOL) -> float:
    """The FAQ's score from the scores of all its phrasings."""
    if len(scores) <= pool:
        return float(np.mean(scores))
    return float(np.mean(np.partition(scores, len(scores) - pool)[-pool:]))


def rank_faqs(scores: np.ndarray, owners: np.ndarray, k: int = 3, pool: int = POOL) -> tuple[list[int], list[float]]:
    """The best ``k`` FAQs and their pooled scores, from the scores of every indexed phrasing.

    ``owners[i]`` is the FAQ of phrasing ``i``; a score of ``-inf`` leaves that phrasing out.
    """
    keep = np.isfinite(scores)
    scores, owners = scores[keep], owners[keep]
    if not len(scores):
        return [], []
    order = np.argsort(owners, kind="stable")
    faqs, starts = np.unique(owners[order], return_index=True)
    groups = np.split(scores[order], starts[1:])
    values = np.array([pooled(g, pool) for g in groups])
    best = np.argsort(-values, kind="stable")[:k]
    return [int(faqs[i]) for i in best], [float(values[i]) for i in best]
