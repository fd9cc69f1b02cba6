"""The tuning job (优化模型) on a small knowledge base: a real fine-tune, the promote-if-better gate, and the API
switching to a promoted model without a restart."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.db import make_engine
from api.main import create_app
from core.settings import Settings
from kb_training import finetune, tune
from knowledge_base import serving

from ..conftest import BASE_MODEL, make_settings

pytestmark = pytest.mark.slow

GOOD = finetune.Recipe(epochs=1, batch_size=8, lr=5e-5, seed=7)
BROKEN = finetune.Recipe(epochs=1, batch_size=8, lr=2e-2, seed=7)  # a learning rate that wrecks the model


def small_kb(tmp, templates, faqs: int = 8) -> Settings:
    """A copy of the seed database with only its first ``faqs`` FAQs published, and the unmodified model."""
    shutil.copyfile(templates.sqlite(), tmp / "test.db")
    settings = make_settings(tmp, embedding_model="", kb_lexical_weights=[0.0, 0.3], kb_watch_seconds=0.2,
                             kb_mean_with_base=False)
    engine = make_engine(settings.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE faqs SET status = 'archived' WHERE id NOT IN "
                          "(SELECT id FROM faqs WHERE status = 'published' ORDER BY id LIMIT :n)"), {"n": faqs})
    engine.dispose()
    settings.default_model_dir.parent.mkdir(parents=True)
    settings.default_model_dir.symlink_to(BASE_MODEL, target_is_directory=True)
    return settings


@pytest.fixture(scope="module")
def runs(tmp_path_factory, templates):
    """A worse candidate against the unmodified model; then a sound one against a wrecked serving model."""
    settings = small_kb(tmp_path_factory.mktemp("tune"), templates)
    worse = tune.run(settings, BROKEN, echo=lambda _: None, bar=False)
    after_worse = (serving.read(settings.serving_file), sorted(p.name for p in settings.default_model_dir.parent.iterdir()),
                   tune.read_status(settings))
    # Serve a wrecked model (the same recipe, trained directly), so a sound fine-tune has something to beat.
    faqs, _, _ = tune.load_kb(settings)
    wrecked = settings.default_model_dir.parent / "kb-wrecked"
    finetune.train(settings.default_model_dir, wrecked, lambda rng: finetune.kb_examples(faqs, rng), BROKEN)
    serving.write(settings.serving_file, serving.Serving(str(wrecked), "2026-01-01T00:00:00+00:00", "wrecked"))
    # The sound candidate is served as the product serves tuned models: beside the unmodified one.
    settings = settings.model_copy(update={"kb_mean_with_base": True})
    better = tune.run(settings, GOOD, echo=lambda _: None, bar=False)
    return settings, worse, after_worse, better, wrecked


def test_a_worse_candidate_is_reported_and_dropped(runs):
    settings, worse, (pointer, models, status), _, _ = runs
    assert not worse.promoted
    assert worse.candidate.utility < worse.serving.utility
    assert worse.serving.model == str(settings.default_model_dir)
    assert pointer is None and models == ["multilingual-e5-small"]  # nothing promoted, the candidate deleted
    assert status["state"] == "kept" and "继续使用当前模型" in status["reason"]
    saved = json.loads((settings.tuning_dir / worse.run / "report.json").read_text(encoding="utf-8"))
    assert saved["promoted"] is False and saved["candidate"]["utility"] == worse.candidate.utility


def test_held_back_questions_are_not_trained_on_and_are_scored(runs):
    _, worse, _, better, _ = runs
    for report in (worse, better):
        assert report.held_back == 8 and report.real_style > 0 and report.out_of_scope > 50
        assert 0 <= report.candidate.held_back_top1 <= 1 and report.candidate.thresholds["answer"] > 0


def test_a_better_candidate_is_promoted_with_its_thresholds_and_index(runs):
    settings, _, _, better, wrecked = runs
    assert better.promoted and better.candidate.utility > better.serving.utility
    pointer = serving.read(settings.serving_file)
    assert pointer.model == better.model == better.candidate.model and pointer.run == better.run
    assert settings.model_path == pointer.model
    folder = settings.default_model_dir.parent / f"kb-{better.run}"
    assert pointer.model == f"{folder},{settings.default_model_dir}"  # the mean of the tuned and unmodified model
    name = f"{folder.name}+{settings.default_model_dir.name}"
    assert json.loads((folder / serving.THRESHOLDS_FILE).read_text(encoding="utf-8"))[name]["answer"] > 0
    assert (settings.index_dir / name / "index.faiss").exists()  # built before the pointer moved
    assert wrecked.exists()  # the model served before stays, to go back to
    assert tune.read_status(settings)["state"] == "promoted"


def test_two_runs_at_once_are_refused(runs):
    settings = runs[0]
    with tune.run_lock(settings), pytest.raises(tune.TuneBusyError):
        tune.run(settings, GOOD, echo=lambda _: None, bar=False)


def test_the_api_switches_to_a_promoted_model_without_a_restart(tmp_path, templates, runs):
    promoted = serving.read(runs[0].serving_file)
    settings = small_kb(tmp_path, templates)
    failures, done = [], threading.Event()
    with TestClient(create_app(settings)) as client:
        kb = client.app.state.kb
        assert kb.wait_ready(120)
        before = client.get("/healthz").json()["components"]["model"]
        assert before["name"] == str(settings.default_model_dir) and before["promoted_at"] is None

        def search_all_along():
            while not done.is_set():
                try:
                    kb.search("保证金怎么退")
                except Exception as exc:  # a half-swapped state would show here
                    failures.append(repr(exc))

        searcher = threading.Thread(target=search_all_along)
        searcher.start()
        try:
            serving.write(settings.serving_file, serving.Serving(promoted.model, "2026-12-04T18:00:00+00:00", "r1"))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                model = client.get("/healthz").json()["components"]["model"]
                if model["name"] == promoted.model:
                    break
                time.sleep(0.2)
        finally:
            done.set()
            searcher.join()
        assert model["name"] == promoted.model and model["promoted_at"] == "2026-12-04T18:00:00+00:00"
        assert failures == []
        assert kb.retriever.embedder.name == "+".join(p.rsplit("/", 1)[-1] for p in promoted.model.split(","))
        hit = client.post("/internal/kb/search", json={"text": "保证金怎么退"},
                          headers={"X-Internal-Token": settings.internal_token})
        assert hit.status_code == 200
