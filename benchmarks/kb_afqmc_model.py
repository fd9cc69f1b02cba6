"""A benchmark artefact: e5-small fine-tuned on AFQMC *train* (never dev), for kb_external's AFQMC figures.

Run: ``.venv/app/bin/python -m benchmarks.kb_afqmc_model [--max-pairs N] [--out DIR] [--cosent-weight W]``

Training data: the positive pairs of ``/work/shared/benchmarks/afqmc/train.tsv`` (sentence1 → sentence2), each
with a hard negative when sentence1 also has a negative pair in train (else a random train sentence), the
product's fine-tuning loop (``knowledge_base.finetune``, MultipleNegativesRankingLoss, one epoch). A batch never
holds the same sentence twice. The model lands in ``var/models/multilingual-e5-small-afqmc`` (git-ignored); it
is not the product's model: the product's is fine-tuned on our own FAQs (devtools/kb_model.py).

With ``--cosent-weight W`` every step also takes a batch of train's *labelled* pairs (positives and negatives,
all 34k of them in turn) and adds W x CoSENT loss, which pushes every same-meaning pair's cosine above every
different-meaning pair's in that batch. MNRL alone sees at most one labelled negative per anchor; AFQMC's
retrieval distractors are mostly such near-misses.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
from pathlib import Path

from core.settings import get_settings
from knowledge_base import finetune
from knowledge_base.normalize import normalize

from .kb_external import DATA

TRAIN = DATA / "afqmc" / "train.tsv"
RECIPE = finetune.Recipe(epochs=1, lr=5e-5, batch_size=32, seed=42, hard_negatives=True)


def read_pairs(path: Path) -> list[tuple[str, str, int]]:
    """(sentence1, sentence2, label) rows, normalised like the benchmark's texts (no synonyms)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2] in ("0", "1"):
            a, b = normalize(parts[0]) or parts[0], normalize(parts[1]) or parts[1]
            rows.append((a, b, int(parts[2])))
    return rows


def afqmc_examples(rows: list[tuple[str, str, int]], max_pairs: int | None, rng: random.Random,
                   both_ways: bool = False):
    """Positive pairs with a hard negative each (a sampled subset when ``max_pairs`` is smaller); with
    ``both_ways`` each pair also trains sentence2 → sentence1."""
    negatives: dict[str, list[str]] = {}
    for a, b, label in rows:
        if label == 0:
            negatives.setdefault(a, []).append(b)
            negatives.setdefault(b, []).append(a)
    sentences = sorted({t for a, b, _ in rows for t in (a, b)})
    positives = [(a, b) for a, b, label in rows if label == 1]
    if max_pairs and len(positives) > max_pairs:
        positives = rng.sample(positives, max_pairs)
    if both_ways:
        positives += [(b, a) for a, b in positives]
    out = []
    for a, b in positives:
        negative = rng.choice(negatives[a]) if a in negatives else rng.choice(sentences)
        out.append(finetune.Example(a, b, negative, groups=(a, b, negative)))
    return out


def cosent_loss(labelled: list[tuple[str, str, int]], weight: float, pair_batch: int, prefix: str):
    """For ``finetune.train(extra_loss=…)``: ``weight`` x CoSENT over the next ``pair_batch`` of ``labelled``
    pairs (shuffled once, taken in turn) at every step."""

    def make(model, rng: random.Random):
        import torch
        from sentence_transformers.sentence_transformer.losses import CoSENTLoss

        cosent, order, cursor = CoSENTLoss(model), list(labelled), 0
        rng.shuffle(order)

        def step_loss():
            nonlocal cursor
            pairs = [order[(cursor + i) % len(order)] for i in range(pair_batch)]
            cursor += pair_batch
            features = [model.preprocess([prefix + a for a, _, _ in pairs]),
                        model.preprocess([prefix + b for _, b, _ in pairs])]
            return weight * cosent(features, torch.tensor([float(label) for _, _, label in pairs]))

        return step_loss

    return make


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    settings = get_settings()
    parser.add_argument("--out", type=Path, default=settings.var_dir / "models" / "multilingual-e5-small-afqmc")
    parser.add_argument("--max-pairs", type=int, default=None, help="sub-sample the positive pairs")
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs, help="passes over the pairs")
    parser.add_argument("--both-ways", action="store_true", help="train each pair in both directions too")
    parser.add_argument("--cosent-weight", type=float, default=0.0,
                        help="add this weight x CoSENT loss over train's labelled pairs to every step")
    parser.add_argument("--pair-batch", type=int, default=64, help="labelled pairs per step for CoSENT")
    args = parser.parse_args(argv)
    rows = read_pairs(TRAIN)
    started = time.monotonic()

    def progress(done: int, total: int, loss: float) -> None:
        if done % 20 == 0 or done == total:
            print(f"step {done}/{total} loss {loss:.3f} ({time.monotonic() - started:.0f} s)", flush=True)

    recipe = dataclasses.replace(RECIPE, epochs=args.epochs)
    examples = lambda rng: afqmc_examples(rows, args.max_pairs, rng, args.both_ways)  # noqa: E731
    data = (f"AFQMC train.tsv positives ({args.max_pairs or 'all'}) with hard negatives"
            + (", both directions" if args.both_ways else ""))
    extra = None
    if args.cosent_weight:
        extra = cosent_loss(rows, args.cosent_weight, args.pair_batch, settings.query_prefix)
        data += f"; + {args.cosent_weight} x CoSENT over all labelled pairs, {args.pair_batch} per step"
    finetune.train(settings.default_model_dir, args.out, examples, recipe, prefix=settings.query_prefix,
                   info={"data": data}, progress=progress, extra_loss=extra)
    print(f"built {args.out} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
