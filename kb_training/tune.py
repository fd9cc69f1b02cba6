"""优化模型: fine-tune the embedding model on the knowledge base, in the background, and promote it only if better.

Run: ``python -m kb_training.tune`` (the knowledge team's workbench starts the same job). The stack keeps
serving meanwhile: the job runs at the lowest CPU priority and prints a progress bar; its state is also in
``var/tuning/status.json`` for pages to show.

1. Read the published FAQs and the synonyms from the database and normalise every phrasing as the index does.
2. Hold back one similar question of every FAQ that has three phrasings or more (``hold_back``).
3. Fine-tune the unmodified model on the rest (``finetune.train``, recipe from the ``finetune_*`` settings).
4. Score the serving model and the candidate on the same questions neither was trained on: the held-back
   similar questions, the real-style calibration questions and the out-of-scope calibration questions
   (``data/calibration/``), each with its own thresholds and lexical weight calibrated on them.
5. Promote only if the candidate's utility beats the serving model's by more than the calibration's noise
   (``calibrate.UTILITY_TIE``): write its thresholds into its folder, build its index, then rewrite
   ``var/models/serving.json``. Every API process switches model and index within seconds, without a restart.
   A candidate that is not better is deleted; the report of every run stays in ``var/tuning/<run>/``.

The candidate is trained without its held-back questions (about 4% of the phrasings) and served that way: the
evaluation is honest and one training run is enough.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from core.settings import Settings, get_settings
from knowledge_base import serving
from knowledge_base.embedder import model_folders

from . import calibrate, finetune, questions


class TuneBusyError(RuntimeError):
    """Another tuning run holds the lock."""


@dataclass
class Score:
    """How one model did on the run's evaluation questions, at the thresholds calibrated for it on them."""

    model: str
    utility: float
    held_back_top1: float
    real_style_top1: float
    right_answer: float
    wrong_answer: float
    oos_answer: float
    thresholds: dict = field(default_factory=dict)  # answer / margin / clarify / lexical and the grid
    held_back_top3: float = 0.0   # the right FAQ among the first three (what 您是想问 offers)
    real_style_top3: float = 0.0


@dataclass
class Report:
    run: str
    started_at: str
    finished_at: str = ""
    faqs: int = 0
    phrasings: int = 0
    held_back: int = 0
    real_style: int = 0
    out_of_scope: int = 0
    train_seconds: float = 0.0
    recipe: dict = field(default_factory=dict)
    serving: Score | None = None
    candidate: Score | None = None
    promoted: bool = False
    reason: str = ""
    model: str = ""  # what is served after the run


def recipe_from(settings: Settings) -> finetune.Recipe:
    return finetune.Recipe(epochs=settings.finetune_epochs, lr=settings.finetune_lr,
                           batch_size=settings.finetune_batch_size, seed=settings.finetune_seed,
                           hard_negatives=settings.finetune_hard_negatives)


def hold_back(faqs: list[finetune.KbFaq], seed: int) -> tuple[list[finetune.KbFaq], list[tuple[int, str]]]:
    """One similar question per FAQ with three phrasings or more, chosen by a seeded hash of its text (so the same
    question is held back in every run while it exists); the standard question always stays."""
    def rank(text: str) -> str:
        return hashlib.sha256(f"{seed}|{text}".encode()).hexdigest()

    kept, held = [], []
    for f in faqs:
        if len(f.phrasings) < 3:
            kept.append(f)
            continue
        pick = min(f.phrasings[1:], key=rank)
        kept.append(finetune.KbFaq(f.faq_id, f.category, tuple(p for p in f.phrasings if p != pick)))
        held.append((f.faq_id, pick))
    return kept, held


def score(embedder, model: str, kept: list[finetune.KbFaq], held: list[tuple[int, str]],
          real: list[tuple[int, str]], oos: list[str], lexicals: list[float]) -> Score:
    """Index the kept phrasings, score the evaluation questions, calibrate the thresholds on them."""
    indexed = [(f.faq_id, list(f.phrasings)) for f in kept]
    probes = calibrate.heldout_probes(embedder, indexed, held + real, oos, lexicals)
    n_held, n_real = len(held), len(real)
    groups = {w: [ps[:n_held] + ps[n_held + n_real:], ps[n_held:n_held + n_real]] for w, ps in probes.items()}
    chosen = calibrate.choose_on_grid(groups)
    w = chosen["lexical"]
    in_held = probes[w][:n_held]
    in_real = probes[w][n_held:n_held + n_real]
    c = chosen["calibration"]
    return Score(model=model, utility=c["utility"],
                 held_back_top1=round(sum(p.faqs[:1] == [p.gold] for p in in_held) / max(n_held, 1), 4),
                 real_style_top1=c["real_style_top1"], right_answer=c["right_answer"],
                 wrong_answer=c["wrong_answer"], oos_answer=c["oos_answer"], thresholds=chosen,
                 held_back_top3=round(sum(p.gold in p.faqs[:3] for p in in_held) / max(n_held, 1), 4),
                 real_style_top3=round(sum(p.gold in p.faqs[:3] for p in in_real) / max(n_real, 1), 4))


def better(candidate: Score, current: Score) -> tuple[bool, str]:
    """The promotion gate: a higher calibration utility, by more than its noise."""
    gain = candidate.utility - current.utility
    if gain > calibrate.UTILITY_TIE:
        return True, f"效用 {current.utility:.3f} → {candidate.utility:.3f}（+{gain:.3f}），已启用新模型"
    return False, (f"效用 {current.utility:.3f} → {candidate.utility:.3f}（{gain:+.3f}），"
                   f"没有超过 {calibrate.UTILITY_TIE}，继续使用当前模型")


@contextlib.contextmanager
def run_lock(settings: Settings) -> Iterator[None]:
    settings.tuning_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.tuning_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TuneBusyError("已有一个模型优化任务在运行") from None
        yield


def write_status(settings: Settings, **fields) -> None:
    """The run's state for pages (the workbench polls it): replaced atomically."""
    path = settings.tuning_dir / "status.json"
    tmp = path.with_name(f".status.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**fields, "updated_at": _now()}, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def read_status(settings: Settings) -> dict:
    try:
        return json.loads((settings.tuning_dir / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"state": "idle"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_kb(settings: Settings) -> tuple[list[finetune.KbFaq], dict[str, int], dict[str, str]]:
    """The published FAQs as training sees them, their ids by key, and the synonyms."""
    from sqlalchemy.orm import Session

    from api import crud
    from api.db import make_engine
    from api.services import faqs as faq_service
    from knowledge_base.normalize import normalize

    engine = make_engine(settings.sqlalchemy_url)
    try:
        with Session(engine) as db:
            synonyms = faq_service.synonyms(db)
            published = crud.published_faqs(db)
            faqs = [finetune.KbFaq(f.id, f.category, tuple(dict.fromkeys(
                t for t in (normalize(p, synonyms) for p in f.phrasings) if t))) for f in published]
            ids = {f.key: f.id for f in published}
    finally:
        engine.dispose()
    return [f for f in faqs if f.phrasings], ids, synonyms


def run(settings: Settings, recipe: finetune.Recipe | None = None, echo: Callable[[str], None] = print,
        bar: bool = True) -> Report:
    """One tuning run (see the module's docstring); raises TuneBusyError while another one runs."""
    recipe = recipe or recipe_from(settings)
    with run_lock(settings):
        run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        report = Report(run=run_id, started_at=_now(), recipe=asdict(recipe))
        run_dir = settings.tuning_dir / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        status = {"state": "preparing", "run": run_id, "started_at": report.started_at}
        write_status(settings, **status)
        try:
            _run(settings, recipe, report, status, echo, bar)
        except BaseException as exc:
            write_status(settings, **{**status, "state": "failed", "detail": f"{type(exc).__name__}: {exc}"})
            raise
        report.finished_at = _now()
        (run_dir / "report.json").write_text(json.dumps(asdict(report), ensure_ascii=False, indent=2),
                                             encoding="utf-8")
        write_status(settings, state="promoted" if report.promoted else "kept", run=run_id,
                     started_at=report.started_at, finished_at=report.finished_at, reason=report.reason,
                     model=report.model)
        return report


def evaluation_set(settings: Settings, seed: int):
    """The KB as training sees it, split into what is trained on and what is held back, plus the calibration
    questions: (all FAQs, kept, held back, real-style, out-of-scope)."""
    faqs, ids, synonyms = load_kb(settings)
    kept, held = hold_back(faqs, seed)
    real, oos = questions.load(ids, synonyms)
    return faqs, kept, held, real, oos


def _run(settings: Settings, recipe: finetune.Recipe, report: Report, status: dict, echo, bar: bool) -> None:
    from api.kb_service import load_embedder
    from knowledge_base import load_models

    faqs, kept, held, real, oos = evaluation_set(settings, recipe.seed)
    lexicals = sorted(set(settings.kb_lexical_weights))
    report.faqs, report.phrasings = len(faqs), sum(len(f.phrasings) for f in faqs)
    report.held_back, report.real_style, report.out_of_scope = len(held), len(real), len(oos)
    echo(f"==> 优化模型（{report.run}）：{report.faqs} 条 FAQ、{report.phrasings} 个问法；留出 {len(held)} 个相似问法、"
         f"{len(real)} 个真实风格问题和 {len(oos)} 个范围外问题用于评估")

    # Train the candidate.
    base = settings.default_model_dir
    tuned_dir = base.parent / f"kb-{report.run}"
    progress = _progress(settings, status, bar)
    started = time.monotonic()
    finetune.train(base, tuned_dir, lambda rng: finetune.kb_examples(kept, rng, recipe.hard_negatives), recipe,
                   prefix=settings.query_prefix, progress=progress,
                   info={"faqs": len(kept), "held_back": len(held), "run": report.run,
                         "data": "published FAQs in the database, minus one held-back similar question each"})
    progress.close()
    report.train_seconds = round(time.monotonic() - started, 1)
    candidate_path = f"{tuned_dir},{base}" if settings.kb_mean_with_base else str(tuned_dir)

    # Score both on the questions neither was trained on.
    write_status(settings, **{**status, "state": "evaluating"})
    current_path = settings.model_path
    threads = os.cpu_count() or 2
    current = load_embedder(current_path, settings.query_prefix, threads)
    report.serving = score(current, current_path, kept, held, real, oos, lexicals)
    candidate = load_models(candidate_path, prefix=settings.query_prefix, threads=threads)
    report.candidate = score(candidate, candidate_path, kept, held, real, oos, lexicals)
    report.promoted, report.reason = better(report.candidate, report.serving)
    echo(format_report(report))

    if not report.promoted:
        shutil.rmtree(tuned_dir, ignore_errors=True)
        report.model = current_path
        echo(f"==> {report.reason}")
        return

    # Its thresholds live with it; its index is built before the pointer moves, so the switch is quick.
    write_status(settings, **{**status, "state": "indexing"})
    serving.save_thresholds(tuned_dir / serving.THRESHOLDS_FILE, candidate.name, report.candidate.thresholds)
    _build_index(settings, candidate, candidate_path)
    previous = serving.promote(settings.serving_file, serving.Serving(candidate_path, _now(), report.run),
                               unmodified=str(base))  # the previous pointer is kept: 一键回滚 goes back to it
    report.model = candidate_path
    _remove_old_models(settings, keep={*model_folders(candidate_path),
                                       *model_folders(previous.model)})
    echo(f"==> {report.reason}：{candidate_path}")


def recalibrate(settings: Settings, model_path: str) -> Score:
    """Score and calibrate a model on the job's evaluation questions (the same hold-back as a run) and keep its
    thresholds in its first folder: e.g. after the calibration questions changed, or for a mean of models."""
    from knowledge_base import load_models

    _, kept, held, real, oos = evaluation_set(settings, settings.finetune_seed)
    embedder = load_models(model_path, prefix=settings.query_prefix, threads=os.cpu_count() or 2)
    result = score(embedder, model_path, kept, held, real, oos, sorted(set(settings.kb_lexical_weights)))
    serving.save_thresholds(Path(model_folders(model_path)[0]) / serving.THRESHOLDS_FILE, embedder.name,
                            result.thresholds)
    return result


def _build_index(settings: Settings, embedder, model_path: str) -> None:
    from sqlalchemy.orm import Session

    from api.db import make_engine
    from api.kb_service import build_retriever

    engine = make_engine(settings.sqlalchemy_url)
    try:
        with Session(engine) as db:
            build_retriever(db, embedder, settings.index_dir, index_options=settings.index_options,
                            model_path=model_path)
    finally:
        engine.dispose()


def _remove_old_models(settings: Settings, keep: set[str]) -> None:
    """Tuned models other than the one served now and the one before it (kept for going back)."""
    keep_paths = {Path(k).resolve() for k in keep}
    for folder in settings.default_model_dir.parent.glob("kb-*"):
        if folder.resolve() not in keep_paths:
            shutil.rmtree(folder, ignore_errors=True)


def _progress(settings: Settings, status: dict, bar: bool):
    """The training progress: a terminal bar, and status.json every few steps (with the time left)."""
    from tqdm import tqdm

    started = time.monotonic()
    state = {"bar": None}

    def step(done: int, total: int, loss: float) -> None:
        if state["bar"] is None and bar:
            state["bar"] = tqdm(total=total, desc="微调", unit="步", dynamic_ncols=True)
        if state["bar"] is not None:
            state["bar"].update(1)
            state["bar"].set_postfix(loss=f"{loss:.3f}")
        if done == 1 or done == total or done % 5 == 0:
            eta = (time.monotonic() - started) / done * (total - done)
            write_status(settings, **{**status, "state": "training", "step": done, "total": total,
                                      "eta_seconds": round(eta)})

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()

    step.close = close
    return step


def format_report(report: Report) -> str:
    rows = [("模型", "效用", "留出问法 top-1", "真实风格 top-1", "直接答对", "答错", "范围外被回答")]
    for label, s in (("当前", report.serving), ("候选", report.candidate)):
        if s is not None:
            rows.append((f"{label} {Path(model_folders(s.model)[0]).name}", f"{s.utility:.3f}",
                         f"{s.held_back_top1:.3f}", f"{s.real_style_top1:.3f}", f"{s.right_answer:.3f}",
                         f"{s.wrong_answer:.3f}", f"{s.oos_answer:.3f}"))
    return "\n".join("    " + " | ".join(r) for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="优化模型：用知识库微调向量模型，评估后只在更好时启用")
    parser.add_argument("--epochs", type=int, help="训练轮数（默认为设置 finetune_epochs）")
    parser.add_argument("--no-nice", action="store_true", help="不降低 CPU 优先级")
    parser.add_argument("--recalibrate", metavar="MODEL",
                        help="不训练：按同样的留出问题给这个模型（多个目录用逗号分隔）重新校准阈值并评分，阈值存入它的目录")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.recalibrate:
        result = recalibrate(settings, args.recalibrate)
        print(format_report(Report(run="", started_at="", candidate=result)))
        return 0
    if settings.embedding_model:
        print("已用 SJZS_EMBEDDING_MODEL 固定了模型，优化任务不会替换它", file=sys.stderr)
        return 2
    if not args.no_nice:
        os.nice(19)  # the stack keeps serving on the same cores
    recipe = recipe_from(settings)
    if args.epochs:
        recipe = finetune.Recipe(**{**asdict(recipe), "epochs": args.epochs})
    try:
        report = run(settings, recipe)
    except TuneBusyError as exc:
        print(str(exc), file=sys.stderr)
        return 3
    print(f"报告：{settings.tuning_dir / report.run / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
