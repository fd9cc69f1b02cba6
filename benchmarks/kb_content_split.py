"""How much more real-style similar questions would help: a two-fold split of the development questions.

Run: ``.venv/app/bin/python -m benchmarks.kb_content_split [--bm25 0 0.3]``

The development questions (``data/calibration/in_scope.yml``) are split in two halves, each FAQ's questions
dealt alternately into A and B (seeded). For each half, the other half is added to its FAQs as similar
questions — what the knowledge team does when it copies merchants' real wording into the KB — and the half
is scored three ways:

1. the product model over the seed phrasings (today);
2. the product model over the seed phrasings plus the other half (content only, no retraining);
3. a model fine-tuned on the seed phrasings plus the other half (the product's recipe), over the same index.

Ranking only (the product's pooling, optionally + w · the product's lexical bonus). Neither half's own
questions are ever indexed or trained on when it is scored. The held-out benchmark set is not read.
Writes benchmarks/results/kb_content_split.md.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
import yaml

from core.settings import get_settings
from devtools.kb_model import seed_kb_faqs, train_on_faqs
from knowledge_base import finetune, normalize
from knowledge_base.embedder import Embedder

from . import kb_common as kc
from .kb_eval import CALIBRATION_IN
from .kb_variants import metrics, ranked


def halves(rows: list[tuple[str, str]], seed: int) -> tuple[list, list]:
    """Each FAQ's questions, shuffled, dealt alternately into two halves (the first one to a random side)."""
    rng = random.Random(seed)
    by_gold: dict[str, list[str]] = {}
    for q, gold in rows:
        by_gold.setdefault(gold, []).append(q)
    a, b = [], []
    for gold in sorted(by_gold):
        qs = by_gold[gold]
        rng.shuffle(qs)
        flip = rng.random() < 0.5
        for i, q in enumerate(qs):
            (a if (i % 2 == 0) != flip else b).append((q, gold))
    return a, b


def with_extra(faqs: list[finetune.KbFaq], extra: list[tuple[str, str]]) -> list[finetune.KbFaq]:
    more: dict[str, list[str]] = {}
    for q, gold in extra:
        more.setdefault(gold, []).append(q)
    return [finetune.KbFaq(f.faq_id, f.category, tuple(dict.fromkeys((*f.phrasings, *more.get(f.faq_id, ())))))
            for f in faqs]


def flatten(faqs: list[finetune.KbFaq]) -> tuple[list[str], np.ndarray, dict[str, int]]:
    ids = {f.faq_id: i for i, f in enumerate(faqs)}
    texts, owners = [], []
    for f in faqs:
        for p in f.phrasings:
            texts.append(p)
            owners.append(ids[f.faq_id])
    return texts, np.asarray(owners), ids


def score(model: Path, faqs: list[finetune.KbFaq], questions: list[tuple[str, str]], weights: list[float],
          prefix: str) -> dict[float, tuple[float, float, float]]:
    texts, owners, ids = flatten(faqs)
    embedder = Embedder(model, prefix=prefix, threads=2)
    doc = embedder.encode(texts)
    query = embedder.encode([q for q, _ in questions])
    lexical = kc.lexical_scores(texts, [q for q, _ in questions])
    golds = [ids[g] for _, g in questions]
    return {w: metrics(ranked(query @ doc.T + w * lexical, owners, 2), golds) for w in weights}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=CALIBRATION_IN)
    parser.add_argument("--bm25", type=float, nargs="*", default=[0.0, 0.3])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    settings = get_settings()
    synonyms = kc.seed_synonyms()
    faqs = seed_kb_faqs(synonyms)
    rows = [(normalize(str(r["q"]), synonyms), r["gold"])
            for r in yaml.safe_load(args.questions.read_text(encoding="utf-8"))["questions"]]
    parts = halves(rows, args.seed)
    results: dict[str, dict[float, list]] = {}
    for n, (scored, added) in enumerate([(parts[0], parts[1]), (parts[1], parts[0])], 1):
        augmented = with_extra(faqs, added)
        out_dir = kc.BENCH_DIR / "content-split" / f"half{n}"
        seconds = train_on_faqs(settings, augmented, out_dir, f"half {n}")
        print(f"half {n}: fine-tuned on {sum(len(f.phrasings) for f in augmented)} phrasings in {seconds:.0f} s")
        systems = {
            "product model, seed phrasings (today)": (settings.kb_model_dir, faqs),
            "product model, seed + other half indexed": (settings.kb_model_dir, augmented),
            "fine-tuned on seed + other half, same index": (out_dir, augmented),
        }
        for name, (model, kb) in systems.items():
            for w, m in score(model, kb, scored, args.bm25, settings.query_prefix).items():
                results.setdefault(name, {}).setdefault(w, []).append((len(scored), m))

    table = []
    for name, by_w in results.items():
        for w, parts_m in by_w.items():
            n = sum(c for c, _ in parts_m)
            mean = [sum(c * m[i] for c, m in parts_m) / n for i in range(3)]
            table.append([name, w, *mean, " / ".join(f"{m[0]:.3f}" for _, m in parts_m)])
    notes = [f"{len(rows)} development questions in two halves of {len(parts[0])} and {len(parts[1])};"
             f" {len(faqs)} FAQs, {sum(len(f.phrasings) for f in faqs)} seed phrasings.",
             "Each half is scored with the other half added to the KB (never itself); figures are the mean over"
             " both halves, weighted by their size; the last column is top-1 per half.",
             "bm25 = weight of the product's lexical bonus; FAQ = mean of its 2 best phrasings."]
    kc.publish("kb_content_split.md", "More real-style similar questions: a two-fold split of the development set",
               notes, ["system", "bm25", "top-1", "top-3", "MRR@10", "top-1 per half"], table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
