"""A cross-encoder that rescores question pairs the embedding model has already shortlisted.

The embedding model compares two questions through one vector each; a cross-encoder reads both questions at
once (``<s> a </s></s> b </s>``) and outputs one logit: how likely they mean the same thing.  It is far slower
per pair, so it only rescores a short list.  It starts from the same e5-small encoder, mean-pools its token
states (as e5 was trained to: its first-token state is nearly constant, so a head on it starts out blind) and
puts a fresh linear head on top; trained on labelled pairs with binary cross-entropy.

Training is our own loop (like ``finetune``): seeded, warm-up then linear decay, word embeddings frozen.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .embedder import folder_fingerprint
from .finetune import INFO_FILE, optimise, save_whole

RERANK_VERSION = 1
HEAD_FILE = "pair_head.pt"


@dataclass(frozen=True)
class RerankRecipe:
    epochs: int = 1
    lr: float = 5e-5
    batch_size: int = 32
    seed: int = 42
    max_length: int = 96        # tokens of both questions together
    warmup: float = 0.1
    head_lr: float = 1e-3        # the fresh head learns faster than the pre-trained encoder
    freeze_word_embeddings: bool = True


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    label: float  # 1.0: same meaning, 0.0: not


def _pair_scorer(encoder):
    """The encoder with a mean-pooling one-logit head: ``scorer(**tokens)`` → logits of shape (batch,)."""
    import torch

    class PairScorer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.dropout = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(encoder.config.hidden_size, 1)

        def forward(self, attention_mask, **tokens):
            states = self.encoder(attention_mask=attention_mask, **tokens).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            mean = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.head(self.dropout(mean))[:, 0]

    return PairScorer()


class CrossEncoder:
    """Scores (a, b) pairs with a model folder saved by :func:`train` (logits; higher = more alike)."""

    def __init__(self, model_dir: str | Path, threads: int | None = None, max_length: int | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        path = Path(model_dir)
        self.name = path.name
        self.fingerprint = folder_fingerprint(path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = _pair_scorer(AutoModel.from_pretrained(str(path), local_files_only=True))
        self.model.head.load_state_dict(torch.load(path / HEAD_FILE, map_location="cpu"))
        self.model.eval()
        info = read_info(path)
        self.max_length = max_length or info.get("rerank", {}).get("recipe", {}).get("max_length", 96)

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start:start + batch_size]
                enc = self.tokenizer([a for a, _ in chunk], [b for _, b in chunk], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt")
                out.append(self.model(**enc).float().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def read_info(path: Path) -> dict:
    try:
        return json.loads((path / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def is_current(out_dir: Path, key: str) -> bool:
    return read_info(out_dir).get("rerank", {}).get("key") == key and (out_dir / HEAD_FILE).exists()


def train(base_dir: Path, out_dir: Path, make_pairs: Callable[[random.Random], list[Pair]], recipe: RerankRecipe,
          info: dict | None = None, progress=None) -> None:
    """Train a cross-encoder from the encoder in ``base_dir`` (a sentence-transformers folder or a plain
    transformers one) on ``make_pairs(rng)`` (called once per epoch) and save it whole to ``out_dir``.

    ``progress(done, total, loss)`` is called after every step.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    rng = random.Random(recipe.seed)
    torch.manual_seed(recipe.seed)
    np.random.seed(recipe.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True)
    model = _pair_scorer(AutoModel.from_pretrained(str(base_dir), local_files_only=True))
    if recipe.freeze_word_embeddings:
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": encoder_params, "lr": recipe.lr},
                                   {"params": list(model.head.parameters()), "lr": recipe.head_lr}],
                                  weight_decay=0.01)
    epochs = []
    for _ in range(recipe.epochs):
        pairs = make_pairs(rng)
        rng.shuffle(pairs)
        epochs.append([pairs[i:i + recipe.batch_size] for i in range(0, len(pairs), recipe.batch_size)])
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def loss_of(batch: list[Pair]):
        enc = tokenizer([p.a for p in batch], [p.b for p in batch], padding=True, truncation=True,
                        max_length=recipe.max_length, return_tensors="pt")
        return loss_fn(model(**enc), torch.tensor([p.label for p in batch], dtype=torch.float32))

    model.train()
    total = optimise(optimizer, params, epochs, loss_of, recipe.warmup, progress)
    model.eval()

    def write(folder: Path) -> None:
        model.encoder.save_pretrained(str(folder))
        torch.save(model.head.state_dict(), folder / HEAD_FILE)
        tokenizer.save_pretrained(str(folder))

    save_whole(out_dir, write, base_dir,
               {"rerank": {"recipe": asdict(recipe), "steps": total, "version": RERANK_VERSION, **(info or {})}})


def kb_pairs(faqs: Sequence, vectors: np.ndarray, rng: random.Random, hard: int = 3,
             random_negatives: int = 1) -> list[Pair]:
    """Training pairs from the knowledge base itself: (a merchant-style question, an FAQ's standard question).

    ``faqs`` are ``finetune.KbFaq`` (normalised phrasings, the standard question first) and ``vectors`` the
    embedding of every phrasing in that order. Each similar question is paired with its own FAQ's standard
    question (label 1), with the standard questions of the ``hard`` FAQs the embedding model ranks highest for
    it (label 0: the siblings it confuses, which the cross-encoder must tell apart) and with those of
    ``random_negatives`` random other FAQs (label 0).
    """
    from .scoring import rank_faqs

    owners = np.asarray([n for n, f in enumerate(faqs) for _ in f.phrasings])
    out: list[Pair] = []
    i = 0
    for n, faq in enumerate(faqs):
        for j, text in enumerate(faq.phrasings):
            row, i = i, i + 1
            if j == 0:
                continue
            out.append(Pair(text, faq.phrasings[0], 1.0))
            scores = vectors @ vectors[row]
            scores[owners == n] = -np.inf
            rivals, _ = rank_faqs(scores, owners, k=hard)
            extra = [r for r in (rng.randrange(len(faqs)) for _ in range(random_negatives)) if r != n]
            for r in [*rivals, *extra]:
                out.append(Pair(text, faqs[r].phrasings[0], 0.0))
    return out
