"""Ranking variants measured on the development questions only: which model, how many phrasings pooled, a
lexical signal.

Run: ``.venv/app/bin/python -m benchmarks.kb_variants [--tuned DIR] [--alphas 0.3 0.5 0.7] [--bm25 0 0.1 0.2 0.3]``

Models: the unmodified e5-small, a fine-tuned one (``--tuned``; default: the model the tuning job promoted),
the mean of the two models' cosines (what the API serves with ``kb_mean_with_base``), and weight averages of
the two (``alpha`` · fine-tuned + (1 − alpha) · unmodified, every weight of the network; a "model soup" of one
fine-tuning run: the fine-tuned model's sharper scores with less of its drift away from what the unmodified
model knew). An FAQ scores the mean of its ``pool`` best phrasings, optionally plus w · (character-bigram BM25
of the question against the phrasing, normalised to the question's own score).

Questions: the calibration set (``data/calibration/in_scope.yml``) — the development questions, in no model's
training data. The held-out benchmark set is not read here: a variant chosen on these questions is scored
on it once, by ``benchmarks.kb_eval``. Writes benchmarks/results/kb_variants.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml

from core.settings import REPO_ROOT, get_settings
from knowledge_base import normalize
from knowledge_base.embedder import Embedder, model_folders
from knowledge_base.scoring import rank_faqs

from . import kb_common as kc
from .kb_eval import CALIBRATION_IN

SOUP_DIR = kc.BENCH_DIR / "soups"


def soup(base: Path, tuned: Path, alpha: float) -> Path:
    """A folder holding alpha · tuned + (1 − alpha) · base, built once (the tuned model's files otherwise)."""
    out = SOUP_DIR / f"{tuned.name}-{alpha:g}"
    if (out / "modules.json").exists():
        return out
    import torch
    from sentence_transformers import SentenceTransformer

    a = SentenceTransformer(str(tuned), device="cpu", local_files_only=True)
    b = SentenceTransformer(str(base), device="cpu", local_files_only=True).state_dict()
    with torch.no_grad():
        mixed = {k: (alpha * v + (1 - alpha) * b[k]) if v.is_floating_point() else v
                 for k, v in a.state_dict().items()}
    a.load_state_dict(mixed)
    a.save(str(out))
    return out


def promoted_tuned(settings) -> Path | None:
    """The fine-tuned folder of the served model, if the tuning job promoted one."""
    base = settings.default_model_dir.resolve()
    return next((Path(f) for f in model_folders(settings.model_path) if Path(f).resolve() != base), None)


def dev_questions(paths: list[Path], key_to_id: dict[str, int], synonyms: dict[str, str]):
    out = []
    for path in paths:
        for row in yaml.safe_load(path.read_text(encoding="utf-8"))["questions"]:
            out.append((normalize(str(row["q"]), synonyms), key_to_id[row["gold"]]))
    return out


def ranked(scores: np.ndarray, owners: np.ndarray, pool: int) -> list[list[int]]:
    return [rank_faqs(row, owners, k=10, pool=pool)[0] for row in scores]


def metrics(rankings: list[list[int]], golds: list[int]) -> tuple[float, float, float]:
    top1 = np.mean([r[:1] == [g] for r, g in zip(rankings, golds)])
    top3 = np.mean([g in r[:3] for r, g in zip(rankings, golds)])
    mrr = np.mean([1 / (r.index(g) + 1) if g in r else 0.0 for r, g in zip(rankings, golds)])
    return float(top1), float(top3), float(mrr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    settings = get_settings()
    parser.add_argument("--questions", type=Path, nargs="+", default=[CALIBRATION_IN])
    parser.add_argument("--tuned", type=Path, help="a fine-tuned model folder (default: the promoted one)")
    parser.add_argument("--alphas", type=float, nargs="*", default=[0.3, 0.5, 0.7])
    parser.add_argument("--pools", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--bm25", type=float, nargs="*", default=[0.0, 0.1, 0.2, 0.3])
    args = parser.parse_args(argv)
    base, tuned = settings.default_model_dir, args.tuned or promoted_tuned(settings)
    if tuned is None:
        print("no fine-tuned model: run `python -m kb_training.tune` or pass --tuned DIR", file=sys.stderr)
        return 1
    synonyms = kc.seed_synonyms()
    faqs = kc.seed_faqs()
    key_to_id = {f["key"]: i for i, f in enumerate(faqs)}
    texts, owners = kc.indexed_phrasings(faqs, synonyms)
    owners_arr = np.asarray(owners)
    dev = dev_questions(args.questions, key_to_id, synonyms)
    golds = [g for _, g in dev]
    lexical = kc.lexical_scores(texts, [q for q, _ in dev])  # the product's lexical bonus, every phrasing

    models = [("unmodified", base), ("fine-tuned", tuned)]
    models += [(f"soup alpha={a:g}", soup(base, tuned, a)) for a in args.alphas]
    cosines = {}
    for name, path in models:
        embedder = Embedder(path, prefix=settings.query_prefix, threads=2)
        doc, _ = kc.cached_embeddings(embedder, texts)
        query, _ = kc.cached_embeddings(embedder, [q for q, _ in dev])
        cosines[name] = query @ doc.T
    # what the API serves with kb_mean_with_base: the mean of the two models' cosines
    cosines["score mean: unmodified + fine-tuned"] = (cosines["unmodified"] + cosines["fine-tuned"]) / 2

    rows = []
    for name, scores in cosines.items():
        for pool in args.pools:
            for w in args.bm25:
                top1, top3, mrr = metrics(ranked(scores + w * lexical, owners_arr, pool), golds)
                rows.append([name, pool, w, top1, top3, mrr])
    best = max(rows, key=lambda r: (r[3], r[5]))
    notes = [f"{len(dev)} development questions ({', '.join(p.name for p in args.questions)}),"
             f" {len(texts)} phrasings of {len(faqs)} FAQs.",
             "pool = an FAQ scores the mean of its best `pool` phrasings (the product: 2); "
             "bm25 = weight of the normalised character-bigram BM25 added to each phrasing's cosine.",
             f"Best top-1 (ties: MRR): {best[0]}, pool {best[1]}, bm25 {best[2]} — {best[3]:.3f}.",
             f"One question is {100 / len(dev):.2f} points; the standard error of a top-1 near 0.9 is "
             f"±{100 * np.sqrt(0.09 / len(dev)):.1f} points."]
    report = kc.header("Ranking variants on the development questions", notes) + "\n" + kc.table(
        ["model", "pool", "bm25", "top-1", "top-3", "MRR@10"], rows)
    print(report)
    print("wrote", kc.write_result("kb_variants.md", report).relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
