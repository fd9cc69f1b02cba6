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

from sqlalchemy.orm import Session
from tqdm import tqdm

from api import crud
from api.db import make_engine
from api.kb_service import THRESHOLDS_FILE, build_retriever, load_embedder, saved_index_is_current
from api.services import faqs as faq_service
from core.settings import Settings, get_settings
from kb_training import calibrate, questions
from knowledge_base import serving
from knowledge_base.embedder import model_folders
from knowledge_base.normalize import normalize


def ensure_index(settings: Settings, force: bool = False, quiet: bool = False) -> str:
    """Build the saved index unless it already matches the model and the data; returns "disk" or "rebuilt"."""
    model_path = settings.model_path
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with Session(engine) as db:
            if not force and saved_index_is_current(db, model_path, settings.query_prefix, settings.index_dir):
                return "disk"  # nothing to do, and no model to load
            embedder = load_embedder(model_path, settings.query_prefix, os.cpu_count() or 2)  # batch work
            bar = None if quiet else (lambda total: tqdm(total=total, desc="向量化 FAQ 问法", unit="条"))
            retriever, source = build_retriever(db, embedder, settings.index_dir, bar, force=force,
                                                index_options=settings.index_options, model_path=model_path)
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


def run_calibration(settings: Settings, lexicals: list[float] | None = None) -> dict:
    """Choose the thresholds (and the lexical weight) of the served model.

    The unmodified model: leave-one-out over the KB's own similar questions plus the real-style and out-of-scope
    calibration questions; written to data/kb_thresholds.json. A tuned model has seen every KB phrasing, so
    leave-one-out would flatter it: the calibration questions alone, written into the model's own folder (the
    tuning job calibrates it on its held-back questions too when it is trained).
    """
    lexicals = sorted(set(lexicals or settings.kb_lexical_weights))
    model_path = settings.model_path
    embedder = load_embedder(model_path, settings.query_prefix, os.cpu_count() or 2)  # batch work
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as db:
        published = crud.published_faqs(db)
        faqs = [(f.id, f.phrasings) for f in published]
        ids = {f.key: f.id for f in published}
        synonyms = faq_service.synonyms(db)
    engine.dispose()
    real, oos = questions.load(ids, synonyms)
    finetuned = is_finetuned(model_path)
    indexed = [(faq_id, [t for t in (normalize(p, synonyms) for p in texts) if t]) for faq_id, texts in faqs]
    if finetuned:
        groups = {w: [ps] for w, ps in calibrate.heldout_probes(embedder, indexed, real, oos, lexicals).items()}
    else:
        kb = calibrate.probes(embedder, faqs, questions.out_of_scope(), synonyms, lexicals)
        scored = calibrate.heldout_probes(embedder, indexed, real, [], lexicals)
        groups = {w: [kb[w], scored[w]] for w in lexicals}
    result = calibrate.choose_on_grid(groups)
    result["calibration"].update({
        "real_style_probes": len(real), "date": time.strftime("%Y-%m-%d"), "faqs": len(faqs),
        "method": "calibration questions only (a tuned model)" if finetuned
        else "leave-one-out over KB phrasings + calibration questions"})
    target = (Path(model_folders(model_path)[0]) / serving.THRESHOLDS_FILE) if finetuned else THRESHOLDS_FILE
    serving.save_thresholds(target, embedder.name, result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="知识库维护：重建索引、校准阈值")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("rebuild", help="从数据库重建索引并保存")
    cal = sub.add_parser("calibrate", help="校准回答/追问阈值，写入 data/kb_thresholds.json")
    cal.add_argument("--lexical", type=float, nargs="+", metavar="W",
                     help="字面（二元组 BM25）加分的候选权重，取校准效用最高者；默认为设置 kb_lexical_weights")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "rebuild":
        ensure_index(settings, force=True)
    else:
        result = run_calibration(settings, args.lexical)
        print(json.dumps(result, ensure_ascii=False, indent=2))
        ensure_index(settings)  # new thresholds do not change the vectors; the saved index stays valid
    return 0


if __name__ == "__main__":
    sys.exit(main())
