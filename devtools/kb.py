"""Knowledge-base maintenance.

``python -m devtools.kb rebuild``    rebuild the FAQ index from the database (with a progress bar) and save it;
``python -m devtools.kb calibrate``  choose the answer/clarify thresholds for the current model and KB and
                                     write them to data/kb_thresholds.json (re-run when the KB changes a lot).
"""

from __future__ import annotations

import argparse
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
    """True for a model devtools.kb_model fine-tuned (its build_info.json says so)."""
    try:
        return "finetune" in json.loads((Path(model_path) / "build_info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def run_calibration(settings: Settings) -> dict:
    embedder = load_embedder(settings.model_path, settings.query_prefix, os.cpu_count() or 2)  # batch work
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as db:
        published = crud.published_faqs(db)
        faqs = [(f.id, f.phrasings) for f in published]
        ids = {f.key: f.id for f in published}
        synonyms = faq_service.synonyms(db)
    engine.dispose()
    oos = yaml.safe_load(CALIBRATION_OOS.read_text(encoding="utf-8"))["questions"]
    if is_finetuned(settings.model_path):
        items = kfold_probes(settings, oos)  # the model has seen every KB phrasing: leave-one-out would flatter
    else:
        items = calibrate.probes(embedder, faqs, oos, synonyms)
    # Real-style questions (long, situational) score lower than the KB's terse similar questions: both count half.
    rows = [r for r in yaml.safe_load(CALIBRATION_IN_SCOPE.read_text(encoding="utf-8"))["questions"]
            if r["gold"] in ids]
    indexed = [(faq_id, [t for t in (normalize(p, synonyms) for p in texts) if t]) for faq_id, texts in faqs]
    real = calibrate.heldout_probes(embedder, indexed, [(ids[r["gold"]], normalize(r["q"], synonyms)) for r in rows],
                                    [])
    items = calibrate.balance(items, real)
    thresholds, outcome = calibrate.choose(items)
    n_out = sum(p.gold is None for p in items)
    result = calibrate.report(thresholds, outcome, len(items) - n_out, n_out)
    result["calibration"]["real_style_probes"] = len(real)
    result["calibration"]["date"] = time.strftime("%Y-%m-%d")
    result["calibration"]["faqs"] = len(faqs)
    result["calibration"]["method"] = (f"{settings.calibration_folds}-fold fine-tuning, held-back similar questions"
                                       if is_finetuned(settings.model_path) else "leave-one-out over KB phrasings")
    table = json.loads(THRESHOLDS_FILE.read_text(encoding="utf-8")) if THRESHOLDS_FILE.exists() else {}
    table[embedder.name] = result
    THRESHOLDS_FILE.write_text(json.dumps(table, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="知识库维护：重建索引、校准阈值")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("rebuild", help="从数据库重建索引并保存")
    sub.add_parser("calibrate", help="校准回答/追问阈值，写入 data/kb_thresholds.json")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "rebuild":
        ensure_index(settings, force=True)
    else:
        result = run_calibration(settings)
        print(json.dumps(result, ensure_ascii=False, indent=2))
        ensure_index(settings)  # new thresholds do not change the vectors; the saved index stays valid
    return 0


if __name__ == "__main__":
    sys.exit(main())
