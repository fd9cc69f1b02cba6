"""Turns a merchant's question into a decision: answer, clarify, or no answer."""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .embedder import Embedder
from .index import FaqIndex, Hit
from .normalize import normalize
from .reading import QueryReading

# A follow-up that leans on what was just said: a pronoun, "那…呢", "还有别的…" (normalised text)
_LEANS_ON_CONTEXT = re.compile(r"^(那|那么|那如果|如果|要是|这个|那个|这|它|还有|还能|还可以|另外)|呢$|这个|那个|别的|其他|其它|还有什么")
FOLLOW_UP_CHARS = 10  # see search_in_context
CONTEXT_REPEAT_PENALTY = 0.01


class Decision(enum.StrEnum):
    answer = "answer"      # one FAQ is clearly right
    clarify = "clarify"    # offer the top choices: "您是想问…"
    no_answer = "no_answer"


@dataclass(frozen=True)
class Thresholds:
    """Score thresholds, calibrated on held-out phrasings (devtools.kb calibrate) together with ``lexical``,
    the weight of the bigram BM25 bonus in a phrasing's score (0: cosine alone)."""

    answer: float = 0.91
    margin: float = 0.015   # lead over the runner-up needed to answer outright
    clarify: float = 0.88
    clarify_choices: int = 3
    lexical: float = 0.0


@dataclass(frozen=True)
class Conflict:
    """A similar question closer to another FAQ (``other_faq_id``, ``other_score``, its closest phrasing
    ``other_phrasing``) than to the rest of its own (``own_score``)."""

    text: str
    own_score: float
    other_faq_id: int
    other_score: float
    other_phrasing: str


@dataclass
class Result:
    decision: Decision
    query: str
    normalized: str
    hits: list[Hit] = field(default_factory=list)


class Retriever:
    """``query_cache``: how many questions' vectors are kept (normalised text → vector); merchants ask the same
    things again and again (hot questions, chips, 您是想问 picks), and an embedding is most of a search's CPU."""

    def __init__(self, embedder: Embedder, index: FaqIndex, thresholds: Thresholds | None = None,
                 synonyms: Mapping[str, str] | None = None, query_cache: int = 4096):
        self.embedder = embedder
        self.index = index
        self.thresholds = thresholds or Thresholds()
        self.synonyms: Mapping[str, str] = synonyms or {}
        self.reading = QueryReading(index)
        self._query_vector = functools.lru_cache(maxsize=query_cache)(self._embed_query)

    def _embed_query(self, normalized: str) -> np.ndarray:
        vector = self.embedder.encode([normalized])[0]
        vector.setflags(write=False)  # shared by every search of the same question
        return vector

    def prepare(self, text: str) -> str:
        return normalize(text, self.synonyms)

    def index_faq(self, faq_id: int, phrasings: list[str]) -> None:
        """(Re)index one FAQ's phrasings; incremental, no rebuild."""
        texts = [t for t in (self.prepare(p) for p in phrasings) if t]
        self.index.replace_faq(faq_id, texts, self.embedder.encode(texts))

    def index_many(self, faqs: list[tuple[int, list[str]]], progress=None, batch_size: int = 64) -> None:
        """Index many FAQs, embedding their phrasings in large batches (for rebuilds).

        ``progress`` (e.g. a tqdm bar) is advanced by the number of phrasings embedded.
        """
        prepared = [(faq_id, [t for t in (self.prepare(p) for p in phrasings) if t]) for faq_id, phrasings in faqs]
        texts = [t for _, ts in prepared for t in ts]
        # Embedded shortest first: a batch of texts of like length pads little (the seed KB's 6,323 phrasings:
        # 87 s in FAQ order, where one long situational question pads a whole batch, 50 s sorted, on 2 cores).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        matrix = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            matrix[chunk] = self.embedder.encode([texts[i] for i in chunk], batch_size=batch_size)
            if progress is not None:
                progress.update(len(chunk))
        starts = np.cumsum([0] + [len(ts) for _, ts in prepared])
        self.index.replace_many((faq_id, ts, matrix[starts[n]:starts[n + 1]]) for n, (faq_id, ts) in enumerate(prepared))

    def _vectors(self, texts: list[str], progress, stop, batch_size: int) -> dict[str, np.ndarray] | None:
        """The vectors of ``texts`` (normalised): those this index holds are reused, only the others embedded,
        shortest first in batches. ``progress(done, total, reused)`` follows the embedding; ``stop()``, asked
        between batches, abandons it (None)."""
        vectors = self.index.vectors_of(texts)
        missing = sorted({t for t in texts if t not in vectors}, key=len)
        reused = sum(1 for t in texts if t in vectors)
        if progress is not None:
            progress(0, len(missing), reused)
        for start in range(0, len(missing), batch_size):
            if stop is not None and stop():
                return None
            chunk = missing[start:start + batch_size]
            vectors.update(zip(chunk, self.embedder.encode(chunk, batch_size=batch_size)))
            if progress is not None:
                progress(start + len(chunk), len(missing), reused)
        return None if stop is not None and stop() else vectors

    def reindexed(self, synonyms: Mapping[str, str], faqs: list[tuple[int, list[str]]], index: FaqIndex,
                  progress=None, stop=None, batch_size: int = 64) -> Retriever | None:
        """A retriever like this one over ``faqs`` read with other ``synonyms``, built in the empty ``index``.

        A phrasing whose normalised text this retriever already holds keeps its vector; only the texts the new
        synonyms produce anew are embedded (shortest first, like ``index_many``): a synonym change costs what it
        changes. ``progress(done, total, reused)`` follows the embedding (``total`` texts to embed, ``reused``
        phrasings kept); ``stop()``, asked between batches, abandons the work (returns None).
        """
        fresh = Retriever(self.embedder, index, self.thresholds, synonyms=synonyms)
        prepared = [(faq_id, [t for t in (fresh.prepare(p) for p in phrasings) if t]) for faq_id, phrasings in faqs]
        texts = [t for _, ts in prepared for t in ts]
        vectors = self._vectors(texts, progress, stop, batch_size)
        if vectors is None:
            return None
        empty = np.zeros((0, self.embedder.dim), dtype=np.float32)
        index.replace_many((faq_id, ts, np.vstack([vectors[t] for t in ts]) if ts else empty)
                           for faq_id, ts in prepared)
        return fresh

    def update_many(self, faqs: list[tuple[int, list[str] | None]], progress=None, stop=None,
                    batch_size: int = 64) -> bool:
        """Bring many FAQs' entries in line at once (an import): each with its phrasings, or None to take it out.

        Like ``reindexed``, a phrasing whose normalised text the index already holds keeps its vector, and only
        the new texts are embedded, shortest first in batches (``index_many``); the embedding runs outside the
        index's lock, so searches go on meanwhile, and the entries change in one ``replace_many`` at the end.
        ``progress(done, total, reused)`` and ``stop()`` as in ``reindexed``; False when stopped (nothing
        changed)."""
        prepared = [(faq_id, None if phrasings is None else [t for t in (self.prepare(p) for p in phrasings) if t])
                    for faq_id, phrasings in faqs]
        texts = [t for _, ts in prepared for t in ts or []]
        vectors = self._vectors(texts, progress, stop, batch_size)
        if vectors is None:
            return False
        empty = np.zeros((0, self.embedder.dim), dtype=np.float32)
        self.index.replace_many((faq_id, ts or [], np.vstack([vectors[t] for t in ts]) if ts else empty)
                                for faq_id, ts in prepared)
        return True

    def remove_faq(self, faq_id: int) -> None:
        self.index.remove_faq(faq_id)

    def read(self, text: str) -> str:
        """The question as it is searched: normalised, pinyin and English merchant terms in the KB's words."""
        return self.reading.rewrite(self.prepare(text))

    def search(self, text: str, k: int = 5) -> Result:
        normalized = self.read(text)
        if not normalized:
            return Result(Decision.no_answer, text, normalized)
        hits = self.index.search(self._query_vector(normalized), k=k, text=normalized,
                                 lexical=self.thresholds.lexical)
        owner = self.index.faq_of(normalized)
        if owner is not None:  # the merchant typed one of an FAQ's own phrasings: that FAQ, whatever the pooling
            mine = [h for h in hits if h.faq_id == owner] or [Hit(owner, 1.0, normalized)]
            hits = [Hit(owner, mine[0].score, normalized)] + [h for h in hits if h.faq_id != owner][:k - 1]
            return Result(Decision.answer, text, normalized, hits)
        hits = self.reading.adjust(normalized, hits)  # 我被投诉 / 我要投诉: the side the question takes
        return Result(self.decide(hits), text, normalized, hits)

    def search_in_context(self, text: str, context: str | None, context_faq: int | None = None,
                          k: int = 5) -> tuple[Result, bool]:
        """The search of a follow-up question: ``context`` is the question of FAQ ``context_faq``, which the
        conversation just had answered.

        A question that leans on the context (a pronoun, 「那…呢」, 「还有别的…」) or is too short to stand
        alone (``FOLLOW_UP_CHARS``: 「要多久」, 「能不交吗」) is read both ways: each FAQ scores the mean of its score for the question alone and for the
        question joined to the context, so the context narrows the topic while the question's own words pick
        the FAQ within it; the FAQ just answered loses ``CONTEXT_REPEAT_PENALTY`` (a follow-up seldom asks the
        same thing again). Chosen on ``data/calibration/followups.yml`` and, for the price on a short question that
        changes the subject, on ``data/calibration/in_scope.yml`` asked after an unrelated answer. Returns the result and whether the
        context was used."""
        normalized = self.read(text)
        follow_up = (context and normalized and self.index.faq_of(normalized) is None
                     and (_LEANS_ON_CONTEXT.search(normalized) or len(normalized) <= FOLLOW_UP_CHARS))
        if not follow_up:
            return self.search(text, k=k), False
        depth = max(4 * k, 40)  # deep enough that an FAQ missing from one list scores that list's floor
        alone = self.search(text, k=depth)  # once, deep: its top k is the plain search
        own = {h.faq_id: h for h in alone.hits}
        joined = {h.faq_id: h for h in self.search(f"{context} {text}", k=depth).hits}
        if not own or not joined:
            return Result(alone.decision, text, alone.normalized, alone.hits[:k]), False
        floor_own, floor_joined = min(h.score for h in own.values()), min(h.score for h in joined.values())
        scored = []
        for faq_id in own.keys() | joined.keys():
            a, b = own.get(faq_id), joined.get(faq_id)
            score = ((a.score if a else floor_own) + (b.score if b else floor_joined)) / 2
            if faq_id == context_faq:
                score -= CONTEXT_REPEAT_PENALTY
            scored.append(Hit(faq_id, score, (a or b).phrasing))
        hits = sorted(scored, key=lambda h: h.score, reverse=True)[:k]
        return Result(self.decide(hits), text, normalized, hits), True

    def search_with(self, text: str, faq_id: int, phrasings: list[str] | None, k: int = 5) -> Result:
        """The search as it would go if FAQ ``faq_id`` had these ``phrasings`` (None: were not indexed at all),
        without touching the index: the FAQ's draft is scored in an index of its own with the same pooling and
        merged with the live hits of the other FAQs; the same decision rules follow (试一试). The lexical bonus
        of the draft's phrasings is weighed within the draft alone, so with a lexical weight it is close to,
        not exactly, what publishing gives."""
        normalized = self.read(text)
        if not normalized:
            return Result(Decision.no_answer, text, normalized)
        vector = self._query_vector(normalized)
        t = self.thresholds
        hits = [h for h in self.index.search(vector, k=k + 1, text=normalized, lexical=t.lexical)
                if h.faq_id != faq_id][:k]
        texts = [p for p in (self.prepare(x) for x in phrasings or []) if p]
        if texts:
            own = FaqIndex(self.index.dim, pool=self.index.pool)
            own.replace_faq(faq_id, texts, self.embedder.encode(texts))
            hits = sorted(hits + own.search(vector, k=1, text=normalized, lexical=t.lexical),
                          key=lambda h: h.score, reverse=True)[:k]
        owner = faq_id if normalized in texts else self.index.faq_of(normalized)
        if owner is not None and (owner != faq_id or texts):
            mine = [h for h in hits if h.faq_id == owner] or [Hit(owner, 1.0, normalized)]
            hits = [Hit(owner, mine[0].score, normalized)] + [h for h in hits if h.faq_id != owner][:k - 1]
            return Result(Decision.answer, text, normalized, hits)
        hits = self.reading.adjust(normalized, hits)
        return Result(self.decide(hits), text, normalized, hits)

    def conflicts(self, faq_id: int, question: str, similar: list[str]) -> list[Conflict]:
        """Each of ``similar`` that sits closer to another FAQ than to its own: its score against the rest of its
        own FAQ's phrasings (itself left out) and against the best other FAQ of the live index, the other ahead by
        more than the answer margin (``Thresholds.margin``): a question typed like it would be answered with the
        other FAQ. Closer by less is the ordinary overlap of sibling FAQs (保证金怎么退 / 保证金退还被驳回), not a
        misplaced phrasing."""
        own_texts = [self.prepare(x) for x in [question, *similar]]
        keep = [i for i, x in enumerate(own_texts) if x]
        if len(keep) < 2:
            return []
        vectors = self.embedder.encode([own_texts[i] for i in keep])
        by_text = dict(zip((own_texts[i] for i in keep), vectors))
        lexical = self.thresholds.lexical
        found = []
        for n, raw in enumerate(similar, start=1):
            text = own_texts[n]
            if not text:
                continue
            rest = [x for x in dict.fromkeys(own_texts) if x and x != text]
            if not rest:
                continue
            vector = by_text[text]
            own = FaqIndex(self.index.dim, pool=self.index.pool)
            own.replace_faq(faq_id, rest, np.vstack([by_text[x] for x in rest]))
            own_hits = own.search(vector, k=1, text=text, lexical=lexical)
            other = [h for h in self.index.search(vector, k=3, text=text, lexical=lexical) if h.faq_id != faq_id]
            owner = self.index.faq_of(text)
            if owner is not None and owner != faq_id:  # another FAQ has exactly this phrasing
                other = [Hit(owner, 1.0, text)]
            if other and own_hits and other[0].score > own_hits[0].score + self.thresholds.margin:
                found.append(Conflict(raw, own_hits[0].score, other[0].faq_id, other[0].score, other[0].phrasing))
        return found

    def decide(self, hits: list[Hit]) -> Decision:
        t = self.thresholds
        if not hits or hits[0].score < t.clarify:
            return Decision.no_answer
        runner_up = hits[1].score if len(hits) > 1 else -1.0
        if hits[0].score >= t.answer and hits[0].score - runner_up >= t.margin:
            return Decision.answer
        return Decision.clarify
