"""The FAQ retrieval engine: normalisation, embeddings, a FAISS index and the answer decision.

It knows nothing about the database or the web: callers hand it FAQ ids and phrasings.
"""

from .embedder import Embedder, MeanEmbedder, ModelMissingError, load_models
from .index import FaqIndex, Hit
from .normalize import normalize
from .retriever import Decision, Result, Retriever, Thresholds

__all__ = [
    "Decision", "Embedder", "FaqIndex", "Hit", "MeanEmbedder", "ModelMissingError", "Result", "Retriever",
    "Thresholds", "load_models", "normalize",
]
