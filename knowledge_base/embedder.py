"""Sentence embeddings through sentence-transformers, loaded from a local folder only."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np


class ModelMissingError(RuntimeError):
    pass


class Embedder:
    """Embeds texts into L2-normalised float32 vectors.

    ``prefix`` is prepended to every text (e5 models expect "query: " on both
    sides for question-to-question matching).
    """

    def __init__(self, model_path: str | Path, prefix: str = "", threads: int | None = None):
        # Never reach a model hub: everything must be on disk already.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # Idle OpenMP threads sleep instead of spinning: the API shares its cores with Rasa and the action
        # server, and spinning threads made one embedding ~10x slower there (BENCHMARKS.md).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        path = Path(model_path)
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise ModelMissingError(f"找不到向量模型目录：{path}（请先运行 make setup）")
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.prefix = prefix
        self.name, self.fingerprint = identity(str(path))
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim())

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            [self.prefix + t for t in texts], batch_size=batch_size,
            normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class MeanEmbedder:
    """Several models as one: a text's unit vectors from each model side by side, scaled by 1/√n.

    The inner product of two such vectors is the mean of the models' cosines, so one index over them scores
    every phrasing with the models' average (the fine-tuned model beside the unmodified one: BENCHMARKS.md).
    Same interface as ``Embedder``.
    """

    def __init__(self, parts: list[Embedder]):
        if not parts:
            raise ValueError("MeanEmbedder needs at least one model")
        self.parts = list(parts)
        self.prefix = parts[0].prefix
        self.name, self.fingerprint = _joined([(p.name, p.fingerprint) for p in parts])
        self.dim = sum(p.dim for p in parts)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        vectors = np.hstack([p.encode(texts, batch_size) for p in self.parts])
        return np.ascontiguousarray(vectors / np.sqrt(len(self.parts)), dtype=np.float32)


def model_folders(paths: str) -> list[str]:
    """The folders of a model setting: one folder, or several separated by commas."""
    return [p.strip() for p in paths.split(",") if p.strip()]


def load_models(paths: str, prefix: str = "", threads: int | None = None) -> Embedder | MeanEmbedder:
    """``paths``: one model folder, or several separated by commas whose scores are averaged."""
    folders = model_folders(paths)
    if len(folders) == 1:
        return Embedder(folders[0], prefix, threads)
    return MeanEmbedder([Embedder(f, prefix, threads) for f in folders])


def identity(paths: str) -> tuple[str, str]:
    """The ``name`` and ``fingerprint`` the model(s) in ``paths`` will have, without loading them."""
    folders = model_folders(paths)
    parts = [(Path(f).name, folder_fingerprint(Path(f))) for f in folders]
    return parts[0] if len(parts) == 1 else _joined(parts)


def _joined(parts: list[tuple[str, str]]) -> tuple[str, str]:
    return ("+".join(name for name, _ in parts),
            hashlib.sha256("|".join(fp for _, fp in parts).encode()).hexdigest()[:16])


def folder_fingerprint(path: Path) -> str:
    """Identifies the model's weights cheaply: names, sizes and modification times of its files."""
    parts = sorted(f"{p.relative_to(path)}:{p.stat().st_size}:{int(p.stat().st_mtime)}"
                   for p in path.rglob("*") if p.is_file() and p.name != "kb_thresholds.json")  # not weights
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
