"""Choose the answer / clarify thresholds from phrasings the index has not seen.

In-scope evidence comes from leave-one-out over the knowledge base itself: each
similar question is scored against every *other* phrasing (its own vector left
out), as if a merchant had typed it.  Out-of-scope evidence comes from a
calibration list of questions the knowledge base does not cover (kept apart
from the benchmark's test questions).  A grid search then picks the thresholds in two steps:

1. ``answer`` and ``margin``: as many right outright answers as possible while wrong answers stay within
   ``MAX_WRONG_ANSWER`` of the in-scope probes and out-of-scope answers within ``MAX_OOS_ANSWER`` (a pure
   utility, with right and wrong answers overlapping as much as they do, chose to answer almost nothing);
2. ``clarify`` (below ``answer``; it does not change what is answered): the best utility, where a right answer
   earns 1, a right "您是想问" (the FAQ in the top 3) earns 0.5, a wrong answer costs 2, an out-of-scope
   question answered costs 2 and one sent to "您是想问" costs 0.3.

A model fine-tuned on the knowledge base has seen every phrasing, so leave-one-out would flatter it:
``heldout_probes`` scores questions that a model was *not* trained on (the tuning job holds questions back: kb_training/tune.py).

Every probe is scored by a real ``FaqIndex`` search, exactly as the retriever scores a merchant's question
(candidates, pooling, the lexical bonus of weight ``lexical``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from knowledge_base.embedder import Embedder
from knowledge_base.index import FaqIndex
from knowledge_base.normalize import normalize
from knowledge_base.retriever import Thresholds

MAX_OOS_ANSWER = 0.05  # half the product target (≤ 10% answered): the calibration list is small
MAX_WRONG_ANSWER = 0.03  # share of in-scope questions answered with the wrong FAQ that we accept
MARGINS = (0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1)
REWARD = {"right_answer": 1.0, "right_clarify": 0.5, "wrong_answer": -2.0, "oos_answer": -2.0, "oos_clarify": -0.3}


@dataclass
class Probe:
    """The top scores one calibration question got: gold FAQ (None: out of scope), best FAQs and scores."""

    gold: int | None
    faqs: list[int]
    scores: list[float]
    weight: float = 1.0  # how much this probe counts (see balance)


@dataclass
class Outcome:
    utility: float
    right_answer: float
    wrong_answer: float
    clarify: float
    right_in_clarify: float
    oos_answer: float
    oos_clarify: float


SEARCH_K = 5  # as many FAQs as the retriever asks the index for


def _probe(index: FaqIndex, gold: int | None, vector: np.ndarray, text: str, lexical: float) -> Probe:
    hits = index.search(vector, k=SEARCH_K, text=text, lexical=lexical)
    return Probe(gold, [h.faq_id for h in hits], [h.score for h in hits])


def _index_of(embedder: Embedder, indexed: list[tuple[int, list[str]]]) -> tuple[FaqIndex, dict[int, tuple]]:
    vectors = embedder.encode([t for _, texts in indexed for t in texts])
    index, held, start = FaqIndex(embedder.dim, ann_threshold=10**12), {}, 0  # exact, as the seed KB's size is
    for faq_id, texts in indexed:
        held[faq_id] = (list(texts), vectors[start:start + len(texts)])
        start += len(texts)
    index.replace_many((faq_id, texts, vecs) for faq_id, (texts, vecs) in held.items())
    return index, held


def heldout_probes(embedder: Embedder, indexed: list[tuple[int, list[str]]], questions: list[tuple[int, str]],
                   out_of_scope: list[str], lexicals: Sequence[float] = (0.0,)) -> dict[float, list[Probe]]:
    """Probes for in-scope ``questions`` (gold FAQ, text) the index does not hold, plus out-of-scope ones;
    one list per lexical weight (the vectors are computed once).

    All texts must already be normalised; ``indexed`` is what the index holds: (FAQ, phrasings).
    """
    index, _ = _index_of(embedder, indexed)
    texts = [q for _, q in questions] + list(out_of_scope)
    golds: list[int | None] = [g for g, _ in questions] + [None] * len(out_of_scope)
    vectors = embedder.encode(texts)
    return {w: [_probe(index, gold, v, t, w) for gold, v, t in zip(golds, vectors, texts)] for w in lexicals}


def probes(embedder: Embedder, faqs: list[tuple[int, list[str]]], out_of_scope: list[str],
           synonyms: dict[str, str] | None = None, lexicals: Sequence[float] = (0.0,)) -> dict[float, list[Probe]]:
    """Leave-one-out probes for every similar question, plus one probe per out-of-scope question; one list
    per lexical weight.

    For each similar question its FAQ is re-indexed without it (and without any copy of it), searched, and
    put back: the question is scored as if a merchant had typed it.
    """
    indexed, standard = [], {}
    for faq_id, phrasings in faqs:
        texts = list(dict.fromkeys(t for t in (normalize(p, synonyms) for p in phrasings) if t))
        if texts:
            indexed.append((faq_id, texts))
            standard[faq_id] = normalize(phrasings[0], synonyms)
    index, held = _index_of(embedder, indexed)
    result: dict[float, list[Probe]] = {w: [] for w in lexicals}
    for faq_id, (texts, vectors) in held.items():
        for i, text in enumerate(texts):
            if text == standard[faq_id] or len(texts) < 2:
                continue  # the standard question is not a probe; an FAQ must keep a phrasing
            keep = [j for j in range(len(texts)) if j != i]
            index.replace_faq(faq_id, [texts[j] for j in keep], vectors[keep])
            for w in lexicals:
                result[w].append(_probe(index, faq_id, vectors[i], text, w))
        index.replace_faq(faq_id, texts, vectors)
    oos_texts = [t for t in (normalize(q, synonyms) for q in out_of_scope) if t]
    for v, t in zip(embedder.encode(oos_texts), oos_texts):
        for w in lexicals:
            result[w].append(_probe(index, None, v, t, w))
    return result


def balance(*groups: list[Probe]) -> list[Probe]:
    """All probes, weighted so that each group's in-scope probes count as much as another group's in all;
    out-of-scope probes keep weight 1 (e.g. many short held-back KB questions and a few long real ones)."""
    out = []
    for group in groups:
        n = sum(p.gold is not None for p in group) or 1
        out += [Probe(p.gold, p.faqs, p.scores, 1.0 / n if p.gold is not None else 1.0) for p in group]
    return out


class ProbeSet:
    """The probes as arrays, so that thousands of threshold settings are scored quickly."""

    def __init__(self, items: list[Probe]):
        self.top1 = np.array([p.scores[0] if p.scores else -1.0 for p in items])
        self.top2 = np.array([p.scores[1] if len(p.scores) > 1 else -1.0 for p in items])
        self.oos = np.array([p.gold is None for p in items])
        self.right1 = np.array([p.gold is not None and bool(p.faqs) and p.faqs[0] == p.gold for p in items])
        self.right3 = np.array([p.gold is not None and p.gold in p.faqs[:3] for p in items])
        self.weight = np.array([p.weight for p in items], dtype=float)
        self.n_in = float(self.weight[~self.oos].sum()) or 1.0
        self.n_out = float(self.weight[self.oos].sum()) or 1.0

    def evaluate(self, t: Thresholds) -> Outcome:
        shown = self.top1 >= t.clarify
        answered = shown & (self.top1 >= t.answer) & (self.top1 - self.top2 >= t.margin)
        clarified = shown & ~answered
        inscope = ~self.oos
        right_answer = self.weight[answered & self.right1].sum() / self.n_in
        wrong_answer = self.weight[answered & inscope & ~self.right1].sum() / self.n_in
        clarify = self.weight[clarified & inscope].sum() / self.n_in
        right_in_clarify = self.weight[clarified & self.right3].sum() / self.n_in
        oos_answer = self.weight[answered & self.oos].sum() / self.n_out
        oos_clarify = self.weight[clarified & self.oos].sum() / self.n_out
        utility = (REWARD["right_answer"] * right_answer + REWARD["right_clarify"] * right_in_clarify
                   + REWARD["wrong_answer"] * wrong_answer + REWARD["oos_answer"] * oos_answer
                   + REWARD["oos_clarify"] * oos_clarify)
        return Outcome(float(utility), float(right_answer), float(wrong_answer), float(clarify),
                       float(right_in_clarify), float(oos_answer), float(oos_clarify))


def choose(items: list[Probe], max_wrong: float = MAX_WRONG_ANSWER,
           max_oos: float = MAX_OOS_ANSWER) -> tuple[Thresholds, Outcome]:
    """The thresholds for these probes (see the module's docstring for the two steps)."""
    probe_set = ProbeSet(items)
    # Fine-tuned models spread their scores far lower than the base model (right answers from ~0.5).
    grid = np.round(np.arange(0.30, 0.995, 0.005), 3)
    best: tuple[float, float, Outcome] | None = None
    for answer in grid:
        for margin in MARGINS:
            o = probe_set.evaluate(Thresholds(answer=float(answer), margin=margin, clarify=float(answer)))
            if o.wrong_answer > max_wrong or o.oos_answer > max_oos:
                continue
            if best is None or (o.right_answer, o.utility) > (best[2].right_answer, best[2].utility):
                best = (float(answer), margin, o)
    if best is None:
        raise ValueError("no thresholds keep wrong and out-of-scope answers low enough")
    answer, margin, _ = best
    options = [Thresholds(answer=answer, margin=margin, clarify=float(c)) for c in grid[grid <= answer]]
    scored = [(probe_set.evaluate(t), t) for t in options]
    outcome, thresholds = max(scored, key=lambda pair: pair[0].utility)
    return thresholds, outcome


def report(t: Thresholds, o: Outcome, n_in: int, n_out: int) -> dict:
    return {"answer": t.answer, "margin": t.margin, "clarify": t.clarify, "lexical": t.lexical,
            "calibration": {"in_scope_probes": n_in, "out_of_scope_probes": n_out,
                            **{k: round(v, 4) for k, v in asdict(o).items()}}}


UTILITY_TIE = 0.005  # calibration utilities closer than this are within noise (a few of ~1,400 probes)


def choose_on_grid(groups: dict[float, list[list[Probe]]]) -> dict:
    """Thresholds for each lexical weight of the grid, and the weight to use.

    ``groups[w]``: the probe groups scored with weight ``w`` (``balance``d against each other). The best utility
    wins; weights within ``UTILITY_TIE`` of it are a tie, broken by the top-1 of the last group's in-scope probes
    (the real-style questions: the ranking a merchant sees), then by the smaller weight. Returns the chosen
    weight's ``report`` with the whole grid under ``calibration.lexical_grid``.
    """
    results = {}
    for w, probe_groups in groups.items():
        items = balance(*probe_groups)
        thresholds, outcome = choose(items)
        n_out = sum(p.gold is None for p in items)
        results[w] = report(Thresholds(thresholds.answer, thresholds.margin, thresholds.clarify, lexical=w),
                            outcome, len(items) - n_out, n_out)
        last = [p for p in probe_groups[-1] if p.gold is not None]
        top1 = sum(bool(p.faqs) and p.faqs[0] == p.gold for p in last) / max(len(last), 1)
        results[w]["calibration"]["real_style_top1"] = round(top1, 4)
    top = max(r["calibration"]["utility"] for r in results.values())
    tied = [w for w in results if results[w]["calibration"]["utility"] >= top - UTILITY_TIE]
    best = max(tied, key=lambda w: (results[w]["calibration"]["real_style_top1"], -w))
    result = results[best]
    if len(results) > 1:
        result["calibration"]["lexical_grid"] = {
            str(w): {"answer": r["answer"], "margin": r["margin"], "clarify": r["clarify"],
                     **{k: r["calibration"][k] for k in ("utility", "right_answer", "wrong_answer", "oos_answer",
                                                         "real_style_top1")}} for w, r in results.items()}
    return result
