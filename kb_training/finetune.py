"""Fine-tune the embedding model on question pairs (sentence-transformers, MultipleNegativesRankingLoss).

The knowledge base's own phrasings give the pairs: every phrasing of an FAQ is paired with another phrasing
of the same FAQ.  Batches hold at most one pair per FAQ, so the other pairs of a batch are always true
negatives; a hard negative (a phrasing of a sibling FAQ in the same category) can be added to each pair.
Everything is seeded: the same inputs on the same machine give the same model.

The training loop is ours (the library's trainer needs ``datasets`` and ``accelerate``); the model, the
tokenisation and the loss are sentence-transformers'.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable, Hashable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

FINETUNE_VERSION = 1  # bump when the recipe's code changes what it produces
INFO_FILE = "build_info.json"


@dataclass(frozen=True)
class Recipe:
    """How to fine-tune; part of the model's identity (stored in its build_info.json)."""

    epochs: int = 1
    lr: float = 5e-5
    batch_size: int = 32
    seed: int = 42
    hard_negatives: bool = False
    warmup: float = 0.1          # share of the steps with a linearly rising learning rate
    freeze_word_embeddings: bool = True  # 96M of the 118M weights; rarely-seen tokens would only drift
    freeze_layers: int = 0       # the lowest encoder layers kept as they are (less to compute, less to overfit)


@dataclass(frozen=True)
class KbFaq:
    """One FAQ as training sees it: an id, its category, its normalised phrasings (standard question first)."""

    faq_id: Hashable
    category: str
    phrasings: tuple[str, ...]


@dataclass(frozen=True)
class Example:
    anchor: str
    positive: str
    negative: str | None = None
    groups: tuple[Hashable, ...] = ()  # an example shares a batch with no other example of these groups


def kb_examples(faqs: list[KbFaq], rng: random.Random, hard_negatives: bool = False) -> list[Example]:
    """One example per phrasing: (phrasing, another phrasing of its FAQ[, a phrasing of a sibling FAQ])."""
    by_category: dict[str, list[KbFaq]] = {}
    for f in faqs:
        by_category.setdefault(f.category, []).append(f)
    out = []
    for f in faqs:
        if len(f.phrasings) < 2:
            continue
        siblings = [s for s in by_category[f.category] if s.faq_id != f.faq_id and s.phrasings]
        for i, anchor in enumerate(f.phrasings):
            positive = rng.choice([p for j, p in enumerate(f.phrasings) if j != i])
            negative = None
            if hard_negatives and siblings:
                negative = rng.choice(rng.choice(siblings).phrasings)
            out.append(Example(anchor, positive, negative, (f.faq_id,)))
    return out


def make_batches(examples: list[Example], size: int, rng: random.Random) -> list[list[Example]]:
    """Shuffled batches in which no two examples share a group (an example that clashes waits for a later one)."""
    pending = list(examples)
    rng.shuffle(pending)
    batches = []
    while pending:
        batch, seen, rest = [], set(), []
        for ex in pending:
            if len(batch) < size and seen.isdisjoint(ex.groups):
                batch.append(ex)
                seen.update(ex.groups)
            else:
                rest.append(ex)
        batches.append(batch)
        pending = rest
    return batches


def training_key(base_dir: Path, data: Iterable, recipe: Recipe, prefix: str) -> str:
    """Identifies a fine-tuned model: base model build, training data, recipe, prefix, code version."""
    h = hashlib.sha256()
    base_info = base_dir / INFO_FILE
    h.update(base_info.read_bytes() if base_info.exists() else str(base_dir).encode())
    h.update(json.dumps([asdict(recipe), prefix, FINETUNE_VERSION], sort_keys=True).encode())
    for item in data:
        h.update(json.dumps(asdict(item), ensure_ascii=False, sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


def is_current(out_dir: Path, key: str) -> bool:
    """True when ``out_dir`` holds a model fine-tuned with exactly this ``key``."""
    try:
        info = json.loads((out_dir / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return info.get("finetune", {}).get("key") == key and (out_dir / "modules.json").exists()


def train(base_dir: Path, out_dir: Path, make_examples: Callable[[random.Random], list[Example]],
          recipe: Recipe, prefix: str = "query: ", info: dict | None = None, progress=None) -> None:
    """Fine-tune the model in ``base_dir`` and save it whole to ``out_dir``.

    ``make_examples(rng)`` is called once per epoch (pairs may be re-drawn); ``progress(done, total, loss)``
    is called after every step.
    """
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    rng = random.Random(recipe.seed)
    torch.manual_seed(recipe.seed)
    np.random.seed(recipe.seed)
    model = SentenceTransformer(str(base_dir), device="cpu", local_files_only=True)
    encoder = model[0].auto_model
    if recipe.freeze_word_embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
    if recipe.freeze_layers:
        encoder.embeddings.requires_grad_(False)
        for layer in encoder.encoder.layer[: recipe.freeze_layers]:
            layer.requires_grad_(False)
    loss_fn = MultipleNegativesRankingLoss(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.01)
    epochs = [make_batches(make_examples(rng), recipe.batch_size, rng) for _ in range(recipe.epochs)]

    def loss_of(batch: list[Example]):
        columns = [[prefix + e.anchor for e in batch], [prefix + e.positive for e in batch]]
        if all(e.negative is not None for e in batch):
            columns.append([prefix + e.negative for e in batch])
        return loss_fn([model.preprocess(c) for c in columns], None)

    model.train()
    total = optimise(optimizer, params, epochs, loss_of, recipe.warmup, progress)
    model.eval()
    save_whole(out_dir, lambda tmp: model.save(str(tmp)), base_dir,
               {"finetune": {"recipe": asdict(recipe), "steps": total, "version": FINETUNE_VERSION, **(info or {})}})


def optimise(optimizer, params, epochs: list[list], loss_of: Callable, warmup: float, progress=None) -> int:
    """One optimiser step per batch of every epoch: learning rate warmed up linearly over the first ``warmup``
    share of the steps, then decayed linearly to 0; gradients clipped at norm 1. Returns the number of steps."""
    import torch

    total = sum(len(b) for b in epochs)
    warm = max(1, int(total * warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm))))
    done = 0
    for batches in epochs:
        for batch in batches:
            loss = loss_of(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            done += 1
            if progress is not None:
                progress(done, total, float(loss.detach()))
    return total


def save_whole(out_dir: Path, write: Callable[[Path], None], base_dir: Path, info: dict) -> None:
    """``write(folder)`` into a sibling folder, add ``build_info.json`` (the base model's, updated with ``info``),
    then move it to ``out_dir``: the folder appears whole or not at all."""
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    base_info = base_dir / INFO_FILE
    merged = json.loads(base_info.read_text(encoding="utf-8")) if base_info.exists() else {}
    merged.update(info)
    (tmp / INFO_FILE).write_text(json.dumps(merged, ensure_ascii=False, indent=2), encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
