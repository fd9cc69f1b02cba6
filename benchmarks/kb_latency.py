"""Latency, memory and build time of the FAQ index at 1k, 10k and 100k phrasings.

Run: ``.venv/app/bin/python -m benchmarks.kb_latency`` (``--sizes 1000 10000 100000``, ``--ann`` to measure
the approximate indexes whatever the flat latency).

Each size runs in a fresh process (so that its memory figure is its own):

- Phrasings: the seed KB's real phrasings, embedded, plus synthetic ones, grouped 6 to an FAQ. A synthetic
  phrasing is a *vector-level* random mix of two real phrasing vectors plus a little noise, re-normalised
  (embedding 100k synthetic texts would take longer than the whole benchmark); its text is a placeholder.
- Build: ``FaqIndex.replace_faq`` for every FAQ (what a rebuild does after embedding); RSS delta of the
  process across the build.
- ``FaqIndex.search`` alone, k=5, given the vector of a real question (held-out and out-of-scope questions),
  as the product builds it (flat, or IVF above ``kb_ann_threshold``), and the exact flat index for comparison;
- ``Retriever.search`` end to end (normalise, embed the question, search, decide);
- one FAQ edit: ``Retriever.index_faq`` of an FAQ with 6 phrasings (embedding included) until a search finds
  it; the first edit adds the FAQ, the next ones replace it (``remove_ids``, then add).

The product's settings are used throughout (``SJZS_EMBEDDING_THREADS``; the Embedder sets
``OMP_WAIT_POLICY=PASSIVE`` unless it is set). Then embedding one question at a time is timed with 1 and 2
torch threads, OpenMP threads sleeping (PASSIVE) or spinning (ACTIVE): spinning threads are costly on a
shared 2-core machine.

If the flat search at the largest size is over 10 ms p50 (or with ``--ann``), faiss ``IndexHNSWFlat`` and
``IndexIVFFlat`` are measured on the same vectors: build time, p50/p99 and recall@10 against exact search.
Writes benchmarks/results/kb_latency.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

import faiss
import numpy as np

from api.kb_service import thresholds_for
from core.settings import REPO_ROOT, get_settings
from knowledge_base import FaqIndex, Retriever, normalize

from . import kb_common as kc
from .kb_eval import CALIBRATION_OOS, DATA_DIR, load_questions

PER_FAQ = 6
SEARCHES = 2000          # index-only searches per size
E2E_SEARCHES = 100       # end-to-end searches (and single embeddings) per size
EDITS = 21               # the first adds the FAQ, the others replace it
ANN_TRIGGER_MS = 10.0
THREAD_SETTINGS = [(1, "PASSIVE"), (2, "PASSIVE"), (1, "ACTIVE"), (2, "ACTIVE")]  # torch threads, OMP_WAIT_POLICY
rng = np.random.default_rng(42)


def percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def real_questions() -> list[str]:
    """Questions merchants might type: the held-out and out-of-scope test questions, else calibration ones."""
    import yaml

    texts = [str(r["q"]) for p in sorted((DATA_DIR / "heldout").glob("*.yml"))
             for r in (yaml.safe_load(p.read_text(encoding="utf-8")) or {}).get("questions") or []]
    texts += load_questions(DATA_DIR / "out_of_scope.yml")
    return texts or load_questions(CALIBRATION_OOS)


def synthetic(real: np.ndarray, n: int) -> np.ndarray:
    """``n`` vectors, each a random mix of two real ones plus noise, normalised."""
    i, j = rng.integers(0, len(real), n), rng.integers(0, len(real), n)
    a = rng.uniform(0.3, 0.7, (n, 1)).astype(np.float32)
    v = a * real[i] + (1 - a) * real[j] + rng.normal(0, 0.01, (n, real.shape[1])).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def timed(fn, repeat: int, *args_list) -> list[float]:
    out = []
    for n in range(repeat):
        started = time.perf_counter()
        fn(*args_list[n % len(args_list)] if args_list else ())
        out.append((time.perf_counter() - started) * 1000)
    return out


def one_size(size: int, ann: str) -> dict:
    """Measure one index size; ``ann``: never / if-slow (flat p50 over 10 ms) / always compare HNSW and IVF."""
    embedder = kc.load_embedder()
    import torch  # loaded by the Embedder, with its OpenMP settings
    synonyms = kc.seed_synonyms()
    faqs = kc.seed_faqs()
    real_texts = [t for f in faqs for t in (normalize(p, synonyms) for p in kc.phrasings(f)) if t]
    real_vecs, _ = kc.cached_embeddings(embedder, real_texts)
    questions = real_questions()
    query_texts = [normalize(q, synonyms) or q for q in questions]
    query_vecs, _ = kc.cached_embeddings(embedder, query_texts)
    # with the calibrated lexical weight, as the product searches
    thresholds = thresholds_for(embedder.name, model_path=get_settings().model_path)
    queries = [(v, t) for v, t in zip(query_vecs, query_texts)]
    n_real = min(size, len(real_texts))
    vecs = np.concatenate([real_vecs[:n_real], synthetic(real_vecs, size - n_real)])
    texts = real_texts[:n_real] + [f"合成问法{n}" for n in range(size - n_real)]
    groups = [(f, texts[s:s + PER_FAQ], vecs[s:s + PER_FAQ]) for f, s in enumerate(range(0, size, PER_FAQ))]
    gc.collect()

    threads = faiss.omp_get_max_threads()
    before = kc.rss_mb()
    index = FaqIndex(embedder.dim, **get_settings().index_options)  # the product's index, as a rebuild makes it
    started = time.perf_counter()
    index.replace_many(groups)
    build_s = time.perf_counter() - started
    rss_delta = kc.rss_mb() - before

    def search_in(idx):
        return lambda v, t: idx.search(v, k=5, text=t, lexical=thresholds.lexical)

    timed(search_in(index), 50, *queries)  # warm-up
    search = timed(search_in(index), SEARCHES, *queries)
    search_cosine = timed(lambda v, t: index.search(v, k=5), SEARCHES, *queries)  # without the lexical bonus
    exact = index
    if index.kind != "flat":
        exact = FaqIndex(embedder.dim, ann_threshold=10**12)
        exact.replace_many(groups)
    search_exact = timed(search_in(exact), SEARCHES, *queries)
    pairs = [(search_in(index)(v, t), search_in(exact)(v, t)) for v, t in queries]
    same_top1 = float(np.mean([a[0].faq_id == b[0].faq_id for a, b in pairs]))
    recall5 = float(np.mean([len({h.faq_id for h in a} & {h.faq_id for h in b}) / len(b) for a, b in pairs]))
    retriever = Retriever(embedder, index, thresholds, synonyms=synonyms)
    timed(retriever.search, 10, *[(q,) for q in questions])
    e2e = timed(retriever.search, E2E_SEARCHES, *[(q,) for q in questions])
    embed_only = timed(lambda q: embedder.encode([normalize(q, synonyms)]), E2E_SEARCHES, *[(q,) for q in questions])

    new_id, edits, found = len(groups) + 1, [], 0
    for n in range(EDITS):
        source = faqs[n % len(faqs)]
        phrasings = [f"{p}（第{n}版）" for p in kc.phrasings(source)][:PER_FAQ]
        phrasings += [f"{phrasings[0]}{m}" for m in range(PER_FAQ - len(phrasings))]
        started = time.perf_counter()
        retriever.index_faq(new_id, phrasings)
        hit = retriever.search(phrasings[0], k=1).hits
        edits.append((time.perf_counter() - started) * 1000)
        found += bool(hit) and hit[0].faq_id == new_id
    result = {"size": size, "real": n_real, "synthetic": size - n_real, "faqs": len(groups), "build_s": build_s,
              "rss_delta_mb": rss_delta, "search": percentiles(search),
              "search_cosine": percentiles(search_cosine), "lexical": thresholds.lexical, "search_exact": percentiles(search_exact),
              "kind": index.kind, "same_top1": same_top1, "recall5": recall5, "e2e": percentiles(e2e),
              "embed_one": percentiles(embed_only), "edit_add_ms": edits[0], "edit_replace": percentiles(edits[1:]),
              "edits_found": f"{found}/{EDITS}", "faiss_threads": threads,
              "torch_threads": torch.get_num_threads(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset")}
    if ann == "always" or (ann == "if-slow" and result["search"]["p50"] > ANN_TRIGGER_MS):
        result["ann"] = compare_ann(vecs, query_vecs)
    return result


def embed_probe(threads: int) -> dict:
    """Latency of embedding one question at a time with ``threads`` torch threads (in this process's env)."""
    embedder = kc.load_embedder(threads=threads)
    questions = [normalize(q) or q for q in real_questions()]
    timed(lambda q: embedder.encode([q]), 10, *[(q,) for q in questions])
    ms = timed(lambda q: embedder.encode([q]), E2E_SEARCHES, *[(q,) for q in questions])
    return {**percentiles(ms), "load": kc.load_average()}


def compare_ann(vecs: np.ndarray, queries: np.ndarray, k: int = 10) -> list[dict]:
    """Exact search against HNSW and IVF on the same vectors: build, latency, recall@10 (one faiss thread:
    a single query gains nothing from a second one here, and timings with two are erratic on a shared machine)."""
    n, dim = vecs.shape
    faiss.omp_set_num_threads(1)
    rows = []

    def measure(name: str, index, build_s: float, exact=None) -> np.ndarray:
        ms = timed(lambda q: index.search(q.reshape(1, -1), k), SEARCHES, *[(q,) for q in queries])
        found = index.search(queries, k)[1]
        recall = 1.0 if exact is None else float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact)]))
        top1 = 1.0 if exact is None else float(np.mean(found[:, 0] == exact[:, 0]))
        rows.append({"index": name, "build_s": build_s, **percentiles(ms), "recall10": recall, "top1": top1})
        return found

    started = time.perf_counter()
    flat = faiss.IndexFlatIP(dim)
    flat.add(vecs)
    exact = measure("IndexFlatIP (exact)", flat, time.perf_counter() - started)
    for m in (16, 32):
        started = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 80
        hnsw.add(vecs)
        build = time.perf_counter() - started
        for ef in (32, 64, 128, 256):
            hnsw.hnsw.efSearch = ef
            measure(f"IndexHNSWFlat M={m}, efConstruction=80, efSearch={ef}", hnsw, build, exact)
    nlist = int(4 * np.sqrt(n))
    started = time.perf_counter()
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(vecs)
    ivf.add(vecs)
    build = time.perf_counter() - started
    for nprobe in (8, 16, 32, 64, 128):
        ivf.nprobe = nprobe
        measure(f"IndexIVFFlat nlist={nlist}, nprobe={nprobe}", ivf, build, exact)
    return rows


def report(results: list[dict], probes: list[dict], questions: int) -> str:
    notes = [f"Phrasings: the seed KB's real ones ({results[0]['real']} at the smallest size) plus synthetic ones: "
             "random mixes of two real phrasing vectors plus Gaussian noise (σ=0.01 per dimension), normalised; "
             f"{PER_FAQ} phrasings per FAQ. Query vectors: {questions} real questions (held-out + out-of-scope).",
             f"Search: FaqIndex.search(k=5) as the product builds it (settings kb_ann_threshold / kb_ivf_nprobe: "
             "exact IndexIDMap2(IndexFlatIP) below the threshold, IndexIVFFlat above it; one faiss thread per "
             f"query), {SEARCHES} searches, with the product's lexical bonus (weight {results[0]['lexical']}: each "
             "candidate phrasing's bigram BM25 against the question's text) and once more without it (\"cosine "
             "only\"); \"exact\" = the flat index on the same vectors; \"same top-1\" and "
             "\"FAQ recall@5\" compare the product's FAQ ranking with the exact one; "
             f"end to end: Retriever.search(k=5) including normalise + embedding, {E2E_SEARCHES} searches; "
             f"product settings: torch threads {results[0]['torch_threads']}, OMP_WAIT_POLICY="
             f"{results[0]['omp_wait_policy']} (set by the Embedder for torch), FaqIndex.search sets one faiss thread "
             f"(the default would be {results[0]['faiss_threads']}).",
             "Memory: RSS delta across the build (vectors, faiss id maps, the phrasing texts and their bigram counts "
             "in Python dicts).",
             f"FAQ edit: Retriever.index_faq of one FAQ with {PER_FAQ} phrasings (embedding included) plus one "
             "search that finds it; \"add\" = the first time, \"replace\" = p50/p99 of the next "
             f"{EDITS - 1} (remove_ids + add). The edit is searchable as soon as the call returns."]
    rows = [[f"{r['size']:,}", f"{r['real']:,} + {r['synthetic']:,}", f"{r['build_s'] * 1000:.0f} ms",
             f"{r['rss_delta_mb']:.1f} MB", r["kind"], f"{r['search']['p50']:.3f} / {r['search']['p99']:.3f}",
             f"{r['search_cosine']['p50']:.3f} / {r['search_cosine']['p99']:.3f}",
             f"{r['search_exact']['p50']:.3f} / {r['search_exact']['p99']:.3f}", r["same_top1"], r["recall5"],
             f"{r['e2e']['p50']:.1f} / {r['e2e']['p99']:.1f}", f"{r['embed_one']['p50']:.1f}",
             f"{r['edit_add_ms']:.0f}", f"{r['edit_replace']['p50']:.0f} / {r['edit_replace']['p99']:.0f}",
             r["edits_found"]] for r in results]
    text = kc.header("Knowledge-base index: latency, memory, build and edit time", notes) + "\n" + kc.table(
        ["phrasings", "real + synthetic", "build (add all)", "RSS delta", "index", "FaqIndex.search p50 / p99 ms",
         "same, cosine only p50 / p99 ms", "exact flat p50 / p99 ms", "same top-1", "FAQ recall@5",
         "Retriever.search p50 / p99 ms", "embed one question p50 ms", "FAQ edit: add ms",
         "FAQ edit: replace p50 / p99 ms", "edits found"], rows)
    text += ("\n## Embedding one question: torch threads and OpenMP wait policy\n\n"
             "The same questions embedded one at a time in a fresh process per setting; the machine's load "
             "average (other work on it) is shown with each, because spinning OpenMP threads degrade badly when "
             "the 2 cores are shared.\n\n")
    product = (results[0]["torch_threads"], results[0]["omp_wait_policy"])
    text += kc.table(["torch threads", "OMP_WAIT_POLICY", "p50 ms", "p99 ms", "load average"],
                     [[p["threads"], p["policy"] + (" (product)" if (p["threads"], p["policy"]) == product else ""),
                       f"{p['p50']:.1f}", f"{p['p99']:.1f}", p["load"]] for p in probes])
    for r in results:
        if "ann" in r:
            text += (f"\n## Approximate indexes at {r['size']:,} phrasings (raw faiss, k=10, one faiss thread, same "
                     "vectors and queries; recall@10 and top-1 against exact search)\n\n"
                     "HNSW cannot remove vectors (an FAQ edit would need tombstones or a rebuild); IVF can. "
                     "Synthetic vectors are mixes of the same ~1.5k real ones, so near-ties are common and "
                     "recall is likely lower than on real phrasings.\n\n")
            text += kc.table(["index", "build s", "search p50 ms", "search p99 ms", "recall@10", "same top-1"],
                             [[a["index"], f"{a['build_s']:.1f}", f"{a['p50']:.3f}", f"{a['p99']:.3f}",
                               a["recall10"], a["top1"]] for a in r["ann"]])
    return text


def run_self(args: list[str], env: dict[str, str | None] | None = None) -> dict:
    """Run this module with ``args`` in a fresh process (``env`` None values: unset) and return its JSON."""
    full = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    out = subprocess.run([sys.executable, "-m", "benchmarks.kb_latency", *args], cwd=REPO_ROOT, env=full,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--ann", action="store_true", help="measure HNSW / IVF whatever the flat latency")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size, print JSON
    parser.add_argument("--embed-probe", type=int, help=argparse.SUPPRESS)  # internal: torch threads
    parser.add_argument("--ann-mode", choices=["never", "if-slow", "always"], default="never",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_size(args.one, args.ann_mode)))
        return 0
    if args.embed_probe:
        print(json.dumps(embed_probe(args.embed_probe)))
        return 0
    results = []
    for size in sorted(args.sizes):
        ann = ("always" if args.ann else "if-slow") if size == max(args.sizes) else "never"
        print(f"measuring {size:,} phrasings …", flush=True)
        results.append(run_self(["--one", str(size), "--ann-mode", ann]))
    probes = []
    for threads, policy in THREAD_SETTINGS:
        print(f"embedding with {threads} thread(s), OMP_WAIT_POLICY={policy} …", flush=True)
        probes.append({"threads": threads, "policy": policy,
                       **run_self(["--embed-probe", str(threads)], {"OMP_WAIT_POLICY": policy})})
    text = report(results, probes, len(real_questions()))
    print(text)
    print("wrote", kc.write_result("kb_latency.md", text).relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
