"""The 未解决问题 inbox's clustering: time and quality at 1k and 100k questions.

Run: ``.venv/app/bin/python -m benchmarks.kb_inbox`` (``--sweep`` only chooses the threshold). Writes
benchmarks/results/kb_inbox.md.

A labelled sample without any benchmark data: the seed KB's own phrasings (standard and similar questions),
each labelled by the FAQ it belongs to, stand in for unanswered questions (a cluster should be one FAQ's
worth of need). The FAQs are split in two by position: the even ones choose the threshold (``--sweep``: the
best F of purity and inverse purity), the odd ones are what is reported, so the figure is not measured on what
chose it. ``benchmarks/data`` (held-out and out-of-scope sets) is never read.

- A log of N questions: each question picks an FAQ by a Zipf-like popularity (a few needs are asked a lot)
  and then one of its phrasings, half the time with a merchant's typical opening or ending added (请问…，…急);
  so the log has repeats, as a real one does. The inbox clusters distinct normalised texts weighted by count,
  exactly as ``api.services.inbox.build`` does: that is what is timed (normalise, count, cluster, name each
  cluster by its medoid), with the embeddings computed beforehand (cached; their throughput is reported).
- Quality, weighted by questions: purity (each cluster's commonest FAQ), inverse purity (each FAQ's largest
  cluster: high when a need is not split), their F, and the adjusted Rand index (sklearn).
- 100k distinct points: the batched path's worst case (every question different), timing only: each point is
  a real phrasing's vector with a little noise, re-normalised.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from api.services import inbox
from knowledge_base import normalize

from .kb_common import cached_embeddings, load_embedder, phrasings, publish, seed_faqs, seed_synonyms

OPENINGS = ["请问", "你好，", "在吗，", "客服，", "麻烦问下，", "亲，"]
ENDINGS = ["？", "呢", "，急", "，谢谢", "啊", "，在线等"]


def pool(half: int) -> tuple[list[str], list[int]]:
    """The phrasings of every other FAQ (``half`` 0 or 1) with their FAQ, plus one variant of each."""
    synonyms = seed_synonyms()
    texts, labels = [], []
    rng = np.random.default_rng(11 + half)
    for i, faq in enumerate(seed_faqs()):
        if i % 2 != half:
            continue
        for p in phrasings(faq):
            variant = OPENINGS[rng.integers(len(OPENINGS))] + p + ENDINGS[rng.integers(len(ENDINGS))]
            for t in (p, variant):
                texts.append(normalize(t, synonyms) or t)
                labels.append(i)
    uniq = dict(zip(texts, labels, strict=True))  # a text shared by two FAQs keeps one label
    return list(uniq), list(uniq.values())


def sample(texts: list[str], labels: list[int], n: int, seed: int) -> tuple[list[str], list[int]]:
    """``n`` questions: an FAQ by Zipf-like popularity, then one of its texts uniformly."""
    rng = np.random.default_rng(seed)
    by_faq: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_faq.setdefault(label, []).append(i)
    faqs = list(by_faq)
    rng.shuffle(faqs)
    popularity = 1.0 / np.arange(1, len(faqs) + 1) ** 0.8
    picks = rng.choice(len(faqs), size=n, p=popularity / popularity.sum())
    out = [by_faq[faqs[f]][rng.integers(len(by_faq[faqs[f]]))] for f in picks]
    return [texts[i] for i in out], [labels[i] for i in out]


def run_inbox(questions: list[str], vectors_of: dict[str, np.ndarray], threshold: float) -> tuple[np.ndarray, float]:
    """What the inbox does with a log (embeddings given): count, cluster, name; a label per question; seconds."""
    started = time.perf_counter()
    counts = Counter(questions)
    texts = list(counts)
    weights = np.array([counts[t] for t in texts], dtype=np.float32)
    vectors = np.vstack([vectors_of[t] for t in texts])
    labels = inbox.cluster(vectors, weights, threshold)
    for label in np.unique(labels):  # naming: the medoid of each cluster
        members = np.flatnonzero(labels == label)
        inbox.central(vectors[members], weights[members])
    seconds = time.perf_counter() - started
    of_text = dict(zip(texts, labels, strict=True))
    return np.array([of_text[q] for q in questions]), seconds


def quality(pred: np.ndarray, gold: list[int]) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score

    gold_arr = np.array(gold)
    n = len(gold_arr)
    purity = sum(Counter(gold_arr[pred == c]).most_common(1)[0][1] for c in np.unique(pred)) / n
    inverse = sum(Counter(pred[gold_arr == g]).most_common(1)[0][1] for g in np.unique(gold_arr)) / n
    f = 2 * purity * inverse / (purity + inverse)
    return {"purity": purity, "inverse": inverse, "f": f, "ari": adjusted_rand_score(gold_arr, pred),
            "clusters": len(np.unique(pred)), "needs": len(np.unique(gold_arr))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true", help="only choose the threshold on the even FAQs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    args = parser.parse_args(argv)
    embedder = load_embedder()
    grid = [0.86, 0.87, 0.88, 0.89, 0.9, 0.91, 0.92, 0.93, 0.94]

    tune_texts, tune_labels = pool(0)
    vecs, rate0 = cached_embeddings(embedder, tune_texts, "choosing half")
    tune_vectors = dict(zip(tune_texts, vecs, strict=True))
    sweep = []
    q, g = sample(tune_texts, tune_labels, 2000, seed=1)
    for t in grid:
        pred, _ = run_inbox(q, tune_vectors, t)
        sweep.append((t, quality(pred, g)))
        print(f"threshold {t}: " + ", ".join(f"{k} {v:.3f}" for k, v in sweep[-1][1].items()))
    chosen = max(sweep, key=lambda s: s[1]["f"])[0]
    print(f"chosen threshold {chosen} (product: {inbox.THRESHOLD})")
    if args.sweep:
        return 0

    texts, labels = pool(1)
    vecs, rate = cached_embeddings(embedder, texts, "reported half")
    vectors_of = dict(zip(texts, vecs, strict=True))
    threshold = inbox.THRESHOLD
    rows = []
    for n in args.sizes:
        q, g = sample(texts, labels, n, seed=n)
        pred, seconds = run_inbox(q, vectors_of, threshold)
        m = quality(pred, g)
        rows.append([f"{n:,} questions ({len(set(q)):,} distinct)", threshold, f"{seconds:.2f}", m["purity"],
                     m["inverse"], m["f"], m["ari"], f"{m['clusters']} / {m['needs']}"])
    # the batched path's worst case: every question distinct (vector-level, timing only)
    rng = np.random.default_rng(5)
    base = np.vstack(list(vectors_of.values()))
    n = 100_000
    noisy = base[rng.integers(len(base), size=n)] + rng.normal(0, 0.01, size=(n, base.shape[1])).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    started = time.perf_counter()
    worst = inbox.cluster(noisy.astype(np.float32), None, threshold)
    rows.append([f"{n:,} distinct points (synthetic vectors)", threshold, f"{time.perf_counter() - started:.2f}",
                 "–", "–", "–", "–", f"{len(np.unique(worst))} / –"])
    notes = [f"Model: {embedder.name}; threshold {threshold} (cosine), chosen on the other half of the FAQs: "
             + ", ".join(f"{t}: F {s['f']:.3f}" for t, s in sweep) + f" (best {chosen})",
             f"Labelled pool: {len(texts):,} distinct normalised texts of {len(set(labels))} FAQs (odd positions); "
             f"embedding throughput {rate:.0f} texts/s" if rate else
             f"Labelled pool: {len(texts):,} distinct normalised texts of {len(set(labels))} FAQs (odd positions); "
             "embeddings from the cache (var/bench/embeddings)",
             f"Agglomerative (average linkage, cosine) up to {inbox.AGGLOMERATIVE_MAX} distinct texts, batched "
             "leader + agglomerative above; time = count + cluster + name, embeddings excluded",
             "Purity / inverse purity / F / ARI weighted by questions; clusters / FAQs in the sample"]
    publish("kb_inbox.md", "未解决问题 inbox: clustering time and quality", notes,
            ["log", "threshold", "seconds", "purity", "inverse purity", "F", "ARI", "clusters / needs"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
