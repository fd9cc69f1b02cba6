"""The knowledge team's inbox (未解决问题): what the bot could not answer, grouped into needs.

Three things put a merchant's question here, each once per message, in the ``unanswered_questions`` table:

- ``no_answer``: the retriever decided not to answer (logged by ``/internal/kb/search`` as it happens);
- ``useless``: the merchant marked an FAQ answer 没用 (a bot message with ``feedback = useless``: the question
  is the merchant message it replied to);
- ``none_matched``: the merchant picked 都不是 under a 您是想问 offer (a merchant message "都不是" with the
  ``/request_human`` payload right after a ``kb_clarify`` bot message: the question is the one that was offered
  choices).

The last two are gathered when the inbox is read (``ingest``), so no other module has to know about the inbox.

Questions are grouped by the product's own embeddings (the model the API serves, texts normalised as the index
normalises them): identical normalised texts are one point weighted by how often they were asked; up to
``AGGLOMERATIVE_MAX`` points, average-linkage agglomerative clustering on cosine distance, cut at
``1 - threshold``; beyond it (a backlog of tens of thousands), the same in batches: each batch's points join
the nearest existing cluster whose centroid is within the threshold, the rest are clustered among themselves
and their clusters join the list (``cluster``). A cluster is named by its most central question: the one with
the highest weighted cosine to all its members (for unit vectors that is the inner product with the weighted
sum, so it costs one pass). The largest cluster comes first.

Acting on a cluster (or on any set of its questions) marks those rows resolved: ``attached`` to an FAQ as
similar questions, ``created`` into a new draft FAQ, or ``ignored``. Resolved rows leave the inbox; the same
question asked again later is a new row, and comes back.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Conversation, Faq, FaqStatus, Feedback, Message, Sender, UnansweredQuestion, utcnow
from . import faqs as faq_service
from .errors import Invalid, NotFound

SOURCES = {"no_answer": "机器人答不了", "useless": "回答被点了没用", "none_matched": "您是想问里选了都不是"}
RESOLUTIONS = {"attached": "已加为相似问法", "created": "已新建 FAQ", "ignored": "已忽略"}
THRESHOLD = 0.9   # cosine at which two questions are the same need (benchmarks/kb_inbox.py chose it)
AGGLOMERATIVE_MAX = 2000  # points clustered in one go; larger sets go in batches of this size
MAX_OPEN = 20_000  # the most recent open questions the inbox reads
NONE_MATCHED_TEXT = "都不是"
HANDOFF_PAYLOAD = "/request_human"
PLACEHOLDER_ANSWER = "（请填写答案）"


# --------------------------------------------------------------------------- gathering


def ingest(db: Session) -> int:
    """Add the 没用 and 都不是 questions not in the table yet; returns how many were added (caller commits)."""
    added = 0
    useless = list(db.scalars(select(Message).where(Message.sender == Sender.bot,
                                                    Message.feedback == Feedback.useless)))
    picks = list(db.scalars(select(Message).where(Message.sender == Sender.merchant,
                                                  Message.text == NONE_MATCHED_TEXT)))
    candidates = [m.id for m in useless + picks]
    if not candidates:
        return 0
    known: set[int] = set()
    for start in range(0, len(candidates), 500):
        chunk = candidates[start:start + 500]
        known.update(db.scalars(select(UnansweredQuestion.message_id)
                                .where(UnansweredQuestion.message_id.in_(chunk))))
    merchants: dict[int, int] = {}

    def merchant_of(conversation_id: int) -> int | None:
        if conversation_id not in merchants:
            conv = db.get(Conversation, conversation_id)
            merchants[conversation_id] = conv.merchant_id if conv else None
        return merchants[conversation_id]

    for msg in useless:
        if msg.id in known:
            continue
        payload = msg.payload or {}
        custom = payload.get("custom") or {}
        asked = _message(db, payload.get("reply_to"))
        if custom.get("type") != "faq_answer" or asked is None or not asked.text.strip():
            continue
        db.add(UnansweredQuestion(text=asked.text[:2000], merchant_id=merchant_of(msg.conversation_id),
                                  conversation_id=msg.conversation_id, top_faq_id=_int(custom.get("faq_id")),
                                  source="useless", message_id=msg.id, created_at=msg.created_at))
        added += 1
    for msg in picks:
        if msg.id in known or (msg.payload or {}).get("payload") != HANDOFF_PAYLOAD:
            continue
        offer = db.scalar(select(Message).where(Message.conversation_id == msg.conversation_id,
                                                Message.id < msg.id).order_by(Message.id.desc()).limit(1))
        custom = ((offer.payload or {}).get("custom") or {}) if offer is not None else {}
        if offer is None or offer.sender != Sender.bot or custom.get("type") != "kb_clarify":
            continue
        asked = _message(db, (offer.payload or {}).get("reply_to"))
        if asked is None or not asked.text.strip():
            continue
        offered = ((custom.get("understood") or {}).get("faqs") or [{}])[0]
        db.add(UnansweredQuestion(text=asked.text[:2000], merchant_id=merchant_of(msg.conversation_id),
                                  conversation_id=msg.conversation_id, top_faq_id=_int(offered.get("id")),
                                  top_score=offered.get("score"), source="none_matched", message_id=msg.id,
                                  created_at=msg.created_at))
        added += 1
    db.flush()
    return added


def _message(db: Session, message_id) -> Message | None:
    message_id = _int(message_id)
    return db.get(Message, message_id) if message_id is not None else None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def open_questions(db: Session, limit: int = MAX_OPEN) -> list[UnansweredQuestion]:
    return list(db.scalars(select(UnansweredQuestion).where(UnansweredQuestion.resolved.is_(False))
                           .order_by(UnansweredQuestion.id.desc()).limit(limit)))


# --------------------------------------------------------------------------- embedding and clustering


class VectorCache:
    """Normalised question → vector, per model: the inbox is read again and again with mostly the same questions."""

    def __init__(self, size: int = 20_000):
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def vectors(self, embedder, texts: list[str], batch_size: int = 64) -> np.ndarray:
        keys = [(embedder.name, t) for t in texts]
        with self._lock:
            found = {k: self._items[k] for k in keys if k in self._items}
        missing = sorted({t for (_, t) in keys if (embedder.name, t) not in found}, key=len)  # like lengths pad less
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            for text, vector in zip(chunk, embedder.encode(chunk, batch_size=batch_size), strict=True):
                found[(embedder.name, text)] = vector
        with self._lock:
            for key in keys:
                self._items[key] = found[key]
                self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        if not keys:
            return np.zeros((0, embedder.dim), dtype=np.float32)
        return np.vstack([found[k] for k in keys]).astype(np.float32, copy=False)


CACHE = VectorCache()


def _agglomerate(vectors: np.ndarray, threshold: float) -> np.ndarray:
    if len(vectors) == 1:
        return np.zeros(1, dtype=np.int64)
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                    distance_threshold=1.0 - threshold)
    return model.fit_predict(vectors).astype(np.int64)


def cluster(vectors: np.ndarray, weights: np.ndarray | None = None, threshold: float = THRESHOLD,
            batch: int = AGGLOMERATIVE_MAX) -> np.ndarray:
    """A cluster label for each unit vector (labels 0..k-1). See the module's docstring."""
    n = len(vectors)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    weights = np.ones(n, dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
    if n <= batch:
        return _agglomerate(vectors, threshold)
    order = np.argsort(-weights, kind="stable")  # the most asked first: they found the clusters
    labels = np.full(n, -1, dtype=np.int64)
    sums = np.zeros((0, vectors.shape[1]), dtype=np.float32)  # weighted sum of each cluster's vectors
    for start in range(0, n, batch):
        idx = order[start:start + batch]
        chunk = vectors[idx]
        rest = idx
        if len(sums):
            centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
            sims = chunk @ centroids.T
            best = sims.argmax(axis=1)
            near = sims[np.arange(len(idx)), best] >= threshold
            labels[idx[near]] = best[near]
            np.add.at(sums, best[near], chunk[near] * weights[idx[near], None])
            rest = idx[~near]
        if len(rest):
            local = _agglomerate(vectors[rest], threshold)
            base = len(sums)
            labels[rest] = base + local
            fresh = np.zeros((int(local.max()) + 1, vectors.shape[1]), dtype=np.float32)
            np.add.at(fresh, local, vectors[rest] * weights[rest, None])
            sums = np.vstack([sums, fresh])
    return labels


def central(vectors: np.ndarray, weights: np.ndarray) -> int:
    """The member with the highest weighted cosine to all members (the medoid), in one pass."""
    total = (vectors * weights[:, None]).sum(axis=0)
    return int(np.argmax(vectors @ total))


# --------------------------------------------------------------------------- the inbox


@dataclass
class Example:
    text: str
    count: int
    question_ids: list[int] = field(default_factory=list)


@dataclass
class Cluster:
    key: int                          # the cluster's oldest question id (stable while the cluster lasts)
    name: str
    count: int                        # questions (rows) in it
    distinct: int                     # distinct questions
    sources: dict[str, int]
    examples: list[Example]
    question_ids: list[int]
    conversations: list[int]
    first_at: datetime
    last_at: datetime
    suggestions: list[dict] = field(default_factory=list)  # the retriever's top FAQs for the name


@dataclass
class Inbox:
    clusters: list[Cluster]
    questions: int
    total_clusters: int
    model: str
    threshold: float


def build(db: Session, retriever, threshold: float = THRESHOLD, limit: int = 50,
          max_examples: int = 5) -> Inbox:
    """Gather, embed and cluster the open questions; the ``limit`` largest clusters with their suggestions."""
    rows = open_questions(db)
    if not rows:
        return Inbox([], 0, 0, retriever.embedder.name, threshold)
    by_text: dict[str, list[UnansweredQuestion]] = {}
    for row in rows:
        normalized = retriever.prepare(row.text) or row.text.strip()
        by_text.setdefault(normalized, []).append(row)
    texts = list(by_text)
    weights = np.array([len(by_text[t]) for t in texts], dtype=np.float32)
    vectors = CACHE.vectors(retriever.embedder, texts)
    labels = cluster(vectors, weights, threshold)
    members: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        members.setdefault(int(label), []).append(i)
    clusters, centres = [], {}
    for points in members.values():
        pts = np.array(points)
        centre = points[central(vectors[pts], weights[pts])]
        group = [r for p in points for r in by_text[texts[p]]]
        raw = Counter(r.text.strip() for r in group)
        ids_of: dict[str, list[int]] = {}
        for r in group:
            ids_of.setdefault(r.text.strip(), []).append(r.id)
        name = Counter(r.text.strip() for r in by_text[texts[centre]]).most_common(1)[0][0]
        examples = [Example(name, raw[name], sorted(ids_of[name]))] + [
            Example(t, c, sorted(ids_of[t])) for t, c in raw.most_common() if t != name]
        times = [r.created_at for r in group]
        clusters.append(Cluster(
            key=min(r.id for r in group), name=name, count=len(group), distinct=len(points),
            sources=dict(Counter(r.source for r in group)), examples=examples[:max_examples],
            question_ids=sorted(r.id for r in group),
            conversations=sorted({r.conversation_id for r in group if r.conversation_id}, reverse=True)[:20],
            first_at=min(times), last_at=max(times)))
        centres[clusters[-1].key] = (texts[centre], vectors[centre])  # for the suggestions below
    clusters.sort(key=lambda c: (-c.count, -c.last_at.timestamp() if c.last_at else 0, c.key))
    shown = clusters[:limit]
    _suggest(db, retriever, shown, centres)
    return Inbox(shown, len(rows), len(clusters), retriever.embedder.name, threshold)


def _suggest(db: Session, retriever, clusters: list[Cluster], centres: dict, k: int = 3) -> None:
    hits_of = {}
    for c in clusters:
        text, vector = centres[c.key]
        hits_of[c.key] = retriever.index.search(vector, k=k, text=text, lexical=retriever.thresholds.lexical)
    ids = {h.faq_id for hits in hits_of.values() for h in hits}
    faqs = {f.id: f for f in db.scalars(select(Faq).where(Faq.id.in_(ids)))} if ids else {}
    for c in clusters:
        c.suggestions = [{"faq_id": h.faq_id, "question": faqs[h.faq_id].question, "category": faqs[h.faq_id].category,
                          "status": faqs[h.faq_id].status.value, "score": round(float(h.score), 4)}
                         for h in hits_of[c.key] if h.faq_id in faqs]


# --------------------------------------------------------------------------- actions


def _rows(db: Session, question_ids: list[int]) -> list[UnansweredQuestion]:
    ids = sorted(set(question_ids))
    if not ids:
        raise Invalid("请至少选择一个问题")
    rows = list(db.scalars(select(UnansweredQuestion).where(UnansweredQuestion.id.in_(ids))))
    if len(rows) != len(ids):
        raise NotFound("有问题不存在，请刷新收件箱")
    if any(r.resolved for r in rows):
        raise Invalid("有问题已经处理过了，请刷新收件箱")
    return rows


def _resolve(rows: list[UnansweredQuestion], resolution: str, editor: str, faq_id: int | None) -> None:
    now = utcnow()
    for r in rows:
        r.resolved, r.resolution, r.resolved_faq_id, r.resolved_by, r.resolved_at = True, resolution, faq_id, editor, now


def _texts(rows: list[UnansweredQuestion], chosen: list[str] | None) -> list[str]:
    texts = list(dict.fromkeys(t.strip() for t in (chosen if chosen is not None else [r.text for r in rows])))
    texts = [t for t in texts if t]
    too_long = [t for t in texts if len(t) > 200]
    if too_long:
        raise Invalid(f"相似问法每条不能超过 200 字：「{too_long[0][:20]}…」")
    return texts


def attach(db: Session, question_ids: list[int], faq_id: int, editor: str, texts: list[str] | None = None,
           publish: bool = False) -> tuple[Faq, list[str]]:
    """Add the questions (or the ``texts`` chosen from them) to an FAQ's similar questions; with ``publish``,
    publish the FAQ too. Returns the FAQ and the texts it gained (caller commits and refreshes the index)."""
    rows = _rows(db, question_ids)
    faq = faq_service.get_faq(db, faq_id)
    wanted = _texts(rows, texts)
    have = set(faq.phrasings)
    added = [t for t in wanted if t not in have]
    if len(faq.similar) + len(added) > 500:
        raise Invalid("这条 FAQ 的相似问法太多了（最多 500 条）")
    status = FaqStatus.published if publish else faq.status
    faq_service.save_faq(db, faq, editor=editor, question=faq.question, answer=faq.answer, category=faq.category,
                         similar=[*faq.similar, *added], tags=list(faq.tags or []), action=faq.action, status=status)
    _resolve(rows, "attached", editor, faq.id)
    return faq, added


def create_faq(db: Session, question_ids: list[int], editor: str, question: str | None = None,
               category: str | None = None, answer: str | None = None) -> Faq:
    """A new draft FAQ from the questions: the standard question (default: the first), the rest as similar
    questions, the answer left for the editor to write."""
    rows = _rows(db, question_ids)
    texts = _texts(rows, None)
    question = (question or texts[0]).strip()[:200]
    faq = faq_service.save_faq(db, None, editor=editor, question=question, answer=(answer or PLACEHOLDER_ANSWER),
                               category=(category or "未分类"), similar=[t for t in texts if t != question],
                               tags=["来自未解决问题"], action=None, status=FaqStatus.draft)
    _resolve(rows, "created", editor, faq.id)
    return faq


def ignore(db: Session, question_ids: list[int], editor: str) -> int:
    rows = _rows(db, question_ids)
    _resolve(rows, "ignored", editor, None)
    return len(rows)


def conversation_messages(db: Session, conversation_id: int, limit: int = 200) -> list[Message]:
    if db.get(Conversation, conversation_id) is None:
        raise NotFound("会话不存在")
    return list(db.scalars(select(Message).where(Message.conversation_id == conversation_id)
                           .order_by(Message.id).limit(limit)))
