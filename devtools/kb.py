"""Knowledge-base maintenance.

``python -m devtools.kb rebuild``    rebuild the FAQ index from the database (with a progress bar) and save it;
``python -m devtools.kb calibrate``  choose the answer/clarify thresholds for the current model and KB and
                                     write them to data/kb_thresholds.json (re-run when the KB changes a lot).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import yaml
from sqlalchemy.orm import Session
from tqdm import tqdm

from api import crud
from api.db import make_engine
from api.kb_service import THRESHOLDS_FILE, build_retriever, load_embedder
from api.services import faqs as faq_service
from core.settings import REPO_ROOT, Settings, get_settings
from knowledge_base import calibrate
from knowledge_base.embedder import model_folders
from knowledge_base.normalize import normalize

from .kb_model import kfold_probes

CALIBRATION_OOS = REPO_ROOT / "data" / "calibration" / "out_of_scope.yml"
CALIBRATION_IN_SCOPE = REPO_ROOT / "data" / "calibration" / "in_scope.yml"


def ensure_index(settings: Settings, force: bool = False, quiet: bool = False) -> str:
    """Build the saved index unless it already matches the model and the data; returns "disk" or "rebuilt"."""
    embedder = load_embedder(settings.model_path, settings.query_prefix, os.cpu_count() or 2)  # batch work
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with Session(engine) as db:
            bar = None if quiet else (lambda total: tqdm(total=total, desc="向量化 FAQ 问法", unit="条"))
            retriever, source = build_retriever(db, embedder, settings.index_dir, bar, force=force,
                                                index_options=settings.index_options)
    finally:
        engine.dispose()
    if source == "rebuilt" and not quiet:
        print(f"==> 索引已重建：{retriever.index.faq_count} 条 FAQ，{len(retriever.index)} 个问法 → {settings.index_dir}")
    return source


def is_finetuned(model_path: str) -> bool:
    """True when the model (or one of comma-separated models) was fine-tuned: its build_info.json says so."""
    for folder in model_folders(model_path):
        try:
            if "finetune" in json.loads((Path(folder) / "build_info.json").read_text(encoding="utf-8")):
                return True
        except (OSError, ValueError):
            pass
    return False


UTILITY_TIE = 0.005  # calibration utilities closer than this are within noise (a few of ~1,400 probes)


def run_calibration(settings: Settings, lexicals: list[float] | None = None, folds: int | None = None) -> dict:
    """Choose the thresholds of the configured model (and, given several ``lexicals``, the lexical weight with
    the best calibration utility); write them to data/kb_thresholds.json under the model's name.

    ``folds`` (default: setting ``calibration_folds``) is how many fine-tunes give a fine-tuned model its
    held-back KB probes; 0 calibrates it on the questions it never saw only: the real-style and the
    out-of-scope ones."""
    lexicals = sorted(set(lexicals or settings.kb_lexical_weights))
    folds = settings.calibration_folds if folds is None else folds
    embedder = load_embedder(settings.model_path, settings.query_prefix, os.cpu_count() or 2)  # batch work
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as db:
        published = crud.published_faqs(db)
        faqs = [(f.id, f.phrasings) for f in published]
        ids = {f.key: f.id for f in published}
        synonyms = faq_service.synonyms(db)
    engine.dispose()
    oos = yaml.safe_load(CALIBRATION_OOS.read_text(encoding="utf-8"))["questions"]
    finetuned = is_finetuned(settings.model_path)
    real_oos: list[str] = []
    if not finetuned:
        kb_probes = calibrate.probes(embedder, faqs, oos, synonyms, lexicals)
    elif folds > 0:
        # The model has seen every KB phrasing: leave-one-out would flatter it.
        kb_probes = kfold_probes(settings.model_copy(update={"calibration_folds": folds}), oos, lexicals)
    else:
        kb_probes = {w: [] for w in lexicals}
        real_oos = [t for t in (normalize(q, synonyms) for q in oos) if t]
    # Real-style questions (long, situational) score lower than the KB's terse similar questions: both count half.
    rows = [r for r in yaml.safe_load(CALIBRATION_IN_SCOPE.read_text(encoding="utf-8"))["questions"]
            if r["gold"] in ids]
    indexed = [(faq_id, [t for t in (normalize(p, synonyms) for p in texts) if t]) for faq_id, texts in faqs]
    real = calibrate.heldout_probes(embedder, indexed, [(ids[r["gold"]], normalize(r["q"], synonyms)) for r in rows],
                                    real_oos, lexicals)
    results = {}
    for w in lexicals:
        items = calibrate.balance(kb_probes[w], real[w])
        thresholds, outcome = calibrate.choose(items)
        n_out = sum(p.gold is None for p in items)
        results[w] = calibrate.report(dataclasses.replace(thresholds, lexical=w), outcome, len(items) - n_out, n_out)
        in_scope = [p for p in real[w] if p.gold is not None]
        top1 = sum(bool(p.faqs) and p.faqs[0] == p.gold for p in in_scope) / max(len(in_scope), 1)
        results[w]["calibration"]["real_style_top1"] = round(top1, 4)
    # The best utility wins; weights within UTILITY_TIE of it are a tie, broken by the real-style questions' top-1
    # (the merchant-facing ranking), then by the smaller weight.
    top = max(r["calibration"]["utility"] for r in results.values())
    tied = [w for w in lexicals if results[w]["calibration"]["utility"] >= top - UTILITY_TIE]
    best = max(tied, key=lambda w: (results[w]["calibration"]["real_style_top1"], -w))
    result = results[best]
    if len(lexicals) > 1:
        result["calibration"]["lexical_grid"] = {
            str(w): {"answer": r["answer"], "margin": r["margin"], "clarify": r["clarify"],
                     **{k: r["calibration"][k] for k in ("utility", "right_answer", "wrong_answer", "oos_answer",
                                                         "real_style_top1")}} for w, r in results.items()}
    result["calibration"]["real_style_probes"] = len(rows)
    result["calibration"]["date"] = time.strftime("%Y-%m-%d")
    result["calibration"]["faqs"] = len(faqs)
    result["calibration"]["method"] = (
        "leave-one-out over KB phrasings" if not finetuned
        else f"{folds}-fold fine-tuning, held-back similar questions" if folds > 0
        else "real-style and out-of-scope questions only (no folds)")
    table = json.loads(THRESHOLDS_FILE.read_text(encoding="utf-8")) if THRESHOLDS_FILE.exists() else {}
    table[embedder.name] = result
    THRESHOLDS_FILE.write_text(json.dumps(table, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="知识库维护：重建索引、校准阈值")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("rebuild", help="从数据库重建索引并保存")
    cal = sub.add_parser("calibrate", help="校准回答/追问阈值，写入 data/kb_thresholds.json")
    cal.add_argument("--lexical", type=float, nargs="+", metavar="W",
                     help="字面（二元组 BM25）加分的候选权重，取校准效用最高者；默认为设置 kb_lexical_weights")
    cal.add_argument("--folds", type=int, metavar="N",
                     help="微调模型的 k 折数（默认为设置 calibration_folds）；0 表示只用真实风格问题和范围外问题校准")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "rebuild":
        ensure_index(settings, force=True)
    else:
        result = run_calibration(settings, args.lexical, args.folds)
        print(json.dumps(result, ensure_ascii=False, indent=2))
        ensure_index(settings)  # new thresholds do not change the vectors; the saved index stays valid
    return 0


if __name__ == "__main__":
    sys.exit(main())
