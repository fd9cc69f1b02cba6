"""FAQ retrieval quality on our held-out questions: the e5 retriever side by side with a BM25 baseline.

Run: ``.venv/app/bin/python -m benchmarks.kb_eval [--models DIR ...]`` (several folders are compared side by
side; folders joined by commas are one model scoring the mean of their cosines).

Systems, all over the same seed KB (``api.seed.read_seed_faqs``; every FAQ indexed as question + similar):

- **e5**: the product's ``Retriever`` as it is: seed synonyms, the thresholds calibrated for the model (a
  tuned model's own file, else ``data/kb_thresholds.json``, else the defaults: ``api.kb_service.thresholds_for``).
- **BM25**: character-bigram BM25 over the same normalised phrasings (``benchmarks/kb_bm25.py``). Its
  answer / clarify thresholds are chosen the way ``devtools.kb calibrate`` chooses e5's: leave-one-out over
  the KB's own similar questions plus the calibration out-of-scope list, never the test questions.

Metrics: top-1, top-3 and MRR@10 over the in-scope questions; decision shares (answered / clarified / no
answer, answered wrongly = answered with a wrong top-1) over the in-scope questions; share of the out-of-scope
questions answered (and clarified). Writes benchmarks/results/kb_eval.md and, for e5's top-1 misses,
benchmarks/results/kb_eval_errors.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from api.kb_service import thresholds_for
from core.settings import REPO_ROOT, get_settings
from kb_training.calibrate import Probe, ProbeSet
from knowledge_base import Embedder, Thresholds, load_models, normalize
from knowledge_base.scoring import POOL, rank_faqs

from . import kb_common as kc
from .kb_bm25 import Bm25

DATA_DIR = REPO_ROOT / "benchmarks" / "data"
CALIBRATION_OOS = REPO_ROOT / "data" / "calibration" / "out_of_scope.yml"
CALIBRATION_IN = REPO_ROOT / "data" / "calibration" / "in_scope.yml"
K = 10


@dataclass
class Question:
    text: str
    gold: int | None          # FAQ id; None for out-of-scope
    category: str = ""


@dataclass
class Prediction:
    ranking: list[int]        # FAQ ids, best first (up to K)
    scores: list[float]
    decision: str             # answer | clarify | no_answer
    phrasing: str = ""        # the phrasing that matched best (when the system knows it)


# --------------------------------------------------------------------------- data


def load_heldout(folder: Path, key_to_id: dict[str, int]) -> tuple[list[Question], list[str]]:
    """In-scope questions with their gold FAQ id, and the gold keys that are not in the KB (skipped)."""
    questions, unknown = [], []
    for path in sorted(folder.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for row in data.get("questions") or []:
            if row["gold"] in key_to_id:
                questions.append(Question(str(row["q"]), key_to_id[row["gold"]], data.get("category", path.stem)))
            else:
                unknown.append(f"{path.name}: {row['gold']}")
    return questions, unknown


def load_questions(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [str(q) for q in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("questions") or []]


# --------------------------------------------------------------------------- systems


def run_e5(retriever, texts: list[str]) -> tuple[list[Prediction], float]:
    preds, started = [], time.perf_counter()
    for t in texts:
        r = retriever.search(t, k=K)
        preds.append(Prediction([h.faq_id for h in r.hits], [h.score for h in r.hits], r.decision.value,
                                r.hits[0].phrasing if r.hits else ""))
    return preds, (time.perf_counter() - started) * 1000 / max(len(texts), 1)


class Bm25System:
    """BM25 with answer / clarify thresholds calibrated like e5's (same utility, same kind of evidence)."""

    def __init__(self, faqs: list[dict], synonyms: dict[str, str], calibration_oos: list[str]):
        self.synonyms = synonyms
        docs, owners, is_similar = [], [], []
        for i, f in enumerate(faqs):
            for n, p in enumerate(kc.phrasings(f)):
                if t := normalize(p, synonyms):
                    docs.append(t)
                    owners.append(i)
                    is_similar.append(n > 0)
        self.bm25 = Bm25(docs, owners)
        self.thresholds, self.outcome = self._calibrate(is_similar, calibration_oos)

    def _probes(self, is_similar: list[bool], oos: list[str]) -> list[Probe]:
        probes = []
        docs, owners = self.bm25.docs, self.bm25.owners
        for i, similar in enumerate(is_similar):
            if not similar:
                continue
            s = self.bm25.scores(docs[i])
            s[(owners == owners[i]) & np.array([d == docs[i] for d in docs])] = -np.inf  # leave it out
            best = self.bm25.best_per_faq(s, 3)
            probes.append(Probe(int(owners[i]), [b[0] for b in best], [b[1] for b in best]))
        for q in oos:
            if t := normalize(q, self.synonyms):
                best = self.bm25.best_per_faq(self.bm25.scores(t), 3)
                probes.append(Probe(None, [b[0] for b in best], [b[1] for b in best]))
        return probes

    def _calibrate(self, is_similar: list[bool], oos: list[str]):
        probe_set = ProbeSet(self._probes(is_similar, oos))
        grid = np.round(np.arange(0.10, 1.001, 0.01), 2)
        best = None
        for answer in grid:
            for margin in (0.0, 0.02, 0.05, 0.1, 0.15):
                for clarify in grid[grid <= answer]:
                    t = Thresholds(answer=float(answer), margin=margin, clarify=float(clarify))
                    o = probe_set.evaluate(t)
                    if best is None or o.utility > best[1].utility:
                        best = (t, o)
        return best

    def predict(self, texts: list[str]) -> tuple[list[Prediction], float]:
        preds, started, t = [], time.perf_counter(), self.thresholds
        for text in texts:
            q = normalize(text, self.synonyms)
            best = self.bm25.best_per_faq(self.bm25.scores(q), K) if q else []
            top = best[0][1] if best else 0.0
            second = best[1][1] if len(best) > 1 else 0.0
            phrasing = self.bm25.docs[best[0][2]] if best else ""
            if best and phrasing == q:
                decision = "answer"
            elif not best or top < t.clarify:
                decision = "no_answer"
            elif top >= t.answer and top - second >= t.margin:
                decision = "answer"
            else:
                decision = "clarify"
            preds.append(Prediction([b[0] for b in best], [b[1] for b in best], decision, phrasing))
        return preds, (time.perf_counter() - started) * 1000 / max(len(texts), 1)


# --------------------------------------------------------------------------- metrics


def lead_note(preds: list[Prediction], inscope: list[Question]) -> str:
    """Median lead of the top FAQ over the runner-up, for right and for wrong top-1s (what the margin rule sees)."""
    leads = {True: [], False: []}
    for p, q in zip(preds, inscope):
        if len(p.scores) > 1:
            leads[p.ranking[0] == q.gold].append(p.scores[0] - p.scores[1])
    med = {k: f"{np.median(v):.3f}" if v else "—" for k, v in leads.items()}
    return f"median lead over the runner-up: right top-1 {med[True]}, wrong top-1 {med[False]}"


def score(inscope: list[Question], preds_in: list[Prediction], preds_oos: list[Prediction]) -> dict[str, float]:
    n, m = max(len(inscope), 1), max(len(preds_oos), 1)
    top1 = [bool(p.ranking) and p.ranking[0] == q.gold for q, p in zip(inscope, preds_in)]
    rr = [1 / (p.ranking.index(q.gold) + 1) if q.gold in p.ranking[:K] else 0.0 for q, p in zip(inscope, preds_in)]
    decisions = Counter(p.decision for p in preds_in)
    return {
        "top1": sum(top1) / n,
        "top3": sum(q.gold in p.ranking[:3] for q, p in zip(inscope, preds_in)) / n,
        "mrr": sum(rr) / n,
        "answered": decisions["answer"] / n,
        "answered_right": sum(p.decision == "answer" and ok for p, ok in zip(preds_in, top1)) / n,
        "answered_wrong": sum(p.decision == "answer" and not ok for p, ok in zip(preds_in, top1)) / n,
        "clarified": decisions["clarify"] / n,
        "clarified_right": sum(p.decision == "clarify" and q.gold in p.ranking[:3]
                               for q, p in zip(inscope, preds_in)) / n,
        "no_answer": decisions["no_answer"] / n,
        "reached": sum((p.decision == "answer" and ok) or (p.decision == "clarify" and q.gold in p.ranking[:3])
                       for q, p, ok in zip(inscope, preds_in, top1)) / n,
        "oos_answered": sum(p.decision == "answer" for p in preds_oos) / m,
        "oos_clarified": sum(p.decision == "clarify" for p in preds_oos) / m,
    }


COLUMNS = [("top1", "top-1"), ("top3", "top-3"), ("mrr", "MRR@10"), ("answered", "answered"),
           ("answered_right", "answered right"), ("answered_wrong", "**answered wrong**"),
           ("clarified", "clarified"), ("clarified_right", "clarified, gold in top 3"), ("no_answer", "no answer"),
           ("reached", "**right FAQ at once or in one click**"), ("oos_answered", "**OOS answered**"), ("oos_clarified", "OOS clarified")]


def per_category(inscope: list[Question], systems: dict[str, list[Prediction]]) -> str:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(inscope):
        groups[q.category].append(i)
    rows = []
    for cat, idx in sorted(groups.items()):
        rows.append([cat, len(idx)] + [sum(bool(preds[i].ranking) and preds[i].ranking[0] == inscope[i].gold
                                           for i in idx) / len(idx) for preds in systems.values()])
    return kc.table(["category", "n", *(f"top-1 {s}" for s in systems)], rows)


def errors_report(faqs: list[dict], inscope: list[Question], preds: list[Prediction], oos: list[str],
                  preds_oos: list[Prediction], thresholds: Thresholds) -> str:
    key = lambda i: faqs[i]["key"]  # noqa: E731
    lines = [kc.header("e5 retriever: held-out questions it got wrong", [
        f"Thresholds: answer ≥ {thresholds.answer} with a lead of ≥ {thresholds.margin}, clarify ≥ "
        f"{thresholds.clarify}.",
        "`gold rank` is the gold FAQ's place in the top 10 (— = not in it); `decision` is what a merchant saw.",
        "Produced by benchmarks/kb_eval.py; use it to add similar questions, split or merge FAQs and check "
        "thresholds."])]
    wrong = [(q, p) for q, p in zip(inscope, preds) if not p.ranking or p.ranking[0] != q.gold]
    lines.append(f"\n## In-scope questions with a wrong top-1 ({len(wrong)} of {len(inscope)})\n")
    rows = []
    for q, p in sorted(wrong, key=lambda qp: (qp[0].category, -(qp[1].scores[0] if qp[1].scores else 0))):
        rank = p.ranking.index(q.gold) + 1 if q.gold in p.ranking else None
        rows.append([q.category, q.text, f"{key(q.gold)}（{faqs[q.gold]['question']}）",
                     rank or "—", f"{p.scores[rank - 1]:.3f}" if rank else "—",
                     f"{key(p.ranking[0])}（{faqs[p.ranking[0]]['question']}）" if p.ranking else "—",
                     f"{p.scores[0]:.3f}" if p.scores else "—", p.phrasing,
                     f"**{p.decision}**" if p.decision == "answer" else p.decision])
    lines.append(kc.table(["category", "question", "gold FAQ", "gold rank", "gold score", "predicted FAQ",
                           "score", "matched phrasing", "decision"], rows))
    shown = [(q, p) for q, p in zip(oos, preds_oos) if p.decision != "no_answer"]
    lines.append(f"\n## Out-of-scope questions answered or clarified ({len(shown)} of {len(oos)})\n")
    rows = [[q, f"{key(p.ranking[0])}（{faqs[p.ranking[0]]['question']}）", f"{p.scores[0]:.3f}", p.phrasing,
             f"**{p.decision}**" if p.decision == "answer" else p.decision]
            for q, p in sorted(shown, key=lambda qp: -qp[1].scores[0])]
    lines.append(kc.table(["question", "top FAQ", "score", "matched phrasing", "decision"], rows))
    return "\n".join(lines)


def pooling_rows(name: str, embedder: Embedder, faqs: list[dict], inscope: list[Question]) -> list[list]:
    """Ranking quality when an FAQ scores by its best 1..4 phrasings (the product uses ``POOL``)."""
    synonyms = kc.seed_synonyms()
    texts, owners = kc.indexed_phrasings(faqs, synonyms)
    vectors, _ = kc.cached_embeddings(embedder, texts)
    queries, _ = kc.cached_embeddings(embedder, [normalize(q.text, synonyms) for q in inscope])
    owner_arr, rows = np.asarray(owners), []
    for pool in (1, 2, 3, 4):
        ranks = [rank_faqs(vectors @ v, owner_arr, k=K, pool=pool)[0] for v in queries]
        top1 = np.mean([bool(r) and r[0] == q.gold for r, q in zip(ranks, inscope)])
        top3 = np.mean([q.gold in r[:3] for r, q in zip(ranks, inscope)])
        mrr = np.mean([1 / (r.index(q.gold) + 1) if q.gold in r else 0.0 for r, q in zip(ranks, inscope)])
        rows.append([name, f"{pool}{' (product)' if pool == POOL else ''}", float(top1), float(top3), float(mrr)])
    return rows


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", type=Path, default=DATA_DIR / "heldout")
    parser.add_argument("--oos", type=Path, default=DATA_DIR / "out_of_scope.yml")
    parser.add_argument("--models", nargs="+", help="embedding model folders side by side (default: the product's)")
    args = parser.parse_args(argv)

    faqs = kc.seed_faqs()
    key_to_id = {f["key"]: i for i, f in enumerate(faqs)}
    inscope, unknown = load_heldout(args.heldout, key_to_id)
    oos = load_questions(args.oos)
    calibration_oos = load_questions(CALIBRATION_OOS)
    calibration_in = [Question(str(r["q"]), key_to_id[r["gold"]]) for r in
                      yaml.safe_load(CALIBRATION_IN.read_text(encoding="utf-8"))["questions"] if r["gold"] in key_to_id]
    if not inscope:
        print(f"no held-out questions in {args.heldout}", file=sys.stderr)
        return 1
    synonyms = kc.seed_synonyms()
    n_phrasings = sum(len(kc.phrasings(f)) for f in faqs)
    kb_texts = {normalize(p, synonyms) for f in faqs for p in kc.phrasings(f)}
    in_kb = sum(normalize(q.text, synonyms) in kb_texts for q in inscope)
    overlap = len({normalize(q) for q in oos} & {normalize(q) for q in calibration_oos})
    print(f"KB: {len(faqs)} FAQs, {n_phrasings} phrasings; held-out: {len(inscope)} in-scope "
          f"({len(unknown)} skipped: gold not in KB), {len(oos)} out-of-scope")

    texts = [q.text for q in inscope] + oos
    systems: dict[str, tuple[list[Prediction], float]] = {}
    settings = get_settings()
    system_notes: dict[str, str] = {}
    retriever = None
    pool_rows: list[list] = []
    for path in args.models or [settings.model_path]:
        embedder = load_models(path, prefix=settings.query_prefix, threads=settings.embedding_threads)
        name = "e5" if not args.models else f"e5 ({embedder.name})"
        current = kc.e5_retriever(embedder, faqs, model_path=str(path))
        retriever = retriever or current  # the first model's errors are written out
        systems[name] = run_e5(current, texts)
        t = current.thresholds
        pool_rows += [["calibration", *r] for r in pooling_rows(name, embedder, faqs, calibration_in)]
        pool_rows += [["held-out", *r] for r in pooling_rows(name, embedder, faqs, inscope)]
        lexical = f" + {t.lexical} × bigram BM25 per phrasing" if t.lexical else ""
        system_notes[name] = (f"{embedder.name}, cosine{lexical}, FAQ = mean of its {POOL} best phrasings; answer ≥ {t.answer} and lead ≥ {t.margin}, clarify ≥ "
                              f"{t.clarify}; {lead_note(systems[name][0][:len(inscope)], inscope)}")
        plain = thresholds_for(embedder.name, lexical=0.0, model_path=str(path))
        if t.lexical and plain.lexical == 0.0 and plain != Thresholds():  # the same model without the bonus
            ablation = f"{name}, cosine only"
            systems[ablation] = run_e5(kc.e5_retriever(embedder, faqs, plain), texts)
            system_notes[ablation] = (f"{embedder.name}, cosine alone, thresholds calibrated for it: answer ≥ "
                                      f"{plain.answer} and lead ≥ {plain.margin}, clarify ≥ {plain.clarify}")
    bm25 = Bm25System(faqs, synonyms, calibration_oos)
    systems["BM25"] = bm25.predict(texts)

    n = len(inscope)
    results = {name: score(inscope, p[:n], p[n:]) for name, (p, _) in systems.items()}
    bt = bm25.thresholds
    system_notes |= {
        "BM25": f"char bigrams, score / self-score; answer ≥ {bt.answer} and lead ≥ {bt.margin}, "
                f"clarify ≥ {bt.clarify} (calibrated on {len(bm25.bm25.docs)} KB phrasings leave-one-out + "
                f"{len(calibration_oos)} calibration OOS)",
    }
    rows = [[name, *(results[name][c] for c, _ in COLUMNS), f"{systems[name][1]:.1f}", system_notes[name]]
            for name in systems]
    main_table = kc.table(["system", *(label for _, label in COLUMNS), "ms/query", "setting"], rows)
    notes = [
        f"KB: {len(faqs)} FAQs, {n_phrasings} phrasings (seed files data/seed/faqs/*.yml); synonyms from "
        f"data/seed/demo.yml ({len(synonyms)}).",
        f"Held-out: {n} in-scope questions in {len({q.category for q in inscope})} categories "
        f"(benchmarks/data/heldout/); {len(oos)} out-of-scope questions (benchmarks/data/out_of_scope.yml)."
        + (f" Skipped {len(unknown)} questions whose gold FAQ is not in the KB." if unknown else ""),
        f"{in_kb} of the in-scope questions equal a KB phrasing after normalisation"
        + (f"; {overlap} test OOS questions also appear in the calibration OOS list." if overlap else "."),
        "Rates over in-scope questions: answered + clarified + no answer = 1; \"answered wrong\" = answered with "
        "a wrong top-1 (the costly error); \"right FAQ at once or in one click\" = answered right + clarified with "
        "the gold FAQ among the choices (what a merchant can solve without a person). OOS rates are over the "
        "out-of-scope questions.",
        f"ms/query: mean over this run's questions, one at a time (e5 includes embedding the question with the "
        f"product's settings, {get_settings().embedding_threads} torch thread(s)). Latency proper: kb_latency.md.",
    ]
    report = (kc.header("Knowledge-base retrieval on our held-out questions", notes) + "\n" + main_table
              + "\n## Pooling: an FAQ scored by its best n phrasings\n\nRanking only (no thresholds), cosine alone "
              "(no lexical bonus). The product's n was chosen on the calibration set (data/calibration/in_scope.yml), not on the held-out set.\n\n"
              + kc.table(["questions", "model", "n", "top-1", "top-3", "MRR@10"], pool_rows)
              + "\n## Top-1 by category\n\n" + per_category(inscope, {k: v[0][:n] for k, v in systems.items()}))
    if unknown:
        report += "\n## Skipped (gold key not in the KB)\n\n" + "".join(f"- {u}\n" for u in unknown)
    print("\n" + main_table)
    print("wrote", kc.write_result("kb_eval.md", report).relative_to(REPO_ROOT))
    e5_preds = next(iter(systems.values()))[0]
    errors = errors_report(faqs, inscope, e5_preds[:n], oos, e5_preds[n:], retriever.thresholds)
    print("wrote", kc.write_result("kb_eval_errors.md", errors).relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
