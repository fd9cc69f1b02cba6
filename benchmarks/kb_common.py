"""Shared pieces of the knowledge-base benchmarks: the seed KB, the e5 retriever, machine facts, reports."""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from api.kb_service import thresholds_for
from api.seed import SEED_DIR, load_yaml, read_seed_faqs
from core.settings import REPO_ROOT, get_settings
from knowledge_base import Embedder, FaqIndex, MeanEmbedder, Retriever, Thresholds, load_models, normalize
from knowledge_base.lexical import Lexicon

BENCH_DIR = REPO_ROOT / "var" / "bench"           # caches (git-ignored)
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


def seed_faqs() -> list[dict]:
    """The published seed FAQs; a FAQ's integer id in the benchmarks is its position in this list."""
    return [f for f in read_seed_faqs() if f.get("status", "published") == "published"]


def phrasings(faq: dict) -> list[str]:
    """The standard question first, then the distinct similar questions (as the seed loader stores them)."""
    question = faq["question"].strip()
    similar = [t.strip() for t in dict.fromkeys(faq.get("similar") or []) if t.strip() and t.strip() != question]
    return [question, *similar]


def indexed_phrasings(faqs: list[dict], synonyms: dict[str, str]) -> tuple[list[str], list[int]]:
    """Every FAQ's distinct normalised phrasings, as the index holds them, and the FAQ (position) of each."""
    texts, owners = [], []
    for i, f in enumerate(faqs):
        for t in dict.fromkeys(normalize(p, synonyms) for p in phrasings(f)):
            if t:
                texts.append(t)
                owners.append(i)
    return texts, owners


def lexicon_of(texts: list[str]) -> Lexicon:
    """The product's lexical bonus over ``texts``, document i being ``texts[i]``."""
    lexicon = Lexicon()
    for i, t in enumerate(texts):
        lexicon.add(i, t)
    return lexicon


def lexical_scores(texts: list[str], questions: list[str]) -> np.ndarray:
    """The product's lexical bonus of every question (rows) against every text (columns)."""
    lexicon = lexicon_of(texts)
    return np.array([lexicon.scores(q, range(len(texts))) for q in questions])


def seed_synonyms() -> dict[str, str]:
    return dict(load_yaml(SEED_DIR / "demo.yml").get("synonyms") or {})


def load_embedder(threads: int | None = None) -> Embedder | MeanEmbedder:
    """The product's embedding model with its settings (threads: ``SJZS_EMBEDDING_THREADS`` unless given)."""
    settings = get_settings()
    return load_models(settings.model_path, prefix=settings.query_prefix, threads=threads or settings.embedding_threads)


def e5_retriever(embedder: Embedder, faqs: list[dict], thresholds: Thresholds | None = None,
                 model_path: str = "") -> Retriever:
    """The product's retriever over the seed KB: seed synonyms, the calibrated thresholds of this model (a tuned
    model's own, found through ``model_path``)."""
    thresholds = thresholds or thresholds_for(embedder.name, model_path=model_path)
    retriever = Retriever(embedder, FaqIndex(embedder.dim), thresholds, synonyms=seed_synonyms())
    retriever.index_many([(i, phrasings(f)) for i, f in enumerate(faqs)])
    return retriever


class PlainReading:
    """A stand-in for ``Retriever.reading`` that reads a question as typed: no pinyin/English rewrite, no
    direction adjustment (the retriever before ``knowledge_base.reading``): ``retriever.reading = PlainReading()``
    on a retriever of its own."""

    def warm(self) -> None:
        pass

    def rewrite(self, normalized: str) -> str:
        return normalized

    def adjust(self, normalized: str, hits: list) -> list:
        return hits


def cached_embeddings(embedder: Embedder, texts: list[str], label: str = "") -> tuple[np.ndarray, float | None]:
    """Vectors of ``texts`` (cached under var/bench/embeddings/ by model, prefix and texts); also sentences/s
    when they had to be computed (None from the cache)."""
    h = hashlib.sha256(f"{embedder.fingerprint}|{embedder.prefix}|".encode())
    h.update("\n".join(texts).encode())
    path = BENCH_DIR / "embeddings" / f"{h.hexdigest()[:20]}.npy"
    if path.exists():
        return np.load(path), None
    started, parts, batch = time.perf_counter(), [], 64
    for i in tqdm(range(0, len(texts), batch), desc=f"embedding {label}".strip(), unit="batch", disable=not label):
        parts.append(embedder.encode(texts[i:i + batch], batch_size=batch))
    vectors = np.concatenate(parts) if parts else np.zeros((0, embedder.dim), dtype=np.float32)
    rate = len(texts) / (time.perf_counter() - started)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors, rate


def rss_mb() -> float:
    """Resident set size of this process in MiB (from /proc; no psutil in the venv)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        mem = "? RAM"
    return (f"{os.cpu_count()} vCPU {platform.machine()} ({cpu}), {mem}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def load_average() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def header(title: str, notes: list[str]) -> str:
    """The top of a results file: what, where, when, how."""
    command = "python -m " + Path(sys.argv[0]).with_suffix("").relative_to(REPO_ROOT).as_posix().replace("/", ".")
    if sys.argv[1:]:
        command += " " + shlex.join(sys.argv[1:])
    lines = [f"# {title}", "", f"- Machine: {machine()}", f"- Date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
             f"- Command: `.venv/app/bin/{command}`", f"- Load average at the end (1/5/15 min): {load_average()} "
             "(the machine is shared; timings are noisier when it is above the CPU count)"]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def table(headers: list[str], rows: list[list]) -> str:
    """A markdown table; floats are printed with three decimals."""
    def cell(v) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def write_result(name: str, text: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    path.write_text(text, encoding="utf-8")
    return path


def publish(name: str, title: str, notes: list[str], headers: list[str], rows: list[list]) -> str:
    """Print a one-table report and write it to benchmarks/results/``name``; returns its text."""
    report = header(title, notes) + "\n" + table(headers, rows)
    print(report)
    print("wrote", write_result(name, report).relative_to(REPO_ROOT))
    return report
