"""`devtools.kb calibrate` end to end on a real seeded database, with a fast stand-in embedding model."""

import json

import pytest
import yaml

from devtools import kb

from .test_calibrate import BigramEmbedder


class NamedBigramEmbedder(BigramEmbedder):
    name = "stand-in-kb"


@pytest.fixture
def calibration(settings, tmp_path, monkeypatch):
    """Runs the calibration of a 'fine-tuned' stand-in model over the seed FAQs; the fold fine-tunes are
    replaced by an empty probe list (their cost is the point of ``--folds 0``)."""
    from devtools.prepare import ensure_database

    ensure_database(settings.sqlalchemy_url, demo_password="demo-pass")
    model = tmp_path / "stand-in-kb"
    model.mkdir()
    (model / "build_info.json").write_text(json.dumps({"finetune": {"steps": 1}}), encoding="utf-8")
    monkeypatch.setattr(kb, "load_embedder", lambda *args: NamedBigramEmbedder())
    monkeypatch.setattr(kb, "THRESHOLDS_FILE", tmp_path / "thresholds.json")
    fold_calls = []

    def no_fine_tunes(cfg, oos, lexicals):
        fold_calls.append(cfg.calibration_folds)
        return {w: [] for w in lexicals}

    monkeypatch.setattr(kb, "kfold_probes", no_fine_tunes)
    configured = settings.model_copy(update={"embedding_model": str(model)})
    return lambda folds: kb.run_calibration(configured, [0.0, 0.3], folds=folds), fold_calls, tmp_path


def test_without_folds_the_real_style_and_out_of_scope_questions_are_the_probes(calibration):
    run, fold_calls, tmp_path = calibration
    result = run(0)
    assert fold_calls == []  # no fold fine-tune was asked for
    cal = result["calibration"]
    in_scope = yaml.safe_load(kb.CALIBRATION_IN_SCOPE.read_text(encoding="utf-8"))["questions"]
    oos = yaml.safe_load(kb.CALIBRATION_OOS.read_text(encoding="utf-8"))["questions"]
    assert cal["in_scope_probes"] == len(in_scope) == cal["real_style_probes"]
    assert 0 < cal["out_of_scope_probes"] <= len(oos)  # scored against the whole KB, as merchants' would be
    assert cal["method"] == "real-style and out-of-scope questions only (no folds)"
    assert set(cal["lexical_grid"]) == {"0.0", "0.3"} and result["lexical"] in (0.0, 0.3)
    saved = json.loads((tmp_path / "thresholds.json").read_text(encoding="utf-8"))
    assert saved["stand-in-kb"] == result


def test_real_style_top1_counts_in_scope_questions_only(calibration):
    """With folds, the out-of-scope questions go to the fold probes; without, they join the real-style ones.
    The ranking of the in-scope questions is the same either way, and so must be their top-1."""
    run, fold_calls, _ = calibration
    without = run(0)["calibration"]["lexical_grid"]
    with_folds = run(3)["calibration"]["lexical_grid"]
    assert fold_calls == [3]
    for w in ("0.0", "0.3"):
        assert without[w]["real_style_top1"] == with_folds[w]["real_style_top1"] > 0
