"""Fine-tuning recipe variants, judged on the development questions.

Run: ``.venv/app/bin/python -m benchmarks.kb_recipes [--variants epochs2 mined ...]``

Every variant fine-tunes the unmodified e5-small on the seed FAQs' phrasings (the product's loop,
``knowledge_base.finetune``) and is scored on ``data/calibration/in_scope.yml`` — questions no variant trains
on — with the product's ranking (mean of the 2 best phrasings, with and without the lexical bonus). The
product's own model is scored beside them. The held-out benchmark set is not read.

Variants:
- ``epochs2`` / ``epochs3``: more passes over the same pairs (pairs re-drawn each epoch);
- ``lr1e-4``: twice the learning rate;
- ``batch64``: twice the in-batch negatives;
- ``mined``: each pair gets a hard negative, a phrasing of another FAQ that the unmodified model ranks among
  the 3 closest to the anchor (drawn at random among those 3, re-drawn each epoch);
- ``mined-epochs2``: both.
Writes benchmarks/results/kb_recipes.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time

import numpy as np
import yaml

from core.settings import get_settings
from devtools.kb_model import recipe_from, seed_kb_faqs
from knowledge_base import finetune, normalize
from knowledge_base.embedder import Embedder

from . import kb_common as kc
from .kb_content_split import flatten, score
from .kb_eval import CALIBRATION_IN

VARIANTS = {
    "epochs2": {"epochs": 2},
    "epochs3": {"epochs": 3},
    "lr1e-4": {"lr": 1e-4},
    "batch64": {"batch_size": 64},
    "mined": {"mined": True},
    "mined-epochs2": {"mined": True, "epochs": 2},
}


def mined_negatives(embedder: Embedder, faqs: list[finetune.KbFaq], depth: int = 3) -> dict[str, list[str]]:
    """For each phrasing, the ``depth`` phrasings of other FAQs closest to it under ``embedder``."""
    texts, owners, _ = flatten(faqs)
    vectors = embedder.encode(texts, batch_size=64)
    sims = vectors @ vectors.T
    sims[owners[:, None] == owners[None, :]] = -2.0
    top = np.argsort(-sims, axis=1)[:, :depth]
    return {texts[i]: [texts[j] for j in top[i]] for i in range(len(texts))}


def mined_examples(faqs: list[finetune.KbFaq], negatives: dict[str, list[str]], rng: random.Random,
                   ids: dict[str, str]) -> list[finetune.Example]:
    out = []
    for ex in finetune.kb_examples(faqs, rng):
        negative = rng.choice(negatives[ex.anchor])
        out.append(finetune.Example(ex.anchor, ex.positive, negative, (*ex.groups, ids[negative])))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--bm25", type=float, nargs="*", default=[0.0, 0.3])
    args = parser.parse_args(argv)
    settings = get_settings()
    synonyms = kc.seed_synonyms()
    faqs = seed_kb_faqs(synonyms)
    questions = [(normalize(str(r["q"]), synonyms), r["gold"])
                 for r in yaml.safe_load(CALIBRATION_IN.read_text(encoding="utf-8"))["questions"]]
    owner_of = {p: f.faq_id for f in faqs for p in f.phrasings}
    base = recipe_from(settings)
    rows = [["product model", "", *m] for m in _rows(score(settings.kb_model_dir, faqs, questions, args.bm25,
                                                          settings.query_prefix))]
    negatives = None
    for name in args.variants:
        change = dict(VARIANTS[name])
        mined = change.pop("mined", False)
        recipe = dataclasses.replace(base, **change)
        if mined and negatives is None:
            negatives = mined_negatives(Embedder(settings.default_model_dir, prefix=settings.query_prefix,
                                                 threads=2), faqs)
        out_dir = kc.BENCH_DIR / "recipes" / name

        def make(rng, mined=mined, negatives=negatives):
            if mined:
                return mined_examples(faqs, negatives, rng, owner_of)
            return finetune.kb_examples(faqs, rng)

        started = time.monotonic()
        finetune.train(settings.default_model_dir, out_dir, make, recipe, prefix=settings.query_prefix)
        seconds = time.monotonic() - started
        print(f"{name}: trained in {seconds:.0f} s", flush=True)
        for m in _rows(score(out_dir, faqs, questions, args.bm25, settings.query_prefix)):
            rows.append([name, f"{seconds:.0f}", *m])
    notes = [f"{len(questions)} development questions; {len(faqs)} FAQs,"
             f" {sum(len(f.phrasings) for f in faqs)} seed phrasings.",
             f"Base recipe: {dataclasses.asdict(base)}. train s on this machine, 2 cores.",
             "bm25 = weight of the product's lexical bonus; FAQ = mean of its 2 best phrasings."]
    kc.publish("kb_recipes.md", "Fine-tuning recipe variants on the development questions", notes,
               ["recipe", "train s", "bm25", "top-1", "top-3", "MRR@10"], rows)
    return 0


def _rows(by_weight: dict[float, tuple[float, float, float]]) -> list[list]:
    return [[w, *m] for w, m in by_weight.items()]


if __name__ == "__main__":
    sys.exit(main())
