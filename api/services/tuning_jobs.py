"""优化模型 from the workbench: start the tuning job (kb_training.tune, the same as the command) in a process of
its own, report its progress and result, and go back to the previous model in one step.

The job never runs in the API process: ``python -m kb_training.tune`` is started as a child in a session of its
own (it lowers its own CPU priority to nice 19), with this API's settings in its environment, writing its output
to ``var/tuning/job.log``. Its state is the file it writes (``var/tuning/status.json``); one job at a time is
the job's own file lock, plus this process's knowledge of the child it started (between start and the child
taking the lock). The API keeps answering with the served model meanwhile; when the job promotes a model it
rewrites ``var/models/serving.json`` and every API process switches (api/kb_service.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from core.settings import REPO_ROOT, Settings
from kb_training import tune
from knowledge_base import serving

from .errors import Conflict

ACTIVE = {"queued", "preparing", "training", "evaluating", "indexing"}
STAGES = {
    "idle": "还没有运行过", "queued": "正在启动", "preparing": "读取知识库", "training": "微调模型",
    "evaluating": "评估新旧模型", "indexing": "为新模型建索引", "promoted": "完成：已启用新模型",
    "kept": "完成：新模型没有更好，继续使用当前模型", "failed": "失败", "rolled_back": "已回滚到上一个模型",
}
Runner = Callable[[Settings, Path], "subprocess.Popen | None"]


def settings_env(settings: Settings) -> dict[str, str]:
    """This API's settings as the child's ``SJZS_*`` environment, so the job works on the same database,
    folders and model."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        env[f"SJZS_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def spawn(settings: Settings, log_path: Path) -> subprocess.Popen:
    """The real runner: the tuning command, detached into its own session (it outlives a restart of the API)."""
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "kb_training.tune"], cwd=REPO_ROOT,
                                env={**os.environ, **settings_env(settings)}, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def lock_held(settings: Settings) -> bool:
    """Whether a tuning run (from any process) holds the job's lock."""
    path = settings.tuning_dir / ".lock"
    if not path.exists():
        return False
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


class TuningJobs:
    """One per API process (``app.state.tuning``). ``runner``: how a job is started (tests pass a fake)."""

    def __init__(self, settings: Settings, runner: Runner = spawn):
        self.settings = settings
        self.runner = runner
        self._lock = threading.Lock()
        self._child: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.settings.tuning_dir / "job.log"

    def _child_alive(self) -> bool:
        return self._child is not None and self._child.poll() is None

    def running(self) -> bool:
        return self._child_alive() or lock_held(self.settings)

    def start(self, actor: str) -> dict:
        with self._lock:
            if self.settings.embedding_model:
                raise Conflict("模型已由 SJZS_EMBEDDING_MODEL 固定，不能在这里优化")
            if self.running():
                raise Conflict("已有一个模型优化任务在运行，请等它结束后再开始")
            self.settings.tuning_dir.mkdir(parents=True, exist_ok=True)
            started = _now()
            tune.write_status(self.settings, state="queued", started_at=started, by=actor)
            try:
                self._child = self.runner(self.settings, self.log_path)
            except OSError as exc:
                tune.write_status(self.settings, state="failed", started_at=started, by=actor,
                                  detail=f"无法启动优化任务：{exc}")
                raise Conflict(f"无法启动优化任务：{exc}") from None
        return self.status()

    def rollback(self, actor: str) -> dict:
        s = self.settings
        with self._lock:
            if s.embedding_model:
                raise Conflict("模型已由 SJZS_EMBEDDING_MODEL 固定，不能回滚")
            if self._child_alive():
                raise Conflict("模型优化任务正在运行，请等它结束后再回滚")
            try:
                with tune.run_lock(s):  # never while a job (from any process) may be promoting
                    back = serving.rollback(s.serving_file, str(s.default_model_dir), _now())
            except tune.TuneBusyError:
                raise Conflict("模型优化任务正在运行，请等它结束后再回滚") from None
            except LookupError as exc:
                raise Conflict(str(exc)) from None
            tune.write_status(s, state="rolled_back", model=back.model, run=back.run, by=actor,
                              finished_at=_now(), reason=f"已回滚到 {_label(back.model)}")
        return self.status()

    def status(self) -> dict:
        s = self.settings
        st = tune.read_status(s)
        state = st.get("state", "idle")
        running = self.running()
        if state in ACTIVE and not running:  # the job ended without saying how (killed, or failed to start)
            state = "failed"
            st = {**st, "detail": st.get("detail") or _tail(self.log_path) or "优化任务意外结束"}
        current = serving.read(s.serving_file)
        previous = serving.read(serving.previous_file(s.serving_file))
        served = current.model if current else str(s.default_model_dir)
        out = {
            "state": state, "stage": STAGES.get(state, state), "running": state in ACTIVE,
            "progress": _progress(state, st), "step": st.get("step"), "total": st.get("total"),
            "eta_seconds": st.get("eta_seconds"), "run": st.get("run"), "started_at": st.get("started_at"),
            "finished_at": st.get("finished_at"), "updated_at": st.get("updated_at"),
            "reason": st.get("reason") or "", "detail": st.get("detail") or "",
            "serving": {"model": served, "label": _label(served), "promoted_at": current.promoted_at if current else "",
                        "run": current.run if current else ""},
            "previous": ({"model": previous.model, "label": _label(previous.model), "run": previous.run}
                         if previous and previous.model != served else None),
            "fixed": bool(s.embedding_model),
            "report": self.report(st.get("run") if state != "rolled_back" else None),
        }
        out["can_rollback"] = out["previous"] is not None and not out["running"] and not out["fixed"]
        return out

    def report(self, run: str | None = None) -> dict | None:
        """The run's report as the page shows it: before (the served model) and after (the candidate)."""
        runs = sorted(p.parent.name for p in self.settings.tuning_dir.glob("*/report.json")) if not run else []
        run = run or (runs[-1] if runs else None)
        if not run:
            return None
        try:
            data = json.loads((self.settings.tuning_dir / run / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return {"run": data.get("run"), "finished_at": data.get("finished_at"), "promoted": data.get("promoted"),
                "reason": data.get("reason", ""), "faqs": data.get("faqs"), "held_back": data.get("held_back"),
                "real_style": data.get("real_style"), "out_of_scope": data.get("out_of_scope"),
                "train_seconds": data.get("train_seconds"),
                "before": _metrics(data.get("serving")), "after": _metrics(data.get("candidate"))}


def _metrics(score: dict | None) -> dict | None:
    if not score:
        return None
    return {"model": _label(score.get("model", "")), "utility": score.get("utility"),
            "top1": score.get("held_back_top1"), "top3": score.get("held_back_top3"),
            "real_style_top1": score.get("real_style_top1"), "real_style_top3": score.get("real_style_top3"),
            "right_answer": score.get("right_answer"), "wrong_answer": score.get("wrong_answer"),
            "oos_answer": score.get("oos_answer")}


def _progress(state: str, st: dict) -> float:
    if state == "training" and st.get("total"):
        return round(0.05 + 0.8 * min(1.0, st.get("step", 0) / st["total"]), 3)
    return {"queued": 0.0, "preparing": 0.02, "evaluating": 0.87, "indexing": 0.95}.get(
        state, 1.0 if state in ("promoted", "kept", "rolled_back") else 0.0)


def _label(model: str) -> str:
    return "+".join(Path(p.strip()).name for p in model.split(",") if p.strip())


def _tail(path: Path, chars: int = 400) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:].strip()
    except OSError:
        return ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
