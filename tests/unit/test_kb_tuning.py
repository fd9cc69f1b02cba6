"""优化模型 through the API: start in the background, progress, one job at a time (409), the report, rollback.

The job here is a stand-in process that behaves like kb_training.tune towards the API (its lock, its status
file, its report); the real job and its promote-if-better gate are tested in test_tune.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.services import tuning_jobs
from api.services.tuning_jobs import TuningJobs
from knowledge_base import serving

from ..conftest import BASE_MODEL, merchant_headers, staff_login

FAKE_JOB = r"""
import fcntl, json, os, pathlib, sys, time
d = pathlib.Path(sys.argv[1])
lock = open(d / ".lock", "w")
fcntl.flock(lock, fcntl.LOCK_EX)
def status(**f):
    tmp = d / ".status.fake.tmp"
    tmp.write_text(json.dumps(f), encoding="utf-8")
    os.replace(tmp, d / "status.json")
status(state="training", run="r1", step=3, total=10, eta_seconds=70, started_at="2026-12-20T10:00:00+00:00")
while not (d / "go").exists():
    time.sleep(0.05)
(d / "r1").mkdir(exist_ok=True)
score = lambda u, t1, t3, w, o: {"model": "/m/multilingual-e5-small", "utility": u, "held_back_top1": t1,
    "held_back_top3": t3, "real_style_top1": t1, "real_style_top3": t3, "right_answer": t1, "wrong_answer": w,
    "oos_answer": o}
(d / "r1" / "report.json").write_text(json.dumps({"run": "r1", "finished_at": "2026-12-20T10:20:00+00:00",
    "promoted": False, "reason": "效用 0.450 → 0.300（-0.150），没有超过 0.005，继续使用当前模型", "faqs": 8,
    "held_back": 8, "real_style": 30, "out_of_scope": 125, "train_seconds": 12.5,
    "serving": score(0.45, 0.8, 0.95, 0.02, 0.03), "candidate": score(0.3, 0.6, 0.8, 0.05, 0.06)}), encoding="utf-8")
status(state="kept", run="r1", reason="没有更好，继续使用当前模型", finished_at="2026-12-20T10:20:00+00:00")
"""


def fake_runner(settings, log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-c", FAKE_JOB, str(settings.tuning_dir)], stdout=log,
                                stderr=subprocess.STDOUT)


def crashing_runner(settings, log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-c", "import sys; print('模型目录不存在'); sys.exit(1)"],
                                stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def tunable(database):
    """The unmodified model served from the settings' own folder (not fixed by SJZS_EMBEDDING_MODEL), the pointer
    watched rarely (the fake models here are never loaded)."""
    settings = database.model_copy(update={"embedding_model": "", "kb_watch_seconds": 3600})
    settings.default_model_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.default_model_dir.symlink_to(BASE_MODEL, target_is_directory=True)
    return settings


def editor(client, settings) -> dict:
    return staff_login(client, settings.demo_password, "editor01")


def wait_for(client, headers, states: set[str]) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get("/api/kb/tuning", headers=headers).json()
        if body["state"] in states:
            return body
        time.sleep(0.05)
    return body


def test_a_job_runs_in_the_background_one_at_a_time_and_reports_before_and_after(tunable):
    with TestClient(create_app(tunable)) as client:
        client.app.state.tuning = TuningJobs(tunable, runner=fake_runner)
        h = editor(client, tunable)
        idle = client.get("/api/kb/tuning", headers=h).json()
        assert idle["state"] == "idle" and idle["report"] is None and not idle["can_rollback"]
        assert idle["serving"]["label"] == "multilingual-e5-small"

        started = client.post("/api/kb/tuning/start", headers=h)
        assert started.status_code == 202 and started.json()["running"]
        body = wait_for(client, h, {"training"})
        assert body["state"] == "training" and body["stage"] == "微调模型"
        assert body["progress"] == pytest.approx(0.05 + 0.8 * 0.3) and body["eta_seconds"] == 70

        second = client.post("/api/kb/tuning/start", headers=h)
        assert second.status_code == 409 and "已有一个模型优化任务在运行" in second.json()["detail"]
        busy = client.post("/api/kb/tuning/rollback", headers=h)
        assert busy.status_code == 409 and "正在运行" in busy.json()["detail"]
        # the bot keeps answering meanwhile
        hit = client.post("/internal/kb/search", json={"text": "保证金怎么退"},
                          headers={"X-Internal-Token": tunable.internal_token})
        assert hit.status_code == 200 and hit.json()["hits"]

        (tunable.tuning_dir / "go").touch()
        done = wait_for(client, h, {"kept", "failed"})
        assert done["state"] == "kept" and not done["running"] and done["progress"] == 1.0
        report = done["report"]
        assert report["promoted"] is False and "继续使用当前模型" in report["reason"]
        assert (report["before"]["top1"], report["after"]["top1"]) == (0.8, 0.6)
        assert (report["before"]["top3"], report["after"]["top3"]) == (0.95, 0.8)
        assert (report["before"]["wrong_answer"], report["after"]["oos_answer"]) == (0.02, 0.06)
        assert client.app.state.tuning._child.wait(30) == 0  # (reaped: no zombie left behind)


def test_a_job_that_dies_is_reported_failed_with_its_output(tunable):
    with TestClient(create_app(tunable)) as client:
        client.app.state.tuning = TuningJobs(tunable, runner=crashing_runner)
        h = editor(client, tunable)
        assert client.post("/api/kb/tuning/start", headers=h).status_code == 202
        client.app.state.tuning._child.wait(30)
        body = client.get("/api/kb/tuning", headers=h).json()
        assert body["state"] == "failed" and body["stage"] == "失败" and "模型目录不存在" in body["detail"]


def test_rollback_goes_back_to_the_previous_model_and_forward_again(tunable):
    models = tunable.default_model_dir.parent
    tuned = models / "kb-20261220T100000"
    tuned.mkdir()
    (tuned / "modules.json").write_text("[]")
    with TestClient(create_app(tunable)) as client:
        h = editor(client, tunable)
        nothing = client.post("/api/kb/tuning/rollback", headers=h)
        assert nothing.status_code == 409 and nothing.json()["detail"] == "没有可以回滚到的上一个模型"

        # what the job does when it promotes: the pointer moves, the one before is kept
        serving.promote(tunable.serving_file, serving.Serving(str(tuned), "2026-12-20T10:20:00+00:00",
                                                              "20261220T100000"), unmodified=str(tunable.default_model_dir))
        before = client.get("/api/kb/tuning", headers=h).json()
        assert before["serving"]["label"] == "kb-20261220T100000" and before["can_rollback"]
        assert before["previous"]["label"] == "multilingual-e5-small"

        back = client.post("/api/kb/tuning/rollback", headers=h)
        assert back.status_code == 200, back.text
        assert back.json()["state"] == "rolled_back" and back.json()["serving"]["label"] == "multilingual-e5-small"
        assert serving.read(tunable.serving_file).model == str(tunable.default_model_dir)  # what KbService follows
        assert back.json()["previous"]["label"] == "kb-20261220T100000"  # and one more click goes forward again
        forward = client.post("/api/kb/tuning/rollback", headers=h).json()
        assert serving.read(tunable.serving_file).model == str(tuned) and forward["serving"]["run"] == "20261220T100000"

        assert client.post("/api/kb/tuning/rollback", headers=merchant_headers(tunable)).status_code == 403


def test_a_model_fixed_by_the_setting_is_neither_tuned_nor_rolled_back(database):
    with TestClient(create_app(database)) as client:
        h = editor(client, database)
        for action in ("start", "rollback"):
            resp = client.post(f"/api/kb/tuning/{action}", headers=h)
            assert resp.status_code == 409 and "SJZS_EMBEDDING_MODEL" in resp.json()["detail"]
        assert client.get("/api/kb/tuning", headers=h).json()["fixed"] is True


def test_the_child_gets_the_apis_settings(tunable):
    env = tuning_jobs.settings_env(tunable)
    assert env["SJZS_DATABASE_URL"] == tunable.database_url and env["SJZS_EMBEDDING_MODEL"] == ""
    assert Path(env["SJZS_VAR_DIR"]) == tunable.var_dir and json.loads(env["SJZS_KB_LEXICAL_WEIGHTS"])
    import os

    from core.settings import Settings
    saved = {k: os.environ.get(k) for k in env}
    try:
        os.environ.update(env)
        again = Settings(_env_file=None)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert again.sqlalchemy_url == tunable.sqlalchemy_url and again.index_dir == tunable.index_dir
    assert again.tuning_dir == tunable.tuning_dir and again.model_path == tunable.model_path
