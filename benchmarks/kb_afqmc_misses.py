"""Where a model's AFQMC retrieval_dev top-1 goes wrong: what AFQMC's own labels say about the sentence it ranked first.

Run: ``.venv/app/bin/python -m benchmarks.kb_afqmc_misses --model DIR [--sample N]``

For each query whose top-1 sentence is not its gold one, dev.tsv may label the (query, top-1) pair: 0 (a
labelled near-miss: the set's builders paired them and judged them different) or 1 (a second gold the qrels
lack). Most pairs are unlabelled. ``--sample N`` prints N random misses (query, gold, top-1) to the terminal
for reading; they are never written to a file, because the sets are evaluation data that stays out of the repo.
"""

from __future__ import annotations

import argparse
import os
import random
import sys

import numpy as np

from core.settings import get_settings
from knowledge_base import load_models

from . import kb_common as kc
from .kb_afqmc_model import read_pairs
from .kb_external import DATA, load_set, prepared, rank_e5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder(s), comma-separated for a mean")
    parser.add_argument("--sample", type=int, default=0, help="print this many random misses")
    args = parser.parse_args(argv)
    settings = get_settings()
    corpus, queries, qrels = load_set(DATA / "afqmc" / "retrieval_dev")
    labels = {frozenset((a, b)): label for a, b, label in read_pairs(DATA / "afqmc" / "dev.tsv")}
    docs, texts = prepared([t for _, t in corpus], True), prepared([t for _, t in queries], True)
    embedder = load_models(args.model, prefix=settings.query_prefix, threads=os.cpu_count() or 2)
    dv, _ = kc.cached_embeddings(embedder, docs, f"{embedder.name}: corpus")
    qv, _ = kc.cached_embeddings(embedder, texts, f"{embedder.name}: queries")
    ranked = rank_e5(dv, qv)
    ids = [i for i, _ in corpus]
    text_of = dict(zip(ids, docs))
    counts = {"right": 0, "labelled 0": 0, "labelled 1": 0, "unlabelled": 0}
    misses = []
    for (qid, _), q, row in zip(queries, texts, ranked):
        if ids[row[0]] in qrels[qid]:
            counts["right"] += 1
            continue
        label = labels.get(frozenset((q, docs[row[0]])))
        counts[{0: "labelled 0", 1: "labelled 1", None: "unlabelled"}[label]] += 1
        gold = text_of[min(qrels[qid])]
        rank = next((r for r, d in enumerate(row, 1) if ids[d] in qrels[qid]), None)
        misses.append((q, gold, docs[row[0]], rank))
    n = len(queries)
    print(f"{embedder.name}: {n} queries")
    for k, v in counts.items():
        print(f"  {k}: {v} ({v / n:.3f})")
    gold_ranks = [r for *_, r in misses]
    print(f"  misses with gold in top 10: {sum(r is not None for r in gold_ranks)} of {len(misses)}; "
          f"median rank there {np.median([r for r in gold_ranks if r]) if any(gold_ranks) else '—'}")
    for q, gold, top, rank in random.Random(7).sample(misses, min(args.sample, len(misses))):
        print(f"Q: {q}\n   gold (rank {rank or '>10'}): {gold}\n   top-1: {top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
